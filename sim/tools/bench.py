"""Tile utilization benchmark: one tn=16 tile running a large FC and a large CONV layer.

For each layer it runs the RTL in Amaranth's simulator (:func:`diannao.sim.engines.pysim_tile.run_tile`),
checks the outputs against the golden model bit for bit, and reports the measured cycles
(start to done), NFU busy cycles (rows entering NFU-1, bias rows included), utilization =
busy / cycles, the target, the analytic cycle model's prediction
(:func:`diannao.sim.compiler.cycle_model.tile_cycles`), and the MAC utilization MACs / (cycles * tn * tn).

Then the real-size table (:func:`real_size`): the cycle model's utilization of AlexNet's and
VGG-16's convolutions on the ``dadiannao`` node (batch 1) against the targets, and how long
the model engine takes on the VGG-16 conv stack.

``diannao bench`` calls :func:`main`. About 15 s in Amaranth's simulator, then a minute or two
for the model.
"""

import time

import numpy as np

from diannao.golden.layers import conv2d_int, fc_int
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.sim.compiler.cycle_model import tile_cycles, tile_emissions
from diannao.sim.compiler.mapping import conv_sb_rows, layer_fields, to_rows
from diannao.sim.engines.pysim_tile import assemble, run_tile
from diannao.sim.engines.registry import run_network
from diannao.sim.runtime.run import model_report
from diannao.sim.tools import speed
from diannao.sim.tools.workloads import (DIANNAO_LAYERS, DIANNAO_PRIVATE, load_workload,
                                         random_input)


__all__ = ["TARGETS", "LAYERS", "REAL_TARGETS", "run_layer", "tile_utilization", "format_table",
           "real_size", "main"]

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


#: Real-size targets on the ``dadiannao`` node (cycle model, batch 1): utilization of each
#: AlexNet convolution with at least 64 input channels and of each VGG-16 convolution but
#: conv1_1, of the whole VGG-16 conv stack; seconds of the model engine on that stack with
#: values and with cycles alone.
REAL_TARGETS = {"layer": 0.85, "vgg16 conv stack": 0.80, "model seconds": 120.0,
                "cycles seconds": 5.0}


def real_size(clock_mhz=606.0):
    """Print the real-size table; return whether every target is met."""
    cfg = preset("dadiannao")
    # The model engine's times first, before the table has filled the cycle model's caches.
    qnet = quantize(load_workload("vgg16-conv"))
    t0 = time.time()
    model_report(qnet, cfg, "dadiannao", clock_mhz)
    cycles_s = time.time() - t0
    t0 = time.time()
    run_network(qnet, random_input(load_workload("vgg16-conv")), "model", config=cfg)
    model_s = time.time() - t0
    rows, good = [], True
    for name in ("alexnet", "vgg16-conv"):
        qnet = quantize(load_workload(name))
        report = model_report(qnet, cfg, "dadiannao", clock_mhz)
        convs = [l for l in report.layers if l.kind == "conv"]
        for i, (q, l) in enumerate(zip([q for q in qnet.layers if q.kind == "conv"], convs)):
            counted = q.in_shape[0] >= 64 if name == "alexnet" else i > 0
            met = l.utilization >= REAL_TARGETS["layer"] if counted else None
            good &= met is not False
            rows.append((f"{name} conv{i + 1} {list(q.in_shape)} -> {q.out_shape[0]}",
                         l.cycles, l.ideal, l.utilization, l.bound, met))
        if name == "vgg16-conv":
            ideal = sum(l.ideal for l in report.layers)
            util = ideal / report.model_cycles
            met = util >= REAL_TARGETS["vgg16 conv stack"]
            good &= met
            rows.append(("vgg16 conv stack (pooling included)", report.model_cycles, ideal, util,
                         "", met))
    print(f"real-size layers (dadiannao node, cycle model, batch 1; target utilization >= "
          f"{REAL_TARGETS['layer']:.2f} per layer marked, >= "
          f"{REAL_TARGETS['vgg16 conv stack']:.2f} for the VGG-16 conv stack):")
    head = f"{'layer':<44} {'cycles':>11} {'ideal':>11} {'util':>6} {'bound':>11} {'met':>4}"
    print(head)
    print("-" * len(head))
    for name, cycles, ideal, util, bound, met in rows:
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name:<44} {cycles:>11,} {ideal:>11,} {util:>6.1%} {bound:>11} {mark:>4}")
    fast = (model_s <= REAL_TARGETS["model seconds"]
            and cycles_s <= REAL_TARGETS["cycles seconds"])
    print(f"model engine on the VGG-16 conv stack: {model_s:.1f} s with values (target <= "
          f"{REAL_TARGETS['model seconds']:g}), {cycles_s:.1f} s cycles alone (target <= "
          f"{REAL_TARGETS['cycles seconds']:g})")
    diannao_benchmark(cfg, clock_mhz)
    print()
    streamed = diannao_preset()
    print()
    node = node_streaming(clock_mhz)
    return good and fast and streamed and node


def diannao_benchmark(cfg, clock_mhz):
    """Print DianNao's benchmark layers on ``cfg`` by the cycle model (no targets: DianNao's
    own preset needs its main memory, not built yet)."""
    print("\nDianNao's benchmark layers (Chen et al., ASPLOS 2014) on the dadiannao node, "
          "cycle model:")
    head = f"{'layer':<16} {'cycles':>11} {'util':>6} {'bound':>11}  note"
    print(head)
    print("-" * len(head))
    for name in DIANNAO_LAYERS:
        l = model_report(quantize(load_workload(f"diannao-{name}")), cfg, "dadiannao",
                         clock_mhz).layers[0]
        note = l.note or l.caveat or ""
        print(f"{name.upper():<16} {l.cycles:>11,} {l.utilization:>6.1%} {l.bound:>11}  "
              f"{note[:90]}")


#: Targets of DianNao's benchmark on the ``diannao`` preset (cycle model): convolutions
#: whose weights are reused (not CONV2 and CONV5, whose kernels are private in the paper:
#: :data:`DIANNAO_PRIVATE`) reach this utilization; classifiers come within this factor of
#: their bandwidth bound (their main-memory bytes / bytes per cycle).
DIANNAO_TARGETS = {"conv utilization": 0.85, "class over bound": 1.05}


def diannao_preset(clock_mhz=980.0):
    """Print DianNao's benchmark layers on the ``diannao`` preset (one tile, main memory) by
    the cycle model, with the targets of :data:`DIANNAO_TARGETS`; return whether every
    layer runs and meets them."""
    cfg = preset("diannao")
    peak = 2 * cfg.tiles * cfg.tn * cfg.tn * clock_mhz / 1e3
    print(f"DianNao's benchmark on the diannao preset (cycle model, {clock_mhz:g} MHz; main "
          f"memory {cfg.mem_bytes} B/cycle, latency {cfg.mem_latency}; peak {peak:.1f} GOP/s "
          f"counting a MAC as 2 operations, the paper's 452 GOP/s as it counts them; targets: "
          f"conv utilization >= {DIANNAO_TARGETS['conv utilization']:.2f}, class cycles <= "
          f"{DIANNAO_TARGETS['class over bound']:.2f} x bandwidth bound (bytes / bandwidth); "
          f"'x +lat': cycles over the bound plus one memory latency, what no schedule beats; "
          f"'NM B': the neuron bytes read and written in NM, which stands for the part of "
          f"main memory that holds neurons, at {2 * cfg.tn} bytes a cycle, not counted in "
          f"'mem read', 'ops/B' and the bound):")
    head = (f"{'layer':<7} {'cycles':>13} {'util':>6} {'GOP/s':>7} {'mem read':>15} "
            f"{'ops/B':>7} {'roof':>7} {'bw bound':>10} {'x bound':>8} {'x +lat':>7} "
            f"{'NM B':>13} {'met':>4}  note")
    print(head)
    print("-" * len(head))
    good = True
    for name in DIANNAO_LAYERS:
        l = model_report(quantize(load_workload(f"diannao-{name}")), cfg, "diannao",
                         clock_mhz).layers[0]
        if l.note:
            good = False                        # every layer must run
            print(f"{name.upper():<7} {'not run':>13} {'':>6} {'':>7} {'':>15} {'':>7} "
                  f"{'':>7} {'':>10} {'':>8} {'':>7} {'':>13} {'NO':>4}\n        {l.note}")
            continue
        gops = 2 * l.macs * clock_mhz / 1e3 / l.cycles
        over = l.cycles / l.memory_cycles if l.memory_cycles else None
        over_lat = (l.cycles / (l.memory_cycles + cfg.mem_latency) if l.memory_cycles
                    else None)
        if name.startswith("conv") and name not in DIANNAO_PRIVATE:
            met = l.utilization >= DIANNAO_TARGETS["conv utilization"]
        elif name.startswith("class"):
            met = over is not None and over <= DIANNAO_TARGETS["class over bound"]
        else:
            met = None
        good &= met is not False
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{name.upper():<7} {l.cycles:>13,} {l.utilization:>6.1%} {gops:>7.1f} "
              f"{l.mem_bytes:>15,} {l.intensity or 0:>7.1f} {l.roof:>7} "
              f"{l.memory_cycles:>10,} {over or 0:>8.2f} {over_lat or 0:>7.2f} "
              f"{(l.nm_reads + l.nm_writes) * 2 * cfg.tn:>13,} {mark:>4}  "
              f"{(l.caveat or '')[:80]}")
    return good


def node_streaming(clock_mhz=606.0):
    """Print AlexNet's classifiers on the ``dadiannao`` node given the ``diannao`` preset's
    main memory (cycle model): fc6 and fc7 do not fit SB and stream; return whether each
    streamed layer comes within ``DIANNAO_TARGETS["class over bound"]`` of its bandwidth
    bound."""
    mem = preset("diannao")
    cfg = preset("dadiannao").replace(mem_bytes=mem.mem_bytes, mem_latency=mem.mem_latency,
                                      mem_depth=1 << 19)
    report = model_report(quantize(load_workload("alexnet")), cfg, "dadiannao", clock_mhz)
    print(f"AlexNet on the dadiannao node with the diannao preset's main memory "
          f"({cfg.mem_bytes} B/cycle, latency {cfg.mem_latency}; cycle model): the layers "
          f"whose weights do not fit SB stream (target: cycles <= "
          f"{DIANNAO_TARGETS['class over bound']:.2f} x bandwidth bound):")
    good = True
    for l in report.layers:
        if not l.streamed:
            continue
        over = l.cycles / l.memory_cycles
        met = over <= DIANNAO_TARGETS["class over bound"]
        good &= met
        print(f"  layer {l.index} ({l.kind}): {l.mem_bytes:,} bytes read, {l.cycles:,} "
              f"cycles, bound {l.memory_cycles:,}, x {over:.3f} {'yes' if met else 'NO'}")
    return good and any(l.streamed for l in report.layers)


def main(argv=None):
    """Print the tile utilization table, the simulation-speed table
    (:mod:`diannao.sim.tools.speed`) and the real-size table (:func:`real_size`); exit
    status 0 when every target is met, outputs equal golden and the cycle model equals the
    RTL."""
    print("tile utilization (tn=16 tile, Amaranth simulator):")
    rows = tile_utilization()
    good = all(r["met"] and r["ok"] and r["cycles"] == r["model_cycles"]
               and r["busy"] == r["model_busy"] for r in rows)
    print()
    _, fast_enough = speed.main()
    print()
    real_ok = real_size()
    return 0 if good and fast_enough and real_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
