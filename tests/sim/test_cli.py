"""The diannao command: run, demo, engines and error reporting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from diannao.sim.cli import main
from diannao.sim.compiler.program import CompileError
from diannao.sim.engines.registry import ENGINES, run_network
from diannao.sim.runtime.run import Engine

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
    from diannao.golden.network import load
    from diannao.golden.quant import error_bound, quantize
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
    x = np.random.default_rng(2).uniform(-1, 1, (2, 1, 4, 4))
    x[1, 0, 2, 3], x[0, 0, 0, 1] = 300.0, -1e4       # saturate at Q7.8, on both engines
    np.save(tmp_path / "x.npy", x)
    common = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy")]
    warning = (f"diannao: warning: input {tmp_path / 'x.npy'}: 2 values outside Q7.8 "
               f"[-128, 127.996] saturated (--strict makes this an error)\n")
    assert main(common + ["--engine", "golden", "--out", str(tmp_path / "g.npy")]) == 0
    assert capsys.readouterr().err == warning
    assert main(common + ["--engine", "pysim", "--config", "small", "--out",
                          str(tmp_path / "p.npy"), "--vcd", str(tmp_path / "sub" / "w.vcd")]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert captured.err == warning
    assert np.array_equal(np.load(tmp_path / "g.npy"), np.load(tmp_path / "p.npy"))
    assert "RTL cycle counter" in out and "equal" in out and "DIFFERENT" not in out
    assert (tmp_path / "sub" / "w.vcd").stat().st_size > 0
    assert (tmp_path / "sub" / "w.gtkw").exists()


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


# -- one input check for every engine ---------------------------------------------------

def nan_at_0_2_1():
    x = np.zeros((1, 4, 4))
    x[0, 2, 1] = np.nan
    return x


def inf_in_batch():
    x = np.zeros((3, 1, 4, 4), dtype=np.float32)
    x[2, 0, 3, 0] = -np.inf
    return x


def int_out_of_range():
    x = np.zeros((1, 4, 4), dtype=np.int32)
    x[0, 1, 2] = 40000
    return x


BAD_INPUTS = [
    ("flat", np.zeros((1, 16)),
     " has shape [1, 16]; expected [1, 4, 4] or [batch, 1, 4, 4]"),
    ("no_channel", np.zeros((2, 4, 4)),
     " has shape [2, 4, 4]; expected [1, 4, 4] or [batch, 1, 4, 4]"),
    ("nan", nan_at_0_2_1(), ": value nan at index [0, 2, 1]; inputs must be finite"),
    ("inf", inf_in_batch(), ": value -inf at index [2, 0, 3, 0]; inputs must be finite"),
    ("int", int_out_of_range(),
     " holds 40000 at index [0, 1, 2], outside int16 [-32768, 32767]; integer inputs are "
     "taken as already-quantized int16 values"),
    ("bool", np.ones((1, 4, 4), dtype=bool), " has dtype bool; expected float or integer"),
    ("empty", np.zeros((0, 1, 4, 4)), " has shape [0, 1, 4, 4], an empty batch"),
]


@pytest.mark.parametrize("engine", ["golden", "pysim"])
@pytest.mark.parametrize("name,x,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_is_a_user_error_naming_the_file(tmp_path, capsys, engine, name, x, message):
    # Before: pysim ran [1, 16] as one flat sample (exit 0), failed on [2, 4, 4] with
    # "a neuron tensor must be ...", and NaN gave "to_fixed input must be finite, got nan".
    net = write_network(tmp_path)
    path = tmp_path / f"{name}.npy"
    np.save(path, x)
    assert main(["run", "--network", str(net), "--input", str(path), "--engine", engine,
                 "--out", str(tmp_path / "y.npy")]) == 2
    assert capsys.readouterr().err == f"diannao: error: input {path}{message}\n"
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("engine", ["golden", "pysim"])
def test_bad_input_exits_2_without_traceback(tmp_path, engine):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 16)))
    proc = subprocess.run([str(DIANNAO), "run", "--network", str(net), "--input",
                           str(tmp_path / "x.npy"), "--engine", engine, "--out",
                           str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr == (f"diannao: error: input {tmp_path / 'x.npy'} has shape [1, 16]; "
                           f"expected [1, 4, 4] or [batch, 1, 4, 4]\n")
    assert proc.stdout == ""


def test_saturated_inputs_are_counted_and_strict_rejects_them(tmp_path, capsys):
    net = write_network(tmp_path)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 1, 4, 4))
    x[0, 0, 1, 2], x[1, 0, 0, 0], x[1, 0, 3, 3] = 200.0, -129.0, 1e6
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "clipped.npy", np.clip(x, -128, 255 / 2))
    common = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy")]
    assert main(common + ["--out", str(tmp_path / "y.npy")]) == 0
    assert capsys.readouterr().err == (
        f"diannao: warning: input {tmp_path / 'x.npy'}: 3 values outside Q7.8 "
        f"[-128, 127.996] saturated (--strict makes this an error)\n")
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "clipped.npy"),
                 "--out", str(tmp_path / "c.npy")]) == 0
    assert capsys.readouterr().err == ""
    assert np.array_equal(np.load(tmp_path / "y.npy"), np.load(tmp_path / "c.npy"))
    assert main(common + ["--strict", "--out", str(tmp_path / "s.npy")]) == 2
    assert capsys.readouterr().err == (
        f"diannao: error: input {tmp_path / 'x.npy'}: value 200.0 at index [0, 0, 1, 2] is "
        f"outside Q7.8 [-128, 127.996] and would saturate (3 values in all); strict inputs "
        f"must fit the input format\n")
    assert not (tmp_path / "s.npy").exists()
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "clipped.npy"),
                 "--strict", "--out", str(tmp_path / "s.npy")]) == 0


@pytest.fixture
def no_simulation(monkeypatch):
    """Make every engine fail the test if it is reached."""
    class Unreachable(Engine):
        def run(self, *args, **kwargs):
            pytest.fail(f"engine {self.name} ran although the command should have stopped")

    for name in list(ENGINES):
        def make(_name=name, **options):
            engine = Unreachable()
            engine.name = _name
            return engine
        monkeypatch.setitem(ENGINES, name, make)


def test_strict_stops_before_the_engine(tmp_path, capsys, no_simulation):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.full((1, 4, 4), 128.0))
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"), "--strict",
                 "--engine", "pysim", "--out", str(tmp_path / "y.npy")]) == 2
    assert "value 128.0 at index [0, 0, 0] is outside Q7.8" in capsys.readouterr().err


@pytest.mark.parametrize("option,value,message", [
    ("--out", "{tmp}/missing/y.npy", "directory {tmp}/missing does not exist"),
    ("--out", "{tmp}/adir.npy", "{tmp}/adir.npy is a directory"),
    ("--out", "{tmp}/afile/y.npy", "{tmp}/afile is not a directory"),
    ("--float-out", "{tmp}/missing/f.npy", "directory {tmp}/missing does not exist"),
    ("--float-out", "{tmp}/adir", "{tmp}/adir.npy is a directory"),
    ("--intermediates", "{tmp}/afile", "{tmp}/afile is not a directory"),
    ("--intermediates", "{tmp}/afile/layers", "{tmp}/afile is not a directory"),
    ("--vcd", "{tmp}/adir.npy", "{tmp}/adir.npy is a directory"),
    ("--vcd", "{tmp}/afile/new/w.vcd", "{tmp}/afile is not a directory"),
])
def test_output_paths_are_checked_before_simulation(tmp_path, capsys, no_simulation, option,
                                                    value, message):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    (tmp_path / "adir.npy").mkdir()
    (tmp_path / "afile").write_text("")
    value, message = value.format(tmp=tmp_path), message.format(tmp=tmp_path)
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
                 "--engine", "pysim", "--out", str(tmp_path / "y.npy"), option, value]) == 2
    assert capsys.readouterr().err == f"diannao: error: {option} {value}: {message}\n"
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "missing").exists()


def test_bad_out_reported_before_simulation_in_a_subprocess(tmp_path):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    assert not Path("/nonexistent").exists()
    proc = subprocess.run([str(DIANNAO), "run", "--network", str(net), "--input",
                           str(tmp_path / "x.npy"), "--engine", "pysim",
                           "--out", "/nonexistent/y.npy"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("diannao: error: --out /nonexistent/y.npy: directory /nonexistent "
                           "does not exist\n")
    assert "RTL cycle counter" not in proc.stdout


def test_unwritable_out_directory(tmp_path, capsys, monkeypatch, no_simulation):
    # The permission bits do not stop root (CI), so the directory is made unwritable for
    # the check itself: os.access says no for it.
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: Path(p) != locked and access(p, mode))
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
                 "--out", str(locked / "y.npy")]) == 2
    assert capsys.readouterr().err == (
        f"diannao: error: --out {locked / 'y.npy'}: directory {locked} is not writable\n")


def test_out_without_suffix_is_checked_and_named_as_written(tmp_path, capsys):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    (tmp_path / "y").mkdir()            # np.save writes y.npy, which is free
    assert main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y")]) == 0
    assert f"-> {tmp_path / 'y.npy'}" in capsys.readouterr().out
    assert np.load(tmp_path / "y.npy").shape == (3,)


@pytest.mark.parametrize("exc,status,line", [
    (RuntimeError("boom"), 1,
     "diannao: internal error: RuntimeError: boom; run with --debug for the traceback"),
    (KeyError("k"), 1,
     "diannao: internal error: KeyError: 'k'; run with --debug for the traceback"),
    (AssertionError("first\n  second"), 1,
     "diannao: internal error: AssertionError: first second; run with --debug for the "
     "traceback"),
    (CompileError("layer 0 (conv): too big"), 2, "diannao: error: layer 0 (conv): too big"),
    (OSError("disk full"), 2, "diannao: error: disk full"),
])
def test_errors_are_one_line(tmp_path, capsys, monkeypatch, exc, status, line):
    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setitem(ENGINES, "golden", fail)
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    argv = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "y.npy")]
    assert main(argv) == status
    assert capsys.readouterr().err == line + "\n"
    with pytest.raises(type(exc)):
        main(["--debug"] + argv)


INTERNAL_ERROR = """\
import sys
import diannao.sim.engines.registry

def boom(*args, **kwargs):
    raise RuntimeError("boom")

diannao.sim.engines.registry.ENGINES["golden"] = boom
from diannao.sim.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_debug_shows_the_traceback(tmp_path):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    argv = ["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "y.npy")]
    plain = subprocess.run([sys.executable, "-c", INTERNAL_ERROR] + argv,
                           capture_output=True, text=True)
    assert plain.returncode == 1
    assert plain.stderr == ("diannao: internal error: RuntimeError: boom; run with --debug "
                            "for the traceback\n")
    debug = subprocess.run([sys.executable, "-c", INTERNAL_ERROR, "--debug"] + argv,
                           capture_output=True, text=True)
    assert debug.returncode == 1
    assert debug.stderr.startswith("Traceback (most recent call last):")
    assert debug.stderr.rstrip().endswith("RuntimeError: boom")
    assert "in boom" in debug.stderr


@pytest.mark.parametrize("option,value,message", [
    ("--config", "nope", "'nope' is neither a preset"),
    ("--config", "missing.json", "No such file"),
    ("--clock-mhz", "0", "'0': the clock must be above 0 MHz"),
    ("--clock-mhz", "inf", "'inf': the clock must be above 0 MHz"),
])
def test_bad_config_and_clock_options(tmp_path, capsys, option, value, message):
    net = write_network(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((1, 4, 4)))
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--network", str(net), "--input", str(tmp_path / "x.npy"),
              "--out", str(tmp_path / "y.npy"), option, value])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and message in err


def test_networks_lists_the_built_in_networks(capsys, monkeypatch):
    # The statistics only: compiling every network takes half a minute and 4 GB (the
    # presets column is tested on small networks below).
    import diannao.sim.cli as cli
    monkeypatch.setattr(cli, "runs_on", lambda names: (
        (name, {"small": "not compiled in this test"}) for name in names))
    assert main(["networks"]) == 0
    out = capsys.readouterr().out
    # The published parameter counts: VGG-16 138,357,544 (15.47 G MACs); AlexNet without its
    # two-GPU groups 62,378,344 (convolutions 3,747,200, fc 58,631,144).
    assert "vgg16" in out and "138,357,544" in out and "15,470,264,320" in out
    assert "alexnet" in out and "62,378,344" in out
    assert "digits-mlp" in out and "digits-cnn" in out


def presets_column(out):
    """``{name: [presets]}`` from the ``runs on`` column of ``diannao networks``."""
    lines = out.splitlines()
    start, end = lines[0].index("runs on"), lines[0].index("description")
    return {line.split()[0]: line[start:end].split()[0].split(",")
            for line in lines[1:] if line[:1].strip() and not line.startswith("(")}


def test_networks_shows_the_presets_that_run_each(capsys):
    """The digits MLP runs on every preset (the boards' tests run it on iCEBreaker and
    ULX3S); Tonic DIG's weights stream on DianNao's; LeNet-5's 32x32 maps do not fit
    iCEBreaker's NM, and -v prints the compiler's
    reason under the row, one line per preset that does not run it."""
    assert main(["networks", "digits-mlp", "tonic-dig", "-v"]) == 0
    out = capsys.readouterr().out
    column = presets_column(out)
    assert column == {"digits-mlp": ["diannao", "dadiannao", "small", "ulx3s", "icebreaker"],
                      "tonic-dig": ["diannao", "dadiannao"]}
    reasons = [line for line in out.splitlines() if line.startswith("    not on ")]
    assert [line.split(":")[0].split()[-1] for line in reasons] == \
        ["small", "ulx3s", "icebreaker"]
    assert ("    not on icebreaker: layer 0 (conv): NM needs 3376 rows for its input (1024 "
            "rows) and output (2352 rows), but has 512 (nm_depth)") in reasons
    # Without -v the reasons are not printed; an unknown name is a user error naming it.
    assert main(["networks", "tonic-dig"]) == 0
    out = capsys.readouterr().out
    assert presets_column(out) == {"tonic-dig": ["diannao", "dadiannao"]}
    assert "    not on " not in out
    assert main(["networks", "resnet"]) == 2
    assert "unknown network 'resnet'" in capsys.readouterr().err


def test_run_a_built_in_network_by_name_without_input_or_out(tmp_path, capsys):
    plot = tmp_path / "util.png"
    assert main(["run", "--network", "digits-cnn", "--engine", "model", "--config", "small",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "no --input given: a seeded random input [1, 8, 8]" in out
    assert "cycle model: golden values, model cycles" in out and "bound" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_network_names_the_choices(capsys):
    assert main(["run", "--network", "resnet", "--engine", "model"]) == 2
    err = capsys.readouterr().err
    assert "unknown network 'resnet': neither a file nor a built-in network" in err
    assert "alexnet" in err


def test_calib_chooses_the_formats_from_data(tmp_path, capsys):
    """``--calib``: the fraction bits come from the calibration inputs' pre-activations
    (golden.quant.quantize(calib=...)): a layer whose outputs reach about 500 gets fewer
    than the default 8 (Q7.8 ends at 128), and the run says so."""
    from diannao.golden.network import FC, Network
    from diannao.golden.quant import quantize
    rng = np.random.default_rng(1)
    net = Network((16,), [FC(rng.normal(0, 60, (4, 16)), np.zeros(4))])
    net.save(tmp_path / "net.json")
    calib = rng.uniform(-1, 1, (20, 16))
    np.save(tmp_path / "calib.npy", calib)
    x = rng.uniform(-1, 1, (3, 16))
    np.save(tmp_path / "x.npy", x)
    assert main(["run", "--network", str(tmp_path / "net.json"), "--calib",
                 str(tmp_path / "calib.npy"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    assert "calibration: " in capsys.readouterr().out
    qnet = quantize(net, calib=calib)
    assert qnet.layers[0].out_frac < quantize(net).layers[0].out_frac == 8
    assert np.array_equal(np.load(tmp_path / "y.npy"), qnet.run(qnet.quantize_input(x)))
