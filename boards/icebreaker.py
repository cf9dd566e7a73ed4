"""The iCEBreaker (iCE40UP5K) top level: a node behind a UART host link, clocked by a PLL."""

from amaranth import *

from diannao.boards.board_top import BoardTop


__all__ = ["ICEBreakerTop", "CLOCK_HZ", "OSC_HZ"]

#: The board's oscillator and the PLL output that clocks the design.
OSC_HZ = 12_000_000
CLOCK_HZ = 30_000_000
#: SB_PLL40_PAD settings for 12 MHz -> 30 MHz (yowasp-icepll -i 12 -o 30): VCO 960 MHz.
_PLL = dict(DIVR=0, DIVF=79, DIVQ=5, FILTER_RANGE=1)


class ICEBreakerTop(BoardTop):
    """iCEBreaker top: :class:`UARTNode` on the FTDI UART, clocked at :data:`CLOCK_HZ` from
    the 12 MHz oscillator through an SB_PLL40_PAD; reset held until the PLL locks. LEDs:
    red = error, green = toggles at each end of a program.

    Without a platform (simulation) the design runs in the ``sync`` domain of the
    simulator and ``rx``/``tx`` are the UART lines; on the board they are the FTDI pins.

    Latency and throughput: those of :class:`UARTNode` at ``divisor`` clocks per bit.

    Parameters
    ----------
    config : Config or str
        Node configuration (default the ``icebreaker`` preset: 1 tile of tn=2, 6 of the 8
        SB_MAC16).
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
    default_config = "icebreaker"

    def pll(self, m, platform, clk, locked):
        # The oscillator's pin feeds the PLL directly (SB_PLL40_PAD): on the UP5K the PLL
        # shares pin 35's site, so the pin cannot also have an input buffer.
        clk12 = platform.request(platform.default_clk, dir="-")
        m.submodules.pll = Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE", p_DIVR=_PLL["DIVR"], p_DIVF=_PLL["DIVF"],
            p_DIVQ=_PLL["DIVQ"], p_FILTER_RANGE=_PLL["FILTER_RANGE"],
            i_PACKAGEPIN=clk12.io, o_PLLOUTGLOBAL=clk, o_LOCK=locked,
            i_RESETB=1, i_BYPASS=0)

    def leds(self, m, platform, locked):
        m.d.comb += [platform.request("led_r", 0).o.eq(self.core.error),
                     platform.request("led_g", 0).o.eq(self.core.done_led)]
