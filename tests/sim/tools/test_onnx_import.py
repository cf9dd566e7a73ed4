"""ONNX in: models built with onnx.helper, imported, checked against onnxruntime (float),
the golden model (within its error bound) and the RTL (bit for bit); bad models rejected
naming the node and the field."""

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from diannao.golden.network import FC, LRN, AvgPool, Conv, MaxPool, Network
from diannao.golden.quant import error_bound, quantize, run_float
from diannao.sim.cli import main
from diannao.sim.tools import digits
from diannao.sim.tools.onnx_import import OnnxError, import_onnx


def _model(path, nodes, consts, in_shape, out_name="y", batch="N"):
    """Save a model of ``nodes`` over input ``x`` ``[batch, *in_shape]`` and the float
    arrays ``consts`` (initializers) to ``path``; return ``path``."""
    graph = helper.make_graph(
        nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, *in_shape])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, None])],
        [numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)
         for name, a in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


def _ort(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": np.asarray(x, dtype=np.float32)})[0]


def _softmax(y):
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cnn(path, rng):
    """Conv 3x3 pad 1, Relu, MaxPool 2; Conv 3x3 stride 2 with pads (0, 0, 1, 1) (which
    our symmetric padding expresses: the extra row and column are never read), folded
    BatchNormalization, Sigmoid; AveragePool 2, Flatten, Gemm (transB), Tanh, MatMul + Add,
    Dropout, Softmax."""
    r = lambda *shape: rng.normal(0, 0.3, shape)
    consts = {"w1": r(4, 2, 3, 3), "b1": r(4), "w2": r(6, 4, 3, 3), "b2": r(6),
              "g": rng.uniform(0.5, 1.5, 6), "beta": r(6), "mean": r(6),
              "var": rng.uniform(0.5, 2, 6), "w3": r(5, 6), "b3": r(5),
              "w4": r(5, 3), "b4": r(3)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", strides=[2, 2],
                         pads=[0, 0, 1, 1]),
        helper.make_node("BatchNormalization", ["c2", "g", "beta", "mean", "var"], ["n2"],
                         name="bn2", epsilon=1e-3),
        helper.make_node("Sigmoid", ["n2"], ["s2"], name="sig2"),
        helper.make_node("Identity", ["s2"], ["i2"], name="id2"),
        helper.make_node("AveragePool", ["i2"], ["p2"], name="pool2", kernel_shape=[2, 2],
                         strides=[1, 1]),
        helper.make_node("Flatten", ["p2"], ["f"], name="flat", axis=1),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["g3"], name="fc3", transB=1),
        helper.make_node("Tanh", ["g3"], ["t3"], name="tanh3"),
        helper.make_node("MatMul", ["t3", "w4"], ["m4"], name="fc4"),
        helper.make_node("Add", ["m4", "b4"], ["a4"], name="fc4_bias"),
        helper.make_node("Dropout", ["a4"], ["d4"], name="drop"),
        helper.make_node("Softmax", ["d4"], ["y"], name="softmax", axis=1),
    ]
    return _model(path, nodes, consts, (2, 11, 11))


def test_a_cnn_matches_onnxruntime(tmp_path, rng):
    path = _cnn(tmp_path / "cnn.onnx", rng)
    imported = import_onnx(path)
    net = imported.network
    assert imported.host_softmax
    assert [type(l) for l in net.layers] == [Conv, MaxPool, Conv, AvgPool, FC, FC]
    assert [getattr(l, "activation", None) for l in net.layers] == [
        "relu", None, "sigmoid", None, "tanh", "identity"]
    assert net.layers[2].pad == 0 and net.layers[2].stride == 2
    x = rng.uniform(-1, 1, (3, 2, 11, 11))
    want = _ort(path, x)
    got = _softmax(np.stack([run_float(net, xi) for xi in x]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # The 16-bit golden model within its guaranteed bound of the float reference.
    qnet = quantize(net)
    for xi in x:
        y = qnet.dequantize_output(qnet.run(qnet.quantize_input(xi)))
        assert np.max(np.abs(y - run_float(net, xi))) <= error_bound(net, qnet, xi) + 1e-12


def test_run_and_import_commands(tmp_path, rng, capsys):
    """``diannao run --network m.onnx``: golden and the RTL (Amaranth simulator) equal bit
    for bit, the Softmax said to run on the host; ``diannao import`` writes our format."""
    path = _cnn(tmp_path / "cnn.onnx", rng)
    x = rng.uniform(-1, 1, (2, 11, 11))
    np.save(tmp_path / "x.npy", x)
    outs = {}
    for engine in ("golden", "pysim"):
        out = tmp_path / f"{engine}.npy"
        assert main(["run", "--network", str(path), "--input", str(tmp_path / "x.npy"),
                     "--engine", engine, "--out", str(out)]) == 0
        outs[engine] = np.load(out)
        assert "host: the model's final Softmax" in capsys.readouterr().out
    assert np.array_equal(outs["golden"], outs["pysim"])
    assert main(["import", str(path), "-o", str(tmp_path / "net.json")]) == 0
    assert "the host applies it" in capsys.readouterr().out
    assert main(["run", "--network", str(tmp_path / "net.json"), "--input",
                 str(tmp_path / "x.npy"), "--out", str(tmp_path / "json.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "json.npy"), outs["golden"])


@pytest.mark.parametrize("lo,hi,act", [(-1.0, 1.0, "hardtanh"), (0.0, None, "relu")])
def test_clip_is_hardtanh_or_relu(tmp_path, rng, lo, hi, act):
    """PyTorch exports Hardtanh (and ReLU6's kin) as Clip with constant bounds."""
    consts = {"w": rng.normal(0, 1.0, (4, 6)), "lo": np.array(lo)}
    inputs = ["g", "lo"]
    if hi is not None:
        consts["hi"] = np.array(hi)
        inputs.append("hi")
    nodes = [helper.make_node("Gemm", ["x", "w"], ["g"], name="fc", transB=1),
             helper.make_node("Clip", inputs, ["y"], name="clip")]
    path = _model(tmp_path / "clip.onnx", nodes, consts, (6,))
    net = import_onnx(path).network
    assert net.layers[0].activation == act
    x = rng.uniform(-2, 2, (3, 6))
    np.testing.assert_allclose(np.stack([run_float(net, xi) for xi in x]), _ort(path, x),
                               rtol=1e-5, atol=1e-6)


def _alexnet_block(path, rng, size, alpha, beta, bias):
    """AlexNet's first block in little: Conv 3x3 pad 1, Relu, LRN, MaxPool 2, Flatten, Gemm."""
    consts = {"w1": rng.normal(0, 0.4, (10, 3, 3, 3)), "b1": rng.normal(0, 0.1, 10),
              "w2": rng.normal(0, 0.2, (4, 10 * 3 * 3)), "b2": rng.normal(0, 0.1, 4)}
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("LRN", ["r1"], ["n1"], name="norm1", size=size, alpha=alpha,
                         beta=beta, bias=bias),
        helper.make_node("MaxPool", ["n1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Flatten", ["p1"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], name="fc", transB=1),
    ]
    return _model(path, nodes, consts, (3, 6, 7))


@pytest.mark.parametrize("size,alpha,beta,bias", [(5, 1e-4, 0.75, 1.0), (5, 1e-4, 0.75, 2.0),
                                                  (7, 0.5, 0.5, 1.5), (3, 2.0, 1.0, 1.0)])
def test_lrn_matches_onnxruntime(tmp_path, rng, size, alpha, beta, bias):
    """ONNX's LRN (onnxruntime takes odd windows only; AlexNet's constants and large ones): our float
    reference equals onnxruntime; the golden model (calibrated) is within its error bound
    and equals the RTL (Amaranth simulator) bit for bit."""
    path = _alexnet_block(tmp_path / "lrn.onnx", rng, size, alpha, beta, bias)
    net = import_onnx(path).network
    lrn = net.layers[1]
    assert isinstance(lrn, LRN)
    assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == pytest.approx((size, alpha, beta, bias))
    x = rng.uniform(-3, 3, (2, 3, 6, 7))
    np.testing.assert_allclose(np.stack([run_float(net, xi) for xi in x]), _ort(path, x),
                               rtol=1e-4, atol=1e-5)
    qnet = quantize(net, calib=x)
    for xi in x:
        y = qnet.dequantize_output(qnet.run(qnet.quantize_input(xi)))
        assert np.max(np.abs(y - run_float(net, xi))) <= error_bound(net, qnet, xi) + 1e-12
    if size == 5 and bias == 2.0:
        np.save(tmp_path / "x.npy", x)
        outs = {}
        for engine in ("golden", "pysim"):
            assert main(["run", "--network", str(path), "--input", str(tmp_path / "x.npy"),
                         "--calib", str(tmp_path / "x.npy"), "--engine", engine, "--out",
                         str(tmp_path / f"{engine}.npy")]) == 0
            outs[engine] = np.load(tmp_path / f"{engine}.npy")
        assert np.array_equal(outs["golden"], outs["pysim"])


def _export(net, path, batch="N"):
    """Our network as an ONNX model (Conv, Gemm, pooling, activations; Flatten before the
    first fully connected layer after an image)."""
    ops = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    nodes, consts, cur, shape = [], {}, "x", net.input_shape
    for i, layer in enumerate(net.layers):
        out = f"l{i}"
        if isinstance(layer, Conv):
            consts[f"w{i}"], consts[f"b{i}"] = layer.weights, layer.bias
            nodes.append(helper.make_node("Conv", [cur, f"w{i}", f"b{i}"], [out],
                                          strides=[layer.stride] * 2, pads=[layer.pad] * 4))
        elif isinstance(layer, FC):
            if len(shape) == 3:
                nodes.append(helper.make_node("Flatten", [cur], [f"f{i}"]))
                cur = f"f{i}"
            consts[f"w{i}"], consts[f"b{i}"] = layer.weights, layer.bias
            nodes.append(helper.make_node("Gemm", [cur, f"w{i}", f"b{i}"], [out], transB=1))
        else:
            op = "MaxPool" if isinstance(layer, MaxPool) else "AveragePool"
            nodes.append(helper.make_node(op, [cur], [out], kernel_shape=[layer.size] * 2,
                                          strides=[layer.stride] * 2))
        cur = out
        if getattr(layer, "activation", "identity") != "identity":
            nodes.append(helper.make_node(ops[layer.activation], [cur], [f"a{i}"]))
            cur = f"a{i}"
        shape = Network(shape, [layer]).output_shape
    nodes.append(helper.make_node("Identity", [cur], ["y"]))
    return _model(path, nodes, consts, net.input_shape, batch=batch)


@pytest.mark.parametrize("name,batch", [("mlp", "N"), ("cnn", 1)])
def test_digits_networks_round_trip(tmp_path, name, batch):
    """Exported to ONNX (symbolic or fixed batch) and imported: the same layers, the same
    golden outputs bit for bit (as the network with its weights in float32, ONNX's type),
    and onnxruntime agrees with the float reference."""
    net = digits.load_network(name)
    for layer in net.layers:
        if hasattr(layer, "weights"):
            layer.weights = layer.weights.astype(np.float32).astype(np.float64)
            layer.bias = layer.bias.astype(np.float32).astype(np.float64)
    path = _export(net, tmp_path / f"{name}.onnx", batch=batch)
    back = import_onnx(path).network
    assert [l.kind for l in back.layers] == [l.kind for l in net.layers]
    x, _ = digits.load_test_set(tuple(net.input_shape))
    x = x[:8]
    qa, qb = quantize(net), quantize(back)
    xq = qa.quantize_input(x)
    assert np.array_equal(qa.run(xq), qb.run(xq))
    for xi in x:
        np.testing.assert_allclose(run_float(back, xi), _ort(path, xi[None])[0], rtol=1e-4,
                                   atol=1e-4)


def _bad(tmp_path, nodes, consts, in_shape=(1, 6, 6), batch="N"):
    return _model(tmp_path / "bad.onnx", nodes, consts, in_shape, batch=batch)


@pytest.mark.parametrize("case,message", [
    ("not onnx", r"not a valid ONNX model"),
    ("op", r"node 'act' \(LeakyRelu\): op type LeakyRelu is not supported; supported: Conv"),
    ("dynamic", r"input 'x': dimension 2 \(H\) is not a known size"),
    ("nan", r"node 'c' \(Conv\): weights \('w'\) holds nan at \[0, 0, 1, 2\]"),
    ("pads", r"node 'c' \(Conv\): pads=\[1, 1, 0, 0\] \(top, left, bottom, right\)"),
    ("group", r"node 'c' \(Conv\): group=2"),
    ("branch", r"node 'add' \(Add\): takes \['c', 'x'\]"),
    ("lone activation", r"node 'r' \(Relu\): must follow a Conv"),
    ("lrn bias", r"node 'n' \(LRN\): field 'bias': must be >= 1"),
    ("clip", r"node 'k' \(Clip\): field 'min'/'max': Clip from 0.0 to 6.0"),
])
def test_bad_models_name_the_node_and_the_field(tmp_path, case, message):
    w = np.ones((2, 1, 3, 3))
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="c")
    if case == "not onnx":
        path = tmp_path / "bad.onnx"
        path.write_bytes(b"this is not a protobuf")
    elif case == "op":
        path = _bad(tmp_path, [conv, helper.make_node("LeakyRelu", ["c"], ["y"], name="act")],
                    {"w": w})
    elif case == "dynamic":
        graph_in = ("x", [1, "H", 6])
        path = _model(tmp_path / "bad.onnx", [helper.make_node("Conv", ["x", "w"], ["y"],
                                                               name="c")],
                      {"w": w}, graph_in[1])
    elif case == "nan":
        w[0, 0, 1, 2] = np.nan
        path = _bad(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="c")],
                    {"w": w})
    elif case == "pads":
        path = _bad(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="c",
                                                pads=[1, 1, 0, 0])], {"w": w})
    elif case == "group":
        path = _bad(tmp_path, [helper.make_node("Conv", ["x", "w"], ["y"], name="c",
                                                group=2)],
                    {"w": np.ones((2, 1, 3, 3))}, in_shape=(2, 6, 6))
    elif case == "branch":
        path = _bad(tmp_path, [helper.make_node("Conv", ["x", "w"], ["c"], name="c",
                                                pads=[1, 1, 1, 1]),
                               helper.make_node("Add", ["c", "x"], ["y"], name="add")],
                    {"w": np.ones((1, 1, 3, 3))})
    elif case == "clip":
        path = _bad(tmp_path, [conv, helper.make_node("Clip", ["c", "lo", "hi"], ["y"],
                                                      name="k")],
                    {"w": w, "lo": np.array(0.0), "hi": np.array(6.0)})
    elif case == "lrn bias":
        path = _bad(tmp_path, [helper.make_node("LRN", ["x"], ["y"], name="n", size=3,
                                                bias=0.5)], {})
    else:
        path = _bad(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="r")], {})
    with pytest.raises(OnnxError, match=message):
        import_onnx(path)
    # The command says the same in one line, a user error (status 2).
    assert main(["run", "--network", str(path)]) == 2
