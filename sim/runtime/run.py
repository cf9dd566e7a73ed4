"""The one run path, shared by every engine.

:func:`run_network` checks the input once (:func:`diannao.sim.runtime.inputs.check_input`),
compiles the network for the engine's configuration, hands the engine the program and the
int16 batch, stacks each layer's outputs over the batch, and builds the report. An
:class:`Engine` differs from another only in how it reaches the node's host port: it
implements :meth:`Engine.run` (load the program, run each sample, return the per-sample
runs of :func:`diannao.sim.runtime.host.run_sample`). The golden model is the one engine
that runs no program (:attr:`Engine.compiles` is false).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from diannao.hw.config import Config, preset
from diannao.sim.compiler.mapping import tensor_rows
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.runtime.inputs import CheckedInput, ensure_checked
from diannao.sim.runtime.report import build_report, merge_reports


__all__ = ["Engine", "Golden", "Model", "RunResult", "run_network", "model_report"]


@dataclass
class RunResult:
    """What :func:`run_network` returns.

    Attributes
    ----------
    outputs : numpy.ndarray
        int16 outputs (batch axis kept if the input had one).
    layer_outputs : list of numpy.ndarray or None
        Each layer's int16 output, same batch convention, when the run was asked for them
        (``intermediates``: the program then keeps every layer's output in NM); else None.
    report : diannao.sim.runtime.report.Report or None
        Performance report (engines that run a program); its ``runs`` hold each sample's
        counters and its ``hdl`` what the engine says about itself (build times).
    input : diannao.sim.runtime.inputs.CheckedInput or None
        The checked input: its real values, its source and how many values saturated.
    """
    outputs: np.ndarray
    layer_outputs: list | None
    report: object = None
    input: CheckedInput | None = None

    @property
    def saturated(self):
        """How many input values lay outside the input format and were saturated."""
        return 0 if self.input is None else self.input.saturated


class Engine:
    """How a compiled program reaches a node.

    Subclasses set :attr:`name` and implement :meth:`run`; :func:`run_network` does
    everything else.
    """

    #: The engine's name (``diannao run --engine``).
    name = None
    #: False for an engine that runs the network itself instead of a program (golden).
    compiles = True
    #: The clock the report's throughput assumes (MHz) unless the caller gives one.
    clock_mhz = 1000.0
    #: The configuration compiled for when the caller gives none.
    default_config = "small"

    def resolve_config(self, config):
        """``(name, Config)`` for ``config`` (a preset name, a :class:`Config`, or None for
        :attr:`default_config`)."""
        if config is None:
            config = self.default_config
        if isinstance(config, Config):
            return "custom", config
        return config, preset(config)

    def execute(self, qnet, x, config_name, config, *, intermediates=False, progress=False,
                vcd=None, clock_mhz=None):
        """Compile ``qnet`` for ``config`` (keeping every layer's output in NM with
        ``intermediates``), :meth:`run` it on the checked input ``x`` and build the report:
        a :class:`RunResult`."""
        program = compile_network(qnet, config, intermediates=intermediates)
        runs, details = self.run(program, x.batch, progress=progress, vcd=vcd)
        if len(runs) != len(x.batch):
            raise RuntimeError(f"engine {self.name} returned {len(runs)} runs for "
                               f"{len(x.batch)} samples")
        per_layer = [None if runs[0]["layer_outputs"][i] is None else
                     x.unbatch(np.stack([r["layer_outputs"][i] for r in runs]))
                     for i in range(len(program.layers))]
        report = build_report(program, config_name, rtl_cycles=runs[0]["cycles"], run=runs[0],
                              clock_mhz=clock_mhz or self.clock_mhz)
        report.runs, report.hdl = runs, details
        return RunResult(per_layer[-1], per_layer if intermediates else None, report,
                         input=x)

    def run(self, program, batch, *, progress=False, vcd=None):
        """Load ``program`` and run it on every sample of the int16 ``batch``.

        Returns
        -------
        runs : list of dict
            Per sample, as :func:`diannao.sim.runtime.host.run_sample`.
        details : object
            What the engine reports about itself (or None).
        """
        raise NotImplementedError


class Golden(Engine):
    """The bit-exact numpy model (:meth:`diannao.golden.quant.QNetwork.run`)."""

    name = "golden"
    compiles = False


def _size(n):
    """Bytes as KB or MB."""
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.1f} KB"


class _OneLayer:
    """A quantized network of one layer of another (what :func:`compile_network` reads)."""

    def __init__(self, layer):
        self.layers = [layer]


#: The papers' clocks for their presets: the model engine's report assumes them unless the
#: caller gives one (DaDianNao 606 MHz, MICRO 2014; DianNao 0.98 GHz, ASPLOS 2014).
PAPER_CLOCK_MHZ = {"dadiannao": 606.0, "diannao": 980.0}


class Model(Engine):
    """Engine ``model``: values from the golden model, cycles and traffic from the cycle
    model (exact: the tests hold the RTL's counters to it), for networks too large to
    simulate. Each layer is compiled on its own (as if its weights were in SB when it
    starts), so a layer that does not fit the node is reported with the reason instead of
    stopping the others; the report says it is the model's. Its throughput assumes the
    paper's clock for a paper preset (:data:`PAPER_CLOCK_MHZ`)."""

    name = "model"
    default_config = "dadiannao"

    def execute(self, qnet, x, config_name, config, *, intermediates=False, progress=False,
                vcd=None, clock_mhz=None):
        if vcd is not None:
            raise ValueError("--vcd needs a simulator; the model engine simulates nothing")
        y, per_layer = _golden(qnet, x, intermediates)
        clock = clock_mhz or PAPER_CLOCK_MHZ.get(config_name, self.clock_mhz)
        report = model_report(qnet, config, config_name, clock)
        return RunResult(y, per_layer, report, input=x)


def _golden(qnet, x, intermediates):
    """``(outputs, layer_outputs)`` of the golden model on the checked input ``x``
    (``layer_outputs`` None unless ``intermediates``)."""
    y, per_layer = qnet.run(x.batch, intermediates=True)
    return x.unbatch(y), [x.unbatch(a) for a in per_layer] if intermediates else None


def model_report(qnet, config, config_name="", clock_mhz=1000.0):
    """The :class:`Model` engine's report of ``qnet`` on ``config`` (cycles alone, no
    values): each layer compiled on its own; a layer that does not fit is reported with the
    reason, one whose input and output need more NM than ``config`` has gets the figures of
    a node with enough NM (NM's size changes no cycle) and says so."""
    programs, caveats = [], []
    for layer in qnet.layers:
        need = tensor_rows(layer.in_shape, config.tn) + tensor_rows(layer.out_shape, config.tn)
        cfg, caveat = config, ""
        if need > config.nm_depth:
            cfg = config.replace(nm_depth=need)
            row = config.tn * 2
            caveat = (f"its input and output need {_size(need * row)} of NM, the node "
                      f"has {_size(config.nm_depth * row)} (nm_depth): figures for a node "
                      f"with enough")
        try:
            programs.append(compile_network(_OneLayer(layer), cfg))
        except (CompileError, ValueError) as exc:
            programs.append(str(exc))
        caveats.append(caveat)
    return merge_reports(programs, qnet.layers, config_name, clock_mhz, caveats)


def run_network(qnet, x_q, engine, *, config=None, source="input", strict=False,
                intermediates=False, progress=False, vcd=None, clock_mhz=None):
    """Run a quantized network on an input with ``engine``.

    Parameters
    ----------
    qnet : diannao.golden.quant.QNetwork
    x_q : array_like of int or float, or diannao.sim.runtime.inputs.CheckedInput
        One sample or a batch: int16 values, or floats quantized at the input format.
    engine : Engine
    config : str or Config, optional
        The node to compile for: a preset name or a :class:`Config` (default the engine's
        :attr:`Engine.default_config`; the board's is its bitstream's).
    source : str
        The file the input came from, named in error messages.
    strict : bool
        Reject float values outside the input format instead of saturating them.
    intermediates : bool
        Return every layer's output (:attr:`RunResult.layer_outputs`); the program then
        keeps them all in NM (else NM holds the live tensors only).
    progress : bool
        Progress on stderr.
    vcd : path, optional
        Waveform of the run (simulators).
    clock_mhz : float, optional
        Clock for the report's throughput (default the engine's).

    Returns
    -------
    RunResult
        With :attr:`RunResult.input` set (real values, saturation count).

    Raises
    ------
    ValueError
        A bad input (:func:`diannao.sim.runtime.inputs.check_input`) or a network that does
        not fit the configuration (:class:`diannao.sim.compiler.program.CompileError`).
    diannao.sim.runtime.host.RunBudgetError
        A run that overran its cycle budget or time limit.
    """
    x = ensure_checked(qnet, x_q, source, strict=strict)
    if not engine.compiles:
        return RunResult(*_golden(qnet, x, intermediates), input=x)
    name, cfg = engine.resolve_config(config)
    return engine.execute(qnet, x, name, cfg, intermediates=intermediates, progress=progress,
                          vcd=vcd, clock_mhz=clock_mhz)
