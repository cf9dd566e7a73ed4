"""Float64 reference layers with exact activations.

These mirror :mod:`golden.layers` with real arithmetic and no rounding;
the quantized network is compared against them.
"""

from __future__ import annotations

import numpy as np

from diannao.golden._tensor import channel_window_sum, conv_sum, fc_sum, local_sum, windows
from diannao.golden.formats import EXACT_ACTIVATIONS, lrn_scale

__all__ = ["conv2d", "local", "fc", "maxpool", "avgpool", "lrn", "activation", "EXACT_ACTIVATIONS"]


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def conv2d(x, w, b, stride=1, pad=0):
    """Float convolution of [C, H, W] by [O, C, K, K] plus bias [O]."""
    return conv_sum(_f64(x), _f64(w), stride, pad) + _f64(b)[:, None, None]


def local(x, w, b, stride=1, pad=0):
    """Float locally connected layer: [C, H, W] by [O, OH, OW, C, K, K] plus bias [O]."""
    return local_sum(_f64(x), _f64(w), stride, pad) + _f64(b)[:, None, None]


def fc(x, w, b):
    """Float fully-connected layer on ``x`` flattened C-major."""
    return fc_sum(_f64(x), _f64(w)) + _f64(b)


def maxpool(x, size, stride=None):
    """Float max pooling (no padding); ``stride`` defaults to ``size``."""
    return windows(_f64(x), size, stride or size, 0).max(axis=(3, 4))


def avgpool(x, size, stride=None):
    """Float average pooling (no padding); ``stride`` defaults to ``size``."""
    return windows(_f64(x), size, stride or size, 0).mean(axis=(3, 4))


def lrn(x, size, alpha, beta, k):
    """Float local response normalisation across channels of [C, H, W] (ONNX's ``LRN``):
    ``x[c] * (k + alpha / size * sum(x[c']**2)) ** -beta`` over the window of ``size``
    channels around ``c`` (:func:`golden._tensor.lrn_window`)."""
    x = _f64(x)
    return x * lrn_scale(channel_window_sum(x * x, size), size, alpha, beta, k)


def activation(x, name):
    """Exact activation ``name`` ("sigmoid", "tanh", "relu", "hardtanh", "identity")."""
    if name not in EXACT_ACTIVATIONS:
        raise ValueError(
            f"unknown activation {name!r}; choose from {sorted(EXACT_ACTIVATIONS)}")
    return EXACT_ACTIVATIONS[name](_f64(x))
