"""Integer reference layers, bit-exact by construction.

Every function takes int16-valued integer arrays, computes in int64 (exact:
products are 32-bit and the accumulator is checked against ``acc_width``
by the quantizer) and returns int16-valued int64 arrays.  Tensors are
[C, H, W] for convolution and pooling and [N] (or anything, flattened
C-major) for fully-connected layers.
"""

from __future__ import annotations

import numpy as np

from diannao.golden._tensor import channel_window_sum, conv_sum, fc_sum, local_sum, windows
from diannao.golden.formats import (INT16_MAX, INT16_MIN, LRN_SCALE_FRAC, avg_reciprocal,
                                    shift_round)

__all__ = ["conv2d_int", "local_int", "fc_int", "maxpool_int", "avgpool_int", "lrn_square_sum",
           "lrn_int", "activation_int",
           "accumulator_bound", "as_int16_values"]


def as_int16_values(x, what="input"):
    """Return ``x`` as an int64 array after checking it holds int16 integers.

    Raises
    ------
    ValueError
        If ``x`` is not of an integer dtype or a value lies outside int16.
    """
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise ValueError(f"{what} must have an integer dtype, got {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < INT16_MIN or a.max() > INT16_MAX):
        bad = a[(a < INT16_MIN) | (a > INT16_MAX)].flat[0]
        raise ValueError(f"{what} holds {bad}, outside int16 [{INT16_MIN}, {INT16_MAX}]")
    return a


def _bias_acc(b, bias_exp):
    return as_int16_values(b, "bias") << int(bias_exp)


def conv2d_int(x, w, b, stride, pad, bias_exp, shift):
    """Integer 2-D convolution with bias, shifter rounding and saturation.

    ``acc[o,oy,ox] = (b[o] << bias_exp) + sum w * x_padded`` (exact),
    ``y = shift_round(acc, shift)``.

    Parameters
    ----------
    x : array_like, [C, H, W]
    w : array_like, [O, C, KH, KW] with KH == KW
    b : array_like, [O]
    stride, pad : int
        Step and zero padding on all four sides; ``OH = (H + 2*pad - KH)//stride + 1``.
    bias_exp, shift : int

    Returns
    -------
    numpy.ndarray of int64, [O, OH, OW]
    """
    acc = conv_sum(as_int16_values(x), as_int16_values(w, "weights"), stride, pad)
    return shift_round(acc + _bias_acc(b, bias_exp)[:, None, None], shift)


def local_int(x, w, b, stride, pad, bias_exp, shift):
    """Integer locally connected layer (a kernel per output position, DianNao's "private
    kernels"): as :func:`conv2d_int` with ``w`` of shape [O, OH, OW, C, K, K].

    Returns
    -------
    numpy.ndarray of int64, [O, OH, OW]
    """
    acc = local_sum(as_int16_values(x), as_int16_values(w, "weights"), stride, pad)
    return shift_round(acc + _bias_acc(b, bias_exp)[:, None, None], shift)


def fc_int(x, w, b, bias_exp, shift):
    """Integer fully-connected layer; ``x`` is flattened C-major first.

    Returns
    -------
    numpy.ndarray of int64, [O]
    """
    acc = fc_sum(as_int16_values(x), as_int16_values(w, "weights"))
    return shift_round(acc + _bias_acc(b, bias_exp), shift)


def maxpool_int(x, size, stride):
    """Max pooling without padding; ``OH = (H - size)//stride + 1``."""
    return windows(as_int16_values(x), size, stride, 0).max(axis=(3, 4))


def avgpool_int(x, size, stride):
    """Average pooling: ``shift_round(window_sum * r, R)`` with ``(r, R) = avg_reciprocal(size**2)``."""
    r, R = avg_reciprocal(size * size)
    sums = windows(as_int16_values(x), size, stride, 0).sum(axis=(3, 4))
    return shift_round(sums * r, R)


def lrn_square_sum(x, size):
    """The exact window sums of squares of an LRN layer (int64, ``[C, H, W]``):
    ``s[c] = sum(x[c']**2)`` over ``c'`` in :func:`golden._tensor.lrn_window` of ``size``."""
    x = as_int16_values(x)
    return channel_window_sum(x * x, size)


def lrn_int(x, size, shift, table):
    """Integer local response normalisation across channels (``docs/numbers.md``):

    ``u = shift_round(s, shift)`` of the window sums of squares ``s`` (:func:`lrn_square_sum`),
    ``g = table(u)`` (the scale in Q14), ``y = shift_round(g * x, 14)``.

    Returns
    -------
    numpy.ndarray of int64, [C, H, W]
    """
    x = as_int16_values(x)
    g = table.eval(shift_round(lrn_square_sum(x, size), shift))
    return shift_round(g * x, LRN_SCALE_FRAC)


def activation_int(x, table):
    """Apply a :class:`golden.formats.PWLTable` (NFU-3)."""
    return table.eval(as_int16_values(x))


def accumulator_bound(w, b, bias_exp):
    """Worst-case accumulator magnitude of each output neuron.

    ``32768 * sum|w| + |b| << bias_exp``, the reduction running over every
    axis of ``w`` but the first; for locally connected weights ([O, OH, OW, C, K, K]) over
    each position's kernel, the largest position's bound for each output channel.

    Parameters
    ----------
    w : array_like of int, [O, ...]
    b : array_like of int, [O]
    bias_exp : int

    Returns
    -------
    numpy.ndarray of int64, [O]
    """
    w = np.abs(as_int16_values(w, "weights"))
    if w.ndim == 6:
        per_out = w.reshape(w.shape[:3] + (-1,)).sum(axis=3).reshape(w.shape[0], -1).max(axis=1)
    else:
        per_out = w.reshape(w.shape[0], -1).sum(axis=1)
    return 32768 * per_out + (np.abs(as_int16_values(b, "bias")) << int(bias_exp))
