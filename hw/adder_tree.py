"""Adder trees: NFU-2's reductions, one per lane."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out


__all__ = ["AdderTree"]


class AdderTree(wiring.Component):
    """``lanes`` pipelined, exact adder trees of ``n`` signed inputs each (paper: DianNao
    NFU-2's adder trees, one per output neuron of the tile).

    Each level adds pairs and widens by one bit, so nothing is lost: the sum of ``n``
    ``width``-bit values has ``width + log2(n)`` bits. A register follows every level; the
    registers of one level (every lane) form one word.

    Latency ``log2(n)`` cycles; throughput one set of inputs per lane per cycle (II = 1).

    Parameters
    ----------
    n : int
        Inputs per tree (power of two >= 2).
    width : int
        Bits of each signed input.
    lanes : int
        Trees (>= 1).
    reset_less : bool
        Registers without reset (see below: not for the iCE40).

    Members
    -------
    inputs : ``In(ArrayLayout(ArrayLayout(signed(width), n), lanes))``
    sum : ``Out(ArrayLayout(signed(width + log2(n)), lanes))``
    """

    def __init__(self, n, width, lanes=1, reset_less=False):
        if not isinstance(n, int) or n < 2 or n & (n - 1):
            raise ValueError(f"AdderTree n must be a power of two >= 2, not {n!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"AdderTree width must be a positive int, not {width!r}")
        if not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"AdderTree lanes must be a positive int, not {lanes!r}")
        self.n = n
        self.width = width
        self.lanes = lanes
        self.reset_less = bool(reset_less)
        self.latency = n.bit_length() - 1
        super().__init__({
            "inputs": In(data.ArrayLayout(data.ArrayLayout(signed(width), n), lanes)),
            "sum": Out(data.ArrayLayout(signed(width + self.latency), lanes)),
        })

    def elaborate(self, platform):
        m = Module()
        level, n, width = self.inputs, self.n, self.width
        for depth in range(self.latency):
            # One level of every lane: the sums, combinational, then registered as one word
            # (the same netlist as a register per adder; a simulator adds only when the
            # inputs change and copies one word per level each cycle). With reset although
            # valid travels beside the trees: without one, yosys 0.64 packs NFU-1's
            # products, the first level's adder and this register into SB_MAC16s on the
            # iCE40 and fails (a 33-bit sum on a 32-bit DSP output, "connected to constants").
            n //= 2
            width += 1
            layout = data.ArrayLayout(data.ArrayLayout(signed(width), n), self.lanes)
            sums = Signal(layout, name=f"s{depth}")
            m.d.comb += [sums[j][i].eq(level[j][2 * i] + level[j][2 * i + 1])
                         for j in range(self.lanes) for i in range(n)]
            reg = Signal(layout, name=f"l{depth}", reset_less=self.reset_less)
            m.d.sync += reg.eq(sums)
            level = reg
        m.d.comb += [self.sum[j].eq(level[j][0]) for j in range(self.lanes)]
        return m
