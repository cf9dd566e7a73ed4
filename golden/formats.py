"""Number formats shared by the golden model, the RTL and the tools.

This module is the single definition of the arithmetic contract of
``docs/numbers.md``: 16-bit signed fixed point with a per-tensor number
of fraction bits (Q format), the NFU-2 shifter (round half up, then
saturate), the average-pooling reciprocal and the NFU-3 piecewise-linear
(PWL) activation tables.

All integer helpers work on Python ints and on numpy integer arrays and
return ``numpy.int64`` values; int16 *values* are carried in int64 so that
products and sums never wrap silently.

Notes
-----
A value ``q`` with ``frac`` fraction bits stands for the real number
``q / 2**frac``.  :func:`q_name` prints the usual ``Qm.n`` name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = [
    "INT16_MIN", "INT16_MAX", "DEFAULT_ACT_FRAC", "ACC_WIDTH_DEFAULT",
    "MAX_FRAC", "SEGMENTS", "MAX_TABLE_F", "MAX_BIAS_EXP",
    "sat16", "shift_round", "to_fixed", "from_fixed", "choose_frac", "q_name",
    "avg_reciprocal",
    "EXACT_ACTIVATIONS", "PWLTable", "table_error", "make_table",
    "sigmoid_table", "tanh_table", "relu_table", "identity_table", "hardtanh_table",
    "BUILTIN_TABLES", "TABLE_ERROR_BOUNDS", "build_table",
    "LRN_SCALE_FRAC", "lrn_scale", "lrn_table", "lrn_table_error",
]

INT16_MIN = -32768
INT16_MAX = 32767
#: Fraction bits of activations unless a network says otherwise.
DEFAULT_ACT_FRAC = 8
#: NFU-2 accumulator width in bits (signed).
ACC_WIDTH_DEFAULT = 48
#: Largest number of fraction bits the quantizer ever assigns.
MAX_FRAC = 30
#: Number of segments of a PWL activation table.
SEGMENTS = 16
#: Largest fraction-bit count ``f`` of PWL slopes (``k`` and ``f`` are 4-bit fields).
MAX_TABLE_F = 15
#: Largest ``bias_exp`` (bias enters the accumulator as ``b << bias_exp``).
MAX_BIAS_EXP = 14

# Shifts beyond this could overflow int64 when adding the rounding constant.
_MAX_SHIFT = 62


# ---------------------------------------------------------------------------
# scalar formats
# ---------------------------------------------------------------------------

def sat16(x):
    """Clamp integers to the int16 range.

    Parameters
    ----------
    x : int or array_like of int
        Values to clamp (must fit in int64).

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        ``x`` clamped to ``[-32768, 32767]``.
    """
    return np.clip(np.asarray(x, dtype=np.int64), INT16_MIN, INT16_MAX)[()]


def shift_round(acc, s):
    """NFU-2 shifter: arithmetic right shift by ``s`` with round half up, then saturate.

    ``y = sat16((acc + 2**(s-1)) >> s)`` for ``s > 0`` and ``y = sat16(acc)``
    for ``s == 0``.

    Parameters
    ----------
    acc : int or array_like of int
        Accumulator values (fit in int64; the hardware uses ``acc_width`` bits).
    s : int
        Shift amount, ``0 <= s <= 62``.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        int16-valued results.

    Raises
    ------
    ValueError
        If ``s`` is negative, too large or not an integer.

    Examples
    --------
    >>> int(shift_round(3, 1)), int(shift_round(-3, 1)), int(shift_round(-6, 2))
    (2, -1, -1)
    """
    if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
        raise ValueError(f"shift must be an integer, got {s!r}")
    s = int(s)
    if s < 0:
        raise ValueError(f"shift must be >= 0, got {s}")
    if s > _MAX_SHIFT:
        raise ValueError(f"shift must be <= {_MAX_SHIFT}, got {s}")
    a = np.asarray(acc, dtype=np.int64)
    if s == 0:
        return sat16(a)
    return sat16((a + (1 << (s - 1))) >> s)


def _check_frac(frac, what="frac", hi=MAX_FRAC):
    if isinstance(frac, bool) or not isinstance(frac, (int, np.integer)):
        raise ValueError(f"{what} must be an integer, got {frac!r}")
    if not 0 <= frac <= hi:
        raise ValueError(f"{what} must be in [0, {hi}], got {frac}")
    return int(frac)


def _finite_float(x, what="value"):
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        bad = a[~np.isfinite(a)].flat[0]
        raise ValueError(f"{what} must be finite, got {bad}")
    return a


def to_fixed(x, frac):
    """Convert reals to int16 values with ``frac`` fraction bits.

    ``q = sat16(floor(x * 2**frac + 0.5))`` (round half up, then saturate).

    Parameters
    ----------
    x : float or array_like of float
        Values to convert; NaN and infinities are rejected.
    frac : int
        Fraction bits, ``0 <= frac <= MAX_FRAC``.

    Returns
    -------
    numpy.int64 or numpy.ndarray of int64
        int16-valued integers.

    Raises
    ------
    ValueError
        If ``x`` holds NaN or infinity, or ``frac`` is out of range.
    """
    frac = _check_frac(frac)
    a = _finite_float(x, "to_fixed input")
    # |x| >= 2**16 saturates at any frac >= 0; clipping first avoids float overflow
    scaled = np.floor(np.clip(a, -65536.0, 65536.0) * float(2 ** frac) + 0.5)
    return np.clip(scaled, INT16_MIN, INT16_MAX).astype(np.int64)[()]


def from_fixed(q, frac):
    """Convert int16 values with ``frac`` fraction bits to float64 reals.

    Parameters
    ----------
    q : int or array_like of int
    frac : int

    Returns
    -------
    numpy.float64 or numpy.ndarray of float64
        ``q / 2**frac``.
    """
    frac = _check_frac(frac)
    return (np.asarray(q, dtype=np.float64) / float(2 ** frac))[()]


def choose_frac(values, lo=0, hi=MAX_FRAC):
    """Largest number of fraction bits that represents ``values`` without saturation.

    Parameters
    ----------
    values : array_like of float
        Reals to represent.
    lo, hi : int
        Search range (inclusive).

    Returns
    -------
    int
        The largest ``frac`` in ``[lo, hi]`` with
        ``max |floor(v * 2**frac + 0.5)| <= 32767``; ``hi`` when all values are 0.

    Raises
    ------
    ValueError
        If even ``lo`` fraction bits overflow, or a value is not finite.
    """
    a = np.abs(_finite_float(values, "choose_frac input"))
    peak = float(a.max()) if a.size else 0.0
    for frac in range(hi, lo - 1, -1):
        if math.floor(peak * 2.0 ** frac + 0.5) <= INT16_MAX:
            return frac
    raise ValueError(
        f"values up to {peak!r} do not fit int16 even with {lo} fraction bits")


def q_name(frac):
    """Human-readable name of the int16 format with ``frac`` fraction bits.

    ``Q7.8`` for ``frac=8``; ``int16*2**-20`` when ``frac > 15``.
    """
    frac = int(frac)
    if 0 <= frac <= 15:
        return f"Q{15 - frac}.{frac}"
    return f"int16*2**-{frac}"


def avg_reciprocal(n):
    """Rounded reciprocal used by average pooling.

    Parameters
    ----------
    n : int
        Window size (number of summed values), ``n >= 1``.

    Returns
    -------
    r : int
        ``floor(2**R / n + 0.5)``, at most 32767.
    R : int
        The largest integer ``<= 30`` for which ``r <= 32767``.

    Notes
    -----
    The average is ``shift_round(window_sum * r, R)``.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"pooling window size must be a positive integer, got {n!r}")
    n = int(n)
    for R in range(30, -1, -1):
        r = (2 ** (R + 1) + n) // (2 * n)  # floor(2**R / n + 1/2), exactly
        if r <= INT16_MAX:
            return r, R
    raise AssertionError("unreachable: R = 0 always fits")


# ---------------------------------------------------------------------------
# PWL activation tables (NFU-3)
# ---------------------------------------------------------------------------

def _sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


#: Exact float64 activation functions, by name.
EXACT_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(np.asarray(x, dtype=np.float64), 0.0),
    "identity": lambda x: np.asarray(x, dtype=np.float64),
    # SENNA's HardTanh: clamp(x, -1, 1).
    "hardtanh": lambda x: np.clip(np.asarray(x, dtype=np.float64), -1.0, 1.0),
}

_ALL_INT16 = np.arange(INT16_MIN, INT16_MAX + 1, dtype=np.int64)


def _check_int_field(name, value, lo, hi):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"PWLTable.{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"PWLTable.{name} must be in [{lo}, {hi}], got {value}")
    return int(value)


@dataclass(frozen=True)
class PWLTable:
    """A 16-segment piecewise-linear activation table (NFU-3).

    Segment ``i = clip((x - x_lo) >> k, 0, 15)``; output
    ``y = sat16(((a[i] * x + 2**(f-1)) >> f) + b[i])`` (no rounding term when
    ``f == 0``).  Outside ``[x_lo, x_lo + 16 * 2**k)`` the end segments'
    lines continue.

    Parameters
    ----------
    x_lo : int
        Start of segment 0 (int16).
    k : int
        log2 of the segment width in input units, ``0 <= k <= 15``.
    f : int
        Fraction bits of the slopes ``a``, ``0 <= f <= 15``.
    a, b : tuple of int
        16 int16 slopes and 16 int16 offsets.
    name : str
        Informative name.
    """

    x_lo: int
    k: int
    f: int
    a: tuple
    b: tuple
    name: str = ""

    def __post_init__(self):
        object.__setattr__(self, "x_lo", _check_int_field("x_lo", self.x_lo, INT16_MIN, INT16_MAX))
        object.__setattr__(self, "k", _check_int_field("k", self.k, 0, 15))
        object.__setattr__(self, "f", _check_int_field("f", self.f, 0, MAX_TABLE_F))
        for field in ("a", "b"):
            values = tuple(getattr(self, field))
            if len(values) != SEGMENTS:
                raise ValueError(
                    f"PWLTable.{field} must have {SEGMENTS} entries, got {len(values)}")
            values = tuple(_check_int_field(f"{field}[{i}]", v, INT16_MIN, INT16_MAX)
                           for i, v in enumerate(values))
            object.__setattr__(self, field, values)

    def segment(self, x):
        """Segment index of each input ``x`` (int64 array)."""
        x = np.asarray(x, dtype=np.int64)
        return np.clip((x - self.x_lo) >> self.k, 0, SEGMENTS - 1)

    def eval(self, x):
        """Apply the table to int16 values.

        Parameters
        ----------
        x : array_like of int
            int16-valued inputs.

        Returns
        -------
        numpy.ndarray of int64
            int16-valued outputs, same shape as ``x``.
        """
        x = np.asarray(x, dtype=np.int64)
        seg = self.segment(x)
        a = np.asarray(self.a, dtype=np.int64)[seg]
        b = np.asarray(self.b, dtype=np.int64)[seg]
        rnd = (1 << (self.f - 1)) if self.f > 0 else 0
        return sat16(((a * x + rnd) >> self.f) + b)


def table_error(table, fn, frac):
    """Worst error of a table against ``fn`` over all 65,536 int16 inputs.

    Parameters
    ----------
    table : PWLTable
    fn : callable
        Exact float function of the real input.
    frac : int
        Fraction bits of both the table's input and output.

    Returns
    -------
    float
        ``max |table(x)/2**frac - fn(x/2**frac)|`` in output real units.
    """
    scale = float(2 ** frac)
    got = table.eval(_ALL_INT16) / scale
    want = np.asarray(fn(_ALL_INT16 / scale), dtype=np.float64)
    return float(np.max(np.abs(got - want)))


def _fit_table(fn, frac, x_lo, k, flat_ends, name, out_frac=None, inputs=_ALL_INT16):
    """Fit a table in integer units over ``inputs`` (every int16 by default): least-squares
    slopes, minimax offsets. The input is in Q(``frac``), the output in Q(``out_frac``)
    (default: ``frac``)."""
    scale = 2.0 ** frac
    x = inputs
    out_scale = scale if out_frac is None else 2.0 ** out_frac
    target = np.asarray(fn(x / scale), dtype=np.float64) * out_scale
    seg = np.clip((x - x_lo) >> k, 0, SEGMENTS - 1)
    members = [np.flatnonzero(seg == i) for i in range(SEGMENTS)]
    slopes = np.zeros(SEGMENTS)
    for i, idx in enumerate(members):
        flat = flat_ends and i in (0, SEGMENTS - 1)
        if idx.size >= 2 and not flat:
            xs, ts = x[idx].astype(np.float64), target[idx]
            xc = xs - xs.mean()
            slopes[i] = float(np.dot(xc, ts - ts.mean()) / np.dot(xc, xc))
    f = choose_frac(slopes, 0, MAX_TABLE_F)
    a = [int(v) for v in to_fixed(slopes, f)]
    rnd = (1 << (f - 1)) if f > 0 else 0
    b = []
    for i, idx in enumerate(members):
        if idx.size == 0:
            b.append(0)
            continue
        resid = target[idx] - ((a[i] * x[idx] + rnd) >> f)
        mid = math.floor((resid.max() + resid.min()) / 2 + 0.5)
        b.append(int(min(max(mid, INT16_MIN), INT16_MAX)))
    return PWLTable(x_lo=x_lo, k=k, f=f, a=tuple(a), b=tuple(b), name=name)


def make_table(fn, frac, x_lo_real, seg_width_log2_real, flat_ends=True, name=""):
    """Build a PWL table for a user function.

    Input and output are both in Q(``frac``): the table maps ``x`` to
    ``round(fn(x / 2**frac) * 2**frac)`` approximately.  Interior segments
    get least-squares slopes (over every int16 input in the segment, then
    rounded to ``f`` fraction bits, ``f`` as large as the slopes allow) and
    minimax offsets; with ``flat_ends`` the two end segments are constant,
    which suits saturating functions since the end lines continue outside
    the covered range.

    Parameters
    ----------
    fn : callable
        Exact float function (vectorized over numpy arrays).
    frac : int
        Fraction bits of input and output, ``0 <= frac <= MAX_FRAC``.
    x_lo_real : float
        Start of segment 0 in real units.
    seg_width_log2_real : int
        log2 of the segment width in real units (may be negative).  The
        width in input units, ``2**(seg_width_log2_real + frac)``, must be
        ``2**k`` with ``0 <= k <= 15``.
    flat_ends : bool
        Make segments 0 and 15 constant.
    name : str

    Returns
    -------
    PWLTable

    Raises
    ------
    ValueError
        If the segment width is not a power of two in ``[1, 2**15]`` input
        units or ``x_lo`` does not fit int16 in Q(``frac``).
    """
    frac = _check_frac(frac)
    if isinstance(seg_width_log2_real, bool) or not isinstance(seg_width_log2_real, (int, np.integer)):
        raise ValueError(
            f"seg_width_log2_real must be an integer, got {seg_width_log2_real!r}")
    k = int(seg_width_log2_real) + frac
    if not 0 <= k <= 15:
        raise ValueError(
            f"segment width 2**{seg_width_log2_real} at frac={frac} is 2**{k} input units; "
            "k must be in [0, 15]")
    x_lo = math.floor(float(_finite_float(x_lo_real, "x_lo_real")) * 2.0 ** frac + 0.5)
    if not INT16_MIN <= x_lo <= INT16_MAX:
        raise ValueError(
            f"x_lo_real={x_lo_real} is {x_lo} in Q{frac}, outside int16 "
            f"[{INT16_MIN}, {INT16_MAX}]")
    return _fit_table(fn, frac, x_lo, k, flat_ends, name)


#: Worst error (output real units, over all int16 inputs) each built-in table guarantees.
TABLE_ERROR_BOUNDS = {"sigmoid": 0.02, "tanh": 0.03, "relu": 0.0, "identity": 0.0,
                      "hardtanh": 0.0}


def _saturating_table(name, frac, half_range_log2):
    """Table for a saturating function covering ``[-2**h, 2**h)`` with flat ends.

    When that range does not fit int16 in Q(``frac``) the table covers the
    whole int16 range instead (``x_lo=-32768``, ``k=12``); nothing is then
    extrapolated, so the end segments are fitted like interior ones.
    """
    frac = _check_frac(frac)
    fn = EXACT_ACTIVATIONS[name]
    k = half_range_log2 + 1 - 4 + frac  # 16 segments over 2**(h+1) real units
    if k < 0:
        raise ValueError(
            f"{name} table needs frac >= {-(half_range_log2 - 3)}, got frac={frac}")
    if k <= 12:
        table = make_table(fn, frac, -(2.0 ** half_range_log2), half_range_log2 - 3,
                           flat_ends=True, name=name)
    else:
        table = _fit_table(fn, frac, INT16_MIN, 12, flat_ends=False, name=name)
    err = table_error(table, fn, frac)
    if err > TABLE_ERROR_BOUNDS[name]:
        raise ValueError(
            f"{name} table at frac={frac} has worst error {err:.4f} > "
            f"{TABLE_ERROR_BOUNDS[name]}; frac is outside the range this table supports")
    return table


def sigmoid_table(frac):
    """Sigmoid over about ``[-8, 8)`` with flat end segments.

    Raises
    ------
    ValueError
        If the worst error over all int16 inputs would exceed 0.02 (``frac`` below 6,
        where the output step is too coarse, or above 15, where 1.0 does not fit int16).
    """
    return _saturating_table("sigmoid", frac, 3)


def tanh_table(frac):
    """Tanh over about ``[-4, 4)`` with flat end segments.

    Raises
    ------
    ValueError
        If the worst error over all int16 inputs would exceed 0.03 (``frac`` below 6).
    """
    return _saturating_table("tanh", frac, 2)


def _linear_split_table(name, frac, slope_below, slope_above):
    """Exact table: slope 0 or 1 on each side of 0 (``x_lo=-32768``, ``k=12``)."""
    _check_frac(frac)
    one = 1 << 14  # 1.0 with f = 14, the largest f for which 1.0 fits int16
    a = (slope_below * one,) * 8 + (slope_above * one,) * 8
    return PWLTable(x_lo=INT16_MIN, k=12, f=14, a=a, b=(0,) * SEGMENTS, name=name)


def relu_table(frac):
    """Exact ReLU (``y == max(x, 0)``); 0 is the boundary of segments 7 and 8."""
    return _linear_split_table("relu", frac, 0, 1)


def identity_table(frac):
    """Exact identity (``y == x``)."""
    return _linear_split_table("identity", frac, 1, 1)


def hardtanh_table(frac):
    """Exact HardTanh (``y == clip(x, -2**frac, 2**frac)``, i.e. ``clamp(x, -1, 1)``).

    Segment 0 is flat at -1 and starts one segment below -1; the next ``2**(frac + 1 - k)``
    segments (at most 8), of width ``2**k`` with ``k = max(frac - 2, 0)``, have slope 1
    (``a = 2**14``, ``f = 14``, ``b = 0``) from -1 to +1; the rest are flat at +1. The lines
    meet at +-1, so the breakpoints are exact.

    From ``frac = 15`` on, every int16 input ``x / 2**frac`` lies in ``[-1, 1)`` (+1 itself
    is 32768 at frac 15, not an int16; -1 is -32768, where the slope-1 line gives -1): the
    clamp changes no input and the table is :func:`identity_table`'s, still exact.

    Parameters
    ----------
    frac : int
        Fraction bits of input and output, ``0 <= frac <= MAX_FRAC``.

    Returns
    -------
    PWLTable

    Raises
    ------
    ValueError
        If ``frac`` is not an integer in ``[0, MAX_FRAC]``.
    """
    frac = _check_frac(frac)
    if frac >= 15:
        return _linear_split_table("hardtanh", frac, 1, 1)
    one, k = 1 << frac, max(frac - 2, 0)
    ramp = (2 * one) >> k                       # slope-1 segments between -1 and +1
    a = (0,) + (1 << 14,) * ramp + (0,) * (SEGMENTS - 1 - ramp)
    b = (-one,) + (0,) * ramp + (one,) * (SEGMENTS - 1 - ramp)
    return PWLTable(x_lo=-one - (1 << k), k=k, f=14, a=a, b=b, name="hardtanh")


#: Fraction bits of an LRN layer's scale ``g`` (its table's output): ``g <= 1`` needs one
#: integer bit (``docs/numbers.md``, "Local response normalisation").
LRN_SCALE_FRAC = 14


def lrn_scale(s, size, alpha, beta, k):
    """The LRN scale ``(k + alpha / size * s) ** -beta`` of a window's sum of squares ``s``
    (float, ONNX's formula)."""
    return (k + alpha / size * np.asarray(s, dtype=np.float64)) ** -beta


def lrn_table(size, alpha, beta, k, q):
    """The NFU-3 table of an LRN layer: its input ``u``, the window's sum of squares in
    Q(``q``) (``q`` may be negative: a step of ``2**-q``; ``u`` is never negative), its
    output the scale ``g`` in Q(:data:`LRN_SCALE_FRAC`); 16 segments of 2048 over
    ``[0, 32768)``, least-squares slopes and minimax offsets like every fitted table."""
    return _fit_table(lambda u: lrn_scale(u, size, alpha, beta, k), q, 0, 11, False,
                      "lrn", out_frac=LRN_SCALE_FRAC, inputs=_LRN_INPUTS)


#: The inputs an LRN table can see: a sum of squares is never negative.
_LRN_INPUTS = np.arange(0, INT16_MAX + 1, dtype=np.int64)


def lrn_table_error(table, size, alpha, beta, k, q):
    """Worst ``|table(u) / 2**14 - lrn_scale(u * 2**-q)|`` over every table input
    ``u`` in ``[0, 32767]`` (the inputs an LRN layer can give it)."""
    u = _LRN_INPUTS
    got = table.eval(u) / 2.0 ** LRN_SCALE_FRAC
    return float(np.max(np.abs(got - lrn_scale(u * 2.0 ** -q, size, alpha, beta, k))))


#: Builders of the built-in tables: ``BUILTIN_TABLES[name](frac) -> PWLTable``.
BUILTIN_TABLES: dict[str, Callable[[int], PWLTable]] = {
    "sigmoid": sigmoid_table,
    "tanh": tanh_table,
    "relu": relu_table,
    "identity": identity_table,
    "hardtanh": hardtanh_table,
}


def build_table(name, frac):
    """Build the built-in table ``name`` for Q(``frac``) input and output.

    Raises
    ------
    ValueError
        For an unknown name or a ``frac`` the table cannot be built for.
    """
    if name not in BUILTIN_TABLES:
        raise ValueError(
            f"unknown activation {name!r}; choose from {sorted(BUILTIN_TABLES)}")
    return BUILTIN_TABLES[name](frac)
