"""Delay lines: a value carried through registers beside a pipeline."""

from amaranth import *


__all__ = ["delay"]


def delay(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (``name1``, ``name2``...) in ``m``'s
    ``sync`` domain; ``value`` itself for 0 cycles."""
    for k in range(1, cycles + 1):
        r = Signal.like(value, name=f"{name}{k}")
        m.d.sync += r.eq(value)
        value = r
    return value
