"""The ``diannao`` console command.

Each subcommand lives in a ``_cmd_<name>`` function registered by
:func:`build_parser`; new subcommands (verilog, wave, build, bench) add a
parser there.  Errors a user can fix (bad files, bad values) are printed as
``diannao: error: <message>`` with exit status 2 and no traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

__all__ = ["main", "build_parser"]

PROG = "diannao"


def _load_input(path, qnet):
    """Load an .npy input and return ``(x_q, x_real)``.

    Floats are quantized at the network's input format; integers are taken
    as already-quantized int16 values (their real value is ``x / 2**input_frac``).
    """
    from golden.formats import from_fixed
    from golden.layers import as_int16_values

    x = np.load(path, allow_pickle=False)
    if x.dtype.kind == "f":
        return qnet.quantize_input(x), x
    if x.dtype.kind in "iu":
        x_q = as_int16_values(x, f"input {path}")
        return x_q, from_fixed(x_q, qnet.input_frac)
    raise ValueError(f"input {path} has dtype {x.dtype}; expected float or integer")


def _cmd_run(args):
    from golden.network import load
    from golden.formats import q_name
    from golden.quant import quantize, run_float
    from sim.engines import run_network

    net = load(args.network)
    qnet = quantize(net)
    x_q, x_real = _load_input(args.input, qnet)
    y, per_layer = run_network(qnet, x_q, engine=args.engine, intermediates=True)
    np.save(args.out, y.astype(np.int16))
    print(f"output {list(y.shape)} int16 in {q_name(qnet.output_frac)} "
          f"(value = int / 2**{qnet.output_frac}) -> {args.out}")
    if args.float_out:
        np.save(args.float_out, run_float(net, x_real))
        print(f"float reference -> {args.float_out}")
    if args.intermediates:
        out_dir = Path(args.intermediates)
        out_dir.mkdir(parents=True, exist_ok=True)
        for q, a in zip(qnet.layers, per_layer):
            np.save(out_dir / f"layer{q.index:02d}_{q.kind}.npy", a)
        print(f"{len(per_layer)} per-layer outputs -> {out_dir}/")
    return 0


def _format_layer(q):
    from golden.formats import q_name

    geom = f"{list(q.in_shape)} -> {list(q.out_shape)}"
    text = f"  layer {q.index} {q.kind:7s} {geom:24s} in {q_name(q.in_frac)}"
    if q.w_q is None:
        return text + f"  out {q_name(q.out_frac)}"
    return (text + f"  w {q_name(q.w_frac)}  b {q_name(q.b_frac)}  out {q_name(q.out_frac)}"
            f"  shift {q.shift}  bias_exp {q.bias_exp}  {q.activation}")


def _cmd_demo(args):
    from golden.quant import quantize, run_float
    from sim import digits
    from sim.engines import run_network

    rows = []
    for name in digits.NETWORK_NAMES:
        net = digits.load_network(name)
        qnet = quantize(net)
        x, labels = digits.load_test_set(net.input_shape)
        acc_float = digits.accuracy(run_float(net, x), labels)
        y = run_network(qnet, qnet.quantize_input(x), engine=args.engine)
        acc_q = digits.accuracy(y, labels)
        rows.append((name, acc_float, acc_q, qnet))
    print(f"digits test set: {len(labels)} images (sklearn load_digits, fixed split)")
    print(f"  {'network':8s} {'float':>8s} {'16-bit ' + args.engine:>16s}")
    for name, acc_float, acc_q, _ in rows:
        print(f"  {name:8s} {100 * acc_float:7.2f}% {100 * acc_q:15.2f}%")
    for name, _, _, qnet in rows:
        print(f"{name} layer formats:")
        for q in qnet.layers:
            print(_format_layer(q))
    return 0


def build_parser():
    """The argument parser with every subcommand."""
    from sim.engines import engine_names

    parser = argparse.ArgumentParser(
        prog=PROG, description="DianNao/DaDianNao accelerator model: golden model and tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run a network file on an input with an engine")
    p.add_argument("--network", required=True, help="network JSON file")
    p.add_argument("--input", required=True,
                   help=".npy input: float (quantized at the input format) or int16 "
                        "(already quantized); one sample or a batch")
    p.add_argument("--engine", default="golden", choices=engine_names())
    p.add_argument("--out", required=True, help="output .npy (int16)")
    p.add_argument("--float-out", help="also write the float reference output (.npy)")
    p.add_argument("--intermediates", metavar="DIR", help="write each layer's int16 output to DIR")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("demo", help="digits MLP and CNN: float vs 16-bit accuracy")
    p.add_argument("--engine", default="golden", choices=engine_names())
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv=None):
    """Entry point of the ``diannao`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
