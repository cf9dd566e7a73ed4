"""Built-in networks: the trained digits networks, and real-size networks built from
published layer shapes with seeded random weights (for performance, not accuracy).

=================  ========================================================================
name               what it is
=================  ========================================================================
``digits-mlp``     the trained digits MLP (``sim/tools/networks``)
``digits-cnn``     the trained digits CNN
``alexnet``        AlexNet's layer shapes (Krizhevsky et al., NIPS 2012, as Caffe's
                   ``bvlc_alexnet``: 3x227x227 input, conv1 96 11x11/4, conv2 256 5x5 pad 2,
                   conv3 384, conv4 384, conv5 256 3x3 pad 1, max pooling 3/2 after conv1,
                   conv2 and conv5, fc6 4096, fc7 4096, fc8 1000), without LRN (not built
                   yet) and with dense convolutions (no two-GPU groups)
``vgg16``          VGG-16 (Simonyan and Zisserman, ICLR 2015, configuration D): 13 convs
                   3x3 pad 1 in five stages of 64, 128, 256, 512, 512 maps, each stage
                   ended by max pooling 2/2, then fc 4096, 4096, 1000; 3x224x224 input
``vgg16-conv``     the 13 convolutions and 5 poolings of ``vgg16`` (its "conv stack")
=================  ========================================================================

Random weights are drawn with one seed per network, He-normal (``std = sqrt(2 / fan_in)``),
biases small; ReLU after every layer but the last. The digits networks are JSON files;
the others are built in memory (a few seconds for ``vgg16``'s 138 M weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diannao.golden._tensor import conv_out_size
from diannao.golden.network import FC, Conv, MaxPool, Network
from diannao.sim.tools import digits


__all__ = ["WORKLOADS", "workload_names", "load_workload", "network_stats", "random_input"]


def _conv(c, o, k, stride=1, pad=0, activation="relu"):
    return ("conv", c, o, k, stride, pad, activation)


def _fc(n, o, activation="relu"):
    return ("fc", n, o, activation)


def _build(input_shape, specs, seed):
    """A :class:`Network` from layer specs, with He-normal weights from ``seed``."""
    rng = np.random.default_rng(seed)
    layers = []
    for spec in specs:
        if spec[0] == "conv":
            _, c, o, k, stride, pad, act = spec
            fan_in = c * k * k
            layers.append(Conv(rng.normal(0.0, math.sqrt(2.0 / fan_in), (o, c, k, k)),
                               rng.normal(0.0, 0.01, o), stride=stride, pad=pad,
                               activation=act))
        elif spec[0] == "fc":
            _, n, o, act = spec
            layers.append(FC(rng.normal(0.0, math.sqrt(2.0 / n), (o, n)),
                             rng.normal(0.0, 0.01, o), activation=act))
        else:
            layers.append(MaxPool(spec[1], spec[2]))
    return Network(input_shape, layers)


_ALEXNET = [_conv(3, 96, 11, stride=4), ("maxpool", 3, 2),
            _conv(96, 256, 5, pad=2), ("maxpool", 3, 2),
            _conv(256, 384, 3, pad=1), _conv(384, 384, 3, pad=1),
            _conv(384, 256, 3, pad=1), ("maxpool", 3, 2),
            _fc(256 * 6 * 6, 4096), _fc(4096, 4096), _fc(4096, 1000, activation="identity")]


def _vgg16_convs():
    """VGG-16's stages of 3x3 convolutions (64, 128, 256, 512, 512 maps; 2, 2, 3, 3, 3
    convolutions), each ended by max pooling 2/2."""
    specs, c = [], 3
    for maps, convs in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(convs):
            specs.append(_conv(c, maps, 3, pad=1))
            c = maps
        specs.append(("maxpool", 2, 2))
    return specs


_VGG16_CONV = _vgg16_convs()
_VGG16 = _VGG16_CONV + [_fc(512 * 7 * 7, 4096), _fc(4096, 4096),
                        _fc(4096, 1000, activation="identity")]


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    input_shape: tuple = None
    specs: list = None     # layer specs of a built network (None: a file)
    seed: int = 0

    def build(self):
        if self.specs is None:
            return digits.load_network(self.name.split("-")[1])
        return _build(self.input_shape, self.specs, self.seed)

    def stats(self):
        """``(layers, parameters, MACs)`` as :func:`network_stats`, from the shapes alone
        (no weights drawn)."""
        if self.specs is None:
            return network_stats(self.build())
        params = macs = 0
        _, h, w = self.input_shape
        for spec in self.specs:
            if spec[0] == "conv":
                _, ci, o, k, stride, pad, _ = spec
                h, w = (conv_out_size(n, k, stride, pad) for n in (h, w))
                params += o * ci * k * k + o
                macs += o * h * w * ci * k * k
            elif spec[0] == "fc":
                _, n, o, _ = spec
                params += o * n + o
                macs += o * n
                h, w = 1, 1
            else:
                h, w = (conv_out_size(n, spec[1], spec[2], 0) for n in (h, w))
        return len(self.specs), params, macs


#: The built-in networks by name.
WORKLOADS = {w.name: w for w in (
    Workload("digits-mlp", "trained digits MLP (8x8 images)"),
    Workload("digits-cnn", "trained digits CNN (8x8 images)"),
    Workload("alexnet", "AlexNet shapes, random weights, no LRN", (3, 227, 227), _ALEXNET, 0),
    Workload("vgg16", "VGG-16 shapes, random weights", (3, 224, 224), _VGG16, 1),
    Workload("vgg16-conv", "VGG-16's 13 convolutions and 5 poolings, random weights",
             (3, 224, 224), _VGG16_CONV, 1),
)}


def workload_names():
    """The names :func:`load_workload` accepts."""
    return list(WORKLOADS)


def load_workload(name):
    """The built-in network ``name`` as a :class:`golden.network.Network`.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.
    """
    try:
        return WORKLOADS[name].build()
    except KeyError:
        raise ValueError(f"unknown network {name!r}: neither a file nor a built-in network "
                         f"({', '.join(WORKLOADS)})") from None


def network_stats(net):
    """``(layers, parameters, MACs)`` of a network: weights and biases of its conv and fc
    layers, and their multiply-accumulates (pooling counts none)."""
    params = macs = 0
    shape = net.input_shape
    for i, layer in enumerate(net.layers):
        out = Network(shape, [layer]).output_shape
        if isinstance(layer, (Conv, FC)):
            params += layer.weights.size + layer.bias.size
            macs += int(np.prod(out)) * int(np.prod(layer.weights.shape[1:]))
        shape = out
    return len(net.layers), params, macs


def random_input(net, seed=0):
    """A seeded random input for ``net``: uniform in [-1, 1) (what a run uses without
    ``--input``)."""
    return np.random.default_rng(seed).uniform(-1.0, 1.0, net.input_shape)
