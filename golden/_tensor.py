"""Shape arithmetic and windowed sums shared by the integer and float layers.

Both :mod:`golden.layers` (int64, exact) and :mod:`golden.float_ref`
(float64) compute convolutions and poolings through these helpers, so the
two differ only in number handling.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["conv_out_size", "windows", "conv_sum", "local_sum", "fc_sum", "lrn_window",
           "channel_window_sum", "EXACT_FLOAT_BOUND"]

#: Integers of magnitude up to ``2**53`` are exact in float64.
EXACT_FLOAT_BOUND = 1 << 53


def _exact_in_float(x, w):
    """Whether integer sums of products of ``x`` and ``w`` are exact in float64 in any order.

    Every product ``|x*w| <= max|x| * max|w|`` and every partial sum of one output (however
    BLAS orders and blocks it) is bounded by ``max|x| * sum|w|`` over that output's weights.
    When that bound stays below ``2**53`` every product and every partial sum is an integer
    float64 holds exactly, so each addition is exact and the float result, converted back,
    equals the int64 sum bit for bit. (For 16-bit values the bound is ``32768 * sum|w|``:
    about ``2**23`` terms of the largest magnitude before it fails.)
    """
    if x.dtype.kind not in "iu" or w.dtype.kind not in "iu" or not x.size or not w.size:
        return False
    per_out = np.abs(w.reshape(w.shape[0], -1)).sum(axis=1, dtype=np.float64).max()
    return float(np.abs(x).max()) * per_out < EXACT_FLOAT_BOUND


def conv_out_size(size, kernel, stride, pad):
    """Output length of a convolution/pooling along one axis.

    ``(size + 2*pad - kernel) // stride + 1``.

    Raises
    ------
    ValueError
        If the kernel does not fit the padded input or the arguments are invalid.
    """
    for name, value, lo in (("kernel", kernel, 1), ("stride", stride, 1), ("pad", pad, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    if size + 2 * pad < kernel:
        raise ValueError(
            f"kernel {kernel} does not fit input size {size} with pad {pad}")
    return (size + 2 * pad - kernel) // stride + 1


def windows(x, kernel, stride, pad):
    """All ``kernel`` x ``kernel`` windows of a [C, H, W] tensor.

    Parameters
    ----------
    x : numpy.ndarray
        Input of shape [C, H, W].
    kernel, stride, pad : int
        Square window size, step and zero padding on all four sides.

    Returns
    -------
    numpy.ndarray
        Read-only view of shape [C, OH, OW, kernel, kernel].
    """
    if x.ndim != 3:
        raise ValueError(f"expected a [C, H, W] tensor, got shape {x.shape}")
    oh = conv_out_size(x.shape[1], kernel, stride, pad)
    ow = conv_out_size(x.shape[2], kernel, stride, pad)
    if pad:
        x = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    view = sliding_window_view(x, (kernel, kernel), axis=(1, 2))
    return view[:, ::stride, ::stride][:, :oh, :ow]


def conv_sum(x, w, stride, pad):
    """Convolution sums ``sum_{c,ky,kx} w[o,c,ky,kx] * x_padded[c, oy*s+ky, ox*s+kx]``.

    Computed in the common dtype of ``x`` and ``w`` (int64 inputs give exact sums).

    Parameters
    ----------
    x : numpy.ndarray, shape [C, H, W]
    w : numpy.ndarray, shape [O, C, K, K]
    stride, pad : int

    Returns
    -------
    numpy.ndarray, shape [O, OH, OW]
    """
    if w.ndim != 4 or w.shape[2] != w.shape[3]:
        raise ValueError(f"conv weights must be [O, C, K, K], got shape {w.shape}")
    if w.shape[1] != x.shape[0]:
        raise ValueError(
            f"conv weights expect {w.shape[1]} input channels, input has {x.shape[0]}")
    if _exact_in_float(x, w):
        # BLAS in float64, exact here (_exact_in_float): far faster than int64 loops.
        win = windows(x.astype(np.float64), w.shape[2], stride, pad)
        out = np.tensordot(w.astype(np.float64), win, axes=([1, 2, 3], [0, 3, 4]))
        return out.astype(np.int64)
    win = windows(x, w.shape[2], stride, pad)
    return np.tensordot(w, win, axes=([1, 2, 3], [0, 3, 4]))


def local_sum(x, w, stride, pad):
    """Locally connected sums (a kernel per output position): ``sum_{c,ky,kx}
    w[o,oy,ox,c,ky,kx] * x_padded[c, oy*s+ky, ox*s+kx]``, in the common dtype of ``x`` and
    ``w`` (int64 inputs give exact sums).

    Parameters
    ----------
    x : numpy.ndarray, shape [C, H, W]
    w : numpy.ndarray, shape [O, OH, OW, C, K, K]
    stride, pad : int

    Returns
    -------
    numpy.ndarray, shape [O, OH, OW]
    """
    if w.ndim != 6 or w.shape[4] != w.shape[5]:
        raise ValueError(f"locally connected weights must be [O, OH, OW, C, K, K], got shape "
                         f"{w.shape}")
    if w.shape[3] != x.shape[0]:
        raise ValueError(f"locally connected weights expect {w.shape[3]} input channels, "
                         f"input has {x.shape[0]}")
    win = windows(x, w.shape[4], stride, pad)              # [C, OH, OW, K, K]
    if win.shape[1:3] != w.shape[1:3]:
        raise ValueError(f"locally connected weights are for {w.shape[1]}x{w.shape[2]} "
                         f"outputs, the input gives {win.shape[1]}x{win.shape[2]}")
    return np.einsum("opqckl,cpqkl->opq", w, win)


def fc_sum(x, w):
    """Fully-connected sums ``w @ x.reshape(-1)`` (C-major flattening)."""
    flat = x.reshape(-1)
    if w.ndim != 2 or w.shape[1] != flat.size:
        raise ValueError(
            f"fc weights must be [O, {flat.size}] for an input of {flat.size} values, "
            f"got shape {w.shape}")
    if _exact_in_float(flat, w):
        return (w.astype(np.float64) @ flat.astype(np.float64)).astype(np.int64)
    return w @ flat


def lrn_window(size):
    """``(before, after)``: the channels an LRN window of ``size`` takes below and above its
    own, ``c - before .. c + after`` (ONNX's ``floor((size-1)/2)`` and ``ceil((size-1)/2)``;
    for an odd size, Caffe's symmetric window)."""
    return (size - 1) // 2, size // 2


def channel_window_sum(v, size):
    """``out[c] = sum(v[c'] for c' in c - before .. c + after)`` over the first axis of
    ``v`` (``[C, H, W]``), clipped to ``[0, C)`` (:func:`lrn_window`). Exact for integer
    arrays (int64 sums)."""
    before, after = lrn_window(size)
    c = v.shape[0]
    zero = np.zeros((1,) + v.shape[1:], dtype=v.dtype)
    csum = np.concatenate([zero, np.cumsum(v, axis=0)])       # csum[i] = sum(v[:i])
    hi = np.minimum(np.arange(c) + after + 1, c)
    lo = np.maximum(np.arange(c) - before, 0)
    return csum[hi] - csum[lo]
