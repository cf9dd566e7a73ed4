"""diannao.sim.runtime.inputs: the one input check every engine goes through."""

import json
import math

import numpy as np
import pytest

import diannao.sim.runtime.inputs
from diannao.golden.network import load
from diannao.golden.quant import quantize
from diannao.sim.engines.registry import engine_names, run_network
from diannao.sim.runtime.run import RunResult
from diannao.sim.runtime.inputs import (CheckedInput, check_input, ensure_checked, format_range,
                                        load_array)



@pytest.fixture(scope="module")
def qnet(tmp_path_factory):
    """A [1, 4, 4] network (conv 1->2 pad 1, maxpool 2, fc 8->3; input Q7.8)."""
    w = np.linspace(-1, 1, 18).reshape(2, 1, 3, 3).tolist()
    doc = {"format": "diannao-network", "version": 1, "input_shape": [1, 4, 4],
           "layers": [{"type": "conv", "kernel": 3, "out_channels": 2, "pad": 1,
                       "activation": "relu", "weights": w, "bias": [0.1, -0.1]},
                      {"type": "maxpool", "size": 2},
                      {"type": "fc", "out_features": 3, "activation": "tanh",
                       "weights": np.linspace(-0.5, 0.5, 24).reshape(3, 8).tolist(),
                       "bias": [0.0, 0.1, -0.1]}]}
    path = tmp_path_factory.mktemp("net") / "net.json"
    path.write_text(json.dumps(doc))
    q = quantize(load(path))
    assert q.input_shape == (1, 4, 4) and q.input_frac == 8
    return q


def test_single_sample_and_batch(qnet):
    x = np.random.default_rng(0).uniform(-1, 1, (1, 4, 4))
    one = check_input(qnet, x, "x.npy")
    assert one.single and one.batch.shape == (1, 1, 4, 4) and one.batch.dtype == np.int16
    assert np.array_equal(one.batch[0], qnet.quantize_input(x))
    assert np.array_equal(one.real, x) and one.saturated == 0
    assert one.unbatch(one.batch).shape == (1, 4, 4)
    many = check_input(qnet, np.stack([x, -x, x]), "x.npy")
    assert not many.single and many.batch.shape == (3, 1, 4, 4)
    assert many.unbatch(many.batch).shape == (3, 1, 4, 4)
    assert np.array_equal(many.batch[1], qnet.quantize_input(-x))


def test_integers_are_taken_as_int16_values(qnet):
    x = np.arange(-8, 8, dtype=np.int32).reshape(1, 4, 4) * 1000
    got = check_input(qnet, x)
    assert np.array_equal(got.batch[0], x) and got.batch.dtype == np.int16
    np.testing.assert_array_equal(got.real, x / 256.0)
    assert got.saturated == 0


@pytest.mark.parametrize("shape", [(1, 16), (2, 4, 4), (16,), (4, 4), (2, 1, 4, 4, 1)])
def test_shape_names_source_and_expected_shapes(qnet, shape):
    dims = ", ".join(map(str, shape))
    with pytest.raises(ValueError) as err:
        check_input(qnet, np.zeros(shape), "data/x.npy")
    assert str(err.value) == (f"input data/x.npy has shape [{dims}]; expected [1, 4, 4] "
                              f"or [batch, 1, 4, 4]")
    with pytest.raises(ValueError, match=r"^input has shape"):
        check_input(qnet, np.zeros(shape))


def test_empty_batch(qnet):
    with pytest.raises(ValueError,
                       match=r"^input x.npy has shape \[0, 1, 4, 4\], an empty batch$"):
        check_input(qnet, np.zeros((0, 1, 4, 4)), "x.npy")


@pytest.mark.parametrize("dtype", [bool, np.complex64, "U3", object])
def test_dtype(qnet, dtype):
    x = np.zeros((1, 4, 4), dtype=dtype)
    with pytest.raises(ValueError) as err:
        check_input(qnet, x, "x.npy")
    assert str(err.value) == f"input x.npy has dtype {x.dtype}; expected float or integer"


def test_ragged_list_is_named(qnet):
    with pytest.raises(ValueError, match=r"^input x.npy is not an array"):
        check_input(qnet, [[1.0, 2.0], [3.0]], "x.npy")


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_names_value_and_first_index(qnet, value, dtype):
    x = np.zeros((3, 1, 4, 4), dtype=dtype)
    x[1, 0, 2, 1] = value
    x[2, 0, 0, 0] = value
    with pytest.raises(ValueError) as err:
        check_input(qnet, x, "x.npy")
    assert str(err.value) == (f"input x.npy: value {value} at index [1, 0, 2, 1]; "
                              f"inputs must be finite")


def test_nan_in_single_sample(qnet):
    x = np.zeros((1, 4, 4))
    x[0, 2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^input x.npy: value nan at index \[0, 2, 1\]; "
                                         r"inputs must be finite$"):
        check_input(qnet, x, "x.npy")


@pytest.mark.parametrize("dtype,value", [(np.int32, 32768), (np.int32, -32769),
                                         (np.int64, 2**40), (np.uint16, 40000),
                                         (np.uint64, 2**64 - 1)])
def test_integer_outside_int16_names_index(qnet, dtype, value):
    x = np.zeros((2, 1, 4, 4), dtype=dtype)
    x[1, 0, 3, 2] = value
    with pytest.raises(ValueError) as err:
        check_input(qnet, x, "x.npy")
    assert str(err.value) == (f"input x.npy holds {value} at index [1, 0, 3, 2], outside int16 "
                              f"[-32768, 32767]; integer inputs are taken as already-quantized "
                              f"int16 values")


def test_integer_limits_pass(qnet):
    x = np.full((1, 4, 4), -32768, dtype=np.int64)
    x[0, 0, 0] = 32767
    assert np.array_equal(check_input(qnet, x).batch[0], x)


def reference_saturated(x, frac):
    """Count by the definition: floor(x * 2**frac + 0.5) outside int16, element by element."""
    return sum(not -32768 <= math.floor(float(v) * 2**frac + 0.5) <= 32767 for v in x.flat)


def test_saturation_count_at_the_format_edges(qnet):
    # top is the smallest value that rounds above 32767; bottom the lowest that still
    # rounds to -32768 (round half up)
    top, bottom = 32767.5 / 256, -32768.5 / 256
    edges = [top, np.nextafter(top, 0), bottom, np.nextafter(bottom, -1e9), 127.996, -128.0,
             200.0, -1e300, 1e300, 0.0, 65536.0, -65536.5, 127.998, -128.001, 1.0, -1.0]
    x = np.array(edges).reshape(1, 4, 4)
    got = check_input(qnet, x, "x.npy")
    assert got.saturated == reference_saturated(x, 8) == 7
    assert np.array_equal(got.batch[0], qnet.quantize_input(x))
    np.testing.assert_array_equal(got.real, x)      # the reals as given, not saturated
    rng = np.random.default_rng(3)
    x = rng.uniform(-300, 300, (5, 1, 4, 4)).astype(np.float32)
    assert check_input(qnet, x).saturated == reference_saturated(x, 8) > 0


def test_saturation_note(qnet):
    x = np.zeros((1, 4, 4))
    x[0, 1, 1], x[0, 2, 2], x[0, 3, 3] = 200.0, -300.0, 1e9
    got = check_input(qnet, x, "x.npy")
    assert got.saturation_note == "input x.npy: 3 values outside Q7.8 [-128, 127.996] saturated"
    x[0, 2, 2] = x[0, 3, 3] = 0.0
    assert check_input(qnet, x).saturation_note == (
        "input: 1 value outside Q7.8 [-128, 127.996] saturated")
    assert check_input(qnet, np.zeros((1, 4, 4))).saturation_note == ""


def test_strict_names_first_saturating_index(qnet):
    x = np.zeros((2, 1, 4, 4))
    x[1, 0, 1, 3], x[1, 0, 2, 0] = -128.5, 300.0
    assert check_input(qnet, x, "x.npy").saturated == 2
    with pytest.raises(ValueError) as err:
        check_input(qnet, x, "x.npy", strict=True)
    assert str(err.value) == ("input x.npy: value -128.5 at index [1, 0, 1, 3] is outside "
                              "Q7.8 [-128, 127.996] and would saturate (2 values in all); "
                              "strict inputs must fit the input format")
    x[1] = 127.99
    assert check_input(qnet, x, strict=True).saturated == 0


@pytest.mark.parametrize("frac,text", [(8, "Q7.8 [-128, 127.996]"), (0, "Q15.0 [-32768, 32767]"),
                                       (15, "Q0.15 [-1, 0.999969]"),
                                       (20, "int16*2**-20 [-0.03125, 0.031249]")])
def test_format_range(frac, text):
    assert format_range(frac) == text


def test_ensure_checked_passes_checked_input_through(qnet):
    x = np.zeros((1, 4, 4))
    x[0, 0, 0] = 500.0
    got = check_input(qnet, x, "x.npy")
    assert ensure_checked(qnet, got) is got
    with pytest.raises(ValueError, match=r"value 500.0 at index \[0, 0, 0\]"):
        ensure_checked(qnet, got, strict=True)
    wrong = CheckedInput(batch=np.zeros((1, 16), np.int16), single=True,
                         real=np.zeros(16), saturated=0, source="y.npy", input_shape=(16,),
                         input_frac=8)
    with pytest.raises(ValueError, match=r"^input y.npy was checked for input shape \[16\] in "
                                         r"Q7.8; this network takes \[1, 4, 4\] in Q7.8$"):
        ensure_checked(qnet, wrong)


def test_load_array(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(3.0))
    assert np.array_equal(load_array(tmp_path / "x.npy"), np.arange(3.0))
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match=r"x.npz is an .npz archive"):
        load_array(tmp_path / "x.npz")
    for name, content in [("text.npy", "hello"), ("empty.npy", "")]:
        (tmp_path / name).write_text(content)
        with pytest.raises(ValueError, match=rf"^input {tmp_path / name} is not a readable "):
            load_array(tmp_path / name)
    np.save(tmp_path / "obj.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="obj.npy is not a readable .npy array"):
        load_array(tmp_path / "obj.npy")
    with pytest.raises(OSError, match="missing.npy"):
        load_array(tmp_path / "missing.npy")


# -- every engine goes through the check ------------------------------------------------

BAD = [(np.zeros((1, 16)), r"^input has shape \[1, 16\]"),
       (np.zeros((2, 4, 4)), r"^input has shape \[2, 4, 4\]"),
       (np.full((1, 4, 4), np.nan), r"^input: value nan at index \[0, 0, 0\]"),
       (np.full((1, 4, 4), 40000), r"^input holds 40000 at index \[0, 0, 0\]")]


class Untouchable:
    """A serial port that fails the test when used."""

    def write(self, data):
        pytest.fail("the board engine wrote to the port with a bad input")

    def read(self, n):
        pytest.fail("the board engine read the port with a bad input")


@pytest.mark.parametrize("engine", engine_names())
@pytest.mark.parametrize("x,message", BAD)
def test_every_engine_checks_its_input_first(qnet, engine, x, message):
    # Before: pysim ran a [1, 16] input as a batch of one flat vector.
    config = "icebreaker" if engine in ("board", "postsynth") else None
    with pytest.raises(ValueError, match=message):
        run_network(qnet, x, engine=engine, port=Untouchable(), config=config)


@pytest.mark.parametrize("engine", ["golden", "pysim"])
@pytest.mark.parametrize("x,message", BAD)
def test_run_network_rejects_bad_input_with_its_source(qnet, engine, x, message):
    message = message.replace("^input", "^input data/x.npy")
    with pytest.raises(ValueError, match=message):
        run_network(qnet, x, engine=engine, source="data/x.npy")


def test_run_network_checks_once_and_reports_saturation(qnet, monkeypatch):
    calls = []
    real_check = diannao.sim.runtime.inputs.check_input

    def counting(*args, **kwargs):
        calls.append(args)
        return real_check(*args, **kwargs)

    monkeypatch.setattr(diannao.sim.runtime.inputs, "check_input", counting)
    x = np.random.default_rng(4).uniform(-1, 1, (3, 1, 4, 4))
    x[2, 0, 1, 1] = 1000.0
    got = run_network(qnet, x, engine="golden")
    assert len(calls) == 1
    assert isinstance(got, RunResult) and got.saturated == 1 and got.input.source == "input"
    x_q = qnet.quantize_input(x)
    want = run_network(qnet, x_q.astype(np.int16), engine="golden")
    assert want.saturated == 0
    assert np.array_equal(got.outputs, want.outputs) and np.array_equal(got.outputs, qnet.run(x_q))
    assert got.outputs.shape == (3, 3)
    single = run_network(qnet, x_q[0], engine="golden", intermediates=True)
    assert single.outputs.shape == (3,) and single.layer_outputs[0].shape == (2, 4, 4)
    with pytest.raises(ValueError, match=r"value 1000.0 at index \[2, 0, 1, 1\]"):
        run_network(qnet, x, engine="golden", strict=True)
