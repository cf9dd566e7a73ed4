"""Registry of execution engines for quantized networks.

An engine is a callable ``engine(qnet, x_q, intermediates) -> outputs``
with the same return convention as :meth:`golden.quant.QNetwork.run`.
Only the bit-exact numpy engine ("golden") exists so far; RTL engines
register themselves here with :func:`register_engine` when they land.
"""

from __future__ import annotations

from typing import Callable

__all__ = ["ENGINES", "PLANNED_ENGINES", "register_engine", "engine_names", "run_network"]

#: Engines that can run now, by name.
ENGINES: dict[str, Callable] = {}
#: Engines the project plans but that are not implemented yet.
PLANNED_ENGINES = ("pysim", "verilator", "icarus")


def register_engine(name, fn):
    """Make ``fn(qnet, x_q, intermediates)`` available as engine ``name``."""
    ENGINES[name] = fn


def engine_names():
    """All engine names the CLI accepts (available and planned)."""
    return list(ENGINES) + [n for n in PLANNED_ENGINES if n not in ENGINES]


def _golden(qnet, x_q, intermediates=False):
    return qnet.run(x_q, intermediates=intermediates)


register_engine("golden", _golden)


def run_network(qnet, x_q, engine="golden", intermediates=False):
    """Run a quantized network on int16 inputs with the chosen engine.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x_q : array_like of int
        One sample or a batch.
    engine : str
    intermediates : bool
        Also return per-layer outputs.

    Raises
    ------
    ValueError
        If the engine is unknown or not available yet.
    """
    if engine not in ENGINES:
        if engine in PLANNED_ENGINES:
            raise ValueError(f"engine {engine!r} is not available yet")
        raise ValueError(f"unknown engine {engine!r}; choose from {engine_names()}")
    return ENGINES[engine](qnet, x_q, intermediates)
