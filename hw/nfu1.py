"""NFU-1: the multiplier array."""

from amaranth import *
from amaranth.lib import wiring, data, stream
from amaranth.lib.wiring import In, Out

from diannao.hw.ecp5 import is_ecp5, ecp5_multiplier
from diannao.hw.nbin import row_layout as neuron_row
from diannao.hw.sb import row_layout as synapse_row


__all__ = ["NFU1", "product_layout"]


def product_layout(tn):
    """``tn`` lanes of ``tn`` exact signed 32-bit products."""
    return data.ArrayLayout(data.ArrayLayout(data.signed(32), tn), tn)


class NFU1(wiring.Component):
    """NFU-1: ``tn * tn`` signed 16x16 -> 32-bit multipliers (paper: DianNao NFU-1).

    ``products[j][i] = w[j][i] * x[i]``, exact. Every multiplier has a registered output
    (an FPGA DSP block's output register). With a ``platform`` (an FPGA build) each product
    is its own register, which the DSP packing needs; without one (simulation, generic
    Verilog) each lane's products are one register word, written only with ``valid_in``:
    the same values in every cycle whose products are used.

    With ``input_regs`` the operands are registered too (a DSP block's input registers;
    on the ECP5 each multiplier is a :func:`hw.ecp5.ecp5_multiplier` with its input and
    output registers), for a fast clock.

    Latency :attr:`latency` cycles: 1, or 2 with ``input_regs``; throughput one input row
    and one synapse row per cycle (II = 1).

    The products leave as a stream without back-pressure (``o``, ``always_ready``). The
    input is not a stream: ``x`` and ``w`` are two buffer reads that meet ``valid_in``
    (delayed beside them by the tile) at a fixed latency after their addresses, and the
    tile computes ``x`` in the same cycle (bias and padding rows).

    Parameters
    ----------
    tn : int
        NFU width (power of two >= 2).
    input_regs : bool
        Register the operands (``Config.deep_pipeline``).

    Members
    -------
    valid_in : ``In(1)``
    x : ``In(ArrayLayout(signed(16), tn))``
        Input neurons.
    w : ``In(ArrayLayout(ArrayLayout(signed(16), tn), tn))``
        Synapses, one lane per output neuron.
    o : ``Out(stream.Signature(ArrayLayout(ArrayLayout(signed(32), tn), tn), always_ready=True))``
        The products (``o.payload[j][i]``), ``o.valid`` :attr:`latency` cycles after
        ``valid_in``.
    """

    def __init__(self, tn, input_regs=False):
        if not isinstance(tn, int) or tn < 2 or tn & (tn - 1):
            raise ValueError(f"NFU1 tn must be a power of two >= 2, not {tn!r}")
        self.tn = tn
        self.input_regs = bool(input_regs)
        self.latency = self.latency_of(input_regs)
        super().__init__({
            "valid_in": In(1),
            "x": In(neuron_row(tn)),
            "w": In(synapse_row(tn)),
            "o": Out(stream.Signature(product_layout(tn), always_ready=True)),
        })

    @staticmethod
    def latency_of(input_regs):
        """NFU-1's latency: 1 cycle, or 2 with ``input_regs``."""
        return 1 + bool(input_regs)

    def elaborate(self, platform):
        m = Module()
        tn = self.tn
        # valids[k]: the row k cycles after valid_in is valid.
        valids = [self.valid_in]
        for k in range(1, self.latency + 1):
            valids.append(Signal(name=f"valid{k}"))
            m.d.sync += valids[k].eq(valids[k - 1])
        m.d.comb += self.o.valid.eq(valids[-1])
        products = self.o.payload
        if self.input_regs and is_ecp5(platform):
            for j in range(tn):
                for i in range(tn):
                    cell, p = ecp5_multiplier(self.w[j][i], self.x[i])
                    m.submodules[f"mul{j}_{i}"] = cell
                    m.d.comb += products[j][i].eq(p[:32])
            return m
        x, w = self.x, self.w
        if self.input_regs:
            # Operand registers (without reset, written only with valid_in in simulation).
            x = Signal.like(self.x, name="x_r", reset_less=True)
            w = Signal.like(self.w, name="w_r", reset_less=True)
            with m.If(self.valid_in if platform is None else 1):
                m.d.sync += [x.eq(self.x), w.eq(self.w)]
        valid_in = valids[self.latency - 1]      # of the multipliers' inputs
        for j in range(tn):
            # The products of lane j, combinational (a simulator multiplies only when the
            # inputs change), then registered.
            lane = Signal(data.ArrayLayout(signed(32), tn), name=f"lane{j}")
            m.d.comb += [lane[i].eq(w[j][i] * x[i]) for i in range(tn)]
            if platform is None:
                # Simulation and generic Verilog: the lane's registers as one word, which a
                # simulator copies in one step instead of tn.
                # Written only with valid_in (a simulator skips idle cycles; the products of
                # a cycle without valid_in are never used).
                p = Signal(data.ArrayLayout(signed(32), tn), name=f"p{j}", reset_less=True)
                with m.If(valid_in):
                    m.d.sync += p.eq(lane)
                m.d.comb += products[j].eq(p)
                continue
            for i in range(tn):
                # FPGA builds: the same registers one per multiplier, without reset, so that
                # each is its DSP block's output register (iCE40 SB_MAC16, ECP5 MULT18X18D);
                # as one word per lane yosys 0.64's iCE40 DSP packing loses half of them.
                p = Signal(signed(32), name=f"p{j}_{i}", reset_less=True)
                m.d.sync += p.eq(lane[i])
                m.d.comb += products[j][i].eq(p)
        return m
