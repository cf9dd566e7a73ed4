"""The one path from a user's input array to the int16 batch an engine runs.

:func:`check_input` validates an array against a quantized network (shape, dtype,
finiteness, range) and quantizes it. :func:`diannao.sim.runtime.run.run_network`, the one
path every engine runs through, calls :func:`ensure_checked` before it compiles, so no engine
can see an input the others would reject. :func:`load_array` reads an ``.npy`` file for the command line.

Float inputs are quantized at the network's input format with
:meth:`golden.quant.QNetwork.quantize_input` (round half up, saturate); values outside the
format are counted (:attr:`CheckedInput.saturated`) or, with ``strict``, rejected. Integer
inputs are taken as already-quantized int16 values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diannao.golden.formats import INT16_MAX, INT16_MIN, from_fixed, q_name
from diannao.golden.layers import as_int16_values
from diannao.golden.quant import split_batch

__all__ = ["CheckedInput", "check_input", "ensure_checked", "load_array", "format_range"]


@dataclass(frozen=True, eq=False)
class CheckedInput:
    """A validated network input (made by :func:`check_input`).

    Attributes
    ----------
    batch : numpy.ndarray of int16
        The quantized samples, ``[batch, *input_shape]`` (a single sample gets a batch of 1).
    single : bool
        Whether the input was one sample without a batch axis.
    real : numpy.ndarray of float64
        The real values, shaped as given: the floats themselves, or ``int / 2**input_frac``
        for integer inputs.
    saturated : int
        How many float values lay outside the input format and were saturated.
    source : str
        The file or name the input came from (used in messages).
    input_shape : tuple of int
        The network input shape the input was checked against.
    input_frac : int
        The fraction bits it was quantized at.
    """

    batch: np.ndarray
    single: bool
    real: np.ndarray
    saturated: int
    source: str
    input_shape: tuple
    input_frac: int

    def unbatch(self, a):
        """``a`` (one entry per sample) in the input's convention.

        Parameters
        ----------
        a : numpy.ndarray
            With a leading batch axis.

        Returns
        -------
        numpy.ndarray
            ``a[0]`` if the input was a single sample, else ``a``.
        """
        return a[0] if self.single else a

    @property
    def saturation_note(self):
        """``"input x.npy: 3 values outside Q7.8 [-128, 127.996] saturated"``, or ``""``."""
        if not self.saturated:
            return ""
        values = "value" if self.saturated == 1 else "values"
        return (f"{_label(self.source)}: {self.saturated} {values} outside "
                f"{format_range(self.input_frac)} saturated")


def format_range(frac):
    """Name and real range of the int16 format with ``frac`` fraction bits.

    Examples
    --------
    >>> format_range(8)
    'Q7.8 [-128, 127.996]'
    """
    lo, hi = from_fixed(INT16_MIN, frac), from_fixed(INT16_MAX, frac)
    return f"{q_name(frac)} [{lo:g}, {hi:g}]"


def _label(source):
    """``"input x.npy"`` for a file, ``"input"`` for the default name."""
    return "input" if source == "input" else f"input {source}"


def _first(a, mask):
    """``(value, index)`` of the first element of ``a`` where ``mask`` holds (C order)."""
    index = [int(i) for i in np.argwhere(mask)[0]]
    return a[tuple(index)], index


def _saturating(real, frac):
    """Mask of the reals whose ``floor(x * 2**frac + 0.5)`` lies outside int16.

    The same rounding as :func:`golden.formats.to_fixed`; scaling by a power of two is
    exact, so comparing with the scaled bounds is exact too.
    """
    scale = float(2 ** frac)
    return (real >= (INT16_MAX + 0.5) / scale) | (real < (INT16_MIN - 0.5) / scale)


def check_input(qnet, x, source="input", *, strict=False):
    """Validate and quantize an input for ``qnet``.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x : array_like of float or int
        One sample of shape ``qnet.input_shape`` or a batch ``[batch, *input_shape]``.
        Floats are quantized at ``qnet.input_frac``; integers are taken as int16 values.
    source : str
        The file ``x`` came from, named in messages as ``input <source>``; the default
        ``"input"`` is named as just ``input``.
    strict : bool
        Reject float values outside the input format instead of saturating them.

    Returns
    -------
    CheckedInput

    Raises
    ------
    ValueError
        Naming the input and the bad value: a shape other than ``input_shape`` or
        ``[batch, *input_shape]``, an empty batch, a dtype other than float or integer,
        a NaN or infinity (with its index), an integer outside int16 (with its index), or
        with ``strict`` a float that saturates (with its index).
    """
    what = _label(source)
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{what} is not an array: {exc}") from None
    if a.dtype.kind not in "fiu":
        raise ValueError(f"{what} has dtype {a.dtype}; expected float or integer")
    batch, single = split_batch(a, qnet.input_shape, what)
    if len(batch) == 0:
        raise ValueError(f"{what} has shape {list(a.shape)}, an empty batch")
    frac = qnet.input_frac
    saturated = 0
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            value, index = _first(a, bad)
            raise ValueError(f"{what}: value {value} at index {index}; inputs must be finite")
        real = a.astype(np.float64)
        sat = _saturating(real, frac)
        saturated = int(np.count_nonzero(sat))
        if strict and saturated:
            value, index = _first(a, sat)
            raise ValueError(
                f"{what}: value {value} at index {index} is outside {format_range(frac)} "
                f"and would saturate ({saturated} {'value' if saturated == 1 else 'values'} "
                f"in all); strict inputs must fit the input format")
        x_q = qnet.quantize_input(real)
    else:
        # Compared in the input's own dtype: uint64 values beyond int64 must not wrap.
        bad = (a < INT16_MIN) | (a > INT16_MAX)
        if bad.any():
            value, index = _first(a, bad)
            raise ValueError(
                f"{what} holds {value} at index {index}, outside int16 [{INT16_MIN}, "
                f"{INT16_MAX}]; integer inputs are taken as already-quantized int16 values")
        x_q = as_int16_values(a, what)
        real = from_fixed(x_q, frac)
    batch, _ = split_batch(np.asarray(x_q, dtype=np.int16), qnet.input_shape, what)
    return CheckedInput(batch=batch, single=single, real=np.asarray(real), saturated=saturated,
                        source=str(source), input_shape=tuple(qnet.input_shape),
                        input_frac=frac)


def ensure_checked(qnet, x, source="input", *, strict=False):
    """``x`` as a :class:`CheckedInput` for ``qnet``: checked now unless it already is.

    Every engine calls this on its input, so none runs an unchecked array; for an input
    :func:`diannao.sim.runtime.run.run_network` already checked it costs nothing.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x : CheckedInput or array_like
    source : str
        As for :func:`check_input` (unused for a :class:`CheckedInput`).
    strict : bool
        As for :func:`check_input`; a :class:`CheckedInput` with saturated values is
        checked again to name the first of them.

    Returns
    -------
    CheckedInput

    Raises
    ------
    ValueError
        As :func:`check_input`, or for a :class:`CheckedInput` made for a network with a
        different input shape or format.
    """
    if not isinstance(x, CheckedInput):
        return check_input(qnet, x, source, strict=strict)
    if x.input_shape != tuple(qnet.input_shape) or x.input_frac != qnet.input_frac:
        raise ValueError(
            f"{_label(x.source)} was checked for input shape {list(x.input_shape)} in "
            f"{q_name(x.input_frac)}; this network takes {list(qnet.input_shape)} in "
            f"{q_name(qnet.input_frac)}")
    if strict and x.saturated:
        check_input(qnet, x.real, x.source, strict=True)
    return x


def load_array(path):
    """Read one array from an ``.npy`` file (no pickles).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        If the file is not an ``.npy`` array (an ``.npz`` archive, pickled objects,
        another format); the message names the file.
    OSError
        If the file cannot be read.
    """
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        raise ValueError(f"input {path} is not a readable .npy array: {exc}") from None
    if not isinstance(data, np.ndarray):
        data.close()
        raise ValueError(f"input {path} is an .npz archive; expected one array in a .npy file")
    return data
