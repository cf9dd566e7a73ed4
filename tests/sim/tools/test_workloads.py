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
