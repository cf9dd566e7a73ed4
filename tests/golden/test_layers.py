"""Integer layers against independent plain-Python loop implementations."""

import math
from fractions import Fraction

import numpy as np
import pytest

from diannao.golden._tensor import conv_sum, fc_sum
from diannao.golden import float_ref
from diannao.golden.formats import build_table, lrn_table
from diannao.golden.layers import (accumulator_bound, activation_int, avgpool_int, conv2d_int,
                                   fc_int, local_int, lrn_int, maxpool_int)


def rnd_shift(acc, s):
    """floor(acc / 2**s + 1/2), saturated, via exact fractions."""
    y = math.floor(Fraction(acc, 2 ** s) + Fraction(1, 2))
    return min(max(y, -32768), 32767)


def loop_windows(x, kernel_at, O, OH, OW, b, stride, pad, bias_exp, shift):
    """Every output (o, oy, ox) from its window of ``x`` and its kernel ``kernel_at(o, oy,
    ox)`` ([C][K][K]), plain loops over exact integers."""
    C, H, W = len(x), len(x[0]), len(x[0][0])
    out = [[[0] * OW for _ in range(OH)] for _ in range(O)]
    for o in range(O):
        for oy in range(OH):
            for ox in range(OW):
                k = kernel_at(o, oy, ox)
                acc = b[o] * 2 ** bias_exp
                for c in range(C):
                    for ky in range(len(k[0])):
                        for kx in range(len(k[0])):
                            iy, ix = oy * stride + ky - pad, ox * stride + kx - pad
                            if 0 <= iy < H and 0 <= ix < W:
                                acc += k[c][ky][kx] * x[c][iy][ix]
                out[o][oy][ox] = rnd_shift(acc, shift)
    return out


def loop_conv(x, w, b, stride, pad, bias_exp, shift):
    H, W, K = len(x[0]), len(x[0][0]), len(w[0][0])
    OH, OW = (H + 2 * pad - K) // stride + 1, (W + 2 * pad - K) // stride + 1
    return loop_windows(x, lambda o, oy, ox: w[o], len(w), OH, OW, b, stride, pad,
                        bias_exp, shift)


def loop_pool(x, size, stride, op):
    C, H, W = len(x), len(x[0]), len(x[0][0])
    OH, OW = (H - size) // stride + 1, (W - size) // stride + 1
    return [[[op([x[c][oy * stride + i][ox * stride + j] for i in range(size) for j in range(size)])
              for ox in range(OW)] for oy in range(OH)] for c in range(C)]


def loop_avg(values):
    n = len(values)
    R = max(R for R in range(31) if math.floor(Fraction(2 ** R, n) + Fraction(1, 2)) <= 32767)
    r = math.floor(Fraction(2 ** R, n) + Fraction(1, 2))
    return rnd_shift(sum(values) * r, R)


def ints(rng, shape, lo=-32768, hi=32767):
    return rng.integers(lo, hi + 1, size=shape)


CONV_CASES = [  # C, H, W, O, K, stride, pad
    (1, 5, 5, 1, 1, 1, 0), (3, 7, 6, 5, 3, 1, 1), (2, 9, 11, 3, 5, 2, 2), (17, 4, 5, 2, 2, 1, 0),
    (2, 6, 6, 18, 3, 3, 1), (1, 3, 3, 2, 5, 1, 1), (4, 8, 5, 3, 4, 2, 3),
]


@pytest.mark.parametrize("C,H,W,O,K,stride,pad", CONV_CASES)
def test_conv2d_matches_loops(C, H, W, O, K, stride, pad):
    rng = np.random.default_rng(C * 1000 + H * 100 + K)
    x, w, b = ints(rng, (C, H, W)), ints(rng, (O, C, K, K)), ints(rng, O)
    for bias_exp, shift in ((0, 15), (5, 20), (14, 28), (3, 0)):
        small = shift == 0  # keep some outputs unsaturated at shift 0
        xs = x % 7 - 3 if small else x
        ws = w % 5 - 2 if small else w
        got = conv2d_int(xs, ws, b, stride, pad, bias_exp, shift)
        want = loop_conv(xs.tolist(), ws.tolist(), b.tolist(), stride, pad, bias_exp, shift)
        assert got.tolist() == want


def loop_local(x, w, b, stride, pad, bias_exp, shift):
    """A locally connected layer: the kernel of output (o, oy, ox) is w[o][oy][ox]."""
    return loop_windows(x, lambda o, oy, ox: w[o][oy][ox], len(w), len(w[0]), len(w[0][0]),
                        b, stride, pad, bias_exp, shift)


@pytest.mark.parametrize("C,H,W,O,K,stride,pad", CONV_CASES)
def test_local_matches_loops(C, H, W, O, K, stride, pad):
    rng = np.random.default_rng(C * 1000 + H * 100 + K + 7)
    OH, OW = (H + 2 * pad - K) // stride + 1, (W + 2 * pad - K) // stride + 1
    x, w, b = ints(rng, (C, H, W)), ints(rng, (O, OH, OW, C, K, K)), ints(rng, O)
    for bias_exp, shift in ((0, 15), (5, 20), (3, 0)):
        small = shift == 0
        xs = x % 7 - 3 if small else x
        ws = w % 5 - 2 if small else w
        got = local_int(xs, ws, b, stride, pad, bias_exp, shift)
        want = loop_local(xs.tolist(), ws.tolist(), b.tolist(), stride, pad, bias_exp, shift)
        assert got.tolist() == want


def test_local_accumulator_bound_is_per_position():
    """A locally connected layer's bound is the largest position's, not the sum over them."""
    w = np.zeros((2, 3, 3, 1, 2, 2), dtype=np.int64)
    w[0, 1, 2] = 5           # output channel 0: one position with four weights of 5
    w[1] = 1                 # output channel 1: every position four weights of 1
    assert accumulator_bound(w, np.array([1, -2]), 3).tolist() == [
        32768 * 20 + 8, 32768 * 4 + 16]


@pytest.mark.parametrize("N,O", [(1, 1), (17, 3), (64, 10), (5, 33)])
def test_fc_matches_loops(N, O):
    rng = np.random.default_rng(N + O)
    x = ints(rng, (N,))
    w, b = ints(rng, (O, N)), ints(rng, O)
    for bias_exp, shift in ((0, 15), (7, 22), (14, 30)):
        got = fc_int(x, w, b, bias_exp, shift)
        want = [rnd_shift(b[o] * 2 ** bias_exp + sum(int(w[o, n]) * int(x[n]) for n in range(N)),
                          shift) for o in range(O)]
        assert got.tolist() == want


def test_fc_flattens_c_major():
    rng = np.random.default_rng(3)
    x = ints(rng, (2, 3, 4))
    w, b = ints(rng, (5, 24)), ints(rng, 5)
    assert np.array_equal(fc_int(x, w, b, 2, 16), fc_int(x.reshape(-1), w, b, 2, 16))


POOL_CASES = [(1, 4, 4, 2, 2), (3, 7, 5, 3, 2), (2, 9, 9, 3, 3), (17, 5, 6, 1, 1),
              (2, 8, 7, 4, 1), (1, 6, 6, 5, 1)]


@pytest.mark.parametrize("C,H,W,size,stride", POOL_CASES)
def test_pools_match_loops(C, H, W, size, stride):
    rng = np.random.default_rng(C + H + size)
    x = ints(rng, (C, H, W))
    assert maxpool_int(x, size, stride).tolist() == loop_pool(x.tolist(), size, stride, max)
    assert avgpool_int(x, size, stride).tolist() == loop_pool(x.tolist(), size, stride, loop_avg)
    near = x % 9 - 4  # small values: exercise rounding of small averages
    assert avgpool_int(near, size, stride).tolist() == loop_pool(near.tolist(), size, stride,
                                                                 loop_avg)


def test_activation_matches_table_formula():
    rng = np.random.default_rng(4)
    x = ints(rng, (3, 4, 5))
    table = build_table("sigmoid", 8)
    y = activation_int(x, table)
    for xi, yi in zip(x.ravel().tolist(), y.ravel().tolist()):
        seg = min(max((xi - table.x_lo) >> table.k, 0), 15)
        raw = ((table.a[seg] * xi + (1 << (table.f - 1))) >> table.f) + table.b[seg]
        assert yi == min(max(raw, -32768), 32767)


def test_accumulator_bound():
    w = np.array([[[[1, -2], [3, -32768]]], [[[0, 0], [0, 0]]]])
    b = np.array([-5, 32767])
    got = accumulator_bound(w, b, 3)
    assert got.tolist() == [32768 * (1 + 2 + 3 + 32768) + 5 * 8, 32767 * 8]


def test_layers_reject_non_int16():
    with pytest.raises(ValueError, match="40000"):
        fc_int(np.array([40000]), np.array([[1]]), np.array([0]), 0, 0)
    with pytest.raises(ValueError, match="integer dtype"):
        maxpool_int(np.zeros((1, 2, 2)), 2, 2)


def test_extreme_int16_sums_stay_exact():
    # Every input and weight at -32768: each product is 2**30 and an output of 4096 of them
    # is 2**42, still exact through float64 BLAS (the bound is 2**53).
    x = np.full(4096, -32768)
    w = np.full((3, 4096), -32768)
    assert fc_int(x, w, [0, 0, 0], 0, 0).tolist() == [32767] * 3
    xc = np.full((64, 5, 5), -32768)
    wc = np.full((2, 64, 3, 3), 32767)
    want = loop_conv(xc.tolist(), wc.tolist(), [0, 0], 1, 1, 0, 30)
    assert conv2d_int(xc, wc, [0, 0], 1, 1, 0, 30).tolist() == want


def test_sums_beyond_float_precision_use_integers():
    # Values beyond int16 (conv_sum and fc_sum take any integers): the bound passes 2**53,
    # so the sums stay in int64; float64 would lose the low bits.
    big = np.array([(1 << 40) + 1, (1 << 40) + 3], dtype=np.int64)
    w = np.array([[(1 << 20) + 1, -((1 << 20) + 5)]], dtype=np.int64)
    want = sum(int(a) * int(b) for a, b in zip(big, w[0]))
    assert int(fc_sum(big, w)[0]) == want
    x = big.reshape(2, 1, 1)
    assert int(conv_sum(x, w.reshape(1, 2, 1, 1), 1, 0)[0, 0, 0]) == want


def loop_lrn_window(c, size, channels):
    """The channels of LRN output ``c``'s window, from ONNX's definition: ``c - floor((size
    - 1) / 2)`` to ``c + ceil((size - 1) / 2)``, inside ``[0, channels)``."""
    lo, hi = c - math.floor((size - 1) / 2), c + math.ceil((size - 1) / 2)
    return [d for d in range(lo, hi + 1) if 0 <= d < channels]


def loop_lrn(x, size, shift, table):
    """docs/numbers.md's LRN with plain loops: the exact sum of squares, the shifter, the
    table, the product rounded by 14 bits."""
    C, H, W = len(x), len(x[0]), len(x[0][0])
    out = [[[0] * W for _ in range(H)] for _ in range(C)]
    for c in range(C):
        for y in range(H):
            for xx in range(W):
                s = sum(x[d][y][xx] ** 2 for d in loop_lrn_window(c, size, C))
                g = int(table.eval(rnd_shift(s, shift)))
                out[c][y][xx] = rnd_shift(g * x[c][y][xx], 14)
    return out


@pytest.mark.parametrize("C,size,shift", [(1, 5, 18), (7, 5, 18), (5, 3, 17), (9, 4, 10),
                                          (3, 1, 16), (16, 2, 0)])
def test_lrn_matches_loops(C, size, shift):
    """Integer LRN, full-range inputs (the shifter saturates where the shift is small)."""
    rng = np.random.default_rng(C * 10 + size)
    x = ints(rng, (C, 3, 4))
    table = lrn_table(size, 1e-4 * 2 ** 8, 0.75, 2.0, 16 - shift)
    got = lrn_int(x, size, shift, table)
    assert got.tolist() == loop_lrn(x.tolist(), size, shift, table)


def test_float_lrn_matches_loops():
    rng = np.random.default_rng(5)
    x = rng.normal(0, 3, (6, 2, 3))
    size, alpha, beta, k = 3, 0.3, 0.6, 1.5
    want = np.array([[[x[c, i, j] * (k + alpha / size * sum(x[d, i, j] ** 2 for d in
                                                              loop_lrn_window(c, size, 6)))
                       ** -beta for j in range(3)] for i in range(2)] for c in range(6)])
    assert np.allclose(float_ref.lrn(x, size, alpha, beta, k), want, rtol=1e-12)
