"""ONNX in: an ONNX model -> a :class:`golden.network.Network`.

The model must be a chain (each node takes the previous node's output and constant
initializers) over one input of shape ``[N, C, H, W]`` or ``[N, F]``: the batch dimension
``N`` (symbolic or not) is the batch, every other one must be known. Supported (default
domain, opsets as current PyTorch and onnxscript export):

==========================  ===============================================================
``Conv``                    group 1, dilation 1, a square kernel, equal strides; pads
                            (explicit or ``auto_pad``) that our symmetric zero padding
                            expresses: equal at the top and the left, and the bottom and
                            right ones giving the same output size
``Gemm``                    ``transA=0``; ``alpha``, ``beta`` and ``transB`` folded in
``MatMul`` [+ ``Add``]      a constant right operand ``[N, O]``, an optional constant bias
``Relu``, ``Sigmoid``,      the activation of the Conv or fully connected layer before (or
``Tanh``, ``Clip``          before a MaxPool after it: max pooling commutes with them);
                            ``Clip`` from -1 to 1 is ``hardtanh`` (PyTorch's ``Hardtanh``),
                            from 0 without a maximum ``relu``
``MaxPool``,                a square window, equal strides, no padding, no ceil mode
``AveragePool``
``GlobalAveragePool``       a square input
``Flatten``, ``Reshape``    to ``[N, C*H*W]``: our fully connected layers flatten C-major
``BatchNormalization``      folded into the Conv or fully connected layer before it
``Dropout``, ``Identity``   removed
``LRN``                     ``size``, ``alpha``, ``beta``, ``bias`` (our ``k``) with
                            ``bias >= 1`` (:class:`golden.network.LRN`)
``Softmax``                 last: run on the host (:attr:`Imported.host_softmax`)
==========================  ===============================================================

Anything else is rejected naming the node, its op type and this list
(:class:`OnnxError`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from diannao.golden.network import FC, LRN, AvgPool, Conv, FieldError, MaxPool, Network


__all__ = ["Imported", "OnnxError", "import_onnx", "SUPPORTED_OPS"]

SUPPORTED_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "Sigmoid", "Tanh", "MaxPool",
                 "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
                 "BatchNormalization", "Dropout", "Identity", "LRN", "Softmax", "Clip")
_ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh"}


class OnnxError(ValueError):
    """An ONNX model we cannot import; the message names the file, the node and the field."""


@dataclass
class Imported:
    """An imported model: the :class:`Network` and whether the model ends with a Softmax
    that the host applies to the network's output (the accelerator has none)."""
    network: Network
    host_softmax: bool = False


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _name(node):
    return f"node {node.name!r} ({node.op_type})" if node.name else f"a {node.op_type} node"


def import_onnx(path):
    """Import the ONNX model at ``path``.

    Returns
    -------
    Imported

    Raises
    ------
    OnnxError
        A file that is not an ONNX model, an unsupported op or attribute, a shape we cannot
        resolve, non-finite weights, a pad we cannot express.
    """
    path = Path(path)
    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model)
    except Exception as exc:       # onnx raises DecodeError, ValidationError, OSError...
        raise OnnxError(f"{path}: not a valid ONNX model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    return _Importer(path, model.graph).run()


class _Importer:
    def __init__(self, path, graph):
        self.path, self.graph = path, graph
        self.consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        self.layers = []
        self.shape = None           # the current tensor's shape, batch left out
        self.host_softmax = False
        # The weighted layer that may still take an activation (the last layer, or the one
        # before a MaxPool or a Flatten, which commute with the activations), and whether
        # such an op came after it (then no BatchNormalization folds into it).
        self.open = None
        self.moved = False

    def fail(self, node, message):
        where = _name(node) if node is not None else "the graph"
        return OnnxError(f"{self.path}: {where}: {message}")

    def const(self, node, name, what):
        if name not in self.consts:
            raise self.fail(node, f"{what} ({name!r}) must be a constant initializer")
        a = np.asarray(self.consts[name], dtype=np.float64)
        if not np.all(np.isfinite(a)):
            bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
            raise self.fail(node, f"{what} ({name!r}) holds {a[bad]} at {list(bad)}")
        return a

    def run(self):
        g = self.graph
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1 or len(g.output) != 1:
            raise self.fail(None, f"needs one input and one output, has {len(inputs)} "
                                  f"and {len(g.output)}")
        x = inputs[0]
        dims = x.type.tensor_type.shape.dim
        if len(dims) not in (2, 4):
            raise self.fail(None, f"input {x.name!r} must be [N, C, H, W] or [N, F], has "
                                  f"{len(dims)} dimensions")
        shape = []
        for k, d in enumerate(dims[1:], 1):
            if not d.HasField("dim_value") or d.dim_value < 1:
                raise self.fail(None, f"input {x.name!r}: dimension {k} "
                                      f"({d.dim_param or 'unknown'}) is not a known size; "
                                      f"only the batch dimension (0) may be symbolic")
            shape.append(int(d.dim_value))
        self.shape = input_shape = tuple(shape)
        # Constant nodes are initializers.
        nodes = []
        for node in g.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
            else:
                nodes.append(node)
        current = x.name
        i = 0
        while i < len(nodes):
            node = nodes[i]
            data = [n for n in node.input if n and n not in self.consts]
            if data != [current]:
                raise self.fail(node, f"takes {data}, not the previous node's output "
                                      f"{current!r}: only chains of layers are supported")
            if self.host_softmax:
                raise self.fail(node, "follows the Softmax: only a final Softmax runs on "
                                      "the host")
            nxt = nodes[i + 1] if i + 1 < len(nodes) else None
            fused = self.node(node, nxt)
            current = (nxt if fused else node).output[0]
            i += 2 if fused else 1
        if current != g.output[0].name:
            raise self.fail(None, f"the chain ends at {current!r}, not the graph's output "
                                  f"{g.output[0].name!r}")
        if not self.layers:
            raise self.fail(None, "has no layer the accelerator runs (Conv, Gemm, MatMul, "
                                  "pooling)")
        net = Network(input_shape, self.layers)
        try:
            net.validate()
        except ValueError as exc:
            raise OnnxError(f"{self.path}: {exc}") from None
        return Imported(net, self.host_softmax)

    def node(self, node, nxt):
        """Import ``node``; True if it took ``nxt`` with it (MatMul + Add)."""
        op, a = node.op_type, _attrs(node)
        if op not in SUPPORTED_OPS:
            raise self.fail(node, f"op type {op} is not supported; supported: "
                                  f"{', '.join(SUPPORTED_OPS)}")
        if op in ("Dropout", "Identity"):
            return False
        if op == "Conv":
            self.conv(node, a)
        elif op == "Gemm":
            self.gemm(node, a)
        elif op == "MatMul":
            return self.matmul(node, nxt)
        elif op == "Add":
            raise self.fail(node, "an Add must follow a MatMul (its bias)")
        elif op in _ACTIVATIONS:
            self.activation(node, _ACTIVATIONS[op])
        elif op == "Clip":
            self.activation(node, self.clip(node, a))
        elif op in ("MaxPool", "AveragePool"):
            self.pool(node, a, op)
        elif op == "GlobalAveragePool":
            self.need_image(node)
            c, h, w = self.shape
            if h != w:
                raise self.fail(node, f"input {h}x{w} is not square: our pooling windows are")
            self.add(AvgPool(h, h), (c, 1, 1))
        elif op in ("Flatten", "Reshape"):
            self.flatten(node, a)
        elif op == "BatchNormalization":
            self.batchnorm(node, a)
        elif op == "LRN":
            self.lrn(node, a)
        elif op == "Softmax":
            self.host_softmax = True
        return False

    def add(self, layer, shape, open_=False):
        self.layers.append(layer)
        self.shape = shape
        self.open = layer if open_ else None
        self.moved = False

    def need_image(self, node):
        if len(self.shape) != 3:
            raise self.fail(node, f"needs a [C, H, W] input, has {list(self.shape)}")

    def conv(self, node, a):
        self.need_image(node)
        w = self.const(node, node.input[1], "weights")
        o, c, kh, kw = w.shape
        b = (self.const(node, node.input[2], "bias") if len(node.input) > 2 and node.input[2]
             else np.zeros(o))
        if a.get("group", 1) != 1:
            raise self.fail(node, f"group={a['group']}: only group 1 is supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(node, f"dilations={list(a['dilations'])}: only 1 is supported")
        if kh != kw:
            raise self.fail(node, f"kernel_shape {kh}x{kw}: only square kernels are supported")
        sh, sw = a.get("strides", [1, 1])
        if sh != sw:
            raise self.fail(node, f"strides={[sh, sw]}: only equal strides are supported")
        _, h, wd = self.shape
        pads = self.pads(node, a, (h, wd), kh, sh)
        t, l, bot, r = pads
        same = t == l and all((n + p0 + p1 - kh) // sh == (n + 2 * p0 - kh) // sh
                              for n, p0, p1 in ((h, t, bot), (wd, l, r)))
        if not same:
            raise self.fail(node, f"pads={list(pads)} (top, left, bottom, right): our "
                                  f"convolutions pad alike on every side, which gives another "
                                  f"output size")
        oh, ow = ((n + 2 * t - kh) // sh + 1 for n in (h, wd))
        self.add(Conv(w, b, stride=sh, pad=t), (o, oh, ow), open_=True)

    def pads(self, node, a, size, k, s):
        """``(top, left, bottom, right)`` from ``pads`` or ``auto_pad``."""
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("NOTSET", ""):
            p = list(a.get("pads", [0, 0, 0, 0]))
            return p[0], p[1], p[2], p[3]
        if auto == "VALID":
            return 0, 0, 0, 0
        total = [max(0, (-(-n // s) - 1) * s + k - n) for n in size]
        small = [t // 2 for t in total]
        big = [t - t // 2 for t in total]
        if auto == "SAME_UPPER":
            return small[0], small[1], big[0], big[1]
        if auto == "SAME_LOWER":
            return big[0], big[1], small[0], small[1]
        raise self.fail(node, f"auto_pad={auto!r} is not an ONNX value")

    def fc(self, node, w, b):
        n = int(np.prod(self.shape))
        if w.shape[1] != n:
            raise self.fail(node, f"weights take {w.shape[1]} inputs, the tensor before has "
                                  f"{n} ({list(self.shape)})")
        self.add(FC(w, b), (w.shape[0],), open_=True)

    def gemm(self, node, a):
        if a.get("transA", 0):
            raise self.fail(node, "transA=1 is not supported")
        w = self.const(node, node.input[1], "B") * a.get("alpha", 1.0)
        if not a.get("transB", 0):
            w = w.T
        b = np.zeros(w.shape[0])
        if len(node.input) > 2 and node.input[2]:
            b = np.broadcast_to(self.const(node, node.input[2], "C").reshape(-1) * a.get("beta", 1.0),
                                (w.shape[0],)).copy()
        self.fc(node, w, b)

    def matmul(self, node, nxt):
        w = self.const(node, node.input[1], "B").T
        bias = None
        if nxt is not None and nxt.op_type == "Add" and node.output[0] in nxt.input:
            other = [n for n in nxt.input if n != node.output[0]]
            if len(other) == 1 and other[0] in self.consts:
                bias = np.broadcast_to(self.const(nxt, other[0], "bias").reshape(-1),
                                       (w.shape[0],)).copy()
        self.fc(node, w, np.zeros(w.shape[0]) if bias is None else bias)
        return bias is not None

    def activation(self, node, name):
        layer = self.open
        if layer is None or layer.activation != "identity":
            raise self.fail(node, "must follow a Conv or a fully connected layer (or a "
                                  "MaxPool after one) that has no activation yet")
        layer.activation = name
        self.open = None          # nothing more folds into it

    def pool(self, node, a, op):
        self.need_image(node)
        kh, kw = a["kernel_shape"]
        sh, sw = a.get("strides", [1, 1])
        if kh != kw or sh != sw:
            raise self.fail(node, f"kernel_shape={[kh, kw]}, strides={[sh, sw]}: only "
                                  f"square windows and equal strides are supported")
        if any(a.get("pads", [0])) or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID",
                                                                           "NOTSET", "VALID"):
            raise self.fail(node, "pads: our pooling has no padding")
        if a.get("ceil_mode", 0):
            raise self.fail(node, "ceil_mode=1 is not supported")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise self.fail(node, "dilations other than 1 are not supported")
        c, h, w = self.shape
        layer = (MaxPool if op == "MaxPool" else AvgPool)(kh, sh)
        shape = (c, (h - kh) // sh + 1, (w - kh) // sh + 1)
        open_ = self.open if op == "MaxPool" else None
        self.add(layer, shape)
        # An activation after a MaxPool may move before it (max commutes with monotone
        # functions): the weighted layer before stays open for it.
        self.open, self.moved = open_, open_ is not None

    def clip(self, node, a):
        """The activation a Clip is: its bounds from the inputs (opset 11 on) or the
        attributes (before)."""
        bounds = []
        for k, name in ((1, "min"), (2, "max")):
            if len(node.input) > k and node.input[k]:
                bounds.append(float(self.const(node, node.input[k], name).reshape(())))
            else:
                bounds.append(a.get(name))
        lo, hi = bounds
        if (lo, hi) == (-1.0, 1.0):
            return "hardtanh"
        if lo == 0.0 and hi is None:
            return "relu"
        raise self.fail(node, f"field 'min'/'max': Clip from {lo} to {hi} is not an activation "
                              f"we have (-1 to 1: hardtanh; 0 and no maximum: relu)")

    def lrn(self, node, a):
        self.need_image(node)
        if "size" not in a:
            raise self.fail(node, "field 'size' is required")
        layer = LRN(int(a["size"]), float(a.get("alpha", 1e-4)), float(a.get("beta", 0.75)),
                    float(a.get("bias", 1.0)))
        try:
            layer.output_shape(self.shape)
        except FieldError as err:
            field = "bias" if err.field == "k" else err.field
            raise self.fail(node, f"field '{field}': {err.message}") from None
        self.add(layer, self.shape)

    def flatten(self, node, a):
        n = int(np.prod(self.shape))
        if node.op_type == "Flatten":
            if a.get("axis", 1) != 1:
                raise self.fail(node, f"axis={a['axis']}: only axis 1 (keep the batch) is "
                                      f"supported")
        else:
            target = [int(d) for d in self.const(node, node.input[1], "shape")]
            rest = target[1:]
            if len(target) != 2 or rest not in ([n], [-1]) or target[0] not in (0, -1, 1):
                raise self.fail(node, f"shape={target}: only a Reshape to [N, {n}] (a "
                                      f"flatten) is supported")
        if len(self.shape) > 1:
            self.moved = True      # an activation may still move before it, not a BN
        self.shape = (n,)

    def batchnorm(self, node, a):
        layer = self.open
        if layer is None or layer.activation != "identity" or self.moved:
            raise self.fail(node, "must follow a Conv or a fully connected layer directly "
                                  "(it is folded into its weights and bias)")
        scale, shift, mean, var = (self.const(node, node.input[k], what) for k, what in
                                   ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        f = scale / np.sqrt(var + a.get("epsilon", 1e-5))
        w = np.asarray(layer.weights, dtype=np.float64)
        layer.weights = w * f.reshape((-1,) + (1,) * (w.ndim - 1))
        layer.bias = (np.asarray(layer.bias, dtype=np.float64) - mean) * f + shift
