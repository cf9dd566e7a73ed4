"""Execution engines for quantized networks.

An engine is a callable ``engine(qnet, x, **options) -> RunResult``. ``golden`` is the
bit-exact numpy model; ``pysim`` compiles the network for a configuration and runs it on the
node RTL in Amaranth's simulator.

:func:`run_network` checks the input once with :func:`sim.inputs.check_input` and hands the
engine a :class:`sim.inputs.CheckedInput`; an engine runs ``x.batch`` (int16, always with a
batch axis), returns outputs in the input's convention with ``x.unbatch`` and starts with
:func:`sim.inputs.ensure_checked`, so it checks an array it is called with directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .inputs import CheckedInput, ensure_checked

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
    input : sim.inputs.CheckedInput or None
        The checked input the engine ran (set by :func:`run_network`): its real values,
        its source and how many values saturated.
    """
    outputs: np.ndarray
    layer_outputs: list
    report: object = None
    input: CheckedInput | None = None

    @property
    def saturated(self):
        """How many input values lay outside the input format and were saturated."""
        return 0 if self.input is None else self.input.saturated


#: Engines that can run now, by name.
ENGINES: dict[str, Callable] = {}
#: Engines the project plans but that are not implemented yet.
PLANNED_ENGINES = ()


def register_engine(name, fn):
    """Make ``fn(qnet, x, **options) -> RunResult`` available as engine ``name``.

    ``fn`` receives ``x`` as a :class:`sim.inputs.CheckedInput` from :func:`run_network`
    and should begin with ``x = ensure_checked(qnet, x)`` so that a direct call with an
    array is checked the same way.
    """
    ENGINES[name] = fn


def engine_names():
    """All engine names the CLI accepts (available and planned)."""
    return list(ENGINES) + [n for n in PLANNED_ENGINES if n not in ENGINES]


def _golden(qnet, x, **options):
    x = ensure_checked(qnet, x)
    y, per_layer = qnet.run(x.batch, intermediates=True)
    return RunResult(x.unbatch(y), [x.unbatch(a) for a in per_layer])


def _rtl_engine(run):
    """An engine that compiles for ``config`` and runs the program with
    ``run(program, batch, progress=, vcd=, host_port=) -> (outputs, runs, details)``."""
    def engine(qnet, x, *, config="small", progress=False, vcd=None, clock_mhz=1000.0,
               host_port=False, port=None, **options):
        from hw.config import preset
        from .compiler import compile_network
        from .report import build_report

        x = ensure_checked(qnet, x)
        cfg = preset(config) if isinstance(config, str) else config
        program = compile_network(qnet, cfg)
        y, runs, details = run(program, x.batch, progress=progress, vcd=vcd, host_port=host_port)
        per_layer = [np.stack([r["layer_outputs"][i] for r in runs])
                     for i in range(len(program.layers))]
        report = build_report(program, config if isinstance(config, str) else "custom",
                              rtl_cycles=runs[0]["cycles"], clock_mhz=clock_mhz,
                              run=runs[0])
        report.runs, report.hdl = runs, details
        return RunResult(x.unbatch(y), [x.unbatch(a) for a in per_layer], report)
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


def _board(qnet, x, *, config=None, port=None, board=None, progress=False, clock_mhz=None,
           **options):
    from boards.driver import run_board
    x = ensure_checked(qnet, x)
    if port is None:
        raise ValueError("engine 'board' needs --port (a serial device)")
    board = board or (config if config in ("ulx3s", "icebreaker") else None)
    if board is None:
        raise ValueError("engine 'board' needs --config ulx3s or --config icebreaker")
    return run_board(qnet, x, port=port, board=board, progress=progress, clock_mhz=clock_mhz)


register_engine("board", _board)


def run_network(qnet, x_q, engine="golden", *, source="input", strict=False, **options):
    """Run a quantized network on an input with the chosen engine.

    The input is checked once (:func:`sim.inputs.check_input`) before the engine starts.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x_q : array_like of int or float, or sim.inputs.CheckedInput
        One sample or a batch: int16 values, or floats quantized at the input format.
    engine : str
    source : str
        The file the input came from, named in error messages.
    strict : bool
        Reject float values outside the input format instead of saturating them.
    **options
        Engine options: ``config`` (name or Config), ``progress``, ``vcd`` (path),
        ``clock_mhz``, ``host_port`` (RTL engines), ``port`` (board).

    Returns
    -------
    RunResult
        With :attr:`RunResult.input` set (real values, saturation count).

    Raises
    ------
    ValueError
        If the engine is unknown or not available yet, or the input is bad (see
        :func:`sim.inputs.check_input`).
    """
    if engine not in ENGINES:
        if engine in PLANNED_ENGINES:
            raise ValueError(f"engine {engine!r} is not available yet")
        raise ValueError(f"unknown engine {engine!r}; choose from {engine_names()}")
    x = ensure_checked(qnet, x_q, source, strict=strict)
    result = ENGINES[engine](qnet, x, **options)
    result.input = x
    return result
