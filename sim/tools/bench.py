"""Tile utilization benchmark: one tn=16 tile running a large FC and a large CONV layer.

For each layer it runs the RTL in Amaranth's simulator (:func:`diannao.sim.engines.pysim_tile.run_tile`),
checks the outputs against the golden model bit for bit, and reports the measured cycles
(start to done), NFU busy cycles (rows entering NFU-1, bias rows included), utilization =
busy / cycles, the target, the analytic cycle model's prediction
(:func:`diannao.sim.compiler.cycle_model.tile_cycles`), and the MAC utilization MACs / (cycles * tn * tn).

``diannao bench`` calls :func:`main`. About 15 s in Amaranth's simulator.
"""

import time

import numpy as np

from diannao.golden.layers import conv2d_int, fc_int
from diannao.hw.config import preset
from diannao.sim.compiler.cycle_model import tile_cycles, tile_emissions
from diannao.sim.compiler.mapping import conv_sb_rows, layer_fields, to_rows
from diannao.sim.engines.pysim_tile import assemble, run_tile
from diannao.sim.tools import speed


__all__ = ["TARGETS", "LAYERS", "run_layer", "tile_utilization", "format_table", "main"]

#: Minimum utilization (NFU busy / cycles) per layer kind.
TARGETS = {"fc": 0.90, "conv": 0.85}

#: The benchmark layers: name, kind, input shape, outputs, kernel, stride, pad.
LAYERS = [
    ("FC 512->256", "fc", (512,), 256, None, 1, 0),
    ("CONV 32x8x8 -> 32, 3x3, pad 1", "conv", (32, 8, 8), 32, 3, 1, 1),
]


def _config(tn=16):
    # One tile; buffers deep enough for both layers (SB: 16 blocks of 33 rows for the FC).
    return preset("diannao").replace(tn=tn, tiles=1, nbin_depth=1024, nbout_depth=256,
                                     sb_depth=1024)


def run_layer(name, kind, in_shape, outputs, kernel, stride, pad, *, config=None, seed=0):
    """Run one layer on one tile; returns a dict of figures (``ok``: outputs == golden)."""
    config = config or _config()
    tn = config.tn
    rng = np.random.default_rng(seed)
    x = rng.integers(-2048, 2048, in_shape)
    shift, bias_exp = 12, 4
    if kind == "fc":
        n = int(np.prod(in_shape))
        w = rng.integers(-1024, 1024, (outputs, n))
        b = rng.integers(-4096, 4096, outputs)
        ref = fc_int(x, w, b, bias_exp, shift)
        f = layer_fields("fc", in_shape, (outputs,), tn=tn, shift=shift, bias_exp=bias_exp)
        sb = conv_sb_rows(w.reshape(outputs, n, 1, 1), b, tn)
    else:
        c = in_shape[0]
        w = rng.integers(-1024, 1024, (outputs, c, kernel, kernel))
        b = rng.integers(-4096, 4096, outputs)
        ref = conv2d_int(x, w, b, stride, pad, bias_exp, shift)
        f = layer_fields("conv", in_shape, ref.shape, tn=tn, kernel=kernel, stride=stride,
                         pad=pad, shift=shift, bias_exp=bias_exp)
        sb = conv_sb_rows(w, b, tn)
    t0 = time.time()
    run = run_tile(config, f, to_rows(x, tn), sb.reshape(-1, tn, tn), name=f"bench_{kind}")
    seconds = time.time() - t0
    ok = np.array_equal(assemble(run.rows, f, ref.shape, tn), ref)
    cycles, busy = run.counters["start_to_done"], run.counters["nfu_busy"]
    util = busy / cycles
    # MACs of the layer (padding positions included, bias excluded): the ideal cycle count
    # is MACs / (tn * tn) (docs/architecture.md, "Counters, report and cycle model");
    # busy/cycles also counts the bias row of each output.
    macs = int(np.prod(ref.shape)) * int(np.prod(w.shape[1:]))
    return dict(name=name, kind=kind, cycles=cycles, busy=busy, utilization=util,
                mac_utilization=macs / (cycles * tn * tn),
                target=TARGETS[kind], met=util >= TARGETS[kind],
                model_cycles=tile_cycles(f, 0, config), model_busy=tile_emissions(f, 0),
                ok=ok, seconds=seconds)


def tile_utilization(config=None, *, verbose=True):
    """Run :data:`LAYERS` on a tn=16 tile; print and return the table rows."""
    rows = [run_layer(*layer, config=config) for layer in LAYERS]
    if verbose:
        print(format_table(rows))
    return rows


def format_table(rows):
    head = (f"{'layer':<32} {'cycles':>7} {'NFU busy':>8} {'util':>6} {'target':>7} "
            f"{'met':>4} {'model':>7} {'MAC util':>8} {'golden':>7} {'sim s':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['name']:<32} {r['cycles']:>7} {r['busy']:>8} "
                     f"{r['utilization']:>6.3f} {'>= ' + format(r['target'], '.2f'):>7} "
                     f"{'yes' if r['met'] else 'NO':>4} {r['model_cycles']:>7} "
                     f"{r['mac_utilization']:>8.3f} "
                     f"{'equal' if r['ok'] else 'DIFF':>7} {r['seconds']:>6.1f}")
    return "\n".join(lines)


def main(argv=None):
    """Print the tile utilization table and the simulation-speed table (:mod:`diannao.sim.tools.speed`);
    exit status 0 when every target is met, outputs equal golden and the cycle model equals
    the RTL."""
    print("tile utilization (tn=16 tile, Amaranth simulator):")
    rows = tile_utilization()
    good = all(r["met"] and r["ok"] and r["cycles"] == r["model_cycles"]
               and r["busy"] == r["model_busy"] for r in rows)
    print()
    _, fast_enough = speed.main()
    return 0 if good and fast_enough else 1


if __name__ == "__main__":
    raise SystemExit(main())
