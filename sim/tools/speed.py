"""Simulation-speed benchmark: the 16-tile tn=16 node running the digits CNN.

Measures Amaranth's simulator and Verilator (cycles per second of simulated node time, from
``start`` to idle) and prints a table against the targets. The Verilator build time is the
one recorded when the cached build was made (``fresh_build=True`` rebuilds from scratch).
"""

import os
import tempfile
import time

import numpy as np

from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.hdl import is_cached, run_hdl
from diannao.sim.engines.pysim import run_program
from diannao.sim.tools import digits

__all__ = ["measure", "main"]

TARGETS = {"pysim": 300.0, "verilator": 20000.0}
VERILATOR_BUILD_TARGET = 90.0


def bench_config(config_name="dadiannao"):
    """The benchmark's node: the preset with SB and NM scaled to the digits CNN (the full
    2 MB SB per tile and 4 MB NM only lengthen the Amaranth simulator's set-up; the
    Verilog's memories have no initial contents either way)."""
    return preset(config_name).replace(sb_depth=64, nm_depth=512, imem_depth=32)


def _program(config_name="dadiannao", images=4):
    net = digits.load_network("cnn")
    qnet = quantize(net)
    x, _ = digits.load_test_set(net.input_shape)
    return (compile_network(qnet, bench_config(config_name)), qnet.quantize_input(x[:images]),
            qnet)


def measure(engine, *, images=2, config_name="dadiannao", fresh_build=False):
    """``dict``: setup/build seconds, cycles, run seconds, cycles/s, outputs equal golden."""
    program, x, qnet = _program(config_name, images)
    golden = np.stack([qnet.run(xi) for xi in x])
    if engine == "pysim":
        t0 = time.time()
        y, runs = run_program(program, x)
        cycles = sum(r["cycles"] for r in runs)
        seconds = sum(r["seconds"] for r in runs)
        build = time.time() - t0 - seconds      # elaboration, loading, host I/O
    else:
        old = os.environ.get("DIANNAO_CACHE")
        tmp = tempfile.mkdtemp(prefix="diannao-bench-") if fresh_build else None
        if tmp:
            os.environ["DIANNAO_CACHE"] = tmp
        try:
            y, runs, info = run_hdl(program, x, simulator=engine)
        finally:
            if tmp:
                if old is None:
                    os.environ.pop("DIANNAO_CACHE")
                else:
                    os.environ["DIANNAO_CACHE"] = old
        cycles = sum(r["cycles"] for r in runs)
        seconds = sum(r["seconds"] for r in runs)
        build = info["recorded_build_seconds"]
    return dict(engine=engine, build=build, cycles=cycles, seconds=seconds,
                rate=cycles / seconds if seconds else float("inf"),
                exact=bool(np.array_equal(y, golden)))


def main(engines=("pysim", "verilator"), images=2):
    if "verilator" in engines and not is_cached(bench_config()):
        print("note: building the 16-tile tn=16 node under Verilator (about half a minute on "
              "2 cores; cached afterwards)", flush=True)
    rows = [measure(e, images=images) for e in engines]
    print("simulation speed: 16-tile tn=16 node (dadiannao), digits CNN, "
          f"{images} images (host-port protocol time included)")
    print(f"  {'engine':10} {'build/setup s':>13} {'cycles':>9} {'run s':>8} {'cycles/s':>10} "
          f"{'target':>8} {'met':>4}  RTL == golden")
    ok = True
    for r in rows:
        target = TARGETS[r["engine"]]
        met = r["rate"] >= target and (r["engine"] != "verilator"
                                       or r["build"] <= VERILATOR_BUILD_TARGET)
        ok &= met and r["exact"]
        print(f"  {r['engine']:10} {r['build']:13.1f} {r['cycles']:9,} {r['seconds']:8.2f} "
              f"{r['rate']:10,.0f} {target:8,.0f} {'yes' if met else 'NO':>4}  "
              f"{'yes' if r['exact'] else 'NO'}")
    print(f"  Verilator build target: <= {VERILATOR_BUILD_TARGET:.0f} s")
    return rows, ok
