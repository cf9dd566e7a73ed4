"""Amaranth's Python simulator, with one expression compiled faster.

Amaranth 0.5 compiles a memory write port's enable as ``Cat(bit.replicate(g) for bit in
en)``, and ``replicate(g)`` is a ``Cat`` of ``g`` copies of one bit, which the simulator
turns into ``g`` shift-and-or terms of generated Python, run on every clock edge for every
write port whether or not it writes. A tile's SB write port (a 4,096-bit row at tn=16) thus
cost 4,096 terms per tile per cycle, the largest single cost of simulating the node.

:func:`install` (run on import) compiles a ``Cat`` whose parts are all one and the same
1-bit value as a single expression, ``mask & -bit``: the same value, one operation. Every
other value compiles as before. Import :class:`Simulator` from here.
"""

from amaranth.sim import Simulator
from amaranth.sim import _pyrtl


__all__ = ["Simulator", "install"]


def install():
    """Replace the simulator's ``Cat`` compiler (idempotent)."""
    compiler = _pyrtl._RHSValueCompiler
    if getattr(compiler.on_Concat, "_diannao", False):
        return
    general = compiler.on_Concat

    def on_Concat(self, value):
        parts = value.parts
        if len(parts) > 1 and len(parts[0]) == 1 and all(p is parts[0] for p in parts):
            return f"({(1 << len(parts)) - 1:#x} & -(1 & {self(parts[0])}))"
        return general(self, value)

    on_Concat._diannao = True
    compiler.on_Concat = on_Concat


install()
