"""Sequential float networks and the ``diannao-network`` file format.

A :class:`Network` is an input shape plus a list of layers (:class:`Conv`,
:class:`Local`, :class:`FC`, :class:`MaxPool`, :class:`AvgPool`, :class:`LRN`).  Shapes are [C, H, W] for
images and (N,) for vectors; :class:`FC` flattens its input C-major.  The
JSON file format is described in ``docs/network-format.md``.

Every validation error is a ``ValueError`` whose message starts with
``layer <index> (<type>), field '<field>':`` when it concerns a layer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from diannao.golden import float_ref
from diannao.golden._tensor import channel_window_sum, conv_out_size
from diannao.golden.formats import DEFAULT_ACT_FRAC, EXACT_ACTIVATIONS, MAX_FRAC, PWLTable

__all__ = ["Conv", "Local", "FC", "MaxPool", "AvgPool", "LRN", "Network", "ACTIVATIONS",
           "FORMAT_NAME", "FORMAT_VERSION", "load", "save"]

#: Activation names accepted by :class:`Conv` and :class:`FC`.
ACTIVATIONS = tuple(EXACT_ACTIVATIONS)
FORMAT_NAME = "diannao-network"
FORMAT_VERSION = 1


class FieldError(ValueError):
    """A problem with one field of a layer (the layer index is added by the caller)."""

    def __init__(self, field_name, message):
        super().__init__(message)
        self.field = field_name
        self.message = message


def _layer_error(index, kind, err):
    return ValueError(f"layer {index} ({kind}), field '{err.field}': {err.message}")


def _check_int(name, value, lo, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FieldError(name, f"must be an integer, got {value!r}")
    if value < lo:
        raise FieldError(name, f"must be >= {lo}, got {value}")
    return int(value)


def _check_array(name, value, ndim):
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise FieldError(name, f"is not a numeric array ({exc})") from None
    if a.ndim != ndim:
        raise FieldError(name, f"must have {ndim} dimensions, got shape {list(a.shape)}")
    if not np.all(np.isfinite(a)):
        bad = a[~np.isfinite(a)].flat[0]
        idx = [int(i) for i in np.argwhere(~np.isfinite(a))[0]]
        raise FieldError(name, f"holds {bad} at index {idx}; values must be finite")
    return a


def _check_activation(value):
    if value not in ACTIVATIONS:
        raise FieldError("activation", f"unknown activation {value!r}; choose from {list(ACTIVATIONS)}")
    return value


def _check_out_frac(value):
    value = _check_int("out_frac", value, 0, allow_none=True)
    if value is not None and value > MAX_FRAC:
        raise FieldError("out_frac", f"must be <= {MAX_FRAC}, got {value}")
    return value


#: The fields of a user activation table in a network file (:class:`golden.formats.PWLTable`).
TABLE_FIELDS = ("x_lo", "k", "f", "a", "b")


def _check_table(value, activation):
    """A user NFU-3 table: ``None``, a :class:`PWLTable` or a dict of :data:`TABLE_FIELDS`."""
    if value is None:
        return None
    if activation == "identity":
        raise FieldError("table", "a user table needs an activation other than 'identity' "
                                  "(an identity layer bypasses NFU-3)")
    if isinstance(value, PWLTable):
        return value
    if not isinstance(value, dict) or set(value) != set(TABLE_FIELDS):
        raise FieldError("table", f"must be an object with the fields {list(TABLE_FIELDS)}, "
                                  f"got {value!r}")
    try:
        return PWLTable(**value, name="user")
    except (TypeError, ValueError) as exc:
        raise FieldError("table", str(exc)) from None


def _check_image(in_shape):
    if len(in_shape) != 3:
        raise FieldError("input", f"needs a [C, H, W] input, got shape {list(in_shape)}")


@dataclass(eq=False)
class _Weighted:
    """Common part of :class:`Conv` and :class:`FC`."""

    weights: np.ndarray
    bias: np.ndarray

    def _check_weights(self, ndim, expect):
        w = _check_array("weights", self.weights, ndim)
        if expect is not None and list(w.shape) != list(expect):
            raise FieldError("weights", f"must have shape {list(expect)}, got {list(w.shape)}")
        b = _check_array("bias", self.bias, 1)
        if b.shape[0] != w.shape[0]:
            raise FieldError("bias", f"must have shape [{w.shape[0]}], got {list(b.shape)}")
        self.weights, self.bias = w, b
        self.activation = _check_activation(self.activation)
        self.out_frac = _check_out_frac(self.out_frac)
        self.table = _check_table(self.table, self.activation)
        return w

    def forward(self, x):
        """Float forward pass of one sample, exact activation included."""
        return float_ref.activation(self.pre_activation(x), self.activation)


@dataclass(eq=False)
class Conv(_Weighted):
    """2-D convolution, weights [O, C, K, K], bias [O], zero padding on all sides."""

    stride: int = 1
    pad: int = 0
    activation: str = "identity"
    out_frac: int | None = None
    table: PWLTable | None = None
    kind: ClassVar[str] = "conv"

    @property
    def kernel(self):
        return int(np.shape(self.weights)[2])

    def _square_weights(self, ndim):
        """The weights as an ``ndim``-dimensional array whose last two axes (the kernel)
        are equal."""
        w = _check_array("weights", self.weights, ndim)
        if w.shape[-2] != w.shape[-1]:
            raise FieldError("weights", f"kernel must be square, got shape {list(w.shape)}")
        return w

    def _out_size(self, in_shape):
        """Check ``stride`` and ``pad``; the output's ``(OH, OW)`` for ``in_shape``."""
        self.stride = _check_int("stride", self.stride, 1)
        self.pad = _check_int("pad", self.pad, 0)
        try:
            return tuple(conv_out_size(n, self.kernel, self.stride, self.pad)
                         for n in in_shape[1:])
        except ValueError as exc:
            raise FieldError("kernel", str(exc)) from None

    def output_shape(self, in_shape):
        """Check the layer against ``in_shape`` and return its output shape."""
        _check_image(in_shape)
        w = self._square_weights(4)
        self._check_weights(4, (w.shape[0], in_shape[0], w.shape[2], w.shape[3]))
        return (w.shape[0], *self._out_size(in_shape))

    def pre_activation(self, x):
        return float_ref.conv2d(x, self.weights, self.bias, self.stride, self.pad)


@dataclass(eq=False)
class Local(Conv):
    """Locally connected layer (DianNao's "private kernels", DeepFace's locally connected
    layers): a convolution whose kernel differs at every output position; weights
    [O, OH, OW, C, K, K], bias [O], zero padding on all sides."""

    kind: ClassVar[str] = "local"

    @property
    def kernel(self):
        return int(np.shape(self.weights)[4])

    def output_shape(self, in_shape):
        """Check the layer against ``in_shape`` and return its output shape."""
        _check_image(in_shape)
        w = self._square_weights(6)
        oh, ow = self._out_size(in_shape)
        self._check_weights(6, (w.shape[0], oh, ow, in_shape[0], w.shape[4], w.shape[5]))
        return (w.shape[0], oh, ow)

    def pre_activation(self, x):
        return float_ref.local(x, self.weights, self.bias, self.stride, self.pad)


@dataclass(eq=False)
class FC(_Weighted):
    """Fully-connected layer, weights [O, N], bias [O]; the input is flattened C-major."""

    activation: str = "identity"
    out_frac: int | None = None
    table: PWLTable | None = None
    kind: ClassVar[str] = "fc"

    def output_shape(self, in_shape):
        """Check the layer against ``in_shape`` and return its output shape."""
        n = math.prod(in_shape)
        w = _check_array("weights", self.weights, 2)
        self._check_weights(2, (w.shape[0], n))
        return (w.shape[0],)

    def pre_activation(self, x):
        return float_ref.fc(x, self.weights, self.bias)


@dataclass(eq=False)
class _Pool:
    size: int
    stride: int | None = None

    def __post_init__(self):
        if self.stride is None:
            self.stride = self.size

    def output_shape(self, in_shape):
        """Check the layer against ``in_shape`` and return its output shape."""
        _check_image(in_shape)
        self.size = _check_int("size", self.size, 1)
        self.stride = _check_int("stride", self.stride, 1)
        try:
            oh = conv_out_size(in_shape[1], self.size, self.stride, 0)
            ow = conv_out_size(in_shape[2], self.size, self.stride, 0)
        except ValueError as exc:
            raise FieldError("size", str(exc)) from None
        return (in_shape[0], oh, ow)


@dataclass(eq=False)
class MaxPool(_Pool):
    """Max pooling, no padding; ``stride`` defaults to ``size``."""

    kind: ClassVar[str] = "maxpool"

    def forward(self, x):
        return float_ref.maxpool(x, self.size, self.stride)


@dataclass(eq=False)
class AvgPool(_Pool):
    """Average pooling, no padding; ``stride`` defaults to ``size``."""

    kind: ClassVar[str] = "avgpool"

    def forward(self, x):
        return float_ref.avgpool(x, self.size, self.stride)


def _check_real(name, value, lo, why):
    """A finite real ``>= lo`` (``> 0`` when ``lo`` is None)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise FieldError(name, f"must be a finite number, got {value!r}")
    if (value <= 0) if lo is None else (value < lo):
        raise FieldError(name, f"must be {'> 0' if lo is None else f'>= {lo}'} ({why}), "
                               f"got {value!r}")
    return float(value)


@dataclass(eq=False)
class LRN:
    """Local response normalisation across channels (AlexNet; ONNX's ``LRN``, Caffe's
    ``ACROSS_CHANNELS``): ``y[c] = x[c] * (k + alpha / size * sum(x[c']**2)) ** -beta``
    over the ``size`` channels around ``c``, on a [C, H, W] input.

    ``k >= 1`` and ``beta > 0`` keep the scale at most 1, so the output keeps the input's
    fraction bits (``docs/numbers.md``); AlexNet has ``size=5, alpha=1e-4, beta=0.75`` and
    ``k`` 2 (the paper) or 1 (Caffe).
    """

    size: int
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 1.0
    kind: ClassVar[str] = "lrn"

    def output_shape(self, in_shape):
        """Check the layer against ``in_shape`` and return its output shape."""
        _check_image(in_shape)
        self.size = _check_int("size", self.size, 1)
        self.alpha = _check_real("alpha", self.alpha, 0, "a sum of squares scaled by it")
        self.beta = _check_real("beta", self.beta, None,
                                "the scale (k + ...)**-beta must not exceed 1")
        self.k = _check_real("k", self.k, 1, "the scale k**-beta must not exceed 1: the output "
                                             "keeps the input's fraction bits")
        return tuple(in_shape)

    def square_sum(self, x):
        """The float window sums of squares (what the integer layer's table reads)."""
        x = np.asarray(x, dtype=np.float64)
        return channel_window_sum(x * x, self.size)

    def forward(self, x):
        return float_ref.lrn(x, self.size, self.alpha, self.beta, self.k)


LAYER_TYPES = {cls.kind: cls for cls in (Conv, Local, FC, MaxPool, AvgPool, LRN)}


@dataclass(eq=False)
class Network:
    """A sequential network.

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) or (N,).
    layers : list
        :class:`Conv`, :class:`Local`, :class:`FC`, :class:`MaxPool`, :class:`AvgPool`,
        :class:`LRN`.
    act_frac : int
        Fraction bits of activations (the input's and, by default, every layer's output).
    """

    input_shape: tuple
    layers: list = field(default_factory=list)
    act_frac: int = DEFAULT_ACT_FRAC

    def shapes(self):
        """Validate the network and return the ``len(layers) + 1`` tensor shapes.

        Raises
        ------
        ValueError
            Naming the layer index, type and field of the first problem.
        """
        shape = tuple(self.input_shape)
        if len(shape) not in (1, 3) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1
                for d in shape):
            raise ValueError(
                f"network field 'input_shape' must be [C, H, W] or [N] of positive "
                f"integers, got {list(self.input_shape)}")
        self.input_shape = tuple(int(d) for d in shape)
        if isinstance(self.act_frac, bool) or not isinstance(self.act_frac, (int, np.integer)) \
                or not 0 <= self.act_frac <= MAX_FRAC:
            raise ValueError(
                f"network field 'act_frac' must be an integer in [0, {MAX_FRAC}], "
                f"got {self.act_frac!r}")
        if not self.layers:
            raise ValueError("network field 'layers' must not be empty")
        shapes = [self.input_shape]
        for i, layer in enumerate(self.layers):
            if type(layer) not in LAYER_TYPES.values():
                raise ValueError(
                    f"layer {i} has unsupported type {type(layer).__name__}; "
                    f"use one of {[c.__name__ for c in LAYER_TYPES.values()]}")
            try:
                shapes.append(tuple(int(d) for d in layer.output_shape(shapes[-1])))
            except FieldError as err:
                raise _layer_error(i, layer.kind, err) from None
        return shapes

    def validate(self):
        """Check that the shapes chain and every field is valid; return ``self``."""
        self.shapes()
        return self

    @property
    def output_shape(self):
        """Shape of the network output."""
        return self.shapes()[-1]

    def save(self, path, inline=False):
        """Write the network; see :func:`save`."""
        save(self, path, inline=inline)

    @classmethod
    def load(cls, path):
        """Read a network file; see :func:`load`."""
        return load(path)


# ---------------------------------------------------------------------------
# file format
# ---------------------------------------------------------------------------

_LAYER_FIELDS = {
    "conv": ({"type", "kernel", "out_channels", "weights", "bias"},
             {"stride", "pad", "activation", "out_frac", "table"}),
    "local": ({"type", "kernel", "out_channels", "weights", "bias"},
              {"stride", "pad", "activation", "out_frac", "table"}),
    "fc": ({"type", "out_features", "weights", "bias"}, {"activation", "out_frac", "table"}),
    "maxpool": ({"type", "size"}, {"stride"}),
    "avgpool": ({"type", "size"}, {"stride"}),
    "lrn": ({"type", "size"}, {"alpha", "beta", "k"}),
}
_TOP_FIELDS = ({"format", "version", "input_shape", "layers"}, {"act_frac", "weights_file"})


def _check_keys(d, required, optional, where):
    missing = sorted(required - d.keys())
    if missing:
        raise FieldError(missing[0], f"missing required field in {where}")
    unknown = sorted(d.keys() - required - optional)
    if unknown:
        raise FieldError(unknown[0], f"unknown field in {where}; allowed: {sorted(required | optional)}")


class _ArrayStore:
    """Resolves ``"@name"`` references into the network's weights file."""

    def __init__(self, json_path, weights_file):
        self.json_path = json_path
        self.weights_file = weights_file
        self._arrays = None

    def _load(self):
        if self._arrays is None:
            if self.weights_file is None:
                raise FieldError("weights_file", "an '@name' reference needs a top-level weights_file")
            npz = self.json_path.parent / self.weights_file
            try:
                with np.load(npz, allow_pickle=False) as data:
                    self._arrays = {k: data[k] for k in data.files}
            except (OSError, ValueError) as exc:
                raise FieldError("weights_file", f"cannot read {str(npz)!r}: {exc}") from None
        return self._arrays

    def resolve(self, name, value):
        if isinstance(value, str):
            if not value.startswith("@"):
                raise FieldError(name, f"must be a nested list or an '@name' reference, got {value!r}")
            arrays = self._load()
            if value[1:] not in arrays:
                raise FieldError(name, f"array {value[1:]!r} not found in weights_file "
                                       f"{self.weights_file!r} (has {sorted(arrays)})")
            return arrays[value[1:]]
        if not isinstance(value, list):
            raise FieldError(name, f"must be a nested list or an '@name' reference, got {value!r}")
        return value


def _parse_layer(d, store):
    if not isinstance(d, dict):
        raise FieldError("type", f"a layer must be a JSON object, got {d!r}")
    kind = d.get("type")
    if kind not in _LAYER_FIELDS:
        raise FieldError("type", f"unknown layer type {kind!r}; choose from {sorted(_LAYER_FIELDS)}")
    _check_keys(d, *_LAYER_FIELDS[kind], f"a {kind} layer")
    if kind in ("maxpool", "avgpool"):
        return LAYER_TYPES[kind](size=d["size"], stride=d.get("stride"))
    if kind == "lrn":
        return LRN(**{name: d[name] for name in ("size", "alpha", "beta", "k") if name in d})
    w = _check_array("weights", store.resolve("weights", d["weights"]),
                     {"conv": 4, "local": 6, "fc": 2}[kind])
    b = store.resolve("bias", d["bias"])
    count = "out_features" if kind == "fc" else "out_channels"
    n_out = _check_int(count, d[count], 1)
    if w.shape[0] != n_out:
        raise FieldError("weights", f"first dimension must be {count}={n_out}, got shape {list(w.shape)}")
    common = dict(weights=w, bias=b, activation=d.get("activation", "identity"),
                  out_frac=d.get("out_frac"), table=d.get("table"))
    if kind == "fc":
        return FC(**common)
    kernel = _check_int("kernel", d["kernel"], 1)
    if w.shape[-2:] != (kernel, kernel):
        shape = "C" if kind == "conv" else "OH, OW, C"
        raise FieldError("weights", f"must be [{n_out}, {shape}, {kernel}, {kernel}] for "
                                    f"kernel={kernel}, got shape {list(w.shape)}")
    return LAYER_TYPES[kind](stride=d.get("stride", 1), pad=d.get("pad", 0), **common)


def load(path):
    """Read a ``diannao-network`` JSON file (and its weights file, if any).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    Network
        A validated network.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        For a file that does not parse (with the JSON error position), an
        unknown format or version, or any invalid layer (naming the layer
        index, type and field).
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        # NaN/Infinity tokens parse here and are rejected per layer and field below
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: top level must be a JSON object")
    if doc.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: field 'format' must be {FORMAT_NAME!r}, got {doc.get('format')!r}")
    if doc.get("version") != FORMAT_VERSION or isinstance(doc.get("version"), bool):
        raise ValueError(f"{path}: unsupported field 'version' {doc.get('version')!r}; "
                         f"this reader knows version {FORMAT_VERSION}")
    try:
        _check_keys(doc, *_TOP_FIELDS, "the network")
    except FieldError as err:
        raise ValueError(f"{path}: field '{err.field}': {err.message}") from None
    if not isinstance(doc["layers"], list):
        raise ValueError(f"{path}: field 'layers' must be a list")
    if not isinstance(doc["input_shape"], list):
        raise ValueError(f"{path}: field 'input_shape' must be a list, got {doc['input_shape']!r}")
    weights_file = doc.get("weights_file")
    if weights_file is not None and not isinstance(weights_file, str):
        raise ValueError(f"{path}: field 'weights_file' must be a string, got {weights_file!r}")
    store = _ArrayStore(path, weights_file)
    layers = []
    for i, d in enumerate(doc["layers"]):
        try:
            layers.append(_parse_layer(d, store))
        except FieldError as err:
            kind = d.get("type") if isinstance(d, dict) else None
            raise _layer_error(i, kind, err) from None
    net = Network(tuple(doc["input_shape"]), layers, doc.get("act_frac", DEFAULT_ACT_FRAC))
    try:
        return net.validate()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _layer_to_json(i, layer, arrays):
    def ref(name, a):
        if arrays is None:
            return a.tolist()
        key = f"layer{i}_{name}"
        arrays[key] = a
        return "@" + key

    if isinstance(layer, (MaxPool, AvgPool)):
        return {"type": layer.kind, "size": layer.size, "stride": layer.stride}
    if isinstance(layer, LRN):
        return {"type": "lrn", "size": layer.size, "alpha": layer.alpha, "beta": layer.beta,
                "k": layer.k}
    d = {"type": layer.kind}
    if isinstance(layer, Conv):
        d.update(kernel=layer.kernel, out_channels=int(layer.weights.shape[0]),
                 stride=layer.stride, pad=layer.pad)
    else:
        d["out_features"] = int(layer.weights.shape[0])
    d["activation"] = layer.activation
    if layer.out_frac is not None:
        d["out_frac"] = layer.out_frac
    if layer.table is not None:
        d["table"] = {name: (list(v) if isinstance(v, tuple) else v)
                      for name in TABLE_FIELDS for v in [getattr(layer.table, name)]}
    d["weights"] = ref("weights", layer.weights)
    d["bias"] = ref("bias", layer.bias)
    return d


def save(network, path, inline=False):
    """Write ``network`` as JSON.

    Parameters
    ----------
    network : Network
    path : str or os.PathLike
        The JSON file.  Unless ``inline``, the arrays go to a ``.npz`` file
        of the same stem next to it and the JSON refers to them as ``"@name"``.
    inline : bool
        Write weights as nested lists inside the JSON.
    """
    network.validate()
    path = Path(path)
    arrays = None if inline else {}
    doc = {"format": FORMAT_NAME, "version": FORMAT_VERSION,
           "input_shape": list(network.input_shape), "act_frac": int(network.act_frac)}
    layers = [_layer_to_json(i, layer, arrays) for i, layer in enumerate(network.layers)]
    if arrays:
        npz = path.with_suffix(".npz")
        np.savez(npz, **arrays)
        doc["weights_file"] = npz.name
    doc["layers"] = layers
    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
