"""Network API, file format round trips and rejection of bad files."""

import json

import numpy as np
import pytest

from diannao.golden.formats import PWLTable
from diannao.golden.network import FC, AvgPool, Conv, Local, MaxPool, Network, load
from diannao.golden.quant import quantize


def small_doc():
    rng = np.random.default_rng(0)
    return {
        "format": "diannao-network", "version": 1, "input_shape": [1, 6, 6],
        "layers": [
            {"type": "conv", "kernel": 3, "out_channels": 2, "stride": 1, "pad": 1,
             "activation": "relu", "weights": rng.normal(size=(2, 1, 3, 3)).round(3).tolist(),
             "bias": [0.1, -0.2]},
            {"type": "maxpool", "size": 2},
            {"type": "fc", "out_features": 3, "activation": "identity",
             "weights": rng.normal(size=(3, 18)).round(3).tolist(), "bias": [0, 0, 0]},
        ]}


def write(tmp_path, doc, name="net.json"):
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def test_shapes_and_defaults():
    net = Network((3, 10, 9), [Conv(np.zeros((4, 3, 3, 3)), np.zeros(4), stride=2, pad=1),
                               AvgPool(2), MaxPool(2, 1), FC(np.zeros((5, 4)), np.zeros(5))])
    assert net.shapes() == [(3, 10, 9), (4, 5, 5), (4, 2, 2), (4, 1, 1), (5,)]
    assert net.output_shape == (5,)
    assert net.layers[1].stride == 2


def test_load_inline_and_roundtrip_npz(tmp_path):
    net = load(write(tmp_path, small_doc()))
    assert net.output_shape == (3,) and net.act_frac == 8
    net.save(tmp_path / "copy.json")
    assert (tmp_path / "copy.npz").exists()
    doc = json.loads((tmp_path / "copy.json").read_text())
    assert doc["weights_file"] == "copy.npz" and doc["layers"][0]["weights"].startswith("@")
    again = load(tmp_path / "copy.json")
    for a, b in zip(net.layers, again.layers):
        if hasattr(a, "weights"):
            assert np.array_equal(a.weights, b.weights) and np.array_equal(a.bias, b.bias)
    net.save(tmp_path / "inline.json", inline=True)
    assert "weights_file" not in json.loads((tmp_path / "inline.json").read_text())


def test_locally_connected_layer_round_trip_and_checks(tmp_path):
    """A ``local`` layer: weights [O, OH, OW, C, K, K] (a kernel per output position), the
    file round trip, and a kernel grid that does not match the output named."""
    rng = np.random.default_rng(2)
    net = Network((2, 6, 5), [Local(rng.normal(size=(3, 3, 3, 2, 3, 3)), np.zeros(3),
                                    stride=2, pad=1, activation="tanh")])
    assert net.output_shape == (3, 3, 3) and net.layers[0].kernel == 3
    net.save(tmp_path / "local.json")
    doc = json.loads((tmp_path / "local.json").read_text())
    assert doc["layers"][0]["type"] == "local" and doc["layers"][0]["kernel"] == 3
    again = load(tmp_path / "local.json")
    assert type(again.layers[0]) is Local
    assert np.array_equal(again.layers[0].weights, net.layers[0].weights)
    bad = Network((2, 6, 5), [Local(np.zeros((3, 3, 2, 2, 3, 3)), np.zeros(3), stride=2,
                                    pad=1)])
    with pytest.raises(ValueError, match=r"layer 0 \(local\), field 'weights': must have "
                                         r"shape \[3, 3, 3, 2, 3, 3\]"):
        bad.validate()


def test_out_frac_and_act_frac_fields(tmp_path):
    doc = small_doc()
    doc["act_frac"] = 7
    doc["layers"][0]["out_frac"] = 6
    net = load(write(tmp_path, doc))
    assert net.act_frac == 7 and net.layers[0].out_frac == 6


def mutate(fn):
    doc = small_doc()
    fn(doc)
    return doc


BAD_LAYERS = [  # (mutation, layer index, type, field)
    (lambda d: d["layers"][1].update(type="lstm"), 1, "lstm", "type"),
    (lambda d: d["layers"][0].update(activation="swish"), 0, "conv", "activation"),
    (lambda d: d["layers"][2].pop("bias"), 2, "fc", "bias"),
    (lambda d: d["layers"][0].pop("kernel"), 0, "conv", "kernel"),
    (lambda d: d["layers"][1].pop("size"), 1, "maxpool", "size"),
    (lambda d: d["layers"][2].update(weights=[[0.0] * 17] * 3), 2, "fc", "weights"),
    (lambda d: d["layers"][0].update(kernel=5), 0, "conv", "weights"),
    (lambda d: d["layers"][2].update(out_features=4), 2, "fc", "weights"),
    (lambda d: d["layers"][0].update(bias=[0.0]), 0, "conv", "bias"),
    (lambda d: d["layers"][0]["weights"][1][0][2].__setitem__(1, float("nan")), 0, "conv", "weights"),
    (lambda d: d["layers"][2]["weights"][0].__setitem__(3, float("inf")), 2, "fc", "weights"),
    (lambda d: d["layers"][0].update(stride=0), 0, "conv", "stride"),
    (lambda d: d["layers"][0].update(pad=1.5), 0, "conv", "pad"),
    (lambda d: d["layers"][1].update(size=9), 1, "maxpool", "size"),
    (lambda d: d["layers"][0].update(out_frac=40), 0, "conv", "out_frac"),
    (lambda d: d["layers"][0].update(weigths=[]), 0, "conv", "weigths"),
    (lambda d: d["layers"][2].update(weights="@w"), 2, "fc", "weights_file"),
    (lambda d: d["layers"][2].update(weights="w"), 2, "fc", "weights"),
]


@pytest.mark.parametrize("fn,index,kind,field", BAD_LAYERS)
def test_bad_layer_names_index_type_and_field(tmp_path, fn, index, kind, field):
    doc = mutate(fn)
    # json.dumps writes NaN/Infinity tokens; the loader must still reject them
    with pytest.raises(ValueError) as info:
        load(write(tmp_path, json.dumps(doc)))
    msg = str(info.value)
    assert f"layer {index} ({kind}), field '{field}'" in msg, msg


def test_nan_weights_in_npz_are_rejected(tmp_path):
    w = np.zeros((3, 18))
    w[1, 4] = np.nan
    np.savez(tmp_path / "w.npz", w=w)
    doc = small_doc()
    doc["weights_file"] = "w.npz"
    doc["layers"][2]["weights"] = "@w"
    with pytest.raises(ValueError, match=r"layer 2 \(fc\), field 'weights': holds nan at index \[1, 4\]"):
        load(write(tmp_path, doc))
    doc["layers"][2]["weights"] = "@missing"
    with pytest.raises(ValueError, match=r"layer 2 \(fc\), field 'weights': array 'missing' not found"):
        load(write(tmp_path, doc))


def test_unparsable_json_reports_position(tmp_path):
    text = json.dumps(small_doc(), indent=1)
    broken = text.replace('"maxpool"', '"maxpool",,', 1)
    line = broken[:broken.index(",,")].count("\n") + 1
    with pytest.raises(ValueError, match=f"invalid JSON at line {line} column"):
        load(write(tmp_path, broken))


@pytest.mark.parametrize("field,value,match", [
    ("format", "onnx", "field 'format'"), ("version", 2, "field 'version'"),
    ("input_shape", [1, 0, 6], "input_shape"), ("act_frac", 99, "act_frac"),
    ("layers", [], "layers"), ("extra", 1, "field 'extra'"),
])
def test_bad_top_level(tmp_path, field, value, match):
    doc = small_doc()
    doc[field] = value
    with pytest.raises(ValueError, match=match):
        load(write(tmp_path, doc))


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        load("/nonexistent/net.json")


def test_validate_python_objects():
    net = Network((4,), [FC(np.zeros((2, 5)), np.zeros(2))])
    with pytest.raises(ValueError, match=r"layer 0 \(fc\), field 'weights': must have shape \[2, 4\]"):
        net.validate()
    net = Network((1, 4, 4), [MaxPool(2), Conv(np.zeros((1, 2, 3, 3)), np.zeros(1))])
    with pytest.raises(ValueError, match=r"layer 1 \(conv\), field 'weights'"):
        net.validate()
    net = Network((16,), [MaxPool(2)])
    with pytest.raises(ValueError, match=r"layer 0 \(maxpool\), field 'input'"):
        net.validate()


def test_user_table_round_trip_and_checks(tmp_path):
    table = PWLTable(-100, 3, 4, tuple(range(16)), tuple(range(-8, 8)))
    net = Network((4,), [FC(np.full((3, 4), 0.1), np.zeros(3), activation="relu", table=table)])
    net.save(tmp_path / "n.json")
    doc = json.loads((tmp_path / "n.json").read_text())
    assert doc["layers"][0]["table"] == {"x_lo": -100, "k": 3, "f": 4, "a": list(range(16)),
                                         "b": list(range(-8, 8))}
    q = quantize(load(tmp_path / "n.json")).layers[0]
    assert (q.table.x_lo, q.table.k, q.table.f, q.table.a, q.table.b) == (
        -100, 3, 4, table.a, table.b)
    x = np.arange(-5, 5) * 1000
    assert np.array_equal(q.table.eval(x), table.eval(x))
    bad = [({"x_lo": 0}, "must be an object with the fields"),
           (dict(x_lo=0, k=16, f=0, a=[0] * 16, b=[0] * 16), "k"),
           (dict(x_lo=0, k=1, f=0, a=[0] * 15, b=[0] * 16), "16 entries")]
    for value, match in bad:
        with pytest.raises(ValueError, match=rf"layer 0 \(fc\), field 'table': .*{match}"):
            Network((4,), [FC(np.ones((3, 4)), np.zeros(3), activation="relu",
                              table=value)]).validate()
    with pytest.raises(ValueError, match="needs an activation other than 'identity'"):
        Network((4,), [FC(np.ones((3, 4)), np.zeros(3), table=table)]).validate()
