"""The ``diannao`` console command.

Each subcommand lives in a ``_cmd_<name>`` function registered by
:func:`build_parser`; new subcommands (verilog, wave, build, bench, faults) add a
parser there.  Errors a user can fix (bad files, bad values: ``ValueError``
and ``OSError``) are printed as ``diannao: error: <message>`` with exit
status 2 and no traceback; any other exception is an internal error, printed
on one line with exit status 1 (``diannao --debug ...`` shows the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from diannao.boards import build
from diannao.golden.formats import q_name
from diannao.golden.network import load
from diannao.golden.quant import quantize, run_float
from diannao.hw.config import PRESETS, load_config
from diannao.sim.engines import verilog
from diannao.sim.engines.registry import engine_names, run_network
from diannao.sim.runtime.report import plot_report, plot_roofline
from diannao.sim.runtime.host import RunBudgetError
from diannao.sim.runtime.inputs import load_array
from diannao.sim.tools import bench, digits, link_faults, waveforms
from diannao.sim.tools.onnx_import import import_onnx
from diannao.sim.tools.workloads import (WORKLOADS, load_workload, random_input, runs_on,
                                         workload_names)

__all__ = ["main", "build_parser"]

PROG = "diannao"


def _config_arg(value):
    """``--config``: a preset's name, or a :class:`hw.config.Config` read from a JSON file."""
    if value in PRESETS:
        return value
    if value.endswith(".json") or Path(value).is_file():
        try:
            return load_config(value)
        except (OSError, ValueError) as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    raise argparse.ArgumentTypeError(f"{value!r} is neither a preset ({', '.join(sorted(PRESETS))}) "
                                     f"nor a JSON file")


def _positive_mhz(value):
    """``--clock-mhz``: a finite frequency above 0."""
    try:
        mhz = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    if not 0 < mhz < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r}: the clock must be above 0 MHz")
    return mhz


def _npy_path(path):
    """The file :func:`numpy.save` writes for ``path`` (it appends ``.npy`` if missing)."""
    path = str(path)
    return path if path.endswith(".npy") else path + ".npy"


def _check_writable_dir(option, value, directory, *, create):
    """Raise ValueError unless files can be written in ``directory``.

    With ``create`` the directory may be missing (it will be made with its parents); then
    its nearest existing ancestor must be a writable directory.
    """
    directory = Path(directory)
    if create:
        while not directory.exists() and directory != directory.parent:
            directory = directory.parent
    elif not directory.exists():
        raise ValueError(f"{option} {value}: directory {directory} does not exist")
    if not directory.is_dir():
        raise ValueError(f"{option} {value}: {directory} is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {value}: directory {directory} is not writable")


def _check_output_file(option, value, path, *, create_parent=False):
    """Raise ValueError unless the file ``path`` (given as ``option value``) can be written."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {value}: {path} is a directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"{option} {value}: {path} is not writable")
    _check_writable_dir(option, value, path.parent, create=create_parent)


def _check_run_outputs(args):
    """Check every output path of ``diannao run`` before anything is simulated.

    Raises
    ------
    ValueError
        Naming the option and path: a missing or unwritable directory, a path that is a
        directory (or, for ``--intermediates``, one that is not).
    """
    if args.out:
        _check_output_file("--out", args.out, _npy_path(args.out))
    if args.plot:
        _check_output_file("--plot", args.plot, Path(args.plot), create_parent=True)
    if args.float_out:
        _check_output_file("--float-out", args.float_out, _npy_path(args.float_out))
    if args.intermediates:
        out_dir = Path(args.intermediates)
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"--intermediates {args.intermediates}: {out_dir} is not a "
                             f"directory")
        _check_writable_dir("--intermediates", args.intermediates, out_dir, create=True)
    if args.vcd:
        vcd = Path(args.vcd)
        _check_output_file("--vcd", args.vcd, vcd, create_parent=True)
        _check_output_file("--vcd", args.vcd, vcd.with_suffix(".gtkw"), create_parent=True)


def _load_network(name):
    """``--network``: a network file (ours, or an ONNX model), or the name of a built-in
    network; ``(network, host_softmax)``."""
    if name.endswith(".onnx"):
        imported = import_onnx(name)
        return imported.network, imported.host_softmax
    if Path(name).exists() or name.endswith(".json"):
        return load(name), False
    return load_workload(name), False


def _softmax(y):
    """Softmax over the last axis (the host's part of an imported model)."""
    e = np.exp(y - y.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cmd_run(args):

    _check_run_outputs(args)
    net, host_softmax = _load_network(args.network)
    if args.calib:
        calib = load_array(args.calib)
        qnet = quantize(net, calib=calib)
        print(f"calibration: {args.calib}: each layer's fraction bits chosen from its largest "
              f"pre-activation over {len(calib) if calib.ndim > len(net.input_shape) else 1} "
              f"samples")
    else:
        qnet = quantize(net)
    if args.input is None:
        x, source = random_input(net), "a seeded random input"
        print(f"input: no --input given: a seeded random input {list(net.input_shape)}, "
              f"uniform in [-1, 1) (seed 0)")
    else:
        x, source = load_array(args.input), args.input
    result = run_network(qnet, x, engine=args.engine, source=source, strict=args.strict,
                         config=args.config, intermediates=bool(args.intermediates), vcd=args.vcd, clock_mhz=args.clock_mhz,
                         progress=sys.stderr.isatty(), port=args.port)
    if result.saturated:
        print(f"{PROG}: warning: {result.input.saturation_note} (--strict makes this an error)",
              file=sys.stderr)
    y, per_layer = result.outputs, result.layer_outputs
    saved = ""
    if args.out:
        out = _npy_path(args.out)
        np.save(out, y.astype(np.int16))
        saved = f" -> {out}"
    print(f"output {list(y.shape)} int16 in {q_name(qnet.output_frac)} "
          f"(value = int / 2**{qnet.output_frac}){saved}")
    rtl_differs = False
    if args.engine not in ("golden", "model"):
        golden = result.input.unbatch(np.stack([qnet.run(x) for x in result.input.batch]))
        rtl_differs = not np.array_equal(y, golden)
        print(f"RTL output == golden model, bit for bit: {'NO' if rtl_differs else 'yes'}")
    if host_softmax:
        p = _softmax(qnet.dequantize_output(y))
        top = np.argmax(p, axis=-1)
        print(f"host: the model's final Softmax, applied to the output on the host (float): "
              f"class {top.tolist()} with probability "
              f"{np.round(np.take_along_axis(p, top[..., None], -1)[..., 0], 4).tolist()}")
    if args.float_out:
        float_out = _npy_path(args.float_out)
        np.save(float_out, run_float(net, result.input.real))
        print(f"float reference -> {float_out}")
    if args.intermediates:
        out_dir = Path(args.intermediates)
        out_dir.mkdir(parents=True, exist_ok=True)
        for q, a in zip(qnet.layers, per_layer):
            np.save(out_dir / f"layer{q.index:02d}_{q.kind}.npy", a)
        print(f"{len(per_layer)} per-layer outputs -> {out_dir}/")
    if result.report is not None:
        print(result.report.format())
        if args.plot:
            plot_report(result.report, args.plot)
            print(f"plot -> {args.plot}")
            if any(l.mem_bytes for l in result.report.layers):
                roof = Path(args.plot).with_name(Path(args.plot).stem + "_roofline.png")
                plot_roofline(result.report, roof)
                print(f"roofline -> {roof}")
    elif args.plot:
        print(f"{PROG}: warning: --plot: the golden engine has no report; use --engine model",
              file=sys.stderr)
    if args.vcd:
        print(f"waveform -> {args.vcd} (GTKWave save file: {Path(args.vcd).with_suffix('.gtkw')})")
    if rtl_differs:
        print(f"{PROG}: the RTL's output differs from the golden model's", file=sys.stderr)
        return 1
    return 0


def _cmd_import(args):
    imported = import_onnx(args.model)
    out = Path(args.output)
    _check_output_file("-o", args.output, out, create_parent=True)
    imported.network.save(out)
    kinds = ", ".join(layer.kind for layer in imported.network.layers)
    print(f"{args.model}: {len(imported.network.layers)} layers ({kinds}), input "
          f"{list(imported.network.input_shape)} -> {out}")
    if imported.host_softmax:
        print("the model's final Softmax is not a layer of the accelerator: the host applies "
              "it (diannao run does, and says so)")
    return 0


def _cmd_networks(args):

    names = args.names or workload_names()
    rows = runs_on(names)       # checks the names before anything is printed
    width = len(",".join(PRESETS))
    print(f"{'name':14} {'layers':>6} {'parameters':>13} {'MACs':>17}  {'paper':>12}  "
          f"{'runs on':{width}}  description", flush=True)
    for name, reasons in rows:
        w = WORKLOADS[name]
        layers, params, macs = w.stats()
        paper = f"{w.paper[0]}, {w.paper[1]}" if w.paper else ""
        fits = ",".join(p for p, reason in reasons.items() if reason is None) or "-"
        print(f"{name:14} {layers:>6} {params:>13,} {macs:>17,}  {paper:>12}  {fits:{width}}  "
              f"{w.description}", flush=True)
        if args.verbose:
            for preset_name, reason in reasons.items():
                if reason is not None:
                    print(f"    not on {preset_name}: {reason}", flush=True)
    print("(diannao run --network NAME: a built-in network by name; MACs of conv and fc; "
          "paper: layers and parameters in the Tonic suite's Table 1, which counts every "
          "Caffe layer; runs on: the presets (--config) on which the compiler accepts the "
          "network as diannao run quantizes it, -v says why not on the others)")
    return 0


def _format_layer(q):

    geom = f"{list(q.in_shape)} -> {list(q.out_shape)}"
    text = f"  layer {q.index} {q.kind:7s} {geom:24s} in {q_name(q.in_frac)}"
    if q.w_q is None:
        return text + f"  out {q_name(q.out_frac)}"
    return (text + f"  w {q_name(q.w_frac)}  b {q_name(q.b_frac)}  out {q_name(q.out_frac)}"
            f"  shift {q.shift}  bias_exp {q.bias_exp}  {q.activation}")


def _cmd_demo(args):

    rows, reports = [], []
    for name in digits.NETWORK_NAMES:
        net = digits.load_network(name)
        qnet = quantize(net)
        x, labels = digits.load_test_set(net.input_shape)
        if args.limit:
            x, labels = x[:args.limit], labels[:args.limit]
        x_q = qnet.quantize_input(x)
        acc_float = digits.accuracy(run_float(net, x), labels)
        golden = run_network(qnet, x_q, engine="golden")
        acc_golden = digits.accuracy(golden.outputs, labels)
        # Fraction bits from the training images' pre-activations instead of the worst case.
        calibrated = quantize(net, calib=digits.load_split()[0].reshape(
            (-1,) + tuple(net.input_shape)))
        acc_calib = digits.accuracy(calibrated.run(calibrated.quantize_input(x)), labels)
        row = [name, acc_float, acc_golden, None, None, qnet, acc_calib]
        if args.engine != "golden":
            print(f"{name}: {len(x)} images on the {args.config} node ({args.engine})...",
                  file=sys.stderr)
            t0 = time.time()
            rtl = run_network(qnet, x_q, engine=args.engine, config=args.config,
                              progress=True, clock_mhz=args.clock_mhz)
            row[3] = digits.accuracy(rtl.outputs, labels)
            row[4] = bool(np.array_equal(rtl.outputs, golden.outputs))
            reports.append((name, rtl.report, time.time() - t0, len(x)))
        rows.append(row)
    print(f"digits test set: {len(labels)} images (sklearn load_digits, fixed split; "
          f"--limit 0 for all 360)")
    print(f"  {'network':8s} {'float':>8s} {'golden':>8s} {'RTL':>8s}  RTL == golden (bit for "
          f"bit)  golden calibrated (--calib: training images)")
    for name, acc_float, acc_golden, acc_rtl, same, _, acc_calib in rows:
        rtl = "-" if acc_rtl is None else f"{100 * acc_rtl:7.2f}%"
        print(f"  {name:8s} {100 * acc_float:7.2f}% {100 * acc_golden:7.2f}% {rtl:>8s}  "
              f"{'-' if same is None else ('yes' if same else 'NO'):>28s}  "
              f"{100 * acc_calib:7.2f}%")
    for name, _, _, _, _, qnet, _ in rows:
        print(f"{name} layer formats:")
        for q in qnet.layers:
            print(_format_layer(q))
    for name, report, seconds, n in reports:
        print(f"{name}: ", end="")
        print(report.format())
        print(f"  simulated {n} x {report.rtl_cycles:,} cycles in {seconds:.1f} s "
              f"({n * report.rtl_cycles / seconds:,.0f} cycles/s)")
    return 0 if all(r[4] in (None, True) for r in rows) else 1


def _cmd_bench(args):
    return bench.main()


def _rtl_options(p, config_default="small"):
    default = ("the engine's: small for the simulators, dadiannao for the model"
               if config_default is None else config_default)
    p.add_argument("--config", default=config_default, type=_config_arg,
                   metavar="NAME|FILE.json",
                   help=f"node configuration: a preset ({', '.join(sorted(PRESETS))}; default "
                        f"{default}) or a JSON file of Config fields")
    p.add_argument("--clock-mhz", type=_positive_mhz, default=None,
                   help="clock for the throughput column of the report (default: 1000 for "
                        "the simulators, the board's clock for a board)")
    p.add_argument("--port", help="serial port of a board (engine 'board')")


def build_parser():
    """The argument parser with every subcommand."""

    parser = argparse.ArgumentParser(
        prog=PROG, description="DianNao/DaDianNao accelerator model: golden model and tools")
    parser.add_argument("--debug", action="store_true",
                        help="let errors through with their Python traceback")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a network on an input with an engine")
    p.add_argument("--network", required=True,
                   help="network JSON file, an ONNX model (.onnx), or a built-in network "
                        "(diannao networks)")
    p.add_argument("--input",
                   help=".npy input: float (quantized at the input format) or int16 "
                        "(already quantized); one sample or a batch (default: a seeded "
                        "random input)")
    p.add_argument("--engine", default="golden", choices=engine_names(),
                   help="golden (values only), model (golden values, model cycles), pysim, "
                        "verilator, icarus, board")
    p.add_argument("--out", help="output .npy (int16)")
    p.add_argument("--plot", metavar="FILE.png",
                   help="plot each layer's utilization and what bounds it; with weights "
                        "streamed from main memory also a roofline (FILE_roofline.png)")
    p.add_argument("--float-out", help="also write the float reference output (.npy)")
    p.add_argument("--intermediates", metavar="DIR",
                   help="write each layer's int16 output to DIR (the program then keeps every "
                        "layer's output in NM instead of reusing dead tensors' rows)")
    p.add_argument("--strict", action="store_true",
                   help="reject float inputs outside the input format (default: saturate "
                        "them and print how many)")
    p.add_argument("--calib", metavar="X.npy",
                   help="float inputs (one sample or a batch) that choose each layer's "
                        "fraction bits from the pre-activations they reach (default: from "
                        "the weights' worst case)")
    _rtl_options(p, config_default=None)
    p.add_argument("--vcd", metavar="FILE", help="RTL engines: write a VCD (and a .gtkw beside it)")
    p.set_defaults(func=_cmd_run)

    verilog.add_subcommand(sub)
    waveforms.add_subcommand(sub)
    build.add_subcommand(sub)
    p = sub.add_parser("import", help="an ONNX model -> our network format (JSON and .npz)")
    p.add_argument("model", help="the .onnx file")
    p.add_argument("-o", "--output", required=True, help="network JSON file to write")
    p.set_defaults(func=_cmd_import)

    p = sub.add_parser("networks", help="the built-in networks: layers, parameters, MACs, "
                                        "the presets that run them")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="only these built-in networks (default: all; the presets column "
                        "compiles each network, about half a minute for all of them)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="say why each network does not run on the other presets (the "
                        "compiler's reason)")
    p.set_defaults(func=_cmd_networks)

    p = sub.add_parser("bench", help="benchmarks: tile utilization, simulation speed")
    p.set_defaults(func=_cmd_bench)
    link_faults.add_subcommand(sub)

    p = sub.add_parser("demo", help="digits MLP and CNN: float vs 16-bit golden vs RTL")
    p.add_argument("--engine", default="pysim", choices=engine_names())
    p.add_argument("--limit", type=int, default=100,
                   help="only the first N test images (default 100, about a minute; 0: all 360)")
    _rtl_options(p)
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    """Entry point of the ``diannao`` command; returns the exit status.

    Returns
    -------
    int
        The subcommand's status; 2 after a user error (``ValueError``, ``OSError``:
        ``diannao: error: <message>``), 1 after a run that overran its cycle budget
        (:class:`diannao.sim.runtime.host.RunBudgetError`, ``diannao: error: <where the node stood>``) or any
        other exception (``diannao: internal
        error: <type>: <message>``, one line). With ``--debug`` exceptions propagate.
    """
    args = build_parser().parse_args(argv)
    if args.debug:
        return args.func(args)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except RunBudgetError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        message = " ".join(str(exc).split())
        print(f"{PROG}: internal error: {type(exc).__name__}: {message}; "
              f"run with --debug for the traceback", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
