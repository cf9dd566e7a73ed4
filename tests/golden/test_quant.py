"""Quantizer: fraction-bit choices, errors, batching and accuracy against float."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from diannao.golden.formats import from_fixed
from diannao.golden.formats import lrn_table, lrn_table_error
from diannao.golden.network import FC, LRN, AvgPool, Conv, MaxPool, Network
from diannao.golden.quant import error_bound, quantize, run_float
from diannao.sim.tools import digits


def random_net(rng, act):
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(5, 10)), int(rng.integers(5, 10))
    k = int(rng.integers(1, 4))
    o = int(rng.integers(1, 6))
    conv = Conv(rng.normal(0, 0.5, (o, c, k, k)), rng.normal(0, 0.2, o),
                stride=int(rng.integers(1, 3)), pad=int(rng.integers(0, 2)), activation=act)
    net = Network((c, h, w), [conv])
    oh, ow = net.output_shape[1:]
    size = int(min(2, oh, ow))
    net.layers.append((MaxPool if rng.random() < 0.5 else AvgPool)(size))
    n = int(np.prod(net.output_shape))
    m = int(rng.integers(1, 12))
    net.layers.append(FC(rng.normal(0, 1 / np.sqrt(n), (m, n)), rng.normal(0, 0.2, m), act))
    return net


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1),
       act=st.sampled_from(["sigmoid", "tanh", "relu", "identity", "hardtanh"]))
def test_random_nets_within_error_bound(seed, act):
    rng = np.random.default_rng(seed)
    net = random_net(rng, act)
    qnet = quantize(net)
    x = rng.uniform(-1, 1, (4,) + net.input_shape)
    got = from_fixed(qnet.run(qnet.quantize_input(x)), qnet.output_frac)
    want = run_float(net, x)
    err = np.abs(got - want).reshape(len(x), -1).max(axis=1)
    bound = error_bound(net, qnet, x)
    assert np.all(err <= bound), (err, bound)
    # the bound is not vacuous for these sizes (largest seen: about 0.30, tanh)
    assert np.all(bound <= 0.5)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 7),
       alpha=st.sampled_from([1e-4, 0.01, 0.5, 2.0]), beta=st.sampled_from([0.5, 0.75, 1.0]),
       k=st.sampled_from([1.0, 2.0]), calib=st.booleans())
def test_lrn_within_error_bound(seed, size, alpha, beta, k, calib):
    """LRN after a convolution with ReLU (AlexNet's order): the golden model against float,
    within error_bound, with and without calibration (docs/numbers.md)."""
    rng = np.random.default_rng(seed)
    c = int(rng.integers(1, 12))
    conv = Conv(rng.normal(0, 0.6, (c, 2, 3, 3)), rng.normal(0, 0.2, c), pad=1,
                activation="relu")
    net = Network((2, 5, 4), [conv, LRN(size, alpha, beta, k)])
    x = rng.uniform(-2, 2, (3,) + net.input_shape)
    qnet = quantize(net, calib=x if calib else None)
    got = from_fixed(qnet.run(qnet.quantize_input(x)), qnet.output_frac)
    err = np.abs(got - run_float(net, x)).reshape(len(x), -1).max(axis=1)
    bound = error_bound(net, qnet, x)
    assert np.all(err <= bound), (err, bound)
    if alpha == 1e-4 or (calib and alpha <= 0.01):
        # Not vacuous where the table fits the scale well (docs/numbers.md): the worst
        # seen is about a quarter of it and 0.18 itself, for outputs up to about 7.
        assert np.all(bound <= 0.3), bound


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (5, 1e-4, 0.75, 2.0),
                                               (3, 1e-4, 0.5, 1.0), (7, 1e-4, 1.0, 1.5)])
def test_lrn_table_error_is_small(size, alpha, beta, k):
    """The LRN scale table over its whole input range at AlexNet's alpha, at the shift of
    the worst case (q = -2 for Q8 inputs) and calibrated ones: within the documented 2**-8
    (docs/numbers.md)."""
    for q in (-2, 6, 12):
        assert lrn_table_error(lrn_table(size, alpha, beta, k, q), size, alpha, beta, k, q) \
            <= 2 ** -8


def test_lrn_quantization_shift():
    """Without calibration the shift keeps any int16 input's sums of squares inside int16;
    with it, the largest calibrated sum just fits."""
    net = Network((6, 2, 2), [LRN(5)])
    q = quantize(net).layers[0]
    assert (q.in_frac, q.out_frac, q.kernel, q.shift) == (8, 8, 5, 18)   # 5 * 2**30 >> 18
    x = np.full((6, 2, 2), 0.5)
    q = quantize(net, calib=x).layers[0]
    # peak sum of squares 5 * 0.25 = 1.25, with a bit of headroom 2.5, fits Q13 (up to 4):
    # shift 16 - 13
    assert q.shift == 3


def test_quantize_fields():
    rng = np.random.default_rng(0)
    net = Network((2, 6, 6), [Conv(rng.normal(0, 0.3, (3, 2, 3, 3)), np.array([0.5, -1.0, 2.0]),
                                   stride=1, pad=1, activation="relu"),
                              AvgPool(3), FC(rng.normal(0, 0.3, (4, 12)), np.zeros(4), "tanh")])
    qnet = quantize(net)
    conv, pool, fc = qnet.layers
    assert (conv.kind, conv.kernel, conv.stride, conv.pad) == ("conv", 3, 1, 1)
    assert conv.in_frac == 8 and conv.out_frac == 8 and conv.b_frac == 13  # |bias| <= 2.0
    assert conv.shift == conv.in_frac + conv.w_frac - conv.out_frac
    assert conv.bias_exp == conv.in_frac + conv.w_frac - conv.b_frac
    assert conv.w_q.dtype == np.int64 and not conv.w_q.flags.writeable
    assert conv.table.name == "relu" and pool.table is None and fc.table.name == "tanh"
    assert (pool.in_frac, pool.out_frac, pool.avg_reciprocal) == (8, 8, (29127, 18))
    assert fc.b_frac == fc.in_frac + fc.w_frac and fc.bias_exp == 0  # zero bias
    assert (qnet.input_frac, qnet.output_frac, qnet.output_shape) == (8, 8, (4,))


def test_batch_equals_single_and_intermediates():
    rng = np.random.default_rng(1)
    net = random_net(rng, "relu")
    qnet = quantize(net)
    x_q = qnet.quantize_input(rng.uniform(-1, 1, (3,) + net.input_shape))
    y, per_layer = qnet.run(x_q, intermediates=True)
    assert y.dtype == np.int16 and len(per_layer) == 3 and np.array_equal(per_layer[-1], y)
    for i in range(3):
        assert np.array_equal(qnet.run(x_q[i]), y[i])
    with pytest.raises(ValueError, match="shape"):
        qnet.run(x_q[:, :1])
    with pytest.raises(ValueError, match="integer dtype"):
        qnet.run(x_q.astype(float))


def test_calibration_lowers_out_frac():
    w = np.full((2, 3), 100.0)
    net = Network((3,), [FC(w, np.zeros(2), "relu")])
    assert quantize(net).layers[0].out_frac == 8
    q = quantize(net, calib=np.ones((5, 3)))     # outputs reach 300 -> needs frac 6
    assert q.layers[0].out_frac == 6
    net.layers[0].out_frac = 3
    assert quantize(net, calib=np.ones((5, 3))).layers[0].out_frac == 3


@pytest.mark.parametrize("layer,kwargs,field,match", [
    (FC(np.full((2, 3), 1e6), np.zeros(2)), {}, "weights", "do not fit"),
    (FC(np.full((2, 3), 0.5), np.full(2, 1e6)), {}, "bias", "do not fit"),
    (FC(np.full((2, 3), 100.0), np.zeros(2), out_frac=20), {}, "out_frac", "shift=-4"),
    (FC(np.full((2, 3), 1e-9), np.full(2, 100.0)), {}, "bias", "bias_exp=30 > 14"),
    (FC(np.full((2, 3), 0.5), np.zeros(2), "sigmoid", out_frac=4), {}, "activation", "frac=4"),
    (FC(np.full((2, 3), 0.9), np.zeros(2)), {"acc_width": 32}, "weights", "32-bit accumulator"),
])
def test_quantize_errors_name_layer_and_field(layer, kwargs, field, match):
    net = Network((1, 1, 3), [MaxPool(1), layer])
    with pytest.raises(ValueError, match=match) as info:
        quantize(net, **kwargs)
    assert str(info.value).startswith(f"layer 1 (fc), field '{field}'")


@pytest.mark.parametrize("name", digits.NETWORK_NAMES)
def test_digits_accuracy_within_one_point(name):
    net = digits.load_network(name)
    qnet = quantize(net)
    x, labels = digits.load_test_set(net.input_shape)
    assert len(labels) == 360
    acc_float = digits.accuracy(run_float(net, x), labels)
    acc_q = digits.accuracy(qnet.run(qnet.quantize_input(x)), labels)
    assert acc_float >= 0.95
    assert abs(acc_q - acc_float) <= 0.01
