"""The built-in networks: published shapes, seeded weights, statistics from shapes alone."""

import numpy as np

from diannao.sim.tools.workloads import (WORKLOADS, load_workload, network_stats,
                                         random_input)


def test_shapes_are_the_published_ones():
    alex = load_workload("alexnet")
    shapes = [alex.input_shape]
    for i in range(len(alex.layers)):
        shapes.append(type(alex)(shapes[-1], [alex.layers[i]]).output_shape)
    # Krizhevsky et al. 2012 (Caffe's 227x227 input): 96x55x55, 96x27x27, 256x27x27,
    # 256x13x13, 384x13x13, 384x13x13, 256x13x13, 256x6x6, 4096, 4096, 1000.
    assert shapes[1:] == [(96, 55, 55), (96, 27, 27), (256, 27, 27), (256, 13, 13),
                          (384, 13, 13), (384, 13, 13), (256, 13, 13), (256, 6, 6),
                          (4096,), (4096,), (1000,)]
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
