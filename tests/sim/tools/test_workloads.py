"""The built-in networks: published shapes, seeded weights, statistics from shapes alone."""

import numpy as np
import pytest

from diannao.golden.quant import error_bound, quantize, run_float
from diannao.hw.config import PRESETS
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.engines.registry import run_network
from diannao.sim.tools.workloads import (WORKLOADS, load_workload, network_stats,
                                         random_input, runs_on)


def test_shapes_are_the_published_ones():
    alex = load_workload("alexnet")
    shapes = [alex.input_shape]
    for i in range(len(alex.layers)):
        shapes.append(type(alex)(shapes[-1], [alex.layers[i]]).output_shape)
    # Krizhevsky et al. 2012 (Caffe's 227x227 input): 96x55x55 (and its LRN), 96x27x27,
    # 256x27x27 (and its LRN), 256x13x13, 384x13x13, 384x13x13, 256x13x13, 256x6x6, 4096,
    # 4096, 1000.
    assert shapes[1:] == [(96, 55, 55), (96, 55, 55), (96, 27, 27), (256, 27, 27),
                          (256, 27, 27), (256, 13, 13), (384, 13, 13), (384, 13, 13),
                          (256, 13, 13), (256, 6, 6), (4096,), (4096,), (1000,)]
    assert [type(l).__name__ for l in alex.layers[:6]] == ["Conv", "LRN", "MaxPool", "Conv",
                                                           "LRN", "MaxPool"]
    imc = load_workload("tonic-imc")     # CaffeNet: each LRN after its pooling
    assert [type(l).__name__ for l in imc.layers[:6]] == ["Conv", "MaxPool", "LRN", "Conv",
                                                          "MaxPool", "LRN"]
    assert (imc.layers[2].size, imc.layers[2].alpha, imc.layers[2].beta) == (5, 1e-4, 0.75)
    vgg = load_workload("vgg16-conv")
    assert vgg.output_shape == (512, 7, 7) and len(vgg.layers) == 18


def test_stats_from_shapes_equal_the_built_network():
    for name in ("digits-cnn", "alexnet", "vgg16-conv"):
        assert WORKLOADS[name].stats() == network_stats(load_workload(name))


def test_weights_and_inputs_are_seeded():
    a, b = load_workload("alexnet"), load_workload("alexnet")
    assert np.array_equal(a.layers[0].weights, b.layers[0].weights)
    x = random_input(a)
    assert x.shape == (3, 227, 227) and np.array_equal(x, random_input(b))
    assert -1 <= x.min() and x.max() < 1


def test_diannao_benchmark_layers():
    """Each layer of DianNao's benchmark is a network of one layer of the table's shape;
    the table agrees with itself where its rows meet (CONV1's 9x9 output of its 500x375
    input is POOL1's 492x367), and its classifier layers have Ni x No MACs."""
    for name in ("conv1", "pool1", "class1", "conv2", "conv3", "pool3", "class3", "conv4",
                 "conv5", "pool5"):
        net = load_workload(f"diannao-{name}")
        assert len(net.layers) == 1, name
    conv1 = load_workload("diannao-conv1")
    assert conv1.input_shape == (32, 375, 500) and conv1.output_shape == (48, 367, 492)
    assert load_workload("diannao-pool1").input_shape == (12, 367, 492)
    assert load_workload("diannao-pool3").output_shape == (100, 8, 8)
    assert WORKLOADS["diannao-class1"].stats() == (1, 960 * 20 + 20, 960 * 20)
    assert WORKLOADS["diannao-class3"].stats() == (1, 200 * 100 + 100, 200 * 100)
    # From the shapes alone (CONV5's 11.9 M weights are not drawn for this).
    assert WORKLOADS["diannao-conv5"].stats()[2] == 384 * 246 * 246 * 256 * 11 * 11
    assert WORKLOADS["diannao-conv4"].stats() == network_stats(load_workload("diannao-conv4"))


def test_tonic_networks_beside_their_table():
    """DIG is LeNet-5 (61,706 parameters: Table 1's 60K); FACE is DeepFace with its three
    locally connected layers (from the shapes, without drawing its 113 M weights)."""
    dig = load_workload("tonic-dig")
    assert [s[1:] for s in dig.shapes()[1:6]] == [(28, 28), (14, 14), (10, 10), (5, 5), (1, 1)]
    assert WORKLOADS["tonic-dig"].stats() == network_stats(dig) == (7, 61_706, 416_520)
    # C1 11x11x3->32, C3 9x9x32->16, L4/L5/L6 a kernel per position over 62x62, 54x54 (stride
    # 2) and 24x24 inputs, F7 from 16x20x20, F8 4096->4030.
    face = (32 * 3 * 121 + 32 + 16 * 32 * 81 + 16 + 54 * 54 * 16 * 16 * 81 + 16
            + 24 * 24 * 16 * 16 * 49 + 16 + 20 * 20 * 16 * 16 * 25 + 16
            + 6400 * 4096 + 4096 + 4096 * 4030 + 4030)
    assert WORKLOADS["tonic-face"].stats()[:2] == (8, face)
    assert WORKLOADS["tonic-face"].paper == (8, "120M")


def fc_params(*sizes):
    """Weights and biases of a chain of fully connected layers ``sizes[0] -> sizes[1] -> ...``."""
    return sum(n * o + o for n, o in zip(sizes, sizes[1:]))


def test_tonic_speech_and_language_networks():
    """ASR, POS, CHK and NER as the Tonic suite's net-configs give them: fully connected
    chains on a vector input, whose parameters Table 1 rounds (ASR: 25.4M for its 30M) or
    does not give (POS, CHK, NER: about 0.1M for its 180K)."""
    expected = {                 # (sizes, activations before the last layer, Table 1)
        "tonic-asr": ((440,) + (2048,) * 6 + (1706,), "sigmoid", (13, "30M")),
        "tonic-pos": ((300, 300, 45), "hardtanh", (3, "180K")),
        "tonic-chk": ((300, 300, 42), "hardtanh", (3, "180K")),
        "tonic-ner": ((375, 300, 17), "hardtanh", (3, "180K")),
    }
    assert fc_params(440, 2048, 2048, 2048, 2048, 2048, 2048, 1706) == 25_380_522
    assert [fc_params(*expected[n][0]) for n in ("tonic-pos", "tonic-chk", "tonic-ner")] == \
        [103_845, 102_942, 117_917]
    for name, (sizes, act, paper) in expected.items():
        w = WORKLOADS[name]
        n_fc = len(sizes) - 1
        macs = sum(n * o for n, o in zip(sizes, sizes[1:]))
        assert w.stats() == (n_fc, fc_params(*sizes), macs), name
        assert w.paper == paper
        net = load_workload(name)
        assert net.input_shape == (sizes[0],) and net.output_shape == (sizes[-1],)
        assert network_stats(net) == w.stats()
        assert [layer.activation for layer in net.layers] == [act] * (n_fc - 1) + ["identity"]
        assert [layer.weights.shape for layer in net.layers] == \
            [(o, n) for n, o in zip(sizes, sizes[1:])]


def test_tonic_speech_and_language_networks_run_on_the_golden_model():
    """One golden pass each on a seeded random input, within the error bound of the float
    reference (ASR's 25 M weights: a few seconds)."""
    for name in ("tonic-pos", "tonic-chk", "tonic-ner", "tonic-asr"):
        net = load_workload(name)
        qnet = quantize(net)
        x = random_input(net)
        y = run_network(qnet, qnet.quantize_input(x), engine="golden").outputs
        assert y.shape == net.output_shape and y.dtype == np.int16
        err = np.max(np.abs(qnet.dequantize_output(y) - run_float(net, x)))
        assert err <= error_bound(net, qnet, x), name


def test_runs_on_is_the_compilers_answer():
    """The presets are those the compiler accepts (the digits MLP runs on every preset;
    SENNA's 90,000 first-layer weights fit DaDianNao's SB and stream on DianNao's), and each rejection carries
    the compiler's message naming the layer and the limit."""
    got = dict(runs_on(["digits-mlp", "tonic-pos", "tonic-ner", "tonic-chk"]))
    assert list(got) == ["digits-mlp", "tonic-pos", "tonic-ner", "tonic-chk"]
    assert got["digits-mlp"] == {name: None for name in PRESETS}
    for name in ("tonic-pos", "tonic-ner"):
        qnet = quantize(load_workload(name))
        for preset_name, config in PRESETS.items():
            try:
                compile_network(qnet, config)
                want = None
            except CompileError as exc:
                want = " ".join(str(exc).split())       # on one line
            assert got[name][preset_name] == want, (name, preset_name)
    assert [p for p, reason in got["tonic-pos"].items() if reason is None] == ["diannao",
                                                                               "dadiannao"]
    assert got["tonic-pos"]["icebreaker"].startswith("layer 0 (fc): SB needs ")
    assert "(sb_depth" in got["tonic-pos"]["icebreaker"]


def test_runs_on_rejects_unknown_names_before_building():
    with pytest.raises(ValueError, match="unknown network 'resnet'.*digits-mlp"):
        runs_on(["digits-mlp", "resnet"])


def test_a_network_the_quantizer_rejects_runs_nowhere_and_says_why():
    from diannao.golden.network import FC, Network
    from diannao.sim.tools.workloads import _compile_reasons
    net = Network((4,), [FC(np.full((2, 4), 1e6), np.zeros(2))])     # 1e6 fits no int16
    reasons = _compile_reasons(net, PRESETS)
    assert list(reasons) == list(PRESETS)
    for reason in reasons.values():
        assert reason.startswith("the quantizer rejects it: layer 0 (fc), field 'weights': ")
