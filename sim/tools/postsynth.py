"""``make postsynth``: the digits networks through each board's synthesized netlist.

For each board, :func:`check_board` runs the digits MLP and CNN, in one simulation, through
the netlist yosys makes for the board (:mod:`diannao.sim.engines.postsynth`: the node behind
its UART host link, every byte over the simulated UART pins) and holds every layer's output
to the golden model bit for bit and every counter to the cycle model
(:func:`diannao.sim.tools.fuzz.differences`); the link must need no retry. The command
prints, per board, the time of each step (yosys, the simulator build, the simulation) and
the result, and exits with status 1 if a board's run differs.

``python -m diannao.sim.tools.postsynth [--board B] [--simulator S] [--networks mlp,cnn]
[--samples N]``
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field

from diannao.golden.quant import quantize
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.postsynth import SIMULATORS, board_config, run_postsynth
from diannao.sim.tools.digits import NETWORK_NAMES, load_network, load_test_set
from diannao.sim.tools.fuzz import differences


__all__ = ["BoardCheck", "check_board", "main", "BOARDS"]

#: The boards, in the order ``make postsynth`` runs them.
BOARDS = ("icebreaker", "ulx3s")
#: Each digits network's input shape.
_SHAPES = {"mlp": (64,), "cnn": (1, 8, 8)}


@dataclass
class BoardCheck:
    """What :func:`check_board` found.

    Attributes
    ----------
    board : str
    networks : list of str
    samples : int
        Test images per network.
    problems : list of str
        Empty when every output is bit-exact with golden, every counter equals the cycle
        model and the link needed no retry.
    info : dict
        :func:`diannao.sim.engines.postsynth.run_postsynth`'s figures.
    seconds : float
        Wall time of the whole check.
    """
    board: str
    networks: list
    samples: int
    problems: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self):
        return not self.problems

    def format(self):
        """Lines for a terminal: the netlist, the time of each step, the result."""
        i = self.info
        cells = ", ".join(f"{n} {c}" for c, n in sorted(i["cells"].items())
                          if not c.startswith("$"))
        synth = (f"{i['synth_seconds']:.0f} s" if i["synth_seconds"]
                 else f"cached (made in {i['synth_recorded_seconds']:.0f} s)")
        build = (f"{i['build_seconds']:.0f} s" if not i["build_cached"] else "cached")
        lines = [f"{self.board}: post-synthesis netlist under {i['simulator']} "
                 f"({i['netlist']})",
                 f"  cells: {cells}",
                 f"  yosys (the board build's synthesis script): {synth}",
                 f"  simulator build: {build}",
                 f"  simulation: {i['run_seconds']:.0f} s, {i['cycles']:,} cycles "
                 f"({i['cycles'] / max(i['sim_seconds'], 1e-9):,.0f} cycles/s), "
                 f"{i['link'].get('requests', 0):,} requests over the UART",
                 f"  total: {self.seconds:.0f} s"]
        if self.ok:
            lines.append(f"  PASS: digits {', '.join(self.networks)} ({self.samples} "
                         f"image{'s' if self.samples != 1 else ''} each): every layer "
                         f"bit-exact with golden, every counter equal to the cycle model")
        else:
            lines += [f"  FAIL: {p}" for p in self.problems]
        return "\n".join(lines)


def check_board(board, *, networks=NETWORK_NAMES, samples=1, simulator="verilator"):
    """Run the digits ``networks`` on ``samples`` test images each through ``board``'s
    synthesized netlist (one simulation) and compare.

    Parameters
    ----------
    board : str
        ``"icebreaker"`` or ``"ulx3s"``.
    networks : sequence of str
        Digits networks (``"mlp"``, ``"cnn"``).
    samples : int
        Test images per network (the first of the fixed test split).
    simulator : str

    Returns
    -------
    BoardCheck

    Raises
    ------
    RuntimeError
        yosys, the simulator build or the simulation failed (see
        :func:`~diannao.sim.engines.postsynth.run_postsynth`).
    """
    t0 = time.time()
    cfg = board_config(board)
    cases = []
    for name in networks:
        if name not in _SHAPES:
            raise ValueError(f"unknown digits network {name!r}; choose from {list(_SHAPES)}")
        qnet = quantize(load_network(name))
        x, _ = load_test_set(_SHAPES[name])
        x_q = qnet.quantize_input(x[:samples])
        cases.append((name, qnet, compile_network(qnet, cfg, intermediates=True), x_q))
    runs, info = run_postsynth(board, [(program, x_q) for _, _, program, x_q in cases],
                               simulator=simulator)
    problems = []
    for (name, qnet, program, x_q), job_runs in zip(cases, runs):
        problems += [f"{name}: {p}" for p in differences(qnet, program, x_q, job_runs)]
    if info["link"].get("retries"):
        problems.append(f"the link retried {info['link']['retries']} requests "
                        f"({dict(info['link'])}): a simulation has no line faults")
    if info["framing_errors"]:
        problems.append(f"{info['framing_errors']} bytes from the board had a low stop bit")
    return BoardCheck(board, list(networks), samples, problems, info, time.time() - t0)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m diannao.sim.tools.postsynth",
        description="digits networks through each board's synthesized netlist over its UART")
    parser.add_argument("--board", choices=BOARDS, action="append",
                        help="a board (repeatable; default both)")
    parser.add_argument("--simulator", choices=SIMULATORS, default="verilator")
    parser.add_argument("--networks", default=",".join(NETWORK_NAMES),
                        help="comma-separated digits networks (default mlp,cnn)")
    parser.add_argument("--samples", type=int, default=1, help="test images per network")
    args = parser.parse_args(argv)
    failed = False
    for board in args.board or BOARDS:
        print(f"{board}: synthesizing (or finding the cached netlist), building the "
              f"simulator and running; this takes minutes", flush=True)
        result = check_board(board, networks=args.networks.split(","), samples=args.samples,
                             simulator=args.simulator)
        print(result.format(), flush=True)
        failed |= not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
