# amaranth: UnusedElaboratable=no
"""Helpers shared by the tests (``import helpers``; ``pythonpath`` in pyproject.toml).

Every expected value comes from the golden model (:mod:`diannao.golden`) or from an
independent computation in the tests; the helpers here only build cases and move data in and
out of the simulated hardware, through the project's own runners
(:func:`diannao.sim.engines.pysim_tile.run_tile`) and packers
(:func:`diannao.sim.runtime.host.pack_row`).
"""

from dataclasses import dataclass, field

import numpy as np

from diannao.golden.formats import build_table
from diannao.golden.layers import conv2d_int, fc_int, maxpool_int, avgpool_int, activation_int
from diannao.hw.config import preset
from diannao.sim.compiler.mapping import to_rows, conv_sb_rows, pool_sb_row, layer_fields, as_chw
from diannao.sim.compiler.cycle_model import tile_cycles, tile_emissions
from diannao.sim.engines.pysim_tile import assemble, run_tile
from diannao.sim.runtime.host import pack_row as pack, unpack_row as unpack


__all__ = ["pack", "unpack", "seeded_rng", "Case", "conv_case", "fc_case", "pool_case",
           "tile_config", "assemble", "check_layer", "run_tile",
           "TABLE_NAMES", "INT16_EDGES"]

TABLE_NAMES = ("sigmoid", "tanh", "relu", "identity")
INT16_EDGES = np.array([-32768, -32767, -1, 0, 1, 32766, 32767])


def seeded_rng(name):
    """A generator seeded from ``name`` (a test's node id: reproducible, different per
    test)."""
    return np.random.default_rng(sum(ord(c) * (i + 1) for i, c in enumerate(name)) % (2 ** 32))


# ---------------------------------------------------------------------------
# layer cases: inputs, SB image, instruction fields and the golden output
# ---------------------------------------------------------------------------

@dataclass
class Case:
    """One layer ready for a tile: ``fields(**share)`` gives the instruction fields."""
    kind: str
    in_shape: tuple
    out_shape: tuple
    x: np.ndarray
    sb: np.ndarray                 # [OB, rows per block, tn, tn] (pool: [1, 1, tn, tn])
    expected: np.ndarray           # golden output, out_shape
    tables: list
    tn: int
    layer_kw: dict = field(default_factory=dict)

    def fields(self, log2_gob=0, oy_band=None):
        return layer_fields(self.kind, self.in_shape, self.out_shape, tn=self.tn,
                            log2_gob=log2_gob, oy_band=oy_band, **self.layer_kw)

    @property
    def nbin_rows(self):
        return to_rows(self.x, self.tn)

    def sb_rows(self, index=0, log2_gob=0):
        """The SB image of tile ``index``: its own output blocks, in order."""
        g = 1 << log2_gob
        if self.kind in ("maxpool", "avgpool"):
            return self.sb.reshape(-1, self.tn, self.tn)
        mine = self.sb[index & (g - 1)::g]
        return mine.reshape(-1, self.tn, self.tn)


def _act(ref, act):
    if act is None:
        return ref, [], dict(act=0, table=0)
    tab = build_table(act, 8)
    # Put the table in the last slot sometimes so that `table` selection is exercised.
    return activation_int(ref, tab), [tab], dict(act=1, table=0)


def _rand(rng, lo, hi, shape, edges=False):
    a = rng.integers(lo, hi + 1, shape, dtype=np.int64)
    if edges and a.size:
        flat = a.reshape(-1)
        n = max(1, flat.size // 8)
        idx = rng.choice(flat.size, n, replace=False)
        flat[idx] = rng.choice(INT16_EDGES, n)
    return a


def conv_case(tn, rng, C, H, W, O, K, S=1, P=0, *, shift=8, bias_exp=2, act=None,
              xr=300, wr=300, br=3000, edges=False):
    x = _rand(rng, -xr, xr, (C, H, W), edges)
    w = _rand(rng, -wr, wr, (O, C, K, K), edges)
    b = _rand(rng, -br, br, (O,), edges)
    ref = conv2d_int(x, w, b, S, P, bias_exp, shift)
    ref, tables, akw = _act(ref, act)
    out_shape = ref.shape
    return Case("conv", (C, H, W), out_shape, x, conv_sb_rows(w, b, tn), ref, tables, tn,
                dict(kernel=K, stride=S, pad=P, shift=shift, bias_exp=bias_exp, **akw))


def fc_case(tn, rng, in_shape, O, *, shift=8, bias_exp=2, act=None, xr=300, wr=300, br=3000,
            edges=False):
    """FC over ``in_shape`` ([N] or [C, H, W]); golden ``fc_int`` on the flattened input."""
    in_shape = tuple(in_shape)
    n = int(np.prod(in_shape))
    x = _rand(rng, -xr, xr, in_shape, edges)
    w = _rand(rng, -wr, wr, (O, n), edges)
    b = _rand(rng, -br, br, (O,), edges)
    ref = fc_int(x, w, b, bias_exp, shift)
    ref, tables, akw = _act(ref, act)
    c, h, wd = as_chw(in_shape)
    sb = conv_sb_rows(w.reshape(O, c, h, wd), b, tn)
    return Case("fc", in_shape, (O,), x, sb, ref, tables, tn,
                dict(shift=shift, bias_exp=bias_exp, **akw))


def pool_case(tn, rng, kind, C, H, W, K, S, *, act=None, xr=32768, edges=True):
    x = _rand(rng, -xr, xr - 1, (C, H, W), edges)
    ref = (maxpool_int if kind == "maxpool" else avgpool_int)(x, K, S)
    ref, tables, akw = _act(ref, act)
    sb = pool_sb_row(kind, K, tn).reshape(1, 1, tn, tn)
    return Case(kind, (C, H, W), ref.shape, x, sb, ref, tables, tn,
                dict(kernel=K, stride=S, **akw))


def tile_config(case, tn, tiles=1):
    """The small preset at ``tn``/``tiles`` with buffers just deep enough for ``case``."""
    def depth(n):
        return max(16, 1 << max(1, int(n - 1).bit_length()))
    f = case.fields()
    nout = f["oh"] * f["ow"] * f["ob"]
    return preset("small").replace(tn=tn, tiles=tiles, nbin_depth=depth(len(case.nbin_rows)),
                                   sb_depth=depth(case.sb.shape[0] * case.sb.shape[1]),
                                   nbout_depth=depth(nout))


def check_layer(case, config=None, *, name="layer"):
    """Run ``case`` on one tile; outputs == golden, cycles == model, busy == emissions."""
    tn = case.tn
    config = config or tile_config(case, tn)
    f = case.fields()
    res = run_tile(config, f, case.nbin_rows, case.sb_rows(), case.tables, name=name)
    got = assemble(res.rows, f, case.out_shape, tn)
    np.testing.assert_array_equal(got, case.expected)
    cnt = res.counters
    assert cnt["start_to_done"] == tile_cycles(f, 0, config)
    assert cnt["cycles"] == tile_cycles(f, 0, config)
    assert cnt["nfu_busy"] == tile_emissions(f, 0)
    assert cnt["sb_reads"] == tile_emissions(f, 0)
    assert cnt["nbout_writes"] == len(res.rows)
    return res, f


