"""Compile-time limits: a network that cannot run on a configuration is rejected with an error
naming the layer and the limit (the accumulator width, every instruction field's range), and
one just inside the limit compiles."""

import dataclasses
import itertools
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diannao.golden.network import Network, Conv, FC, AvgPool, MaxPool
from diannao.golden.quant import quantize
from diannao.hw.isa import Op
from diannao.hw.config import preset
from diannao.sim.compiler.program import CompileError, acc_bits, compile_network, layer_acc_bound
from diannao.sim.compiler.mapping import pool_sb_row
from diannao.sim.engines.pysim import run_program


SMALL = preset("small")
#: An int16 input's extremes: a linear function of the input is largest in magnitude at
#: one of the corners of the box [X_LO, X_HI]**n.
X_LO, X_HI = -32768, 32767


def _fc_net(n, outputs, activation, seed=0):
    rng = np.random.default_rng(seed)
    return Network((n,), [FC(rng.normal(0, 1 / np.sqrt(n), (outputs, n)),
                             rng.normal(0, 0.1, outputs), activation=activation)])


def _signed_bits(lo, hi):
    """Fewest bits of a two's-complement register holding every integer in ``[lo, hi]``."""
    bits = 1
    while not -(1 << (bits - 1)) <= lo <= hi <= (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def _exact_range(w, b, bias_exp):
    """``(lo, hi)``: the extreme accumulator values of any output over every int16 input.

    Each output's sum is linear in the input, so its extremes lie at corners picked from the
    weights' signs. Partial sums stay within them: every product can move the sum 0 or more
    in either direction."""
    w = np.asarray(w, dtype=object).reshape(len(w), -1)
    bias = np.asarray(b, dtype=object) * (1 << bias_exp)
    hi = bias + np.where(w > 0, w * X_HI, w * X_LO).sum(axis=1)
    lo = bias + np.where(w > 0, w * X_LO, w * X_HI).sum(axis=1)
    return int(lo.min()), int(hi.max())


# --- accumulator width -----------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "identity"])
def test_acc_width_too_narrow_is_rejected_naming_layer_bits_and_width(activation):
    qnet = quantize(_fc_net(512, 4, activation))
    layer = qnet.layers[0]
    lo, hi = _exact_range(layer.w_q, layer.b_q, layer.bias_exp)
    exact = _signed_bits(lo, hi)
    # The bound is |acc| <= 32768 * sum|w| + |b| << bias_exp, so a signed register needs its
    # bit length plus a sign bit: at least the exact need, at most one bit more.
    bound = int((32768 * np.abs(layer.w_q).sum(axis=1)
                 + (np.abs(layer.b_q) << layer.bias_exp)).max())
    need = bound.bit_length() + 1
    assert exact <= need <= exact + 1 and need >= 37    # a real overflow below need
    with pytest.raises(CompileError, match=rf"^layer 0 \(fc\): the worst-case accumulator "
                                           rf"needs {need} bits \(\|acc\| <= [0-9.e+]+\), "
                                           rf"but Config.acc_width is {need - 1}$"):
        compile_network(qnet, SMALL.replace(acc_width=need - 1))
    program = compile_network(qnet, SMALL.replace(acc_width=need))
    assert program.config.acc_width == need


def test_acc_width_check_names_the_failing_layer():
    rng = np.random.default_rng(1)
    net = Network((8,), [FC(rng.normal(0, 0.3, (512, 8)), rng.normal(0, 0.1, 512)),
                         FC(rng.normal(0, 1 / np.sqrt(512), (4, 512)), rng.normal(0, 0.1, 4))])
    qnet = quantize(net)
    first, second = (acc_bits(layer_acc_bound(layer)) for layer in qnet.layers)
    assert first < second
    with pytest.raises(CompileError, match=r"^layer 1 \(fc\): .*needs "
                                           rf"{second} bits.*acc_width is {second - 1}$"):
        compile_network(qnet, SMALL.replace(acc_width=second - 1))


def test_acc_width_at_the_limit_is_bit_exact_and_one_bit_less_wraps():
    # An input at the corner that drives output 0 to its largest value: at the limit the RTL
    # agrees with golden; with one bit less (the check bypassed) its accumulator wraps. One
    # tile of tn=2 (accumulators from 35 bits) keeps the simulation short.
    qnet = quantize(_fc_net(128, 2, "identity"))
    layer = qnet.layers[0]
    need = acc_bits(layer_acc_bound(layer))
    config = SMALL.replace(tn=2, tiles=1)
    x = np.where(layer.w_q[0] > 0, X_HI, X_LO)[None]
    _, hi = _exact_range(layer.w_q[:1], layer.b_q[:1], layer.bias_exp)
    assert _signed_bits(0, hi) == need              # this input needs every bit
    expected = qnet.run(x)
    program = compile_network(qnet, config.replace(acc_width=need))
    y, _ = run_program(program, x)
    assert np.array_equal(y, expected)
    narrow = dataclasses.replace(program, config=config.replace(acc_width=need - 1))
    y, _ = run_program(narrow, x)
    assert y[0, 0] != expected[0, 0]


@settings(max_examples=200, deadline=None)
@given(o=st.integers(1, 3), n=st.integers(1, 5), bias_exp=st.integers(0, 14),
       kind=st.sampled_from(["fc", "conv"]), data=st.data())
def test_weighted_bound_against_brute_force(o, n, bias_exp, kind, data):
    # Every corner of the input box, every partial sum in the order the tile accumulates
    # (the bias row first, then the products).
    int16 = st.integers(X_LO, X_HI)
    w = np.array(data.draw(st.lists(st.lists(int16, min_size=n, max_size=n),
                                    min_size=o, max_size=o)), dtype=np.int64)
    b = np.array(data.draw(st.lists(int16, min_size=o, max_size=o)), dtype=np.int64)
    w_q = w if kind == "fc" else w.reshape(o, n, 1, 1)
    layer = SimpleNamespace(kind=kind, w_q=w_q, b_q=b, bias_exp=bias_exp, kernel=1)
    bound = layer_acc_bound(layer)
    lo = hi = 0
    for x in itertools.product((X_LO, X_HI), repeat=n):
        for j in range(o):
            terms = [int(b[j]) << bias_exp] + [int(w[j, i]) * x[i] for i in range(n)]
            partial = np.cumsum(np.array(terms, dtype=object))
            lo, hi = min(lo, min(partial)), max(hi, max(partial))
    assert max(-lo, hi) <= bound
    assert _signed_bits(lo, hi) <= acc_bits(bound) <= _signed_bits(lo, hi) + 1


@pytest.mark.parametrize("kernel", [1, 2, 3, 5, 8, 9, 16])
def test_pool_bounds_against_brute_force(kernel):
    # The SB value the compiler writes on the diagonal (diannao.sim.compiler.mapping), times the input
    # extremes, summed over the window (avg) or kept one at a time (max).
    tn = 4
    r = int(pool_sb_row("avgpool", kernel, tn)[0, 0])
    one = int(pool_sb_row("maxpool", kernel, tn)[0, 0])
    avg = SimpleNamespace(kind="avgpool", kernel=kernel)
    mx = SimpleNamespace(kind="maxpool", kernel=kernel)
    partial = [k * X_LO * r for k in range(1, kernel * kernel + 1)]
    assert layer_acc_bound(avg) == max(abs(p) for p in partial)
    assert layer_acc_bound(mx) == max(abs(X_LO * one), abs(X_HI * one))


def test_avgpool_too_wide_for_the_accumulator():
    # A 7x7 average: 49 * -32768 * r (r = 21400) = -3.4e10 needs 37 bits, one more than the
    # smallest accumulator tn=4 allows.
    qnet = quantize(Network((4, 7, 7), [AvgPool(7)]))
    with pytest.raises(CompileError, match=r"^layer 0 \(avgpool\): the worst-case accumulator "
                                           r"needs 37 bits.*acc_width is 36$"):
        compile_network(qnet, SMALL.replace(acc_width=36))
    compile_network(qnet, SMALL.replace(acc_width=37))
    compile_network(quantize(Network((4, 7, 7), [MaxPool(7)])), SMALL.replace(acc_width=36))


# --- instruction fields ----------------------------------------------------------------------

def test_compute_field_out_of_range_names_layer_and_field():
    # 8192 outputs at tn=4 are 2048 output blocks; the ob field has 10 bits. Every buffer is
    # large enough, so only the field is wrong.
    rng = np.random.default_rng(2)
    small = [FC(rng.normal(0, 0.5, (4, 4)), rng.normal(0, 0.1, 4)) for _ in range(3)]
    net = Network((4,), small + [FC(rng.normal(0, 0.5, (8192, 4)), rng.normal(0, 0.1, 8192))])
    cfg = SMALL.replace(sb_depth=4096, nm_depth=16384, nbout_depth=4096)
    with pytest.raises(CompileError, match=r"^layer 3 \(fc\): instruction field ob=2048 is out "
                                           r"of range \[0, 1023\] \(10 bits\)$"):
        compile_network(quantize(net), cfg)
    # 1023 blocks fit.
    net = Network((4,), small + [FC(rng.normal(0, 0.5, (4092, 4)), rng.normal(0, 0.1, 4092))])
    program = compile_network(quantize(net), cfg)
    assert program.layers[3].fields["ob"] == 1023
    assert len(program.words) == len(program.instructions)


def test_a_load_beyond_its_count_field_goes_by_lines():
    # A 4x256x256 input is 65536 NBin rows: NBin holds them, but LOAD's count has 16 bits,
    # so the LOAD moves 256 lines of 256 rows (one run when they fit the count).
    net = Network((4, 256, 256), [MaxPool(2)])
    cfg = SMALL.replace(nbin_depth=1 << 16, nm_depth=1 << 17, nbout_depth=4096)
    program = compile_network(quantize(net), cfg)
    [load] = [f for f in program.instructions if f["op"] == Op.LOAD]
    assert (load["count"], load["lines_m1"], load["line_step"]) == (256, 255, 1)


def test_bias_exp_beyond_int16_is_rejected():
    # The quantizer never gives bias_exp > 14; a hand-made layer with 15 (which the 4-bit
    # field could hold) would feed the bias row 1 << 15, an int16 -32768.
    qnet = quantize(_fc_net(8, 4, "identity"))
    compile_network(qnet, SMALL)
    qnet = dataclasses.replace(qnet, layers=(dataclasses.replace(qnet.layers[0], bias_exp=15),))
    with pytest.raises(CompileError, match=r"^layer 0 \(fc\): bias_exp=15 is outside \[0, 14\]"):
        compile_network(qnet, SMALL)


def test_weights_beyond_sb_are_named_before_the_tiling_counts_instructions():
    # A conv whose input needs tiling (16 channels of 24x24: 2,304 NBin rows for 256) and
    # whose weights need 4 output blocks of 1 + 5*5*4 = 101 rows per tile (404 for SB's 256),
    # on an instruction memory of 16: resident, every tiling needs more instructions than
    # that, but no tiling would hold the weights, so the error names SB, the real limit
    # (before, the instruction count of plans that could never run).
    rng = np.random.default_rng(3)
    net = Network((16, 24, 24), [Conv(rng.normal(0, 0.05, (64, 16, 5, 5)),
                                      rng.normal(0, 0.1, 64))])
    cfg = SMALL.replace(imem_depth=16, nm_depth=16384)
    with pytest.raises(CompileError, match=r"^layer 0 \(conv\): SB needs 404 rows per tile "
                                           r".* but has 256 \(sb_depth"):
        compile_network(quantize(net), cfg)
    # With SB large enough, the instruction memory is the limit.
    with pytest.raises(CompileError, match=r"^layer 0 \(conv\): .*more instructions than the "
                                           r"configuration holds"):
        compile_network(quantize(net), cfg.replace(sb_depth=512))
