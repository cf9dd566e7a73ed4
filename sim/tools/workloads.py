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
                   conv2 and conv5, fc6 4096, fc7 4096, fc8 1000), local response
                   normalisation (5 channels, alpha 1e-4, beta 0.75, k 1 as Caffe has it;
                   the paper's k is 2) after conv1's and conv2's ReLU, before their pooling;
                   dense convolutions (no two-GPU groups)
``vgg16``          VGG-16 (Simonyan and Zisserman, ICLR 2015, configuration D): 13 convs
                   3x3 pad 1 in five stages of 64, 128, 256, 512, 512 maps, each stage
                   ended by max pooling 2/2, then fc 4096, 4096, 1000; 3x224x224 input
``vgg16-conv``     the 13 convolutions and 5 poolings of ``vgg16`` (its "conv stack")
``diannao-*``      the layers of DianNao's benchmark (Chen et al., ASPLOS 2014, Table 1),
                   one network each: ``diannao-conv1`` .. ``diannao-conv5``, ``-pool1``,
                   ``-pool3``, ``-pool5``, ``-class1``, ``-class3`` (:data:`DIANNAO_LAYERS`)
``tonic-dig``      the Tonic suite's digit recognition (Hauswald et al., ISCA 2015, Table 1:
                   "MNIST", 7 layers, 60K parameters): LeNet-5 (LeCun et al. 1998) with a
                   dense C3: 32x32 input, conv 6 5x5, 2x2 pooling, conv 16 5x5, pooling,
                   conv 120 5x5, fc 84, fc 10, tanh (its pooling is an average here)
``tonic-imc``      its image classification: AlexNet as the suite's ``imc.prototxt`` has it
                   (Caffe's CaffeNet: ``alexnet`` with each LRN after its pooling)
``tonic-face``     its face recognition: DeepFace (Taigman et al., CVPR 2014): 152x152x3,
                   conv 32 11x11, max pooling 3/2, conv 16 9x9, locally connected 16 9x9,
                   16 7x7 stride 2 and 16 5x5, fc 4096, fc 4030, ReLU (C3 takes M2's 32
                   maps; the paper's "9x9x16" does not chain). Our pooling has no padding,
                   so M2 gives 70x70 where the paper has 71x71 and the later maps are one
                   smaller: 113.0M parameters for the paper's 118.9M. Tonic retrains the
                   last layer for 83 faces; Table 1's 120M counts DeepFace's 4030
``tonic-asr``      its speech recognition, Kaldi's DNN acoustic model: input 440 (11 spliced
                   frames of 40 features), fc 2048 + sigmoid six times, fc 1706 (senones,
                   no activation): 25,380,522 parameters. Table 1 says 13 layers (Caffe's
                   7 inner products and 6 sigmoids) and 30M, which these shapes do not give
``tonic-pos``      its part-of-speech tagging, SENNA's tagger network: input 300 (a window of
                   words' features), fc 300 + HardTanh, fc 45: 103,845 parameters
``tonic-chk``      its chunking: SENNA's, input 300, fc 300 + HardTanh, fc 42: 102,942
``tonic-ner``      its named entity recognition: SENNA's, input 375, fc 300 + HardTanh,
                   fc 17: 117,917
=================  ========================================================================

Table 1 is Hauswald et al., "DjiNN and Tonic", ISCA 2015. DIG, IMC and FACE follow their
networks' papers as described above; ASR, POS, CHK and NER follow the Caffe network
configurations the Tonic suite ships (github.com/claritylab/djinn, ``dnn/net-configs/``
``asr.prototxt``, ``pos.prototxt``, ``chk.prototxt``, ``ner.prototxt``), which give their
layer sizes and activations (``SIGMOID``, ``HTANH``). For POS, CHK and NER Table 1 says 3
layers (two inner products and a HardTanh) and 180K parameters, which the shipped
configurations do not give (104K, 103K, 118K); SENNA's word lookup tables, which turn words
into the networks' inputs, are far larger than 180K, so they are not what it counts either.
The ``paper`` column keeps Table 1's figures as printed.

Random weights are drawn with one seed per network, He-normal (``std = sqrt(2 / fan_in)``),
biases small; after each layer but the last the activation its source gives (ReLU unless
the table above names another), none after the last (``vgg16-conv`` and the one-layer
``diannao-*`` networks, parts of networks, have ReLU throughout). The digits networks are
JSON files; the others are built in memory (a few seconds for ``vgg16``'s 138 M weights).

:func:`runs_on` asks the compiler (:func:`sim.compiler.program.compile_network`) on which
configurations each network runs, and why not on the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diannao.golden._tensor import conv_out_size
from diannao.golden.network import FC, LRN, AvgPool, Conv, Local, MaxPool, Network
from diannao.golden.quant import quantize
from diannao.hw.config import PRESETS
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.tools import digits


__all__ = ["WORKLOADS", "DIANNAO_LAYERS", "DIANNAO_PRIVATE", "workload_names", "load_workload", "network_stats",
           "random_input", "runs_on"]


def _conv(c, o, k, stride=1, pad=0, activation="relu"):
    return ("conv", c, o, k, stride, pad, activation)


def _local(c, o, k, stride=1, pad=0, activation="relu"):
    return ("local", c, o, k, stride, pad, activation)


def _fc(n, o, activation="relu"):
    return ("fc", n, o, activation)


def _build(input_shape, specs, seed):
    """A :class:`Network` from layer specs, with He-normal weights from ``seed``."""
    rng = np.random.default_rng(seed)
    layers, shape = [], tuple(input_shape)
    for spec in specs:
        if spec[0] in ("conv", "local"):
            _, c, o, k, stride, pad, act = spec
            fan_in = c * k * k
            if spec[0] == "conv":
                w = rng.normal(0.0, math.sqrt(2.0 / fan_in), (o, c, k, k))
            else:       # float32 draws: DeepFace's 73 M private weights
                oh, ow = (conv_out_size(n, k, stride, pad) for n in shape[1:])
                w = rng.standard_normal((o, oh, ow, c, k, k), dtype=np.float32)
                w *= np.float32(math.sqrt(2.0 / fan_in))
            layers.append((Conv if spec[0] == "conv" else Local)(
                w, rng.normal(0.0, 0.01, o), stride=stride, pad=pad, activation=act))
        elif spec[0] == "fc":
            _, n, o, act = spec
            layers.append(FC(rng.normal(0.0, math.sqrt(2.0 / n), (o, n)),
                             rng.normal(0.0, 0.01, o), activation=act))
        elif spec[0] == "lrn":
            layers.append(LRN(*spec[1:]))
        else:
            layers.append((MaxPool if spec[0] == "maxpool" else AvgPool)(spec[1], spec[2]))
        shape = Network(shape, [layers[-1]]).output_shape
    return Network(input_shape, layers)


#: AlexNet's local response normalisation (the paper's n = 5, alpha = 1e-4, beta = 0.75;
#: k = 1 as in Caffe's models, where the paper has 2).
_NORM = ("lrn", 5, 1e-4, 0.75, 1.0)


def _alexnet(norm_first):
    """AlexNet with LRN after conv1 and conv2's ReLU: before their max pooling
    (``bvlc_alexnet``, the paper) or after it (CaffeNet, the Tonic suite's ``imc``)."""
    specs = []
    for conv in (_conv(3, 96, 11, stride=4), _conv(96, 256, 5, pad=2)):
        pool = ("maxpool", 3, 2)
        specs += [conv, _NORM, pool] if norm_first else [conv, pool, _NORM]
    return specs + [_conv(256, 384, 3, pad=1), _conv(384, 384, 3, pad=1),
                    _conv(384, 256, 3, pad=1), ("maxpool", 3, 2),
                    _fc(256 * 6 * 6, 4096), _fc(4096, 4096),
                    _fc(4096, 1000, activation="identity")]


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

#: DianNao's benchmark layers (Chen et al., ASPLOS 2014, Table 1): ``name: (Nx, Ny, Kx, Ky,
#: Ni, No)`` (input width and height, kernel or pooling window, input and output maps).
#: The paper's PDF was not at hand: the figures are those of the DianNao workloads of
#: PolyArch's stream-dataflow (ISCA 2017) artifact, ``workloads/diannao/Makefile`` (commit
#: 38f30b0), which reuses DianNao's benchmark; CLASS1 (960 -> 20) and CLASS3 (200 -> 100)
#: follow its build targets (its comment block swaps the two). Ours: convolutions with
#: stride 1 and no padding, pooling windows with stride equal to the window, max pooling,
#: ReLU; a pooling keeps its maps (No = Ni). CONV2 and CONV5 have private kernels in the
#: paper (a kernel per output position: 694 M and 720 G weights, which no SB holds and no
#: generator should draw); they run here as shared-kernel convolutions of the same shape,
#: whose cycles a locally connected layer (``local``) of that shape equals.
DIANNAO_LAYERS = {
    "conv1": (500, 375, 9, 9, 32, 48),
    "pool1": (492, 367, 2, 2, 12, 12),
    "class1": (1, 1, 1, 1, 960, 20),
    "conv2": (200, 200, 18, 18, 8, 8),
    "conv3": (32, 32, 4, 4, 108, 200),
    "pool3": (32, 32, 4, 4, 100, 100),
    "class3": (1, 1, 1, 1, 200, 100),
    "conv4": (32, 32, 7, 7, 16, 512),
    "conv5": (256, 256, 11, 11, 256, 384),
    "pool5": (256, 256, 2, 2, 256, 256),
}


#: DianNao's benchmark layers whose kernels are private in the paper (no weight reuse).
DIANNAO_PRIVATE = ("conv2", "conv5")


def _diannao_layer(name):
    """``(input_shape, specs, description)`` of DianNao's benchmark layer ``name``."""
    nx, ny, kx, ky, ni, no = DIANNAO_LAYERS[name]
    if name.startswith("class"):
        return (ni,), [_fc(ni, no)], f"DianNao benchmark {name.upper()}: fc {ni} -> {no}"
    if name.startswith("pool"):
        return ((ni, ny, nx), [("maxpool", kx, kx)],
                f"DianNao benchmark {name.upper()}: {kx}x{ky} max pooling of {ni}x{ny}x{nx}")
    private = " (private kernels in the paper, shared here)" if name in DIANNAO_PRIVATE else ""
    return ((ni, ny, nx), [_conv(ni, no, kx)],
            f"DianNao benchmark {name.upper()}: conv {ni}x{ny}x{nx} {kx}x{ky} -> {no}{private}")
_VGG16 = _VGG16_CONV + [_fc(512 * 7 * 7, 4096), _fc(4096, 4096),
                        _fc(4096, 1000, activation="identity")]


_LENET5 = [_conv(1, 6, 5, activation="tanh"), ("avgpool", 2, 2),
           _conv(6, 16, 5, activation="tanh"), ("avgpool", 2, 2),
           _conv(16, 120, 5, activation="tanh"), _fc(120, 84, activation="tanh"),
           _fc(84, 10, activation="identity")]

_DEEPFACE = [_conv(3, 32, 11), ("maxpool", 3, 2), _conv(32, 16, 9), _local(16, 16, 9),
             _local(16, 16, 7, stride=2), _local(16, 16, 5), _fc(16 * 20 * 20, 4096),
             _fc(4096, 4030, activation="identity")]

#: Kaldi's DNN acoustic model as Tonic's ``asr.prototxt``: 440 -> 6 x (2048, sigmoid) -> 1706.
_KALDI_ASR = ([_fc(440, 2048, activation="sigmoid")]
              + [_fc(2048, 2048, activation="sigmoid")] * 5
              + [_fc(2048, 1706, activation="identity")])


def _senna(n_in, n_out):
    """SENNA's tagger as Tonic's ``pos``/``chk``/``ner.prototxt``: ``n_in`` -> 300
    (HardTanh) -> ``n_out``."""
    return [_fc(n_in, 300, activation="hardtanh"), _fc(300, n_out, activation="identity")]


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    input_shape: tuple = None
    specs: list = None     # layer specs of a built network (None: a file)
    seed: int = 0
    #: A published network's (layers, parameters) as its source gives them.
    paper: tuple = None

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
        _, h, w = self.input_shape if len(self.input_shape) == 3 else (0, 1, 1)
        for spec in self.specs:
            if spec[0] in ("conv", "local"):
                _, ci, o, k, stride, pad, _ = spec
                h, w = (conv_out_size(n, k, stride, pad) for n in (h, w))
                params += o * ci * k * k * (h * w if spec[0] == "local" else 1) + o
                macs += o * h * w * ci * k * k
            elif spec[0] == "fc":
                _, n, o, _ = spec
                params += o * n + o
                macs += o * n
                h, w = 1, 1
            elif spec[0] != "lrn":
                h, w = (conv_out_size(n, spec[1], spec[2], 0) for n in (h, w))
        return len(self.specs), params, macs


#: The built-in networks by name.
WORKLOADS = {w.name: w for w in (
    Workload("digits-mlp", "trained digits MLP (8x8 images)"),
    Workload("digits-cnn", "trained digits CNN (8x8 images)"),
    Workload("alexnet", "AlexNet shapes with LRN, random weights", (3, 227, 227),
             _alexnet(norm_first=True), 0),
    Workload("vgg16", "VGG-16 shapes, random weights", (3, 224, 224), _VGG16, 1),
    Workload("vgg16-conv", "VGG-16's 13 convolutions and 5 poolings, random weights",
             (3, 224, 224), _VGG16_CONV, 1),
    *(Workload(f"diannao-{name}", description, shape, specs, 2)
      for name in DIANNAO_LAYERS for shape, specs, description in [_diannao_layer(name)]),
    # The Tonic suite (Hauswald et al., "DjiNN and Tonic", ISCA 2015, Table 1).
    Workload("tonic-dig", "Tonic DIG: LeNet-5, random weights", (1, 32, 32), _LENET5, 3,
             paper=(7, "60K")),
    Workload("tonic-imc", "Tonic IMC: CaffeNet (AlexNet, LRN after pooling), random weights",
             (3, 227, 227), _alexnet(norm_first=False), 0, paper=(22, "60M")),
    Workload("tonic-face", "Tonic FACE: DeepFace shapes (locally connected), random weights",
             (3, 152, 152), _DEEPFACE, 4, paper=(8, "120M")),
    Workload("tonic-asr", "Tonic ASR: Kaldi DNN 440-6x2048-1706, sigmoid, random weights",
             (440,), _KALDI_ASR, 5, paper=(13, "30M")),
    Workload("tonic-pos", "Tonic POS: SENNA 300-300-45, HardTanh, random weights",
             (300,), _senna(300, 45), 6, paper=(3, "180K")),
    Workload("tonic-chk", "Tonic CHK: SENNA 300-300-42, HardTanh, random weights",
             (300,), _senna(300, 42), 7, paper=(3, "180K")),
    Workload("tonic-ner", "Tonic NER: SENNA 375-300-17, HardTanh, random weights",
             (375,), _senna(375, 17), 8, paper=(3, "180K")),
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


def _compile_reasons(net, configs):
    """Per configuration, None if the compiler accepts ``net`` quantized as ``diannao run``
    quantizes it (:func:`golden.quant.quantize` with its default formats), else why not."""
    try:
        qnet = quantize(net)
    except ValueError as exc:
        return {name: f"the quantizer rejects it: {exc}" for name in configs}
    reasons = {}
    for name, config in configs.items():
        try:
            compile_network(qnet, config)
            reasons[name] = None
        except CompileError as exc:
            reasons[name] = " ".join(str(exc).split())
    return reasons


def runs_on(names=None, configs=None):
    """On which configurations the compiler accepts each built-in network, and why not on
    the others.

    Each network is built (seeded weights, as :func:`load_workload`), quantized as
    ``diannao run`` quantizes it without ``--calib`` and compiled for each configuration by
    :func:`sim.compiler.program.compile_network`: the answer is the compiler's, whose checks
    include the worst-case accumulator, which depends on the weights. Networks of the same
    shapes and seed (``tonic-imc`` is ``alexnet``) are built and compiled once. The whole
    list takes about half a minute, most of it drawing and quantizing the weights of
    ``vgg16``, ``alexnet`` and ``tonic-face``.

    Parameters
    ----------
    names : iterable of str, optional
        Built-in networks (default: all, in :data:`WORKLOADS` order).
    configs : dict of str to hw.config.Config, optional
        Configurations by name (default :data:`hw.config.PRESETS`).

    Returns
    -------
    iterator of (str, dict)
        ``(name, reasons)`` for each network as it is done; ``reasons[config]`` is None when
        the compiler accepts the network, else the compiler's one-line message (the
        :class:`sim.compiler.program.CompileError`, naming the layer and the limit), or the
        quantizer's when the network cannot be quantized at all.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones (before anything is built).
    """
    names = list(WORKLOADS) if names is None else list(names)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown network {unknown[0]!r}: the built-in networks are "
                         f"{', '.join(WORKLOADS)}")
    configs = dict(PRESETS if configs is None else configs)

    def results():
        done = {}
        for name in names:
            w = WORKLOADS[name]
            key = name if w.specs is None else (tuple(w.input_shape), tuple(w.specs), w.seed)
            if key not in done:
                done[key] = _compile_reasons(w.build(), configs)
            yield name, dict(done[key])

    return results()
