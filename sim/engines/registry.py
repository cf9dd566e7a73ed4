"""The engines by name, as ``diannao run --engine`` takes them.

Every engine runs through :func:`diannao.sim.runtime.run.run_network`; :func:`run_network`
here only turns a name and its options into an :class:`~diannao.sim.runtime.run.Engine`.
"""

from diannao.sim.engines.board import BoardEngine
from diannao.sim.engines.hdl import HDLEngine
from diannao.sim.engines.postsynth import PostSynthEngine
from diannao.sim.engines.pysim import AmaranthEngine
from diannao.sim.runtime import run


__all__ = ["ENGINES", "engine_names", "make_engine", "run_network"]


def _board(*, port=None, board=None, config=None, **options):
    return BoardEngine(port, board or config, **options)


def _postsynth(*, board=None, config=None, **options):
    return PostSynthEngine(board or config, **options)


#: Engine factories by name; each takes the engine's keyword options.
ENGINES = {
    "golden": lambda **options: run.Golden(),
    "model": lambda **options: run.Model(),
    "pysim": lambda *, host_port=False: AmaranthEngine(host_port=host_port),
    "verilator": lambda: HDLEngine("verilator"),
    "icarus": lambda: HDLEngine("icarus"),
    "board": _board,
    "postsynth": _postsynth,
}


def engine_names():
    """The names :func:`make_engine` accepts."""
    return list(ENGINES)


def make_engine(name, **options):
    """The :class:`~diannao.sim.runtime.run.Engine` called ``name``, with ``options``
    (``host_port`` for pysim; ``port``, ``board``, ``config``, ``baud``, ``timeout``,
    ``load_weights`` for the board; ``board`` or ``config``, ``simulator`` for postsynth)."""
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose from {engine_names()}")
    return ENGINES[name](**options)


def run_network(qnet, x_q, engine="golden", *, config=None, port=None, host_port=False,
                **options):
    """:func:`diannao.sim.runtime.run.run_network` with the engine given by name.

    ``port`` goes to the board (which also takes ``config`` as its board's name, as does
    postsynth); ``host_port`` to pysim; every other option to the run.
    """
    engine_options = {}
    if engine in ("board", "postsynth"):
        engine_options = dict(config=config if isinstance(config, str) else None)
        if engine == "board":
            engine_options["port"] = port
        config = None if isinstance(config, str) else config
    elif engine == "pysim":
        engine_options = dict(host_port=host_port)
    return run.run_network(qnet, x_q, make_engine(engine, **engine_options), config=config,
                           **options)
