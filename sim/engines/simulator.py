"""Amaranth's Python simulator, with one expression compiled faster on the Amaranth it was
written for. Import :class:`Simulator` from here.

Amaranth 0.5 compiles a memory write port's enable as ``Cat(bit.replicate(g) for bit in
en)`` (``g`` the port's granularity, the row width without one), and ``replicate(g)`` is a
``Cat`` of ``g`` copies of one bit, which the simulator turns into ``g`` shift-and-or terms
of generated Python, run on every clock edge for every write port whether or not it writes.
A tile's SB write port (a 4,096-bit row at tn=16) thus cost 4,096 terms per tile per cycle,
the largest single cost of simulating the node. No design change avoids it: every write port
pays one term per data bit, whatever its granularity, and Amaranth has no public hook into
the simulator's code generation.

The trick, :func:`install`, is therefore the one use of Amaranth's private API in the
project, and is kept here: it replaces the simulator's ``Cat`` compiler
(``amaranth.sim._pyrtl._RHSValueCompiler.on_Concat``) by one that compiles a ``Cat`` whose
parts are all one and the same 1-bit value as a single expression, ``mask & -bit``: the same
value, one operation. Every other value compiles as before. It is installed only on the
Amaranth :data:`WRITTEN_FOR`, when the private names it replaces exist; on any other version
simulations take Amaranth's plain path (same values, slower) and :data:`SPEEDUP_REASON` says
why. :class:`Simulator` installs it (idempotently) when it is created; importing this module
changes nothing.
"""

import importlib.metadata

from amaranth import sim


__all__ = ["Simulator", "install", "uninstall", "WRITTEN_FOR"]

#: The Amaranth version whose simulator internals :func:`install` was written against.
WRITTEN_FOR = "0.5.10"
#: Whether the trick is installed.
SPEEDUP_ACTIVE = False
#: Why the trick is or is not installed (set by :func:`install` and :func:`uninstall`).
SPEEDUP_REASON = "not installed yet (a Simulator from this module installs it)"

_original = None    # (class, its own on_Concat or None) while installed


def amaranth_version():
    """The installed Amaranth's version (a function, so that tests can pretend another)."""
    return importlib.metadata.version("amaranth")


def _target():
    """The class whose ``on_Concat`` :func:`install` replaces, or a string saying why not."""
    version = amaranth_version()
    if version != WRITTEN_FOR:
        return (f"Amaranth {version} is not {WRITTEN_FOR}, the version the trick was written "
                f"for: plain simulator")
    try:
        from amaranth.sim import _pyrtl
        compiler = _pyrtl._RHSValueCompiler
        compiler.on_Concat
    except (ImportError, AttributeError) as e:
        return f"Amaranth {version} lacks a simulator internal the trick replaces ({e}): plain simulator"
    return compiler


def install():
    """Compile a ``Cat`` of copies of one bit as one expression, if this Amaranth is
    :data:`WRITTEN_FOR`. Idempotent. Returns :data:`SPEEDUP_ACTIVE`."""
    global SPEEDUP_ACTIVE, SPEEDUP_REASON, _original
    if _original is not None:
        return True
    compiler = _target()
    if isinstance(compiler, str):
        SPEEDUP_ACTIVE, SPEEDUP_REASON = False, compiler
        return False
    own = compiler.__dict__.get("on_Concat")
    general = compiler.on_Concat

    def on_Concat(self, value):
        parts = value.parts
        if len(parts) > 1 and len(parts[0]) == 1 and all(p is parts[0] for p in parts):
            return f"({(1 << len(parts)) - 1:#x} & -(1 & {self(parts[0])}))"
        return general(self, value)

    compiler.on_Concat = on_Concat
    _original = (compiler, own)
    SPEEDUP_ACTIVE = True
    SPEEDUP_REASON = f"installed: Amaranth {WRITTEN_FOR}, Cat of one bit compiled as one mask"
    return True


def uninstall():
    """Restore the simulator's own ``Cat`` compiler (idempotent). Simulators created before
    keep the code they compiled."""
    global SPEEDUP_ACTIVE, SPEEDUP_REASON, _original
    if _original is not None:
        compiler, own = _original
        if own is None:
            del compiler.on_Concat
        else:
            compiler.on_Concat = own
        _original = None
    SPEEDUP_ACTIVE = False
    SPEEDUP_REASON = "uninstalled"


class Simulator(sim.Simulator):
    """:class:`amaranth.sim.Simulator` that first calls :func:`install` (the design is
    compiled when the simulator is created)."""

    def __init__(self, toplevel, **kwargs):
        install()
        super().__init__(toplevel, **kwargs)
