"""An 8N1 UART: receiver and transmitter with a clocks-per-bit divisor."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


__all__ = ["UARTRx", "UARTTx"]


def _check_divisor(cls, divisor):
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
        raise ValueError(f"{cls} divisor must be an int >= 2 (clocks per bit), not {divisor!r}")


class UARTRx(wiring.Component):
    """8N1 UART receiver.

    The line passes a two-flop synchronizer; a falling edge starts a byte, the start bit is
    checked at its middle and each data bit is sampled at its middle (``divisor`` clocks
    apart). A byte whose stop bit is low is dropped (framing error) and ``error`` pulses.

    Latency: ``data``/``valid`` are presented 2 + 9.5 bit times after the start bit's falling
    edge (in the middle of the stop bit). Throughput: one byte per 10 bit times (line rate);
    ``valid`` is a one-cycle pulse, there is no back-pressure.

    Parameters
    ----------
    divisor : int
        Clocks per bit (``clock_hz // baud``), at least 2 (simulations use 2-4; on a
        board the clock is far faster than the line).

    Members
    -------
    rx : ``In(1)``
        The serial line (idle high).
    data : ``Out(8)``
    valid : ``Out(1)``
        Pulses for one cycle with each received byte.
    error : ``Out(1)``
        Pulses for one cycle on a framing error.
    """

    def __init__(self, divisor):
        _check_divisor("UARTRx", divisor)
        self.divisor = divisor
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(8),
            "valid": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        s1, line = Signal(init=1), Signal(init=1)
        m.d.sync += [s1.eq(self.rx), line.eq(s1)]
        timer = Signal(range(div))
        bit = Signal(range(9))
        shreg = Signal(8)
        m.d.sync += [self.valid.eq(0), self.error.eq(0)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"              # a glitch, not a start bit
                with m.Else():
                    m.d.sync += [timer.eq(div - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shreg.eq(Cat(shreg[1:], line)), timer.eq(div - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(line):
                        m.d.sync += [self.data.eq(shreg), self.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """8N1 UART transmitter.

    Latency: the start bit is on ``tx`` two cycles after ``valid & ready``. Throughput: one
    byte per ``10 * divisor + 1`` clocks; ``ready`` is high when idle (a byte is taken when
    ``valid`` and ``ready`` are both high).

    Parameters
    ----------
    divisor : int
        Clocks per bit (``clock_hz // baud``), at least 2 (simulations use 2-4; on a
        board the clock is far faster than the line).

    Members
    -------
    data : ``In(8)``
    valid : ``In(1)``
    ready : ``Out(1)``
    tx : ``Out(1)``
        The serial line (idle high).
    """

    def __init__(self, divisor):
        _check_divisor("UARTTx", divisor)
        self.divisor = divisor
        super().__init__({
            "data": In(8),
            "valid": In(1),
            "ready": Out(1),
            "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        m = Module()
        div = self.divisor
        timer = Signal(range(div))
        bits = Signal(10)                # stop, data[7:0], start; sent LSB first
        left = Signal(range(11))
        m.d.comb += self.ready.eq((left == 0) & (timer == 0))
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(bits[0]), bits.eq(bits >> 1), timer.eq(div - 1),
                         left.eq(left - 1)]
        with m.Elif(self.valid):
            m.d.sync += [bits.eq(Cat(C(0, 1), self.data, C(1, 1))), left.eq(10)]
        return m
