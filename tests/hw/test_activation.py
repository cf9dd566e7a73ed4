# amaranth: UnusedElaboratable=no
"""NFU-3: PWL tables loaded through tbl_*, every int16 input against PWLTable.eval."""

import numpy as np
import pytest

from diannao.golden.formats import build_table, PWLTable
from diannao.hw.activation import Activation, table_words, TABLE_WORDS, SEGMENTS
from diannao.sim.engines.pysim_tile import load_table
from diannao.sim.engines.vcd import simulate

import helpers as h

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int64)


def _run(dut, tables, batches, name):
    """Load ``tables`` into slots 0.., then stream each ``(act, table, xs[rows, tn])`` at II=1.

    Returns the outputs of every batch, and the latency of each row (cycles from i.valid
    to o.valid).
    """
    tn = dut.tn
    results, lats = [], []

    async def bench(ctx):
        for slot, table in tables.items():
            await load_table(ctx, dut, slot, table)
        xv, yv = dut.i.payload.as_value(), dut.o.payload.as_value()
        cycle = 0
        for act, table, xs in batches:
            ctx.set(dut.act, act)
            ctx.set(dut.table, table)
            # per-layer settings: set three cycles before the first row (deep registers them
            # and the selected table's header in up to three steps)
            ctx.set(dut.i.valid, 0)
            await ctx.tick().repeat(3)
            cycle += 3
            got, fed = [], []
            i = 0
            while len(got) < len(xs):
                if i < len(xs):
                    ctx.set(xv, h.pack(xs[i]))
                    ctx.set(dut.i.valid, 1)
                    fed.append(cycle)
                else:
                    ctx.set(dut.i.valid, 0)
                i += 1
                await ctx.tick()
                cycle += 1
                if ctx.get(dut.o.valid):
                    got.append(ctx.get(yv))
                    lats.append(cycle - fed[len(got) - 1])
                assert i < len(xs) + 10
            results.append(np.array([h.unpack(w, tn) for w in got]).reshape(-1))

    simulate(dut, bench, name=name)
    return results, lats


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity", "hardtanh"])
def test_builtin_table_exhaustive(name):
    """All 65,536 int16 inputs, tn=16 lanes per cycle, in table slot 2 of 4."""
    tab = build_table(name, 8)
    dut = Activation(16, 4)
    assert dut.latency == 5
    xs = ALL_INT16.reshape(-1, 16)
    # a decoy table in slot 0 so that `table` selection matters
    decoy = build_table("tanh" if name != "tanh" else "sigmoid", 8)
    (got,), lats = _run(dut, {0: decoy, 2: tab}, [(1, 2, xs)], f"nfu3_{name}")
    np.testing.assert_array_equal(got, tab.eval(ALL_INT16))
    assert set(lats) == {5}


@pytest.mark.parametrize("deep", [False, True], ids=["latency5", "latency10"])
def test_bypass_and_table_switch(deep, rng):
    """act=0 passes x unchanged (latency 5, 10 with deep pipelining); tables
    in several slots, lanes differ (tn=4)."""
    tn = 4
    dut = Activation(tn, 8, deep=deep)
    xs = rng.integers(-32768, 32768, (256, tn))
    xs[:4] = [[-32768, 32767, 0, -1]] * 4
    tabs = {t: build_table(n, 8) for t, n in zip((0, 3, 7), ("sigmoid", "relu", "tanh"))}
    batches = [(0, 0, xs), (1, 0, xs), (1, 3, xs), (1, 7, xs), (0, 7, xs)]
    res, lats = _run(dut, tabs, batches, "nfu3_bypass")
    flat = xs.reshape(-1)
    np.testing.assert_array_equal(res[0], flat)
    np.testing.assert_array_equal(res[1], tabs[0].eval(flat))
    np.testing.assert_array_equal(res[2], tabs[3].eval(flat))
    np.testing.assert_array_equal(res[3], tabs[7].eval(flat))
    np.testing.assert_array_equal(res[4], flat)
    assert set(lats) == {10 if deep else 5} == {dut.latency}


def _random_table(rng, f=None):
    f = int(rng.integers(0, 16)) if f is None else f
    return PWLTable(x_lo=int(rng.integers(-32768, 32768)), k=int(rng.integers(0, 16)), f=f,
                    a=tuple(int(v) for v in rng.integers(-32768, 32768, SEGMENTS)),
                    b=tuple(int(v) for v in rng.integers(-32768, 32768, SEGMENTS)))


@pytest.mark.parametrize("deep", [False, True], ids=["latency5", "latency10"])
def test_random_user_tables_dense_sample(deep, rng):
    """Arbitrary tables (f = 0 and 15 included, extreme slopes): saturation both ways."""
    tn = 16
    dut = Activation(tn, 4, deep=deep)
    tabs = {0: _random_table(rng, 0), 1: _random_table(rng, 15), 2: _random_table(rng),
            3: PWLTable(x_lo=-32768, k=15, f=0, a=(-32768,) * 16, b=(32767,) * 16)}
    edges = np.array([-32768, -32767, -1, 0, 1, 32766, 32767])
    sample = np.concatenate([rng.integers(-32768, 32768, 4096), edges,
                             [t.x_lo + (i << t.k) + d for t in tabs.values()
                              for i in range(17) for d in (-1, 0, 1)]])
    sample = np.clip(sample, -32768, 32767)
    sample = np.concatenate([sample, np.zeros(-len(sample) % tn, dtype=np.int64)])
    xs = sample.reshape(-1, tn)
    res, _ = _run(dut, tabs, [(1, t, xs) for t in tabs], f"nfu3_random_{dut.latency}")
    for t, got in zip(tabs, res):
        want = tabs[t].eval(sample)
        np.testing.assert_array_equal(got, want, err_msg=f"table {t}")
    assert (tabs[3].eval(sample) == 32767).any() and (tabs[3].eval(sample) == -32768).any()


def test_table_words_layout():
    """The documented word layout, checked on a hand-made table."""
    t = PWLTable(x_lo=-2, k=3, f=5, a=tuple(range(-8, 8)), b=tuple(range(100, 116)))
    words = table_words(t)
    assert len(words) == 1 + SEGMENTS <= TABLE_WORDS
    assert words[0] == 0xFFFE | (3 << 16) | (5 << 20)
    assert words[1] == (-8 & 0xFFFF) | (100 << 16)
    assert words[16] == 7 | (115 << 16)
