"""What every board top shares: a UARTNode clocked by a PLL, reset until the PLL locks."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from diannao.hw.config import Config, preset
from diannao.boards.uart_node import UARTNode


__all__ = ["BoardTop"]


class BoardTop(wiring.Component):
    """Base of the board tops: :class:`UARTNode` on the board's UART, clocked at
    ``clock_hz`` through the board's PLL, reset held until the PLL locks.

    Without a platform (simulation) the design runs in the ``sync`` domain of the simulator
    and ``rx``/``tx`` are the UART lines. Subclasses set ``clock_hz`` and
    ``default_config`` and implement :meth:`pll` and :meth:`leds`.

    Parameters
    ----------
    config : Config or str
        Node configuration or preset name.
    baud : int
        Serial rate; ``divisor = clock_hz // baud``.
    divisor : int or None
        Clocks per bit, overriding ``baud`` (simulation uses a few clocks per bit).
    """

    clock_hz = None
    default_config = None

    def __init__(self, config=None, *, baud=115200, divisor=None):
        name, clock_hz = type(self).__name__, self.clock_hz
        if config is None:
            config = self.default_config
        if isinstance(config, str):
            config = preset(config)
        if not isinstance(config, Config):
            raise TypeError(f"{name} config must be a Config or preset name, not {config!r}")
        if not isinstance(baud, int) or isinstance(baud, bool) or not 0 < baud <= clock_hz // 4:
            raise ValueError(f"{name} baud must be an int in (0, {clock_hz // 4}], "
                             f"not {baud!r}")
        if divisor is None:
            divisor = clock_hz // baud
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
            raise ValueError(f"{name} divisor must be an int >= 2, not {divisor!r}")
        self.config = config
        self.baud = baud
        self.divisor = divisor
        self.core = UARTNode(config, divisor)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1)})

    def pll(self, m, platform, clk, locked):
        """Add the board's PLL driving ``clk`` from its oscillator, ``locked`` when stable."""
        raise NotImplementedError

    def leds(self, m, platform, locked):
        """Drive the board's LEDs from ``self.core`` status."""
        raise NotImplementedError

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = core = self.core
        if platform is None:
            m.d.comb += [core.rx.eq(self.rx), self.tx.eq(core.tx)]
            return m

        locked = Signal()
        clk = Signal()
        m.domains.sync = ClockDomain("sync")
        self.pll(m, platform, clk, locked)
        m.d.comb += ClockSignal("sync").eq(clk)
        m.submodules.reset = ResetSynchronizer(~locked, domain="sync")
        platform.add_clock_constraint(clk, self.clock_hz)

        uart = platform.request("uart", 0)
        m.d.comb += [core.rx.eq(uart.rx.i), uart.tx.o.eq(core.tx)]
        self.leds(m, platform, locked)
        return m
