"""Rounding, saturation and conversions of golden.formats."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diannao.golden.formats import (INT16_MAX, INT16_MIN, MAX_FRAC, avg_reciprocal, choose_frac,
                                    from_fixed, q_name, sat16, shift_round, to_fixed)


@pytest.mark.parametrize("acc,s,want", [
    (3, 1, 2), (-3, 1, -1), (5, 2, 1), (6, 2, 2), (-6, 2, -1), (-5, 2, -1), (-7, 2, -2),
    (1, 1, 1), (-1, 1, 0), (2, 2, 1), (-2, 2, 0), (0, 5, 0), (7, 0, 7),
])
def test_shift_round_ties_round_half_up(acc, s, want):
    assert shift_round(acc, s) == want


@pytest.mark.parametrize("s", [0, 1, 8, 13, 30])
def test_shift_round_saturation_boundaries(s):
    top = 32767 << s
    assert shift_round(top, s) == 32767
    assert shift_round(top + (1 << s), s) == 32767      # would be 32768
    assert shift_round(-32768 << s, s) == -32768
    assert shift_round((-32768 << s) - (1 << s), s) == -32768  # would be -32769
    assert shift_round(-(1 << 47), s) == -32768
    assert shift_round((1 << 47) - 1, s) == 32767
    if s > 0:  # just below the rounding threshold to 32768
        assert shift_round(top + (1 << (s - 1)) - 1, s) == 32767


def test_shift_round_arrays_and_errors():
    acc = np.array([[3, -3], [5, -6]], dtype=np.int64)
    np.testing.assert_array_equal(shift_round(acc, 1), [[2, -1], [3, -3]])
    with pytest.raises(ValueError, match="-1"):
        shift_round(3, -1)
    with pytest.raises(ValueError, match="integer"):
        shift_round(3, 1.5)


def test_sat16():
    np.testing.assert_array_equal(sat16([-40000, -32768, 0, 32767, 40000]),
                                  [-32768, -32768, 0, 32767, 32767])


def test_to_fixed_edges():
    assert to_fixed(0.5, 0) == 1            # tie rounds up
    assert to_fixed(-0.5, 0) == 0           # tie rounds up (towards +inf)
    assert to_fixed(-1.5, 0) == -1
    assert to_fixed(127.99609375, 8) == 32767
    assert to_fixed(128.0, 8) == 32767      # saturates
    assert to_fixed(-128.0, 8) == -32768
    assert to_fixed(-1e30, 8) == -32768
    assert to_fixed(1e300, 30) == 32767
    assert to_fixed(2.0 ** -9, 8) == 1      # half an LSB rounds up
    assert to_fixed(-(2.0 ** -9), 8) == 0
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="finite"):
            to_fixed([1.0, bad], 8)
    with pytest.raises(ValueError, match="31"):
        to_fixed(1.0, 31)


def test_choose_frac_and_names():
    assert choose_frac([0.0, 0.0]) == MAX_FRAC
    assert choose_frac([1.0]) == 14
    assert choose_frac([-1.0]) == 14
    assert choose_frac([0.99]) == 15
    assert choose_frac([127.99]) == 8
    assert choose_frac([1.0], hi=10) == 10
    with pytest.raises(ValueError, match="40000"):
        choose_frac([40000.0])
    assert q_name(8) == "Q7.8" and q_name(15) == "Q0.15" and q_name(17) == "int16*2**-17"


@pytest.mark.parametrize("n,want", [(1, (16384, 14)), (4, (16384, 16)), (9, (29127, 18)),
                                    (25, (20972, 19))])
def test_avg_reciprocal(n, want):
    assert avg_reciprocal(n) == want


@given(st.integers(1, 10_000))
def test_avg_reciprocal_definition(n):
    r, R = avg_reciprocal(n)
    assert r == math.floor(Fraction(2 ** R, n) + Fraction(1, 2)) <= INT16_MAX
    if R < 30:
        assert math.floor(Fraction(2 ** (R + 1), n) + Fraction(1, 2)) > INT16_MAX


@settings(max_examples=300)
@given(st.integers(-(1 << 47), (1 << 47) - 1), st.integers(0, 40))
def test_shift_round_matches_fractions(acc, s):
    exact = math.floor(Fraction(acc, 2 ** s) + Fraction(1, 2))
    assert shift_round(acc, s) == min(max(exact, INT16_MIN), INT16_MAX)


@settings(max_examples=300)
@given(st.integers(0, 15).flatmap(lambda f: st.tuples(
    st.just(f), st.floats(INT16_MIN / 2 ** f, INT16_MAX / 2 ** f))))
def test_to_fixed_round_trip(case):
    frac, x = case
    q = to_fixed(x, frac)
    assert INT16_MIN <= q <= INT16_MAX
    assert abs(from_fixed(q, frac) - x) <= 2.0 ** -(frac + 1)
    assert to_fixed(from_fixed(q, frac), frac) == q


@given(st.integers(0, MAX_FRAC), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_to_fixed_monotonic(frac, x, y):
    lo, hi = sorted((x, y))
    assert to_fixed(lo, frac) <= to_fixed(hi, frac)


@given(st.lists(st.floats(-32767, 32767), min_size=1, max_size=20))
def test_choose_frac_is_largest_without_saturation(values):
    frac = choose_frac(values)
    peak = max(abs(v) for v in values)
    assert math.floor(peak * 2.0 ** frac + 0.5) <= INT16_MAX
    if frac < MAX_FRAC:
        assert math.floor(peak * 2.0 ** (frac + 1) + 0.5) > INT16_MAX
