"""The ULX3S (ECP5-85F) top level: a node behind a UART host link, clocked by a PLL."""

from amaranth import *

from diannao.boards.board_top import BoardTop


__all__ = ["ULX3STop", "CLOCK_HZ", "OSC_HZ"]

#: The board's oscillator and the PLL output that clocks the design.
OSC_HZ = 25_000_000
CLOCK_HZ = 125_000_000
#: EHXPLLL settings for 25 MHz -> 125 MHz (yowasp-ecppll -i 25 -o 125): VCO 625 MHz.
_PLL = dict(CLKI_DIV=1, CLKFB_DIV=5, CLKOP_DIV=5, CLKOP_CPHASE=2)


class ULX3STop(BoardTop):
    """ULX3S top: :class:`UARTNode` on the FTDI UART, clocked at :data:`CLOCK_HZ` from the
    25 MHz oscillator through an EHXPLLL; reset held until the PLL locks. LEDs: 0 busy,
    1 error, 2 toggles at each end of a program, 7 PLL locked.

    Without a platform (simulation) the design runs in the ``sync`` domain of the
    simulator and ``rx``/``tx`` are the UART lines; on the board they are the FTDI pins.

    Latency and throughput: those of :class:`UARTNode` at ``divisor`` clocks per bit.

    Parameters
    ----------
    config : Config or str
        Node configuration (default the ``ulx3s`` preset: 2 tiles of tn=4, 40 multipliers).
    baud : int
        Serial rate; ``divisor = CLOCK_HZ // baud``.
    divisor : int or None
        Clocks per bit, overriding ``baud`` (simulation uses a few clocks per bit).

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        UART lines in simulation.
    """

    clock_hz = CLOCK_HZ
    default_config = "ulx3s"

    def pll(self, m, platform, clk, locked):
        clk25 = platform.request(platform.default_clk, dir="i")
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=_PLL["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=_PLL["CLKOP_DIV"],
            p_CLKOP_CPHASE=_PLL["CLKOP_CPHASE"], p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=_PLL["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked,
            a_FREQUENCY_PIN_CLKI=str(OSC_HZ // 1_000_000),
            a_FREQUENCY_PIN_CLKOP=str(CLOCK_HZ // 1_000_000),
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2")

    def leds(self, m, platform, locked):
        core = self.core
        leds = [platform.request("led", i) for i in range(8)]
        m.d.comb += [leds[0].o.eq(core.busy), leds[1].o.eq(core.error),
                     leds[2].o.eq(core.done_led), leds[7].o.eq(locked)]
