"""A node behind a UART host link: the part of a board design that does not depend on the board."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from diannao.hw.config import Config
from diannao.hw.node import Node
from diannao.boards.host_link import HostLink
from diannao.boards.protocol import ABANDON_BYTES, GAP_BYTES
from diannao.boards.uart import UARTRx, UARTTx


__all__ = ["UARTNode"]


class UARTNode(wiring.Component):
    """A :class:`hw.node.Node` driven by a :class:`HostLink` over a :class:`UARTRx` /
    :class:`UARTTx` pair (8N1, ``divisor`` clocks per bit).

    Latency and throughput are those of the serial line: a request frame of ``9 + 2 * tn``
    bytes and its response of ``4 + 2 * tn`` bytes take ``10 * divisor`` clocks per byte
    (plus a few cycles of :class:`HostLink`); the node itself runs at the full clock.

    Parameters
    ----------
    config : Config
    divisor : int
        Clocks per bit (``clock_hz // baud``), >= 2.
    timeout : int or None
        Cycles of silence that abandon a partial request (default
        :data:`boards.protocol.ABANDON_BYTES` byte times); a sync byte starts a request
        after :data:`boards.protocol.GAP_BYTES` byte times of silence.

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        Serial lines (idle high).
    busy, error, done_led : ``Out(1)``
        The node's busy and error flags; ``done_led`` toggles at every end of a program.
    """

    def __init__(self, config, divisor, timeout=None):
        if not isinstance(config, Config):
            raise TypeError(f"UARTNode config must be a Config, not {config!r}")
        if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < 2:
            raise ValueError(f"UARTNode divisor must be an int >= 2, not {divisor!r}")
        if timeout is None:
            timeout = ABANDON_BYTES * 10 * divisor
        self.config = config
        self.divisor = divisor
        self.node = Node(config)
        self.link = HostLink(config, timeout, gap=min(GAP_BYTES * 10 * divisor, timeout))
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "busy": Out(1),
            "error": Out(1),
            "done_led": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.node = node = self.node
        m.submodules.link = link = self.link
        m.submodules.rx = rx = UARTRx(self.divisor)
        m.submodules.tx = tx = UARTTx(self.divisor)
        m.d.comb += [
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            link.rx_data.eq(rx.data),
            link.rx_valid.eq(rx.valid),
            tx.data.eq(link.tx_data),
            tx.valid.eq(link.tx_valid),
            link.tx_ready.eq(tx.ready),
            self.busy.eq(node.host.busy),
            self.error.eq(node.host.error),
        ]
        wiring.connect(m, link.host, node.host)
        with m.If(node.host.done):
            m.d.sync += self.done_led.eq(~self.done_led)
        return m
