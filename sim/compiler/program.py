"""The compiler: a quantized network -> a program and memory images for a configuration.

Mapping (weight-stationary; ``docs/architecture.md``, "Mapping"): each layer's input is
broadcast from NM into every
tile's NBin (LOAD; a convolution or pooling whose input does not fit NBin is split into bands
of output rows, each with the input rows it needs); every tile computes its share of the output blocks and output rows from
its own SB (CONV/MAXPOOL/AVGPOOL); the outputs are collected into NM (STORE). For each
layer the compiler chooses how many tile groups share the output blocks (the rest split
the output rows), picking the split with the fewest cycles by the cycle model, so a layer
with fewer output blocks than tiles still keeps tiles busy.

NM holds every layer's output at its own address, so intermediates can be read back.

A network that cannot run on the configuration raises :class:`CompileError` naming the layer
and the limit: a buffer too small, a worst-case accumulator wider than ``Config.acc_width``
(:func:`layer_acc_bound`), an instruction field out of its range (checked as each instruction
is emitted), too many activation tables or instructions.
"""

from dataclasses import dataclass

import numpy as np

from diannao.golden.formats import INT16_MIN, MAX_BIAS_EXP, avg_reciprocal
from diannao.golden.layers import accumulator_bound
from diannao.hw.config import Config
from diannao.hw.isa import Op, check_fields, encode
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import (as_chw, blocks, conv_sb_rows, layer_fields, pool_sb_row,
                                          to_rows)


__all__ = ["Program", "LayerInfo", "compile_network", "CompileError", "layer_acc_bound",
           "acc_bits"]

#: The largest magnitude of an int16 input, ``|x| <= 32768``.
_X_MAX = -INT16_MIN


class CompileError(ValueError):
    """A network that cannot run on a configuration; the message names the layer."""


@dataclass
class LayerInfo:
    index: int
    kind: str
    in_shape: tuple
    out_shape: tuple
    in_base: int
    out_base: int
    macs: int
    fields: dict         # the first compute instruction
    pcs: list            # every instruction of the layer (LOAD, compute, STORE per band)


@dataclass
class Program:
    """A compiled network.

    Attributes
    ----------
    config : Config
    instructions : list of dict
        Instruction fields (``op`` and what it uses); :attr:`words` are their encodings.
    sb : list of numpy.ndarray
        Per tile, the SB image ``[rows, tn, tn]``.
    tables : list of golden.formats.PWLTable
        Activation tables by slot.
    input_base, input_shape, output_base, output_shape : int, tuple
        Where the network's input and output live in NM.
    layers : list of LayerInfo
    nm_rows : int
        NM rows used.
    """
    config: Config
    instructions: list
    sb: list
    tables: list
    input_base: int
    input_shape: tuple
    output_base: int
    output_shape: tuple
    layers: list
    nm_rows: int

    @property
    def words(self):
        return [encode(**f) for f in self.instructions]

    def input_image(self, x_q):
        """NM rows holding one input sample."""
        return to_rows(x_q, self.config.tn)


def _table_key(t):
    return (t.x_lo, t.k, t.f, tuple(t.a), tuple(t.b))


def _macs(layer):
    o, oh, ow = as_chw(layer.out_shape)
    c, _, _ = as_chw(layer.in_shape)
    if layer.kind == "fc":
        return int(np.prod(layer.out_shape)) * int(np.prod(layer.in_shape))
    if layer.kind == "conv":
        return o * oh * ow * c * layer.kernel * layer.kernel
    return o * oh * ow * layer.kernel * layer.kernel


def layer_acc_bound(layer):
    """The largest ``|acc|`` an NFU-2 accumulator can reach on ``layer``, for any input.

    The accumulator sums, over the rows of one output, NFU-1's products ``x * w`` of an int16
    input (``|x| <= 32768``) and an SB value ``w``:

    * ``"conv"``, ``"fc"``: the bias row (``x = 1 << bias_exp`` meets ``w = b``), then one
      product per weight: ``|acc| <= 32768 * sum|w| + |b| << bias_exp`` for each output,
      :func:`golden.layers.accumulator_bound`;
    * ``"avgpool"``: ``kernel**2`` products ``x * r`` with the reciprocal ``r`` of
      :func:`golden.formats.avg_reciprocal` on the SB diagonal:
      ``|acc| <= kernel**2 * 32768 * r``;
    * ``"maxpool"``: the accumulator holds one product ``x * 1`` (NFU-2's max mode keeps
      the largest): ``|acc| <= 32768``.

    A partial sum adds only some of the same terms, so the bound holds for it too; padding
    rows add 0.

    Parameters
    ----------
    layer : golden.quant.QLayer

    Returns
    -------
    int
    """
    if layer.kind in ("conv", "fc"):
        return int(accumulator_bound(layer.w_q, layer.b_q, layer.bias_exp).max())
    if layer.kind == "avgpool":
        r, _ = avg_reciprocal(layer.kernel * layer.kernel)
        return layer.kernel * layer.kernel * _X_MAX * r
    if layer.kind == "maxpool":
        return _X_MAX      # one product x * 1
    raise ValueError(f"unsupported layer kind {layer.kind!r}")


def acc_bits(bound):
    """Bits of a signed accumulator that holds every value with ``|acc| <= bound``:
    ``bound.bit_length() + 1`` (``bound <= 2**(bits - 1) - 1``)."""
    return int(bound).bit_length() + 1


def _bands(layer, cfg, where):
    """``[((o0, o1), (r0, r1))]``: bands of output rows and the input rows each needs, so
    that every band's input fits NBin (one band when the whole input fits)."""
    tn = cfg.tn
    c, h, w = as_chw(layer.in_shape)
    oh = as_chw(layer.out_shape)[1]
    per_row = w * blocks(c, tn)
    if h * per_row <= cfg.nbin_depth:
        return [((0, oh), (0, h))]
    if layer.kind == "fc":
        raise CompileError(f"{where}: its input needs {h * per_row} NBin rows, but NBin has "
                           f"{cfg.nbin_depth} (nbin_depth); a fully connected layer needs its "
                           f"whole input at once")
    k, s = layer.kernel, layer.stride
    pad = layer.pad if layer.kind == "conv" else 0
    band = (cfg.nbin_depth // per_row - k) // s + 1
    if band < 1:
        raise CompileError(f"{where}: one output row needs {k * per_row} NBin rows, but NBin "
                           f"has {cfg.nbin_depth} (nbin_depth)")
    out = []
    for o0 in range(0, oh, band):
        o1 = min(o0 + band, oh)
        r0, r1 = max(0, o0 * s - pad), min(h, (o1 - 1) * s - pad + k)
        out.append(((o0, o1), (r0, r1)))
    return out


def _choose_split(base_fields, cfg):
    """Fields with the tile split (log2_gob, oy_band) that finishes soonest."""
    best = None
    for log2_gob in range(cfg.log2_tiles + 1):
        groups = cfg.tiles >> log2_gob
        oy_band = -(-base_fields["oh"] // groups)
        f = layer_fields_with(base_fields, log2_gob=log2_gob, oy_band=oy_band)
        cycles = max(cycle_model.tile_cycles(f, t, cfg) for t in range(cfg.tiles))
        if best is None or cycles < best[0]:
            best = (cycles, f)
    return best[1]


def layer_fields_with(f, **changes):
    """Instruction fields ``f`` with its tile split changed (derived steps recomputed)."""
    f = dict(f, **changes)
    f["band_in_step"] = f["oy_band"] * f["stride"] * f["in_w"] * f["cb"]
    f["band_out_step"] = f["oy_band"] * f["ow"] * f["ocb"]
    return f


def compile_network(qnet, config):
    """Compile a :class:`golden.quant.QNetwork` for ``config``. Raises :class:`CompileError`."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    cfg, tn = config, config.tn
    layers = list(qnet.layers)
    if not layers:
        raise CompileError("the network has no layers")

    # Activation tables.
    tables, slots = [], {}
    for layer in layers:
        # Identity layers bypass NFU-3 (act=0), so their table needs no slot.
        if (layer.table is not None and layer.activation != "identity"
                and _table_key(layer.table) not in slots):
            slots[_table_key(layer.table)] = len(tables)
            tables.append(layer.table)
    if len(tables) > cfg.act_tables:
        raise CompileError(f"the network uses {len(tables)} distinct activation tables; "
                           f"the configuration holds {cfg.act_tables}")

    def rows_of(shape):
        c, h, w = as_chw(shape)
        return h * w * blocks(c, tn)

    nm_next = 0
    input_base = 0
    nm_next += rows_of(layers[0].in_shape)
    sb_images = [[] for _ in range(cfg.tiles)]
    sb_next = 0
    program, infos = [], []

    def emit(where, instr):
        """Append ``instr`` to the program once every field fits its range."""
        try:
            check_fields(instr)
        except ValueError as exc:
            raise CompileError(f"{where}: {exc}") from None
        program.append(instr)

    in_base = input_base
    for layer in layers:
        where = f"layer {layer.index} ({layer.kind})"
        if layer.kind in ("conv", "fc") and not 0 <= layer.bias_exp <= MAX_BIAS_EXP:
            # The bias row's input is the int16 1 << bias_exp: 1 << 15 would wrap.
            raise CompileError(f"{where}: bias_exp={layer.bias_exp} is outside [0, "
                               f"{MAX_BIAS_EXP}] (the bias row's input 1 << bias_exp must be "
                               f"an int16)")
        bound = layer_acc_bound(layer)
        if acc_bits(bound) > cfg.acc_width:
            raise CompileError(f"{where}: the worst-case accumulator needs {acc_bits(bound)} "
                               f"bits (|acc| <= {bound:.3g}), but Config.acc_width is "
                               f"{cfg.acc_width}")
        out_rows = rows_of(layer.out_shape)
        bands = _bands(layer, cfg, where)
        out_base = nm_next
        nm_next += out_rows
        if nm_next > cfg.nm_depth:
            raise CompileError(f"{where}: NM needs {nm_next} rows, but has {cfg.nm_depth} "
                               f"(nm_depth)")
        table = layer.table
        act = int(table is not None and layer.activation != "identity")
        c, h, w_in = as_chw(layer.in_shape)
        o, oh, ow = as_chw(layer.out_shape)
        cb, ob = blocks(c, tn), blocks(o, tn)
        band_fields = []
        for (o0, o1), (r0, r1) in bands:
            f = layer_fields(layer.kind, (c, r1 - r0, w_in), (o, o1 - o0, ow), tn=tn,
                             kernel=layer.kernel, stride=layer.stride, pad=layer.pad,
                             sb_base=sb_next, nbin_base=0, out_base=out_base + o0 * ow * ob,
                             shift=layer.shift, bias_exp=layer.bias_exp, act=act,
                             table=slots[_table_key(table)] if act else 0)
            if len(bands) > 1:
                # Rows of this band: local input row = real row - r0.
                f["y_off"] = (layer.pad if layer.kind == "conv" else 0) + r0 - o0 * layer.stride
                f["nbin_org"] = -(f["y_off"] * w_in + f["x_off"]) * cb
            band_fields.append(((r0, r1), f))
        # One split of the tiles per layer (it fixes the SB layout), chosen on the first band.
        log2_gob = _choose_split(band_fields[0][1], cfg)["log2_gob"]
        band_fields = [(rows, layer_fields_with(
            f, log2_gob=log2_gob, oy_band=-(-f["oh"] // (cfg.tiles >> log2_gob))))
            for rows, f in band_fields]
        f = band_fields[0][1]

        # SB images: tile t holds its blocks in order.
        g = 1 << f["log2_gob"]
        if f["op"] == Op.CONV:
            w = layer.w_q if layer.kind == "conv" else layer.w_q.reshape(
                (layer.w_q.shape[0],) + as_chw(layer.in_shape))
            rows = conv_sb_rows(w, layer.b_q, tn)          # [OB, sb_step, tn, tn]
            per_tile = [rows[t & (g - 1)::g] for t in range(cfg.tiles)]
            per_tile = [r.reshape(-1, tn, tn) for r in per_tile]
        else:
            row = pool_sb_row(layer.kind, layer.kernel, tn)[None]
            per_tile = [row for _ in range(cfg.tiles)]
        used = max(len(r) for r in per_tile)
        if sb_next + used > cfg.sb_depth:
            raise CompileError(f"{where}: SB needs {sb_next + used} rows per tile, but has "
                               f"{cfg.sb_depth} (sb_depth)")
        for t in range(cfg.tiles):
            pad = np.zeros((used - len(per_tile[t]), tn, tn), dtype=np.int64)
            sb_images[t].append(np.concatenate([per_tile[t], pad]))
        sb_next += used

        pcs = []
        for (r0, r1), bf in band_fields:
            for t in range(cfg.tiles):
                nb, nr = cycle_model.tile_share(bf, t)
                if nb * nr * bf["ow"] > cfg.nbout_depth:
                    raise CompileError(f"{where}: tile {t} produces {nb * nr * bf['ow']} "
                                       f"output rows, but NBout has {cfg.nbout_depth} "
                                       f"(nbout_depth)")
            pcs += [len(program), len(program) + 1, len(program) + 2]
            emit(where, dict(op=Op.LOAD, src=in_base + r0 * w_in * cb, dst=0,
                             count=(r1 - r0) * w_in * cb))
            emit(where, bf)
            emit(where, dict(op=Op.STORE))
        infos.append(LayerInfo(layer.index, layer.kind, tuple(layer.in_shape),
                               tuple(layer.out_shape), in_base, out_base, _macs(layer), f, pcs))
        in_base = out_base
    program.append(dict(op=Op.HALT))
    if len(program) > cfg.imem_depth:
        raise CompileError(f"the program has {len(program)} instructions, but the instruction "
                           f"memory holds {cfg.imem_depth} (imem_depth)")
    sb = [np.concatenate(imgs) if imgs else np.zeros((0, tn, tn), dtype=np.int64)
          for imgs in sb_images]
    return Program(cfg, program, sb, tables, input_base, tuple(layers[0].in_shape),
                   infos[-1].out_base, tuple(layers[-1].out_shape), infos, nm_next)
