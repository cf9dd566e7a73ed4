"""Quantizer and integer execution of networks (the 16-bit golden model).

:func:`quantize` turns a float :class:`golden.network.Network` into a
:class:`QNetwork` of frozen :class:`QLayer` objects, choosing fraction bits
as ``docs/numbers.md`` describes; :meth:`QNetwork.run` executes it
bit-exactly with :mod:`golden.layers`.  :func:`run_float` is the float
reference and :func:`error_bound` a guaranteed bound on their difference
(derivation in ``docs/numbers.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from diannao.golden import layers as L
from diannao.golden._tensor import channel_window_sum
from diannao.golden.formats import (ACC_WIDTH_DEFAULT, EXACT_ACTIVATIONS, INT16_MAX,
                                    MAX_BIAS_EXP, MAX_FRAC, PWLTable, avg_reciprocal, build_table,
                                    choose_frac, from_fixed, lrn_scale, lrn_table, lrn_table_error,
                                    shift_round, table_error, to_fixed)
from diannao.golden.network import Conv, FC, LRN, MaxPool

__all__ = ["QLayer", "QNetwork", "quantize", "run_float", "error_bound", "split_batch",
           "LIPSCHITZ"]

#: Lipschitz constant of each exact activation (used by :func:`error_bound`).
LIPSCHITZ = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0, "identity": 1.0, "hardtanh": 1.0}


def _frozen_array(a):
    a = np.array(a, dtype=np.int64)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class QLayer:
    """One quantized layer, everything the hardware needs to run it.

    Attributes
    ----------
    index : int
        Position in the network.
    kind : str
        "conv", "local", "fc", "maxpool", "avgpool" or "lrn".
    in_shape, out_shape : tuple of int
    kernel, stride, pad : int
        Window geometry (``kernel`` = pooling size or an LRN's window of channels; 0 for
        "fc").
    activation : str or None
        Activation name, None for pooling and LRN.
    w_q, b_q : numpy.ndarray of int64 or None
        int16-valued weights ([O, C, K, K], [O, OH, OW, C, K, K] or [O, N]) and biases [O];
        None for pooling.
    in_frac, w_frac, b_frac, out_frac : int
        Fraction bits of input, weights, bias and output (``w_frac`` and
        ``b_frac`` are 0 for pooling).
    shift : int
        ``in_frac + w_frac - out_frac`` (0 for pooling); an LRN's: from the sums of squares
        (Q(``2 * in_frac``)) to its table's input (:func:`quantize`).
    bias_exp : int
        ``in_frac + w_frac - b_frac``; the bias enters the accumulator as ``b_q << bias_exp``.
    table : PWLTable or None
        Activation table for Q(``out_frac``) input and output; None for pooling; an LRN's
        scale table (:func:`golden.formats.lrn_table`).
    """

    index: int
    kind: str
    in_shape: tuple
    out_shape: tuple
    kernel: int
    stride: int
    pad: int
    activation: str | None
    w_q: np.ndarray | None
    b_q: np.ndarray | None
    in_frac: int
    w_frac: int
    b_frac: int
    out_frac: int
    shift: int
    bias_exp: int
    table: PWLTable | None

    @property
    def avg_reciprocal(self):
        """``(r, R)`` of an average-pooling layer (see :func:`golden.formats.avg_reciprocal`)."""
        return avg_reciprocal(self.kernel * self.kernel)

    def pre_activation(self, x):
        """Integer output before the activation table (the shifter's output)."""
        if self.kind == "conv":
            return L.conv2d_int(x, self.w_q, self.b_q, self.stride, self.pad,
                                self.bias_exp, self.shift)
        if self.kind == "local":
            return L.local_int(x, self.w_q, self.b_q, self.stride, self.pad,
                               self.bias_exp, self.shift)
        if self.kind == "fc":
            return L.fc_int(x, self.w_q, self.b_q, self.bias_exp, self.shift)
        if self.kind == "maxpool":
            return L.maxpool_int(x, self.kernel, self.stride)
        if self.kind == "lrn":
            return shift_round(L.lrn_square_sum(x, self.kernel), self.shift)
        return L.avgpool_int(x, self.kernel, self.stride)

    def run(self, x):
        """Integer forward pass of one sample."""
        if self.kind == "lrn":
            return L.lrn_int(x, self.kernel, self.shift, self.table)
        y = self.pre_activation(x)
        return y if self.table is None else L.activation_int(y, self.table)


def split_batch(x, input_shape, what):
    """Give ``x`` a leading batch axis.

    Parameters
    ----------
    x : array_like
        One sample of shape ``input_shape`` or a batch ``[batch, *input_shape]``.
    input_shape : tuple of int
    what : str
        Name of ``x`` in the error message (e.g. ``"input x.npy"``).

    Returns
    -------
    batch : numpy.ndarray
        ``x`` with a leading batch axis.
    single : bool
        Whether ``x`` was one sample (had no batch axis).

    Raises
    ------
    ValueError
        If the shape is neither; the message quotes the shape and the shapes expected.
    """
    x = np.asarray(x)
    if x.shape == tuple(input_shape):
        return x[None], True
    if x.shape[1:] == tuple(input_shape):
        return x, False
    raise ValueError(
        f"{what} has shape {list(x.shape)}; expected {list(input_shape)} "
        f"or [batch, {', '.join(map(str, input_shape))}]")


def _join_batch(outputs, single):
    y = np.stack(outputs)
    return y[0] if single else y


@dataclass(frozen=True, eq=False)
class QNetwork:
    """A quantized network.

    Attributes
    ----------
    input_shape : tuple of int
    layers : tuple of QLayer
    acc_width : int
        Accumulator width the layers were checked against.
    """

    input_shape: tuple
    layers: tuple
    acc_width: int = ACC_WIDTH_DEFAULT

    @property
    def input_frac(self):
        """Fraction bits of the network input."""
        return self.layers[0].in_frac

    @property
    def output_frac(self):
        """Fraction bits of the network output."""
        return self.layers[-1].out_frac

    @property
    def output_shape(self):
        return self.layers[-1].out_shape

    def quantize_input(self, x):
        """Float input(s) to int16 values at :attr:`input_frac`."""
        return to_fixed(x, self.input_frac)

    def dequantize_output(self, y):
        """int16 output(s) to floats at :attr:`output_frac`."""
        return from_fixed(y, self.output_frac)

    def run(self, x_q, intermediates=False):
        """Run the integer network.

        Parameters
        ----------
        x_q : array_like of int
            int16-valued input of shape ``input_shape`` or ``[batch, *input_shape]``.
        intermediates : bool
            Also return every layer's output.

        Returns
        -------
        y : numpy.ndarray of int16
            Network output (with the batch axis if the input had one).
        per_layer : list of numpy.ndarray of int16
            Only if ``intermediates``: the output of each layer (after its activation).
        """
        batch, single = split_batch(L.as_int16_values(x_q, "network input"),
                                    self.input_shape, "network input")
        per_layer = [[] for _ in self.layers]
        for x in batch:
            for i, layer in enumerate(self.layers):
                x = layer.run(x)
                per_layer[i].append(x)
        outs = [_join_batch(p, single).astype(np.int16) for p in per_layer]
        return (outs[-1], outs) if intermediates else outs[-1]


def run_float(network, x, intermediates=False):
    """Float64 reference forward pass with exact activations.

    Parameters
    ----------
    network : Network
    x : array_like of float
        Shape ``input_shape`` or ``[batch, *input_shape]``.
    intermediates : bool
        Also return every layer's output.

    Returns
    -------
    numpy.ndarray or (numpy.ndarray, list of numpy.ndarray)
    """
    network.validate()
    batch, single = split_batch(np.asarray(x, dtype=np.float64), network.input_shape, "input")
    per_layer = [[] for _ in network.layers]
    for sample in batch:
        for i, layer in enumerate(network.layers):
            sample = layer.forward(sample)
            per_layer[i].append(sample)
    outs = [_join_batch(p, single) for p in per_layer]
    return (outs[-1], outs) if intermediates else outs[-1]


def _fail(index, kind, field, message):
    return ValueError(f"layer {index} ({kind}), field '{field}': {message}")


def _calib_pre_activations(network, calib):
    """Largest |pre-activation| of every layer over the calibration inputs."""
    batch, _ = split_batch(np.asarray(calib, dtype=np.float64), network.input_shape, "calib")
    peaks = [0.0] * len(network.layers)
    for x in batch:
        for i, layer in enumerate(network.layers):
            y = layer.forward(x)
            pre = (layer.pre_activation(x) if isinstance(layer, (Conv, FC)) else
                   layer.square_sum(x) if isinstance(layer, LRN) else y)
            peaks[i] = max(peaks[i], float(np.max(np.abs(pre))))
            x = y
    return peaks


def lrn_worst_shift(size, channels):
    """The smallest shift that keeps every LRN window sum of squares of int16 values
    (at most ``min(size, channels)`` terms of ``32768**2``) inside int16 after the shifter."""
    worst = min(size, channels) << 30
    shift = 0
    while int(shift_round(worst, shift)) >= INT16_MAX:
        shift += 1
    return shift


def _quantize_lrn(i, layer, in_shape, in_frac, peak):
    """An LRN layer: the sums of squares are in Q(2 * in_frac); the shifter takes them to
    the table's input Q(q), q = 2 * in_frac - shift, with the largest q that twice the
    calibrated peak (without calibration: any input) fits; the output keeps in_frac."""
    worst = lrn_worst_shift(layer.size, in_shape[0])
    shift = worst
    if peak is not None:
        # One bit of headroom over the calibrated peak: other inputs may go a little beyond.
        shift = min(worst, max(0, 2 * in_frac - choose_frac([2 * peak], -64, 2 * in_frac)))
    table = lrn_table(layer.size, layer.alpha, layer.beta, layer.k, 2 * in_frac - shift)
    return QLayer(index=i, kind="lrn", in_shape=in_shape, out_shape=in_shape,
                  kernel=layer.size, stride=1, pad=0, activation=None, w_q=None, b_q=None,
                  in_frac=in_frac, w_frac=0, b_frac=0, out_frac=in_frac, shift=shift,
                  bias_exp=0, table=table)


def _quantize_weighted(i, layer, in_shape, out_shape, in_frac, out_frac, acc_width):
    kind = layer.kind
    try:
        w_frac = choose_frac(layer.weights)
    except ValueError as exc:
        raise _fail(i, kind, "weights", str(exc)) from None
    try:
        b_frac = min(choose_frac(layer.bias), in_frac + w_frac)
    except ValueError as exc:
        raise _fail(i, kind, "bias", str(exc)) from None
    bias_exp = in_frac + w_frac - b_frac
    if bias_exp > MAX_BIAS_EXP:
        raise _fail(i, kind, "bias", (
            f"bias needs b_frac={b_frac} but in_frac + w_frac = {in_frac + w_frac}, "
            f"so bias_exp={bias_exp} > {MAX_BIAS_EXP}; the bias is too large next to the weights"))
    shift = in_frac + w_frac - out_frac
    if shift < 0:
        raise _fail(i, kind, "out_frac", (
            f"out_frac={out_frac} exceeds in_frac + w_frac = {in_frac + w_frac} "
            f"(shift={shift} < 0)"))
    try:
        table = layer.table or build_table(layer.activation, out_frac)
    except ValueError as exc:
        raise _fail(i, kind, "activation", str(exc)) from None
    w_q, b_q = to_fixed(layer.weights, w_frac), to_fixed(layer.bias, b_frac)
    bound = int(L.accumulator_bound(w_q, b_q, bias_exp).max())
    if bound >= 2 ** (acc_width - 1):
        raise _fail(i, kind, "weights", (
            f"worst-case accumulator {bound} (about 2**{math.log2(bound):.1f}) "
            f"overflows the signed {acc_width}-bit accumulator"))
    is_conv = isinstance(layer, Conv)
    return QLayer(
        index=i, kind=kind, in_shape=in_shape, out_shape=out_shape,
        kernel=layer.kernel if is_conv else 0, stride=layer.stride if is_conv else 1,
        pad=layer.pad if is_conv else 0, activation=layer.activation,
        w_q=_frozen_array(w_q), b_q=_frozen_array(b_q), in_frac=in_frac, w_frac=w_frac,
        b_frac=b_frac, out_frac=out_frac, shift=shift, bias_exp=bias_exp, table=table)


def quantize(network, act_frac=None, calib=None, acc_width=ACC_WIDTH_DEFAULT):
    """Quantize a float network to 16-bit fixed point.

    Parameters
    ----------
    network : Network
    act_frac : int, optional
        Fraction bits of the input and (by default) of every conv/fc output;
        defaults to ``network.act_frac`` (8 unless the file says otherwise).
    calib : array_like of float, optional
        Calibration inputs (``input_shape`` or a batch).  When given, a
        conv/fc layer without an ``out_frac`` override gets
        ``out_frac = min(act_frac, choose_frac(pre-activation outputs))``.
    acc_width : int
        Signed accumulator width every layer's worst case must fit.

    Returns
    -------
    QNetwork

    Raises
    ------
    ValueError
        Naming the layer index, type and field when a layer cannot be
        quantized (weights or bias out of range, negative shift, bias_exp
        above 14, accumulator overflow, activation table unavailable).
    """
    shapes = network.shapes()
    act_frac = network.act_frac if act_frac is None else act_frac
    if isinstance(act_frac, bool) or not isinstance(act_frac, (int, np.integer)) \
            or not 0 <= act_frac <= MAX_FRAC:
        raise ValueError(f"act_frac must be an integer in [0, {MAX_FRAC}], got {act_frac!r}")
    if isinstance(acc_width, bool) or not isinstance(acc_width, (int, np.integer)) \
            or not 2 <= acc_width <= 63:
        raise ValueError(f"acc_width must be an integer in [2, 63], got {acc_width!r}")
    peaks = None if calib is None else _calib_pre_activations(network, calib)
    qlayers = []
    in_frac = int(act_frac)
    for i, layer in enumerate(network.layers):
        in_shape, out_shape = shapes[i], shapes[i + 1]
        if isinstance(layer, (Conv, FC)):
            if layer.out_frac is not None:
                out_frac = layer.out_frac
            elif peaks is not None:
                out_frac = min(int(act_frac), choose_frac([peaks[i]]))
            else:
                out_frac = int(act_frac)
            q = _quantize_weighted(i, layer, in_shape, out_shape, in_frac, out_frac, acc_width)
        elif isinstance(layer, LRN):
            q = _quantize_lrn(i, layer, in_shape, in_frac, None if peaks is None else peaks[i])
        else:
            q = QLayer(index=i, kind=layer.kind, in_shape=in_shape, out_shape=out_shape,
                       kernel=layer.size, stride=layer.stride, pad=0, activation=None,
                       w_q=None, b_q=None, in_frac=in_frac, w_frac=0, b_frac=0,
                       out_frac=in_frac, shift=0, bias_exp=0, table=None)
        qlayers.append(q)
        in_frac = q.out_frac
    return QNetwork(tuple(network.input_shape), tuple(qlayers), int(acc_width))


def _kernels(layer):
    """A weighted layer's weights as ``[outputs, terms]``: one row per output neuron's
    reduction (a locally connected layer: per output channel and position)."""
    w = np.asarray(layer.weights)
    return w.reshape(-1, int(np.prod(w.shape[3:]))) if layer.kind == "local" else \
        w.reshape(w.shape[0], -1)


def _window_abs_sum(layer, x):
    """Largest sum of |x| over the inputs of one output neuron."""
    ax = np.abs(x)
    if isinstance(layer, FC):
        return float(ax.sum())
    ones = np.ones((1,) + layer.weights.shape[-3:])
    return float(Conv(ones, np.zeros(1), layer.stride, layer.pad).pre_activation(ax).max())


def _lrn_error(layer, q, x, err, tables):
    """The error after an LRN layer whose input ``x`` (float) is off by at most ``err``
    (``docs/numbers.md``, "Local response normalisation")."""
    size, alpha, beta, k = layer.size, layer.alpha, layer.beta, layer.k
    n = min(size, x.shape[0])
    # y = x * G(s) is Lipschitz in the max norm with G(0) * (1 + 2 beta sqrt(n)).
    lipschitz = k ** -beta * (1 + 2 * beta * math.sqrt(n))
    qf = 2 * q.in_frac - q.shift                    # the table input's fraction bits
    ax = np.abs(x) + err
    # The shifter's rounding of s by 2**-(qf+1), times G's steepest slope (at s = 0); and
    # where it may saturate (at s_sat), G(s_sat) - G(s) for the largest s the input allows.
    d_g = beta * alpha / size * k ** (-beta - 1) * 2.0 ** -(qf + 1)
    s_sat = (INT16_MAX + 0.5) * 2.0 ** -qf
    s_top = float(channel_window_sum(ax * ax, size).max())
    if s_top >= s_sat:
        d_g += float(lrn_scale(s_sat, size, alpha, beta, k) - lrn_scale(s_top, size, alpha,
                                                                       beta, k))
    key = ("lrn", size, alpha, beta, k, qf)
    if key not in tables:
        tables[key] = lrn_table_error(q.table, size, alpha, beta, k, qf)
    return (lipschitz * err + float(ax.max()) * (tables[key] + d_g)
            + 2.0 ** -(q.out_frac + 1))


def error_bound(network, qnet, x):
    """Guaranteed bound on ``|dequantized golden output - float output|`` per sample.

    The bound propagates worst-case errors layer by layer (``docs/numbers.md``):
    input rounding, weight and bias rounding, shifter rounding, measured
    table error and the activation's Lipschitz constant.  It assumes no
    intermediate value saturates (which the caller should check).

    Parameters
    ----------
    network : Network
    qnet : QNetwork
        ``quantize(network, ...)``.
    x : array_like of float
        Input(s) of shape ``input_shape`` or ``[batch, *input_shape]``.

    Returns
    -------
    float or numpy.ndarray of float
        Max-norm bound for each sample.
    """
    batch, single = split_batch(np.asarray(x, dtype=np.float64), network.input_shape, "input")
    bounds = []
    tables = {}
    for sample in batch:
        err = 2.0 ** -(qnet.input_frac + 1)  # input rounding
        for layer, q in zip(network.layers, qnet.layers):
            if isinstance(layer, (Conv, FC)):
                n = _kernels(layer).shape[1]
                row = np.abs(_kernels(layer)).sum(axis=1).max()
                w_half = 2.0 ** -(q.w_frac + 1)
                pre = (row * err + w_half * (_window_abs_sum(layer, sample) + n * err)
                       + 2.0 ** -(q.b_frac + 1) + 2.0 ** -(q.out_frac + 1))
                key = (layer.activation, q.out_frac, q.table)
                if key not in tables:
                    tables[key] = table_error(q.table, EXACT_ACTIVATIONS[layer.activation],
                                              q.out_frac)
                err = LIPSCHITZ[layer.activation] * pre + tables[key]
            elif isinstance(layer, MaxPool):
                pass  # max is 1-Lipschitz in the max norm and exact
            elif isinstance(layer, LRN):
                err = _lrn_error(layer, q, sample, err, tables)
            else:
                r, R = q.avg_reciprocal
                n = q.kernel * q.kernel
                # sum * r / 2**R = mean + sum * (r - 2**R/n) / 2**R, then rounding
                recip_err = n * 32768 * abs(r - 2.0 ** R / n) / 2.0 ** R / 2.0 ** q.in_frac
                err = err + recip_err + 2.0 ** -(q.out_frac + 1)
            sample = layer.forward(sample)
        bounds.append(err)
    b = np.array(bounds)
    return float(b[0]) if single else b
