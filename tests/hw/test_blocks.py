"""NFU-1, the adder tree and NFU-2 against the golden functions, bit for bit."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from golden.formats import shift_round, INT16_MIN, INT16_MAX
from hw.adder_tree import AdderTree
from hw.nfu1 import NFU1
from hw.nfu2 import NFU2
from sim.waves import simulate

EDGES = [INT16_MIN, INT16_MIN + 1, -1, 0, 1, INT16_MAX - 1, INT16_MAX]


def _vectors(rng, n, shape):
    v = rng.integers(INT16_MIN, INT16_MAX + 1, (n,) + shape)
    v.reshape(n, -1)[: len(EDGES), 0] = EDGES[: n]
    return v


@pytest.mark.parametrize("tn", [2, 4, 16])
def test_nfu1_products_exact_latency_1(tn):
    rng = np.random.default_rng(tn)
    xs, ws = _vectors(rng, 12, (tn,)), _vectors(rng, 12, (tn, tn))
    ws[0] = INT16_MIN
    xs[0] = INT16_MIN                     # (-32768)^2 = 2^30 fits in 32 bits signed
    dut = NFU1(tn)

    async def bench(ctx):
        for k in range(len(xs) + 1):
            if k < len(xs):
                ctx.set(dut.x, xs[k].tolist())
                ctx.set(dut.w, ws[k].tolist())
                ctx.set(dut.valid_in, 1)
            else:
                ctx.set(dut.valid_in, 0)
            await ctx.tick()
            if k >= NFU1.latency - 1 and k < len(xs):
                got = np.array([[ctx.get(dut.products[j][i]) for i in range(tn)] for j in range(tn)])
                assert np.array_equal(got, ws[k] * xs[k][None, :]), f"vector {k}"
                assert ctx.get(dut.valid_out) == 1

    simulate(dut, bench, name=f"nfu1_tn{tn}")


@pytest.mark.parametrize("n", [2, 4, 16])
def test_adder_tree_exact_ii1(n):
    rng = np.random.default_rng(n)
    vecs = rng.integers(-(2 ** 31), 2 ** 31, (20, n))
    vecs[0] = -(2 ** 31)
    vecs[1] = 2 ** 31 - 1
    dut = AdderTree(n, 32)
    seen = []

    async def bench(ctx):
        for k in range(len(vecs) + dut.latency):
            if k < len(vecs):
                ctx.set(dut.inputs, vecs[k].tolist())
            await ctx.tick()
            if k + 1 >= dut.latency and k + 1 - dut.latency < len(vecs):
                seen.append(ctx.get(dut.sum))

    simulate(dut, bench, name=f"adder_tree_{n}")
    assert dut.latency == n.bit_length() - 1
    assert seen == [int(v.sum()) for v in vecs]


def _run_nfu2(tn, groups, shift, max_mode=False, acc_width=48):
    """Feed groups of rows (each [rows, tn, tn] products); return y per group and latencies."""
    dut = NFU2(tn, acc_width)
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
                if ctx.get(dut.valid_out):
                    outs.append([ctx.get(dut.y[j]) for j in range(tn)])
                    lat.append(t)
        ctx.set(dut.valid_in, 0)
        for _ in range(dut.latency + 2):
            await ctx.tick()
            t += 1
            if ctx.get(dut.valid_out):
                outs.append([ctx.get(dut.y[j]) for j in range(tn)])
                lat.append(t)
        lat[:] = [b - a for a, b in zip(last_at, lat)]

    simulate(dut, bench, name=f"nfu2_tn{tn}")
    return np.array(outs), lat, dut.latency


@pytest.mark.parametrize("tn", [4, 16])
def test_nfu2_accumulate_and_shift_match_golden(tn):
    rng = np.random.default_rng(tn)
    groups = [rng.integers(-(2 ** 30), 2 ** 30, (rows, tn, tn)) for rows in (1, 3, 5, 2)]
    for shift in (0, 7, 16, 40):
        y, lat, latency = _run_nfu2(tn, groups, shift)
        want = np.array([shift_round(g.sum(axis=(0, 2)), shift) for g in groups])
        assert np.array_equal(y, want), f"shift {shift}"
        assert lat == [latency] * len(groups)       # documented latency, back-to-back groups


def test_nfu2_max_mode():
    tn = 4
    rng = np.random.default_rng(5)
    # Pooling feeds a diagonal: lane j sees x[j] on product [j][j], zeros elsewhere.
    groups = []
    for rows in (4, 1, 9):
        x = rng.integers(INT16_MIN, INT16_MAX + 1, (rows, tn))
        p = np.zeros((rows, tn, tn), dtype=np.int64)
        for j in range(tn):
            p[:, j, j] = x[:, j]
        groups.append((p, x))
    y, _, _ = _run_nfu2(tn, [p for p, _ in groups], 0, max_mode=True)
    assert np.array_equal(y, np.array([x.max(axis=0) for _, x in groups]))


@settings(max_examples=25, deadline=None)
@given(acc=st.integers(-(2 ** 46), 2 ** 46), shift=st.integers(0, 62))
def test_nfu2_shifter_rounding_and_saturation(acc, shift):
    # One product carrying the whole value; ties and saturation come up at the edges.
    tn = 2
    y, _, _ = _run_nfu2(tn, [_acc_rows(acc, tn)], shift)
    assert y[0][0] == shift_round(acc, shift)


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
def test_nfu2_hand_worked_edges(acc, shift, want):
    y, _, _ = _run_nfu2(2, [_acc_rows(acc, 2)], shift)
    assert y[0][0] == want


def test_parameter_validation_quotes_value():
    with pytest.raises(ValueError, match="3"):
        NFU1(3)
    with pytest.raises(ValueError, match="6"):
        AdderTree(6, 32)
    with pytest.raises(ValueError, match="20"):
        NFU2(4, 20)
