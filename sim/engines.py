"""Execution engines for quantized networks.

An engine is a callable ``engine(qnet, x_q, **options) -> RunResult``. ``golden`` is the
bit-exact numpy model; ``pysim`` compiles the network for a configuration and runs it on the
node RTL in Amaranth's simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["ENGINES", "PLANNED_ENGINES", "RunResult", "register_engine", "engine_names",
           "run_network"]


@dataclass
class RunResult:
    """What an engine returns.

    Attributes
    ----------
    outputs : numpy.ndarray
        int16 outputs (batch axis kept if the input had one).
    layer_outputs : list of numpy.ndarray
        Each layer's int16 output, same batch convention.
    report : sim.report.Report or None
        Performance report (RTL engines).
    """
    outputs: np.ndarray
    layer_outputs: list
    report: object = None


#: Engines that can run now, by name.
ENGINES: dict[str, Callable] = {}
#: Engines the project plans but that are not implemented yet.
PLANNED_ENGINES = ()


def register_engine(name, fn):
    """Make ``fn(qnet, x_q, **options) -> RunResult`` available as engine ``name``."""
    ENGINES[name] = fn


def engine_names():
    """All engine names the CLI accepts (available and planned)."""
    return list(ENGINES) + [n for n in PLANNED_ENGINES if n not in ENGINES]


def _golden(qnet, x_q, **options):
    y, per_layer = qnet.run(x_q, intermediates=True)
    return RunResult(y, per_layer)


def _rtl_engine(run):
    """An engine that compiles for ``config`` and runs the program with
    ``run(program, batch, progress=, vcd=, host_port=) -> (outputs, runs, details)``."""
    def engine(qnet, x_q, *, config="small", progress=False, vcd=None, clock_mhz=1000.0,
               host_port=False, port=None, **options):
        from hw.config import preset
        from .compiler import compile_network
        from .report import build_report

        cfg = preset(config) if isinstance(config, str) else config
        program = compile_network(qnet, cfg)
        x_q = np.asarray(x_q)
        single = x_q.shape == tuple(qnet.input_shape)
        batch = x_q[None] if single else x_q
        y, runs, details = run(program, batch, progress=progress, vcd=vcd, host_port=host_port)
        per_layer = [np.stack([r["layer_outputs"][i] for r in runs])
                     for i in range(len(program.layers))]
        if single:
            y, per_layer = y[0], [a[0] for a in per_layer]
        report = build_report(program, config if isinstance(config, str) else "custom",
                              rtl_cycles=runs[0]["cycles"], clock_mhz=clock_mhz)
        report.runs, report.hdl = runs, details
        return RunResult(y, per_layer, report)
    return engine


def _run_pysim(program, batch, *, progress, vcd, host_port):
    from .node_runner import run_program
    y, runs = run_program(program, batch, progress=progress, vcd=vcd, host_port=host_port)
    return y, runs, None


def _run_hdl(simulator):
    def run(program, batch, *, progress, vcd, host_port):
        from .hdl import run_hdl
        return run_hdl(program, batch, simulator=simulator, vcd=vcd)
    return run


register_engine("golden", _golden)
register_engine("pysim", _rtl_engine(_run_pysim))
register_engine("verilator", _rtl_engine(_run_hdl("verilator")))
register_engine("icarus", _rtl_engine(_run_hdl("icarus")))


def _board(qnet, x_q, *, config=None, port=None, board=None, progress=False, clock_mhz=None,
           **options):
    from boards.driver import run_board
    if port is None:
        raise ValueError("engine 'board' needs --port (a serial device)")
    board = board or (config if config in ("ulx3s", "icebreaker") else None)
    if board is None:
        raise ValueError("engine 'board' needs --config ulx3s or --config icebreaker")
    return run_board(qnet, x_q, port=port, board=board, progress=progress, clock_mhz=clock_mhz)


register_engine("board", _board)


def run_network(qnet, x_q, engine="golden", **options):
    """Run a quantized network on int16 inputs with the chosen engine.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x_q : array_like of int
        One sample or a batch.
    engine : str
    **options
        Engine options: ``config`` (name or Config), ``progress``, ``vcd`` (path),
        ``clock_mhz``, ``host_port`` (RTL engines).

    Raises
    ------
    ValueError
        If the engine is unknown or not available yet.
    """
    if engine not in ENGINES:
        if engine in PLANNED_ENGINES:
            raise ValueError(f"engine {engine!r} is not available yet")
        raise ValueError(f"unknown engine {engine!r}; choose from {engine_names()}")
    return ENGINES[engine](qnet, x_q, **options)
