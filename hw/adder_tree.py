"""An adder tree: one NFU-2 lane's reduction."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out


__all__ = ["AdderTree"]


class AdderTree(wiring.Component):
    """A pipelined, exact adder tree of ``n`` signed inputs (paper: DianNao NFU-2 adder tree).

    Each level adds pairs and widens by one bit, so nothing is lost: the sum of ``n``
    ``width``-bit values has ``width + log2(n)`` bits. A register follows every level.

    Latency ``log2(n)`` cycles; throughput one set of inputs per cycle (II = 1).

    Parameters
    ----------
    n : int
        Inputs (power of two >= 2).
    width : int
        Bits of each signed input.

    Members
    -------
    inputs : ``In(ArrayLayout(signed(width), n))``
    sum : ``Out(signed(width + log2(n)))``
    """

    def __init__(self, n, width):
        if not isinstance(n, int) or n < 2 or n & (n - 1):
            raise ValueError(f"AdderTree n must be a power of two >= 2, not {n!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"AdderTree width must be a positive int, not {width!r}")
        self.n = n
        self.width = width
        self.latency = n.bit_length() - 1
        super().__init__({
            "inputs": In(data.ArrayLayout(signed(width), n)),
            "sum": Out(signed(width + self.latency)),
        })

    def elaborate(self, platform):
        m = Module()
        level, width = self.inputs, self.width
        for depth in range(self.latency):
            # One level: its sums, combinational, then registered as one word (the same
            # netlist as a register per adder; a simulator adds only when the inputs change).
            n = len(level) // 2
            width += 1
            sums = Signal(data.ArrayLayout(signed(width), n), name=f"s{depth}")
            m.d.comb += [sums[i].eq(level[2 * i] + level[2 * i + 1]) for i in range(n)]
            reg = Signal(data.ArrayLayout(signed(width), n), name=f"l{depth}")
            m.d.sync += reg.eq(sums)
            level = reg
        m.d.comb += self.sum.eq(level[0])
        return m
