"""The compiler: a quantized network -> a program and memory images for a configuration.

Mapping (weight-stationary; ``docs/architecture.md``, "Mapping"): each layer's input is
broadcast from NM into every
tile's NBin (LOAD; a convolution or pooling whose input does not fit NBin is split into bands
of output rows, each with the input rows it needs); every tile computes its share of the output blocks and output rows from
its own SB (CONV/MAXPOOL/AVGPOOL); the outputs are collected into NM (STORE). For each
layer the compiler chooses how many tile groups share the output blocks (the rest split
the output rows), picking the split with the fewest cycles by the cycle model, so a layer
with fewer output blocks than tiles still keeps tiles busy.

NM holds the live tensors only, as DaDianNao's central eDRAM does: a layer's input and its
output. A layer's output goes to row 0 when it fits below its input, else right after its
input, so it overwrites tensors that are dead. With ``intermediates`` every layer's output
keeps its own address instead, so that all of them can be read back after the run.

A network that cannot run on the configuration raises :class:`CompileError` naming the layer
and the limit: a buffer too small, a worst-case accumulator wider than ``Config.acc_width``
(:func:`layer_acc_bound`), an instruction field out of its range (checked as each instruction
is emitted), too many activation tables or instructions.
"""

from dataclasses import dataclass, replace

import numpy as np

from diannao.golden.formats import INT16_MIN, MAX_BIAS_EXP, avg_reciprocal
from diannao.golden.layers import accumulator_bound
from diannao.hw.config import Config
from diannao.hw.isa import (Op, check_fields, compute_fields, encode, field_range, load_fields,
                            run_counts)
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import (as_chw, conv_sb_rows, lrn_sb_rows, pool_sb_row,
                                          private_sb_rows,
                                          tensor_rows, to_rows)
from diannao.sim.compiler.loops import fold_layers, offset, repeat, translate
from diannao.sim.compiler.paging import can_page, instruction_room, page
from diannao.sim.compiler.tiling import TilingError, geometry, plan_layer


__all__ = ["Program", "LayerInfo", "compile_network", "CompileError", "layer_acc_bound",
           "acc_bits", "layer_macs"]

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
    kept: bool = True    # its output is still in NM after the run (the last layer's always)
    #: SB row groups (a row for every tile) its SBLOADs read from main memory, counting
    #: every read of rows read again; 0: its weights are resident in SB.
    mem_rows: int = 0
    #: Its instructions were made from its plan in passes of output blocks, with LOOPs
    #: where its bands repeat (a real-size layer: :func:`_looped_layer`), not listed flat.
    looped: bool = False

    @property
    def streamed(self):
        """Its weights stream from main memory."""
        return self.mem_rows > 0


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
    intermediates : bool
        Every layer's output is kept in NM (:attr:`LayerInfo.kept`); else only the last.
    mem : numpy.ndarray
        The main-memory image of streamed weights: row groups ``[groups, tiles, tn, tn]``
        (int16; row group ``r`` holds SB row ``r`` of each tile at main-memory beats
        ``(r * tiles + t) * sb_row_beats`` on); empty when every weight is resident.
    code_base : int
        Main-memory beat of :attr:`code_words` (after the weights).
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
    intermediates: bool = False
    mem: np.ndarray = None
    code_base: int = 0

    @property
    def resident_words(self):
        """The encoded instructions the host writes into the instruction memory: all of
        them, or of a paged program (longer than the instruction memory,
        :mod:`diannao.sim.compiler.paging`) its first two pages."""
        return self.words[:self.config.imem_depth]

    @property
    def code_words(self):
        """The encoded instructions main memory holds from beat :attr:`code_base` on
        (``Config.instr_beats`` beats each): a paged program's every instruction; none
        when it fits the instruction memory."""
        return self.words if len(self.instructions) > self.config.imem_depth else []

    @property
    def words(self):
        return [encode(**f) for f in self.instructions]

    def input_image(self, x_q):
        """NM rows holding one input sample."""
        return to_rows(x_q, self.config.tn)


def _table_key(t):
    return (t.x_lo, t.k, t.f, tuple(t.a), tuple(t.b))


def layer_macs(layer):
    """Multiply-accumulates of a quantized layer (a pooling: one per window element)."""
    o, oh, ow = as_chw(layer.out_shape)
    c, _, _ = as_chw(layer.in_shape)
    if layer.kind == "fc":
        return int(np.prod(layer.out_shape)) * int(np.prod(layer.in_shape))
    if layer.kind in ("conv", "local"):
        return o * oh * ow * c * layer.kernel * layer.kernel
    if layer.kind == "lrn":
        return c * oh * ow * min(c, layer.kernel)     # the squares of the windows
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
      the largest): ``|acc| <= 32768``;
    * ``"lrn"``: the squares of a window of ``min(kernel, C)`` channels:
      ``|acc| <= min(kernel, C) * 32768**2``.

    A partial sum adds only some of the same terms, so the bound holds for it too; padding
    rows add 0.

    Parameters
    ----------
    layer : golden.quant.QLayer

    Returns
    -------
    int
    """
    if layer.kind in ("conv", "local", "fc"):
        return int(accumulator_bound(layer.w_q, layer.b_q, layer.bias_exp).max())
    if layer.kind == "avgpool":
        r, _ = avg_reciprocal(layer.kernel * layer.kernel)
        return layer.kernel * layer.kernel * _X_MAX * r
    if layer.kind == "maxpool":
        return _X_MAX      # one product x * 1
    if layer.kind == "lrn":
        return min(layer.kernel, as_chw(layer.in_shape)[0]) * _X_MAX * _X_MAX
    raise ValueError(f"unsupported layer kind {layer.kind!r}")


def acc_bits(bound):
    """Bits of a signed accumulator that holds every value with ``|acc| <= bound``:
    ``bound.bit_length() + 1`` (``bound <= 2**(bits - 1) - 1``)."""
    return int(bound).bit_length() + 1


def _tile_fields(layer, plan, tile, chunk, cfg, *, sb_base, out_base, log2_gob=None,
                 nbin_base=0, nbout_half=0, dma_ahead=0, **settings):
    """The compute instruction of chunk number ``chunk`` of output ``tile`` of ``plan``
    (:mod:`diannao.sim.compiler.tiling`), with the tile split ``log2_gob`` (None: the one
    that finishes soonest by the cycle model). With streamed weights (``plan.stream``) its
    SB rows are its own, from ``sb_base``: each of its blocks ``sb_step`` rows, the
    chunk's (with the bias row in the first chunk)."""
    g = plan.g
    oy0, oy1, ox0, ox1, b0, b1 = tile
    chunks = plan.chunks
    k0, k1, c0, c1 = chunks[chunk]
    box = plan.box(tile, chunks[chunk])
    conv = g.kind == "conv"
    private = layer.kind == "local"
    bias_row = conv and not g.lrn
    if conv:
        op = Op.CONV
        # SB rows of an output block: the bias row, then the chunks' rows in order
        # (_chunk_order); a chunk after the first starts past the bias row. (An LRN has
        # one chunk and no bias row.)
        sb = sb_base + (1 + plan.chunk_starts[chunk] if chunk else 0)
        sb_step = g.block_rows
        # Blocks from b0 (a multiple of the tile count, so of every group count) start
        # b0 / groups blocks into each tile's SB.
        first_block = b0
        shift = settings["shift"]
        if private:
            # A locally connected layer: the instruction's own SB rows from sb_base, each
            # of its blocks oy_band * ow positions of (bias row +) the chunk's rows
            # (mapping.private_sb_rows).
            sb, first_block = sb_base, 0
    else:
        op = Op.MAXPOOL if layer.kind == "maxpool" else Op.AVGPOOL
        sb, sb_step, first_block = sb_base, 0, 0
        shift = avg_reciprocal(layer.kernel ** 2)[1] if layer.kind == "avgpool" else 0
    oh = oy1 - oy0
    if plan.one_box:
        # A box of every channel block of one position (tiling.Plan.box): the chunk's lie
        # from row c0 - box.c0 on.
        nbin_base += c0 - box.c0
        box = replace(box, c0=c0, c1=c1)
    base = dict(op=op, in_h=box.y1 - box.y0, in_w=box.x1 - box.x0, cb=box.c1 - box.c0,
                kh=k1 - k0, kw=g.kw, stride=g.stride,
                y_off=g.pad + box.y0 - oy0 * g.stride - k0,
                x_off=g.pad + box.x0 - ox0 * g.stride,
                oh=oh, ow=ox1 - ox0, ob=b1 - b0, ocb=g.ob, out_w=g.ow,
                out_base=out_base + (oy0 * g.ow + ox0) * g.ob + b0,
                nbin_base=nbin_base, nbout_half=nbout_half, dma_ahead=dma_ahead,
                psum_in=int(conv and chunk > 0),
                psum_out=int(conv and chunk < len(chunks) - 1), private=int(private),
                lrn=int(g.lrn), **dict(settings, shift=shift))
    per_pos = (k1 - k0) * g.kw * (c1 - c0) + (bias_row and chunk == 0)
    if plan.stream and conv:
        # The instruction's own rows (_segment): each block the chunk's rows.
        sb, sb_step, first_block = sb_base, per_pos, 0

    def fields(lg):
        band = -(-oh // (cfg.tiles >> lg))
        step = band * (ox1 - ox0) * per_pos if private else sb_step
        return compute_fields(**base, log2_gob=lg, oy_band=band, sb_step=step,
                              sb_base=sb + (first_block >> lg) * step)

    if log2_gob is not None:
        return fields(log2_gob)
    return min((fields(lg) for lg in range(cfg.log2_tiles + 1)),
               key=lambda f: max(cycle_model.compute_cycles(f, cfg)[0]))


def _chunk_rows(g, chunk):
    """Indices of a chunk's rows among an output block's SB rows
    (:func:`mapping.conv_sb_rows`: the bias row, then ``(ky, kx, cb)`` in loop order)."""
    k0, k1, c0, c1 = chunk
    return [1 + (ky * g.kw + kx) * g.cb + c for ky in range(k0, k1)
            for kx in range(g.kw) for c in range(c0, c1)]


def _chunk_order(g, plan):
    """Indices of an output block's SB rows with the chunks' rows one after the other, the
    bias row first."""
    return [0] + [i for chunk in plan.chunks for i in _chunk_rows(g, chunk)]


def _segment(rows, f, tile, order, cfg):
    """Per tile, the SB rows a compute instruction with fields ``f`` reads when its weights
    stream (``plan.stream``): for each of the tile's blocks of output tile ``tile`` in order
    (block ``b0 + (t mod G) + k * G``, ``G = 2**log2_gob``), rows ``order`` of the layer's
    rows ``rows[block]``; a pooling's one shared row. Padded with zero rows to the most
    rows of a tile (an SBLOAD brings as many rows to every tile)."""
    tn = cfg.tn
    if f["op"] != Op.CONV:
        return [rows[None] for _ in range(cfg.tiles)]
    b0, g = tile[4], 1 << f["log2_gob"]
    out = []
    for t in range(cfg.tiles):
        nb = cycle_model.tile_share(f, t)[0]
        picked = [rows[b0 + (t & (g - 1)) + k * g][order] for k in range(nb)]
        out.append(np.concatenate(picked) if picked else np.zeros((0, tn, tn), np.int64))
    return _padded(out, tn)


def _padded(per_tile, tn, rows=None):
    """Each tile's ``[n, tn, tn]`` rows with zero rows after them, to ``rows`` rows (default:
    the most of any tile): an SBLOAD brings as many rows to every tile, and each tile's part
    of a resident layer is as long as the longest."""
    rows = max(len(r) for r in per_tile) if rows is None else rows
    return [np.concatenate([r, np.zeros((rows - len(r), tn, tn), np.int64)]) for r in per_tile]


def _room_text(cfg):
    """Where a program's instructions go on ``cfg``, for an error message."""
    if can_page(cfg):
        return (f"what the instruction memory ({cfg.imem_depth:,}, imem_depth) and main "
                f"memory ({cfg.mem_depth:,} beats, mem_depth, {cfg.instr_beats} an "
                f"instruction) hold")
    return "which the instruction memory holds (imem_depth)"


class _SBFull(CompileError):
    """The network's weights do not fit SB together."""


def _check_sb(sb_next, used, limit, cfg, where):
    """Raise :class:`_SBFull` if a layer's ``used`` SB rows per tile from row ``sb_next``
    do not fit below row ``limit``."""
    if sb_next + used > limit:
        row_bytes = cfg.tn * cfg.tn * 2
        raise _SBFull(
            f"{where}: SB needs {sb_next + used} rows per tile ({(sb_next + used) * row_bytes:,} "
            f"bytes; this layer's weights {used * row_bytes:,}), but has {cfg.sb_depth} "
            f"(sb_depth, {cfg.sb_depth * row_bytes:,} bytes); weights beyond the node's "
            f"SB stream from a main memory, which this configuration does not have "
            f"(Config.mem_bytes is 0)")


def _conv_rows(layer, g, tn):
    """A convolution's (or FC's) SB rows by output block, ``[OB, block_rows, tn, tn]``
    (:func:`mapping.conv_sb_rows`), built once per layer; None for the other layers."""
    if g.kind != "conv" or g.lrn or g.private:
        return None
    w = layer.w_q if layer.kind == "conv" else layer.w_q.reshape(
        (layer.w_q.shape[0],) + as_chw(layer.in_shape))
    return conv_sb_rows(w, layer.b_q, tn)


def _layer_sb(layer, g, plan, cfg, split, sb_next, limit, program, where, conv_rows,
              log2_gob=None):
    """A layer's SB rows and compute instructions for ``plan``: resident (``plan.stream``
    0) from SB row ``sb_next``, checked against ``limit`` rows (raises :class:`_SBFull`),
    or streaming through slots of ``plan.stream`` rows from SB row ``limit``; with the tile
    split ``log2_gob`` (None: the one that finishes its first output tile soonest).
    ``conv_rows``: :func:`_conv_rows` of the layer.

    Returns ``(tiles, log2_gob, f, private, per_tile, steps, computes, used, layer_rows,
    plan)``: the output tiles, the tile split, the first compute instruction, whether the
    layer is locally connected, per tile its resident rows (padded to ``used`` by the
    caller), the plan's steps, the compute instructions' fields by step, the resident rows
    per tile, and the layer's SB rows by output block for streaming.
    """
    tn, stream = cfg.tn, plan.stream
    tiles = plan.out_tiles()
    computes_needed = len(tiles) * len(plan.chunks)     # one compute instruction each
    room = instruction_room(cfg)
    if len(program) + computes_needed + 1 > room:
        raise CompileError(f"{where}: the program needs more than {room:,} instructions, "
                           f"{_room_text(cfg)}: this layer alone has {computes_needed:,} "
                           f"compute instructions ({len(tiles):,} output tiles of "
                           f"{len(plan.chunks):,} chunks)")
    if log2_gob is None:
        log2_gob = split(plan, tiles[0])["log2_gob"]
    f = split(plan, tiles[0], log2_gob)

    # SB images: tile t holds its blocks in order (a locally connected layer: the rows
    # each instruction reads, laid out as the instructions are emitted).
    g_tiles = 1 << log2_gob
    private = layer.kind == "local"
    per_tile = None
    if private:
        per_tile = [[] for _ in range(cfg.tiles)]
    elif g.lrn:
        rows = lrn_sb_rows(layer.in_shape[0], layer.kernel, tn)     # [CB, CB, tn, tn]
        per_tile = [rows[t & (g_tiles - 1)::g_tiles].reshape(-1, tn, tn)
                    for t in range(cfg.tiles)]
    elif g.kind == "conv":
        rows = conv_rows                                # [OB, sb_step, tn, tn]
        if not stream:
            rows = rows[:, _chunk_order(g, plan)]
            per_tile = [rows[t & (g_tiles - 1)::g_tiles] for t in range(cfg.tiles)]
            per_tile = [r.reshape(-1, tn, tn) for r in per_tile]
    else:
        row = pool_sb_row(layer.kind, layer.kernel, tn)[None]
        per_tile = [row for _ in range(cfg.tiles)]

    # Resident rows shared by the output tiles: checked before any instruction is made (a
    # real-size layer's tiling can have millions).
    used, layer_rows = 0, None
    if not stream and not private:
        used = max(len(r) for r in per_tile)
        _check_sb(sb_next, used, limit, cfg, where)
    # The compute instructions' fields, in order: a locally connected layer's take the
    # SB rows that follow the previous one's (its most blocks of a tile, sb_step rows
    # each), all checked against SB before any row is built (a real layer's private
    # kernels are hundreds of megabytes).
    steps, offset = list(plan.steps(cfg)), 0
    computes = {}
    for i, step in enumerate(steps):
        if step.kind == "compute":
            base = (limit + step.sb_slot * stream if stream
                    else sb_next + offset if private else None)
            computes[i] = split(plan, step.tile, log2_gob, step.chunk, sb_base=base,
                                nbin_base=step.nbin_base, nbout_half=step.nbout_half,
                                dma_ahead=step.dma_ahead)
            if private:
                fields = computes[i]
                offset += -(-fields["ob"] // (1 << log2_gob)) * fields["sb_step"]
    # Streaming: the rows by output block ([OB, rows, tn, tn]; a pooling's one row).
    if stream:
        layer_rows = None if private else rows if g.kind == "conv" else row[0]
    elif private:
        used = offset
        _check_sb(sb_next, used, limit, cfg, where)
    return tiles, log2_gob, f, private, per_tile, steps, computes, used, layer_rows, plan


def _emit_steps(layer, g, plan, cfg, steps, computes, layer_rows, per_tile, emit, *, in_base,
                win0, mem_next, where):
    """Emit (``emit(fields)``) the instructions of a layer's ``steps`` (``Plan.steps``) with
    its compute instructions' fields ``computes`` (by step), in order: LOADs into NBin's
    halves, the compute instructions, STOREs overlapping the next output tile's
    computation, and with streamed weights (``plan.stream``) the SBLOADs of their rows from
    main memory, from row group ``mem_next`` on (``layer_rows``: the layer's SB rows by
    output block). A locally connected layer's resident rows go to ``per_tile``.

    Returns ``(images, read)``: the main-memory row groups the SBLOADs read first, in order,
    and the row groups they read, counting every read of rows read again.
    """
    tn, stream, private = cfg.tn, plan.stream, g.private
    limit = cfg.nbin_depth // 2 if plan.nbin_halves else cfg.nbin_depth
    images, mem_read = [], 0
    segments = {}       # (first block, end block, chunk) -> (row group, rows) in memory
    for i, step in enumerate(steps):
        key = (None if private or step.kind != "sbload"
               else (step.tile[4], step.tile[5], step.chunk))
        if step.kind == "sbload" and key is not None and key in segments:
            # Rows main memory holds already (the same blocks and chunk, for another
            # output tile): read them again.
            src, count = segments[key]
            emit(dict(op=Op.SBLOAD, mem=src, dst=win0 + step.sb_slot * stream, count=count))
            mem_read += count
        elif step.kind == "sbload":
            # The rows of the next compute step of its output tile and chunk, into
            # the slot it reads.
            fields = computes[next(k for k in range(i + 1, len(steps))
                                   if steps[k].kind == "compute"
                                   and steps[k].tile == step.tile
                                   and steps[k].chunk == step.chunk)]
            if private:
                seg = _padded(private_sb_rows(layer.w_q, layer.b_q, fields, step.tile,
                                              plan.chunks[step.chunk], step.chunk == 0,
                                              tn, cfg.tiles), tn)
            elif g.kind == "conv" and not g.lrn:
                order = (([0] if step.chunk == 0 else [])
                         + _chunk_rows(g, plan.chunks[step.chunk]))
                seg = _segment(layer_rows, fields, step.tile, order, cfg)
            elif g.lrn:
                seg = _segment(layer_rows, fields, step.tile, slice(None), cfg)
            else:
                seg = _segment(layer_rows, fields, step.tile, None, cfg)
            count = len(seg[0])
            images.append(np.stack(seg, axis=1).astype(np.int16))
            emit(dict(op=Op.SBLOAD, mem=mem_next, dst=win0 + step.sb_slot * stream,
                      count=count))
            if key is not None:
                segments[key] = (mem_next, count)
            mem_next += count
            mem_read += count
        elif step.kind == "load":
            box = step.box
            if box.rows > limit:
                raise CompileError(f"{where}: internal error: a box of {box.rows} rows "
                                   f"for NBin of {cfg.nbin_depth} (nbin_depth)")
            emit(dict(_load(box, g, in_base), dst=step.nbin_base, sync=step.sync))
        elif step.kind == "compute":
            emit(computes[i])
            if private and not stream:
                for t, rows in enumerate(private_sb_rows(
                        layer.w_q, layer.b_q, computes[i], step.tile,
                        plan.chunks[step.chunk], step.chunk == 0, tn, cfg.tiles)):
                    per_tile[t].append(rows)
        else:
            emit(dict(op=Op.STORE, nbout_half=step.nbout_half, sync=step.sync))
    return images, mem_read


def _huge(g, plan, cfg):
    """Whether the compiler makes ``plan``'s instructions with LOOPs (:func:`_looped_layer`):
    on a node with loops (``Config.loop_depth``), when they would not fit its instruction
    memory flat."""
    # A LOAD and a compute instruction a box (and an SBLOAD, streaming), a STORE a tile.
    flat = plan.boxes * (2 + (plan.stream > 0)) + plan.tile_count
    return cfg.loop_depth > 0 and not g.private and not plan.whole and flat > cfg.imem_depth


def _passes(plan):
    """``[(first, end)]``: the output blocks of each pass of a layer made with LOOPs: one
    step of the plan's output blocks each."""
    step = plan.block_step
    return [(b0, min(b0 + step, plan.g.ob)) for b0 in range(0, plan.g.ob, step)]


def _sample(plan, bands, blocks):
    """``plan`` on the same layer cut to ``bands`` bands of output rows (the middle ones
    cut out), and to its output tiles of ``blocks`` (:func:`_passes`): the same
    instructions as the layer's in its first bands (where the top of the input clips the
    boxes) and, moved by the bands cut, in its last ones (where the bottom does)."""
    g = plan.g
    cut = (-(-g.oh // plan.band) - bands) * plan.band
    return replace(plan, g=replace(g, oh=g.oh - cut, h=g.h - cut * g.stride), blocks=blocks)


def _first_split(plan, split):
    """The tile split of ``plan``'s first output tile (:func:`_layer_sb`): a layer made with
    LOOPs keeps it in every sample of it (:func:`_sample`), whose first tiles the bottom
    of the input can clip where the layer's does not."""
    return split(plan, next(plan.iter_tiles()))["log2_gob"]


def _looped_layer(layer, g, plan, cfg, split, sb_next, win0, in_base, mem_next, where,
                  conv_rows):
    """A real-size layer's instructions with LOOPs, made from the plan without listing it
    flat (DianNao's CONV5 would take 30 million instructions flat): ``(instructions,
    images, read)`` as :func:`_emit_steps` gives them, or None when its bands do not repeat.

    The layer runs in passes (:func:`_passes`), each over one step of output blocks and
    ending with a STORE that waits for the tiles, as a layer of its own does. In a pass, the
    bands of output rows repeat with their NM addresses stepped: a LOOP runs them
    (:func:`loops.repeat`, from flat samples of the pass with a few bands,
    :func:`_sample`), and LOOPs inside fold each band's output tiles and chunks
    (:func:`loops.fold`). A pass of as many blocks as one made before is that one's
    instructions moved (NM and main-memory addresses), when one band of each agrees.
    """
    bands = -(-g.oh // plan.band)
    # Bands whose boxes the input's edges clip (zero padding), at the top and the bottom.
    edge = -(-g.pad // (g.stride * plan.band))
    band_step = dict(src=plan.band * g.stride * g.w * g.cb, out_base=plan.band * g.ow * g.ob)
    log2_gob = _first_split(plan, split)

    def flat(blocks, k, mem_base):
        sub = _sample(plan, k, blocks)
        _, _, _, _, per_tile, steps, computes, _, layer_rows, _ = _layer_sb(
            layer, sub.g, sub, cfg, split, sb_next, win0, [], where, conv_rows, log2_gob)
        out = []
        images, _ = _emit_steps(layer, sub.g, sub, cfg, steps, computes, layer_rows,
                                per_tile, out.append, in_base=in_base, win0=win0,
                                mem_next=mem_base, where=where)
        return out, images

    out, images, made = [], [], {}      # made: blocks per pass -> (one band, instructions)
    mem_base = mem_next
    for blocks in _passes(plan):
        one, pass_images = flat(blocks, 1, mem_base)
        size = blocks[1] - blocks[0]
        looped = None
        if size in made:
            moved = offset(made[size][0], one)
            if moved is not None:
                looped = translate(made[size][1], moved)
        if looped is None:
            looped = repeat(lambda k: flat(blocks, k, mem_base)[0], bands, band_step,
                            cfg.loop_depth, least=2 + 2 * edge)
            if looped is None:
                return None
            made[size] = (one, looped)
        out += looped
        images += pass_images
        mem_base += sum(len(x) for x in pass_images)
    read = sum(f["count"] * n for f, n in zip(out, run_counts(out)) if f["op"] == Op.SBLOAD)
    return out, images, read


def _load(box, g, in_base):
    """The LOAD of ``box`` of the input tensor at NM row ``in_base`` (rows of ``g.cb``
    channel blocks by position) into NBin from row 0."""
    rx, cc = box.x1 - box.x0, box.c1 - box.c0
    src = in_base + (box.y0 * g.w + box.x0) * g.cb + box.c0
    if cc == g.cb and rx == g.w and box.rows <= field_range("count")[1]:
        return load_fields(src=src, count=box.rows)        # whole rows: one run
    if cc == g.cb:          # whole positions: a line of the box is one run
        return load_fields(src=src, count=rx * cc, lines=box.y1 - box.y0,
                           line_skip=(g.w - rx) * g.cb)
    return load_fields(src=src, count=cc, runs=rx, run_skip=g.cb - cc,
                       lines=box.y1 - box.y0, line_skip=(g.w - rx + 1) * g.cb - cc)


def _place(in_base, in_rows, out_rows, intermediates, used):
    """NM row of a layer's output: after everything (``used`` rows) with ``intermediates``;
    else at row 0 when it fits below the layer's input, else right after the input."""
    if intermediates:
        return used
    return 0 if out_rows <= in_base else in_base + in_rows


def compile_network(qnet, config, *, intermediates=False):
    """Compile a :class:`golden.quant.QNetwork` for ``config``.

    Every layer's weights stay in SB for the whole program when they fit it together.
    Otherwise, on a configuration with a main memory (``Config.mem_bytes``), two programs
    are made and the one with fewer cycles by the cycle model kept: SB split, the layers
    whose weights fit its lower half in turn keeping them there and the others streaming
    theirs from main memory through the upper half (:mod:`diannao.sim.compiler.tiling`:
    ``SBLOAD`` into the halves of that window, ``Program.mem`` the main-memory image); and
    every layer's SB rows streaming through the whole of SB, as DianNao streams its
    synapses.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    config : Config
    intermediates : bool
        Keep every layer's output in NM (each at its own address) to read it back after the
        run; by default NM holds the live tensors only (a layer's input and output).

    Raises
    ------
    CompileError
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    try:
        return _compile(qnet, config, intermediates, window=0)
    except _SBFull:
        if not config.mem_bytes:
            raise
    # Both ways of streaming; the one with fewer cycles by the cycle model (the mixed one
    # on a tie).
    programs, error = [], None
    for window in (config.sb_depth // 2, config.sb_depth):
        try:
            programs.append(_compile(qnet, config, intermediates, window=window))
        except CompileError as exc:
            error = exc
    if not programs:
        raise error
    return min(programs, key=lambda p: sum(cycle_model.program_cycles(p.instructions, config)))


class _LoopsTooLong(CompileError):
    """A program with a layer made with LOOPs (:func:`_looped_layer`) longer than the
    instruction memory: it cannot page (a loop may not cross a page)."""


def _compile(qnet, config, intermediates, window):
    """:func:`_compile_once` with real-size layers made with LOOPs, or flat when the program
    then does not fit the instruction memory."""
    try:
        return _compile_once(qnet, config, intermediates, window, loops=True)
    except _LoopsTooLong as looped:
        try:
            return _compile_once(qnet, config, intermediates, window, loops=False)
        except CompileError as flat:
            raise CompileError(f"{flat}; with LOOPs: {looped}") from None


def _compile_once(qnet, config, intermediates, window, loops):
    """:func:`compile_network` with a streaming window of the top ``window`` rows of SB: 0,
    every layer's weights resident (or :class:`_SBFull`); less than SB, the layers that fit
    below it resident and the others streaming; all of SB, every layer streaming."""
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

    input_base = 0
    nm_next = tensor_rows(layers[0].in_shape, tn)      # NM rows used so far
    sb_images = [[] for _ in range(cfg.tiles)]
    sb_next = 0
    mem_image, mem_next = [], 0      # streamed SB rows: row groups of main memory
    program, infos = [], []
    room = instruction_room(cfg)

    def emit(where, instr):
        """Append ``instr`` to the program once every field fits its range and the
        instruction memory has room for it and a HALT (a real-size layer on a small node
        can need millions: stop at the first one too many)."""
        try:
            check_fields(instr)
        except ValueError as exc:
            raise CompileError(f"{where}: {exc}") from None
        if len(program) + 1 >= room:
            raise CompileError(f"{where}: the program needs more than {room:,} "
                               f"instructions, {_room_text(cfg)}")
        program.append(instr)

    in_base = input_base
    for layer in layers:
        where = f"layer {layer.index} ({layer.kind})"
        if layer.kind in ("conv", "local", "fc") and not 0 <= layer.bias_exp <= MAX_BIAS_EXP:
            # The bias row's input is the int16 1 << bias_exp: 1 << 15 would wrap.
            raise CompileError(f"{where}: bias_exp={layer.bias_exp} is outside [0, "
                               f"{MAX_BIAS_EXP}] (the bias row's input 1 << bias_exp must be "
                               f"an int16)")
        if layer.kind == "lrn" and not cfg.lrn:
            raise CompileError(f"{where}: this configuration has no LRN datapath (Config.lrn "
                               f"is 0)")
        bound = layer_acc_bound(layer)
        if acc_bits(bound) > cfg.acc_width:
            raise CompileError(f"{where}: the worst-case accumulator needs {acc_bits(bound)} "
                               f"bits (|acc| <= {bound:.3g}), but Config.acc_width is "
                               f"{cfg.acc_width}")
        in_rows, out_rows = tensor_rows(layer.in_shape, tn), tensor_rows(layer.out_shape, tn)
        out_base = _place(in_base, in_rows, out_rows, intermediates, nm_next)
        if out_base + out_rows > cfg.nm_depth:
            what = ("with every layer's output kept" if intermediates else
                    f"for its input ({in_rows} rows) and output ({out_rows} rows)")
            raise CompileError(f"{where}: NM needs {out_base + out_rows} rows {what}, but "
                               f"has {cfg.nm_depth} (nm_depth)")
        nm_next = max(nm_next, out_base + out_rows)
        act = int(layer.table is not None and layer.activation != "identity")
        settings = dict(shift=layer.shift, bias_exp=layer.bias_exp, act=act,
                        table=slots[_table_key(layer.table)] if act else 0)
        g = geometry(layer, tn)
        conv_rows = _conv_rows(layer, g, tn)

        def split(plan, tile, log2_gob=None, chunk=0, sb_base=None, **place):
            return _tile_fields(layer, plan, tile, chunk, cfg,
                                sb_base=sb_next if sb_base is None else sb_base,
                                out_base=out_base, log2_gob=log2_gob, **place, **settings)

        # Resident first (below the window), else streaming through the window's slots.
        win0 = cfg.sb_depth - window
        modes = [0] if not window else [window] if not win0 else [0, window]
        for mode in modes:
            try:
                if not mode and g.kind == "conv" and not g.lrn and layer.kind != "local":
                    # Resident weights: the fewest SB rows a tile can hold (its share of
                    # the output blocks), checked before the tiling search, whose plans
                    # would not hold them anyway.
                    _check_sb(sb_next, -(-g.ob // cfg.tiles) * g.block_rows, win0, cfg,
                              where)
                plan = plan_layer(g, cfg, split, where, window=mode)
                huge = loops and _huge(g, plan, cfg)
                # (A real-size layer's SB rows and first instruction from one band of its
                # first pass: _looped_layer makes its instructions.)
                layer_sb = _layer_sb(layer, g, _sample(plan, 1, _passes(plan)[0]) if huge
                                     else plan, cfg, split, sb_next, win0, program, where,
                                     conv_rows, _first_split(plan, split) if huge else None)
            except _SBFull:
                if mode == modes[-1]:
                    raise
                continue
            except TilingError as exc:
                raise CompileError(str(exc)) from None
            break
        (tiles, log2_gob, f, private, per_tile, steps, computes, used, layer_rows,
         _) = layer_sb
        stream = plan.stream
        if not stream and not private:
            for image, rows in zip(sb_images, _padded(per_tile, tn, used)):
                image.append(rows)

        # The plan's instructions in order (tiling.Plan.steps: LOADs into NBin's halves,
        # STOREs overlapping the next output tile's computation), or a real-size layer's
        # with LOOPs (_looped_layer).
        first = len(program)
        looped = (_looped_layer(layer, g, plan, cfg, split, sb_next, win0, in_base, mem_next,
                                where, conv_rows) if huge else None)
        if looped is None:
            if huge:        # (its bands do not repeat: flat after all)
                steps, computes = _layer_sb(layer, g, plan, cfg, split, sb_next, win0,
                                            program, where, conv_rows)[5:7]
            images, mem_read = _emit_steps(layer, g, plan, cfg, steps, computes, layer_rows,
                                           per_tile, lambda f: emit(where, f),
                                           in_base=in_base, win0=win0, mem_next=mem_next,
                                           where=where)
        else:
            instructions, images, mem_read = looped
            for instr in instructions:
                emit(where, instr)
        pcs = list(range(first, len(program)))
        mem_image += images
        mem_next += sum(len(x) for x in images)
        if private and not stream:
            for image, rows in zip(sb_images, _padded([np.concatenate(r) for r in per_tile],
                                                      tn, used)):
                image.append(rows)
        sb_next += used
        infos.append(LayerInfo(layer.index, layer.kind, tuple(layer.in_shape),
                               tuple(layer.out_shape), in_base, out_base, layer_macs(layer), f,
                               pcs, kept=intermediates or layer is layers[-1],
                               mem_rows=mem_read, looped=looped is not None))
        in_base = out_base
    if len(program) + 1 > cfg.imem_depth and any(f["op"] == Op.LOOP for f in program):
        raise _LoopsTooLong(f"the program needs {len(program) + 1:,} instructions, more than "
                            f"the instruction memory holds ({cfg.imem_depth:,}, imem_depth; "
                            f"a program with LOOPs does not page)")
    program.append(dict(op=Op.HALT))      # emit() left room for it
    sb = [np.concatenate(imgs) if imgs else np.zeros((0, tn, tn), dtype=np.int64)
          for imgs in sb_images]
    mem = (np.concatenate(mem_image) if mem_image
           else np.zeros((0, cfg.tiles, tn, tn), dtype=np.int16))
    beats = len(mem) * cfg.tiles * cfg.sb_row_beats
    paged = page(program, cfg, beats)
    if cfg.loop_depth:
        # The program folded into LOOPs, if it fits the instruction memory (a loop may not
        # cross a page) and takes no longer (a LOOP's fetch and decode can delay the
        # instruction after it where the controller is what the tiles wait for; paging
        # costs IMLOADs).
        folded, pcs = fold_layers(program, [info.pcs for info in infos], cfg.loop_depth)
        if (len(folded) < len(program) and len(folded) <= cfg.imem_depth
                and sum(cycle_model.program_cycles(folded, cfg))
                <= sum(cycle_model.program_cycles(paged.instructions, cfg))):
            paged = page(folded, cfg, beats)
            for info, p in zip(infos, pcs):
                info.pcs = p
    if cfg.mem_bytes and beats + paged.code_beats > cfg.mem_depth:
        code = (f" and the paged program's instructions {paged.code_beats:,}"
                if paged.code_beats else "")
        raise CompileError(f"main memory has {cfg.mem_depth:,} beats (mem_depth): the "
                           f"streamed weights need {beats:,}{code}")
    if paged.code_beats:
        # Each layer's instructions where paging put them, with the IMLOADs and waits
        # paging added counted in the layer of the instruction before.
        where, layer_of = {}, {pc: n for n, info in enumerate(infos) for pc in info.pcs}
        owner = 0
        for new, old in enumerate(paged.origin):
            if old is not None:
                owner = layer_of.get(old, owner)
            where.setdefault(owner, []).append(new)
        for n, info in enumerate(infos):
            info.pcs = where.get(n, [])
    return Program(cfg, paged.instructions, sb, tables, input_base,
                   tuple(layers[0].in_shape), infos[-1].out_base, tuple(layers[-1].out_shape),
                   infos, nm_next, intermediates, mem, code_base=beats)
