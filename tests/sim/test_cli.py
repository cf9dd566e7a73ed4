"""The diannao command: run, demo, engines and error reporting."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim.cli import main
from sim.engines import run_network

DIANNAO = Path(sys.executable).with_name("diannao")

# A hand-written network: conv 1->2 (3x3, pad 1, relu), maxpool 2, fc 8->3 (tanh).
CONV_W = [[[[0.5, -0.25, 0.0], [0.125, 1.0, -0.5], [0.0, 0.25, 0.75]]],
          [[[-1.0, 0.5, 0.25], [0.0, -0.125, 0.5], [0.25, 0.0, -0.25]]]]
CONV_B = [0.1, -0.05]
FC_W = [[0.3, -0.2, 0.1, 0.0, 0.5, -0.4, 0.2, 0.1],
        [-0.1, 0.2, 0.3, -0.3, 0.0, 0.1, -0.2, 0.4],
        [0.05, 0.05, -0.5, 0.25, 0.125, 0.0, 0.3, -0.1]]
FC_B = [0.0, 0.2, -0.1]


def write_network(tmp_path):
    doc = {"format": "diannao-network", "version": 1, "input_shape": [1, 4, 4],
           "layers": [{"type": "conv", "kernel": 3, "out_channels": 2, "pad": 1,
                       "activation": "relu", "weights": CONV_W, "bias": CONV_B},
                      {"type": "maxpool", "size": 2},
                      {"type": "fc", "out_features": 3, "activation": "tanh",
                       "weights": FC_W, "bias": FC_B}]}
    path = tmp_path / "net.json"
    path.write_text(json.dumps(doc))
    return path


def independent_float(x):
    """Plain-loop float forward pass of the hand-written network, one sample."""
    w, b = np.array(CONV_W), np.array(CONV_B)
    xp = np.pad(x[0], 1)
    conv = np.array([[[max(0.0, b[o] + sum(w[o, 0, i, j] * xp[y + i, z + j]
                                           for i in range(3) for j in range(3)))
                       for z in range(4)] for y in range(4)] for o in range(2)])
    pooled = conv.reshape(2, 2, 2, 2, 2).max(axis=(2, 4)).reshape(-1)
    return np.tanh(np.array(FC_W) @ pooled + np.array(FC_B))


def test_run_golden_matches_independent_float(tmp_path, capsys):
    net = write_network(tmp_path)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (5, 1, 4, 4))
    np.save(tmp_path / "x.npy", x)
    argv = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy"), "--engine", "golden",
            "--out", str(tmp_path / "y.npy"), "--float-out", str(tmp_path / "f.npy"),
            "--intermediates", str(tmp_path / "layers")]
    assert main(argv) == 0
    assert "Q7.8" in capsys.readouterr().out
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.int16 and y.shape == (5, 3)
    want = np.array([independent_float(s) for s in x])
    np.testing.assert_allclose(np.load(tmp_path / "f.npy"), want, atol=1e-12)
    # documented error (docs/numbers.md): error_bound of this net; loose stated value 0.05
    from golden.network import load
    from golden.quant import error_bound, quantize
    bound = error_bound(load(net), quantize(load(net)), x)
    assert np.all(np.abs(y / 256.0 - want).max(axis=1) <= bound)
    assert np.all(bound <= 0.05)
    files = sorted(p.name for p in (tmp_path / "layers").iterdir())
    assert files == ["layer00_conv.npy", "layer01_maxpool.npy", "layer02_fc.npy"]
    assert np.array_equal(np.load(tmp_path / "layers" / "layer02_fc.npy"), y)


def test_run_int16_input_is_taken_as_quantized(tmp_path):
    net = write_network(tmp_path)
    x = np.random.default_rng(1).uniform(-1, 1, (1, 4, 4))
    x_q = np.floor(x * 256 + 0.5).astype(np.int16)
    np.save(tmp_path / "xf.npy", x)
    np.save(tmp_path / "xq.npy", x_q)
    for name in ("xf", "xq"):
        assert main(["run", "--network", str(net), "--input", str(tmp_path / f"{name}.npy"),
                     "--out", str(tmp_path / f"{name}_y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "xf_y.npy"), np.load(tmp_path / "xq_y.npy"))
    assert np.load(tmp_path / "xf_y.npy").shape == (3,)


def test_run_pysim_equals_golden_with_report_and_vcd(tmp_path, capsys):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.random.default_rng(2).uniform(-1, 1, (2, 1, 4, 4)))
    common = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy")]
    assert main(common + ["--engine", "golden", "--out", str(tmp_path / "g.npy")]) == 0
    assert main(common + ["--engine", "pysim", "--config", "small", "--out",
                          str(tmp_path / "p.npy"), "--vcd", str(tmp_path / "w.vcd")]) == 0
    out = capsys.readouterr().out
    assert np.array_equal(np.load(tmp_path / "g.npy"), np.load(tmp_path / "p.npy"))
    assert "RTL cycle counter" in out and "equal" in out and "DIFFERENT" not in out
    assert (tmp_path / "w.vcd").stat().st_size > 0 and (tmp_path / "w.gtkw").exists()


def test_board_engine_needs_a_port(tmp_path, capsys):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
                 "--engine", "board", "--out", str(tmp_path / "y.npy")]) == 2
    assert "engine 'board' needs --port" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown engine 'foo'"):
        run_network(None, None, engine="foo")


@pytest.mark.parametrize("content,message", [
    ('{"format": "diannao-network", "version": 1,,}', "invalid JSON at line 1 column"),
    (None, "No such file"),
    ('{"format": "diannao-network", "version": 1, "input_shape": [4], "layers": '
     '[{"type": "fc", "out_features": 1, "weights": [[1, 2, 3]], "bias": [0]}]}',
     "layer 0 (fc), field 'weights'"),
])
def test_bad_file_exits_2_without_traceback(tmp_path, content, message):
    net = tmp_path / "bad.json"
    if content is not None:
        net.write_text(content)
    np.save(tmp_path / "x.npy", np.zeros(4))
    proc = subprocess.run([str(DIANNAO), "run", "--network", str(net), "--input",
                           str(tmp_path / "x.npy"), "--out", str(tmp_path / "y.npy")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("diannao: error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_demo(capsys):
    # The demo exits non-zero when the RTL differs from golden on any image.
    assert main(["demo", "--limit", "4"]) == 0
    out = capsys.readouterr().out
    assert "mlp" in out and "cnn" in out and "Q7.8" in out and "4 images" in out
    assert out.count("  yes") == 2 and "DIFFERENT" not in out


def test_demo_golden_only_full_test_set(capsys):
    assert main(["demo", "--engine", "golden", "--limit", "0"]) == 0
    assert "360 images" in capsys.readouterr().out
