# amaranth: UnusedElaboratable=no
"""Shared helpers of the hw tests: bit packing, a probed tile runner, layer cases.

Every expected value comes from the golden model (:mod:`golden.formats`,
:mod:`golden.layers`) or from an independent computation in the tests; the helpers here only
move data in and out of the simulated hardware.
"""

from dataclasses import dataclass, field

import numpy as np
import pytest
from amaranth import Elaboratable

from golden.formats import build_table
from golden.layers import conv2d_int, fc_int, maxpool_int, avgpool_int, activation_int
from hw.config import preset
from hw.isa import encode
from hw.tile import Tile, COUNTERS
from sim.cycle_model import tile_cycles, tile_emissions, tile_share
from sim.mapping import (to_rows, from_rows, conv_sb_rows, pool_sb_row, layer_fields, blocks,
                         as_chw)
from sim.tile_runner import load_tables
from sim.waves import simulate


__all__ = ["pack", "unpack", "TileProbe", "run_on_tile", "Case", "conv_case", "fc_case",
           "pool_case", "tile_config", "assemble", "check_layer", "TABLE_NAMES",
           "INT16_EDGES"]

TABLE_NAMES = ("sigmoid", "tanh", "relu", "identity")
INT16_EDGES = np.array([-32768, -32767, -1, 0, 1, 32766, 32767])


# ---------------------------------------------------------------------------
# bit packing (element 0 in the low bits, two's complement fields)
# ---------------------------------------------------------------------------

def pack(values, width=16):
    """Pack signed ints (flattened, element 0 lowest) into one int of ``width``-bit fields."""
    word, mask = 0, (1 << width) - 1
    for i, v in enumerate(np.asarray(values, dtype=object).reshape(-1)):
        word |= (int(v) & mask) << (i * width)
    return word


def unpack(word, n, width=16):
    """Inverse of :func:`pack`: ``n`` signed ``width``-bit fields as an int64 array."""
    word, mask, sign = int(word), (1 << width) - 1, 1 << (width - 1)
    out = []
    for i in range(n):
        v = (word >> (i * width)) & mask
        out.append(v - (1 << width) if v & sign else v)
    return np.array(out, dtype=np.int64)


# ---------------------------------------------------------------------------
# a tile with its NFU-1 input valid visible to the testbench
# ---------------------------------------------------------------------------

class TileProbe(Elaboratable):
    """Elaborates ``tile`` and keeps a handle on its NFU-1 (``self.nfu1``) for probing."""

    def __init__(self, tile):
        self.tile = tile
        self.nfu1 = None

    def elaborate(self, platform):
        m = self.tile.elaborate(platform)
        self.nfu1 = m.submodules.nfu1
        return m


def run_on_tile(config, fields, nbin_rows, sb_rows, tables=(), *, index=0, name="tile"):
    """Run one compute instruction on a ``Tile(config)`` numbered ``index``.

    Memories are preloaded directly, tables go through the ``tbl_*`` port.

    Returns
    -------
    dict with
        ``rows``: list of ``(nm_addr, int64[tn])`` in NBout order;
        ``counters``: the tile's counters plus ``start_to_done`` (start cycle to done cycle
        inclusive);
        ``nfu1_valid``: NFU-1 ``valid_in`` in each cycle after ``start``.
    """
    tn = config.tn
    tile = Tile(config)
    top = TileProbe(tile)
    res = {}

    async def bench(ctx):
        for i, row in enumerate(np.asarray(nbin_rows)):
            ctx.set(tile.nbin.data[i].as_value(), pack(row))
        for i, row in enumerate(np.asarray(sb_rows)):
            ctx.set(tile.sb.data[i].as_value(), pack(row))
        await load_tables(ctx, tile, tables)
        ctx.set(tile.index, index)
        ctx.set(tile.instr.as_value(), encode(**fields))
        ctx.set(tile.start, 1)
        await ctx.tick()
        ctx.set(tile.start, 0)
        cycles, valid = 1, []
        while not ctx.get(tile.done):
            valid.append(ctx.get(top.nfu1.valid_in))
            await ctx.tick()
            cycles += 1
            if cycles > 10_000_000:
                raise AssertionError("tile never raised done")
        valid.append(ctx.get(top.nfu1.valid_in))
        await ctx.tick()
        # After done nothing more may reach NBout.
        for _ in range(3):
            valid.append(ctx.get(top.nfu1.valid_in))
            await ctx.tick()
        count = ctx.get(tile.nbout_count)
        rows = []
        for i in range(count):
            raw = ctx.get(tile.nbout.data[i].as_value())
            rows.append((raw >> (16 * tn), unpack(raw, tn)))
        res["rows"] = rows
        res["counters"] = {n: ctx.get(getattr(tile, n)) for n in COUNTERS}
        res["counters"]["start_to_done"] = cycles
        res["nfu1_valid"] = valid

    simulate(top, bench, name=name)
    return res


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


def assemble(rows, f, out_shape, tn):
    """NBout rows (addr, values) -> the output tensor; each address exactly once."""
    n = f["oh"] * f["ow"] * f["ocb"]
    full = np.zeros((n, tn), dtype=np.int64)
    seen = set()
    for addr, vals in rows:
        a = addr - f["out_base"]
        assert 0 <= a < n, f"NBout row for NM address {addr} outside the layer's output"
        assert a not in seen, f"NM address {addr} written twice"
        seen.add(a)
        full[a] = vals
    assert len(seen) == n, f"{n - len(seen)} output rows missing"
    return from_rows(full, out_shape, tn)


def check_layer(case, config=None, *, name="layer"):
    """Run ``case`` on one tile; outputs == golden, cycles == model, busy == emissions."""
    tn = case.tn
    config = config or tile_config(case, tn)
    f = case.fields()
    res = run_on_tile(config, f, case.nbin_rows, case.sb_rows(), case.tables, name=name)
    got = assemble(res["rows"], f, case.out_shape, tn)
    np.testing.assert_array_equal(got, case.expected)
    cnt = res["counters"]
    assert cnt["start_to_done"] == tile_cycles(f, 0, config)
    assert cnt["cycles"] == tile_cycles(f, 0, config)
    assert cnt["nfu_busy"] == tile_emissions(f, 0)
    assert cnt["sb_reads"] == tile_emissions(f, 0)
    assert cnt["nbout_writes"] == len(res["rows"])
    return res, f


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name (reproducible, different per test)."""
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(request.node.nodeid)) % (2 ** 32)
    return np.random.default_rng(seed)


@pytest.fixture(scope="session")
def h():
    """These helpers as a namespace (test modules cannot import conftest under importlib)."""
    import sys
    return sys.modules[__name__]
