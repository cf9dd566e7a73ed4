# amaranth: UnusedElaboratable=no
"""NFU-2: adder trees + accumulators + shifter + max, against golden.formats.shift_round."""

import numpy as np
import pytest

from diannao.golden.formats import shift_round
from diannao.hw.nfu2 import NFU2
from diannao.sim.engines.vcd import simulate

import helpers as h

P_MAX, P_MIN = (1 << 31) - 1, -(1 << 31)


def _stream(dut, groups, name, gaps=None):
    """Feed accumulations back to back (II = 1; with ``gaps``, a numpy Generator, random
    idle cycles between rows) and collect every output row.

    ``groups`` is a list of ``(shift, max_mode, [rows of [tn, tn] products, ...])``; each
    inner list is one accumulation (first on its first row, last on its last). Settings
    change only once the previous group has drained. Returns the outputs in order and the
    cycles from each ``last`` row to its ``o.valid``.
    """
    tn = dut.tn
    outs, lat = [], []

    async def bench(ctx):
        cycle = 0
        pending = []          # cycles at which `last` rows entered
        for shift, max_mode, accs in groups:
            ctx.set(dut.shift, shift)
            ctx.set(dut.max_mode, max_mode)
            feed = [(acc[r], r == 0, r == len(acc) - 1) for acc in accs for r in range(len(acc))]
            left = sum(1 for _ in accs)
            i = 0
            while left:
                # with `gaps`, an idle cycle between rows now and then (rows of one sum need
                # not be contiguous)
                gap = i < len(feed) and gaps is not None and gaps.random() < 0.3
                if i < len(feed) and not gap:
                    prods, first, last = feed[i]
                    ctx.set(dut.products.as_value(), h.pack(prods, 32))
                    ctx.set(dut.valid_in, 1)
                    ctx.set(dut.first, int(first))
                    ctx.set(dut.last, int(last))
                    if last:
                        pending.append(cycle)
                    i += 1
                else:
                    ctx.set(dut.valid_in, 0)
                    ctx.set(dut.first, 0)
                    ctx.set(dut.last, 0)
                    ctx.set(dut.products.as_value(), 0)
                await ctx.tick()
                cycle += 1
                if ctx.get(dut.o.valid):
                    outs.append(h.unpack(ctx.get(dut.o.payload.as_value()), tn))
                    lat.append(cycle - pending.pop(0))
                    left -= 1
                assert cycle < 1_000_000
        assert not pending

    simulate(dut, bench, name=name)
    return outs, lat


def _expected(groups):
    want = []
    for shift, max_mode, accs in groups:
        for acc in accs:
            sums = np.array(acc, dtype=object).sum(axis=2)          # [rows, tn] tree sums
            red = sums.max(axis=0) if max_mode else sums.sum(axis=0)
            want.append(shift_round(np.array(red, dtype=np.int64), shift))
    return want


@pytest.mark.parametrize("deep", [False, True], ids=["", "deep"])
@pytest.mark.parametrize("tn", [4, 16])
def test_accumulate_and_max_random(tn, deep, rng):
    dut = NFU2(tn, deep=deep)
    groups = []
    for shift in (0, 1, 7, 16, 24):
        for max_mode in (0, 1):
            accs = []
            for n in (1, 2, 3, 5, 1, 8):
                p = rng.integers(P_MIN, P_MAX + 1, (n, tn, tn), dtype=np.int64)
                p >>= int(rng.integers(0, 31))     # mix of magnitudes
                accs.append(p)
            # extremes: every product at the minimum / maximum
            accs.append(np.full((3, tn, tn), P_MIN, dtype=np.int64))
            accs.append(np.full((2, tn, tn), P_MAX, dtype=np.int64))
            groups.append((shift, max_mode, accs))
    got, lat = _stream(dut, groups, f"nfu2_acc_tn{tn}{'_deep' if deep else ''}")
    want = _expected(groups)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert set(lat) == {dut.latency}
    assert dut.latency == int(np.log2(tn)) + 3 + 5 * deep


@pytest.mark.parametrize("deep", [False, True], ids=["", "deep"])
def test_max_mode_negative_and_first_resets(deep):
    """Max of all-negative sums; ``first`` forgets the previous maximum."""
    tn = 4
    dut = NFU2(tn, deep=deep)
    big = np.full((1, tn, tn), 1000, dtype=np.int64)
    neg = -np.arange(1, 1 + 3 * tn * tn, dtype=np.int64).reshape(3, tn, tn)
    groups = [(0, 1, [big, neg, np.concatenate([neg, big])])]
    got, _ = _stream(dut, groups, f"nfu2_max{'_deep' if deep else ''}")
    want = _expected(groups)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert list(got[1]) == list(neg.sum(axis=2).max(axis=0))   # not 4000 from the row before


@pytest.mark.parametrize("deep", [False, True], ids=["", "deep"])
def test_sums_and_maxima_with_idle_cycles_between_rows(deep, rng):
    """Rows of one sum or maximum separated by random idle cycles (valid_in low): the
    results do not depend on the gaps (deep's maximum compares a row a cycle early)."""
    tn = 4
    dut = NFU2(tn, deep=deep)
    groups = []
    for max_mode in (1, 0, 1):
        accs = [rng.integers(P_MIN, P_MAX + 1, (n, tn, tn), dtype=np.int64)
                >> int(rng.integers(0, 31)) for n in (1, 2, 5, 9, 3, 7)]
        groups.append((3, max_mode, accs))
    got, _ = _stream(dut, groups, f"nfu2_gaps{'_deep' if deep else ''}", gaps=rng)
    want = _expected(groups)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _rows_for(value, tn):
    """Rows of products (each a [tn, tn] array) whose lane sums add up to ``value``."""
    cap = tn * P_MAX if value >= 0 else tn * P_MIN
    n = max(1, -(-abs(value) // abs(cap)))
    rows = []
    rest = value
    for r in range(n):
        part = rest if r == n - 1 else cap
        rest -= part
        # spread `part` over the tn products of every lane
        q, m = divmod(part, tn)
        lane = [q + (1 if i < m else 0) for i in range(tn)]
        assert all(P_MIN <= v <= P_MAX for v in lane)
        rows.append(np.array([lane] * tn, dtype=object))
    return rows


def _shift_values(s, rng):
    vals = {0, 1, -1, 32767, -32768, 123456789, -987654321}
    if s > 0:
        half = 1 << (s - 1)
        for t in (1, 3, 5, 65535, 65537):          # exact ties t * 2**(s-1), t odd
            for v in (t * half, -t * half):
                vals |= {v, v - 1, v + 1}
    # saturation edges: 32767.5 * 2**s and -32768.5 * 2**s (the rounding boundaries)
    hi, lo = (32767 << s) + ((1 << s) >> 1), (-32768 << s) - ((1 << s) >> 1)
    vals |= {hi - 1, hi, hi + 1, lo - 1, lo, lo + 1, hi * 4, lo * 4}
    vals |= {int(v) for v in rng.integers(-(1 << 36), 1 << 36, 6)}
    limit = 1 << 40        # a few rows of tn=16 products at most
    return sorted(v for v in vals if abs(v) <= limit)


@pytest.mark.parametrize("deep", [False, True], ids=["", "deep"])
def test_shifter_all_shifts_ties_and_saturation(deep, rng):
    """y == shift_round(acc, s) for s = 0..40: ties, +-saturation edges, random values."""
    tn = 16
    dut = NFU2(tn, deep=deep)
    groups, sat_hi, sat_lo, ties = [], 0, 0, 0
    for s in range(41):
        vals = _shift_values(s, rng)
        accs = []
        for v in vals:
            # lanes carry v, -v, v+1, ... so every lane is checked
            lanes = [v, -v, v + 1, v - 1] * (tn // 4)
            per_lane = [_rows_for(x, tn) for x in lanes]
            n = max(len(r) for r in per_lane)
            acc = np.zeros((n, tn, tn), dtype=object)
            for j, r in enumerate(per_lane):
                for k, row in enumerate(r):
                    acc[k, j] = row[0]
            accs.append(acc)
            ys = shift_round(np.array(lanes), s)
            sat_hi += int((ys == 32767).sum() and v > (32767 << s))
            sat_lo += int((ys == -32768).sum() and v < (-32768 << s))
            ties += int(s > 0 and v % (1 << s) == 1 << (s - 1))
        groups.append((s, 0, accs))
    got, lat = _stream(dut, groups, f"nfu2_shifter{'_deep' if deep else ''}")
    want = _expected(groups)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"output {i}")
    assert set(lat) == {dut.latency}
    # the vectors really reached both saturations and exact ties
    assert sat_hi > 10 and sat_lo > 10 and ties > 40
