"""The NFU-2 shifter at every shift amount (0..62) and hand-worked edges, against
golden.formats.shift_round."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diannao.golden.formats import shift_round
from diannao.hw.nfu2 import NFU2
from diannao.sim.engines.vcd import simulate


def _run_nfu2(tn, groups, shift, max_mode=False, acc_width=48, deep=False):
    """Feed groups of rows (each [rows, tn, tn] products); return y per group and latencies."""
    dut = NFU2(tn, acc_width, deep=deep)
    outs, lat = [], []

    async def bench(ctx):
        ctx.set(dut.shift, shift)
        ctx.set(dut.max_mode, int(max_mode))
        t, last_at = 0, []
        for g in groups:
            for r, row in enumerate(g):
                ctx.set(dut.products, row.tolist())
                ctx.set(dut.valid_in, 1)
                ctx.set(dut.first, int(r == 0))
                ctx.set(dut.last, int(r == len(g) - 1))
                if r == len(g) - 1:
                    last_at.append(t)
                await ctx.tick()
                t += 1
                if ctx.get(dut.o.valid):
                    outs.append([ctx.get(dut.o.payload[j]) for j in range(tn)])
                    lat.append(t)
        ctx.set(dut.valid_in, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()
            t += 1
            if ctx.get(dut.o.valid):
                outs.append([ctx.get(dut.o.payload[j]) for j in range(tn)])
                lat.append(t)
        lat[:] = [b - a for a, b in zip(last_at, lat)]

    simulate(dut, bench, name=f"nfu2_tn{tn}")
    return np.array(outs), lat, dut.latency


@settings(max_examples=25, deadline=None)
@given(acc=st.integers(-(2 ** 46), 2 ** 46), shift=st.integers(0, 62), deep=st.booleans())
def test_nfu2_shifter_rounding_and_saturation(acc, shift, deep):
    # One product carrying the whole value; ties and saturation come up at the edges.
    tn = 2
    y, _, _ = _run_nfu2(tn, [_acc_rows(acc, tn)], shift, deep=deep)
    assert y[0][0] == shift_round(acc, shift)


@pytest.mark.parametrize("deep", [False, True])
def test_nfu2_shifter_every_amount(deep):
    """Every shift amount 0..62 on one value whose bits differ everywhere (the two-stage
    shift of deep_pipeline splits the amount at bit 3), one simulation: the shift changes
    only while the pipeline is empty."""
    acc, tn = -0x1_6A5B_3C47, 2
    rows = _acc_rows(acc, tn)
    dut = NFU2(tn, 48, deep=deep)
    got = []

    async def bench(ctx):
        for shift in range(63):
            ctx.set(dut.shift, shift)
            for r, row in enumerate(rows):
                ctx.set(dut.products, row.tolist())
                ctx.set(dut.valid_in, 1)
                ctx.set(dut.first, int(r == 0))
                ctx.set(dut.last, int(r == len(rows) - 1))
                await ctx.tick()
            ctx.set(dut.valid_in, 0)
            for _ in range(dut.latency + 1):
                if ctx.get(dut.o.valid):
                    got.append(ctx.get(dut.o.payload[0]))
                await ctx.tick()

    simulate(dut, bench, name="nfu2_every_shift")
    assert got == [shift_round(acc, shift) for shift in range(63)]


def _acc_rows(acc, tn):
    """Rows of int32 products summing to ``acc`` in lane 0."""
    parts, rows = [], []
    left = acc
    while left:
        step = max(-(2 ** 31), min(2 ** 31 - 1, left))
        parts.append(step)
        left -= step
    parts = parts or [0]
    for r in range(0, len(parts), tn):
        row = np.zeros((tn, tn), dtype=np.int64)
        chunk = parts[r:r + tn]
        row[0, :len(chunk)] = chunk
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize("acc,shift,want", [
    (3, 1, 2), (-3, 1, -1), (5, 2, 1), (6, 2, 2), (-6, 2, -1), (-5, 2, -1),
    (32767 << 4, 4, 32767), ((32767 << 4) + 8, 4, 32767), ((32768 << 4) - 9, 4, 32767),
    (-(32768 << 4), 4, -32768), (-(32768 << 4) - 9, 4, -32768), (40000, 0, 32767),
    (-40000, 0, -32768), (7, 3, 1), (-4, 3, 0), (-5, 3, -1)])
@pytest.mark.parametrize("deep", [False, True])
def test_nfu2_hand_worked_edges(acc, shift, want, deep):
    y, _, _ = _run_nfu2(2, [_acc_rows(acc, 2)], shift, deep=deep)
    assert y[0][0] == want


@pytest.mark.parametrize("value_width,amount_width,width", [(49, 6, 17), (33, 4, 19), (8, 3, 4)])
def test_shift_window_is_the_low_bits_of_an_arithmetic_shift(value_width, amount_width,
                                                             width, rng):
    """shift_window (NFU-2's and NFU-3's shifters) against Python's >> on signed ints:
    every amount, the extremes, and shifts past the value's width (sign fill)."""
    from amaranth import ClockDomain, Module, Signal, signed
    from diannao.hw.nfu2 import shift_window
    m = Module()
    m.domains.sync = ClockDomain("sync")            # simulate() drives a clock
    value = Signal(signed(value_width))
    amount = Signal(amount_width)
    out = Signal(width)
    m.d.comb += out.eq(shift_window(value, amount, width))
    lo, hi = -(1 << (value_width - 1)), (1 << (value_width - 1)) - 1
    values = [lo, hi, -1, 0, 1] + [int(v) for v in rng.integers(lo, hi, 40, endpoint=True)]
    got, want = [], []

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            for s in range(1 << amount_width):
                ctx.set(amount, s)
                got.append(ctx.get(out))
                want.append((v >> s) & ((1 << width) - 1))

    simulate(m, bench, name="shift_window")
    assert got == want
