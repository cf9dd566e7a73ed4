"""A board's node in Amaranth's simulator behind a byte-stream transport (for the driver).

Two transports with one interface, the one :class:`diannao.sim.engines.board.Link` needs
(``write``, ``read(n, timeout)``, ``discard``, ``clock``, ``byte_time``) and the one
:mod:`diannao.sim.tools.link_faults` wraps (``pause``, ``advance``, ``take``):

:class:`SimUART`
    A board top (``ICEBreakerTop``, ``ULX3STop``): its ``rx``/``tx`` UART lines driven and
    sampled bit by bit (8N1, ``top.divisor`` clocks per bit, 10 bits a byte).
:class:`SimBytes`
    A :class:`ByteNode`: the same node and the same host link RTL
    (:class:`diannao.boards.host_link.HostLink`), with the UART receiver and transmitter
    replaced by an ideal byte line of ``byte_cycles`` clocks per byte, so that a frame takes
    a fraction of the simulated cycles (the UART itself has its own tests).

Time is the simulation's: :meth:`clock` is simulated seconds (a 10 ns clock), timeouts are
simulated seconds, and nothing waits without a limit. Both record what the host link
executed on the node's host port (:attr:`executed`: writes and STARTs), so that a test can
check that nothing ran that the driver did not send.
"""

import math
from collections import deque

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from diannao.boards.host_link import HostLink
from diannao.boards.protocol import ABANDON_BYTES, GAP_BYTES
from diannao.hw.config import Config
from diannao.hw.node import Node
from diannao.sim.engines.simulator import Simulator


__all__ = ["SimUART", "SimBytes", "ByteNode", "preload_weights"]


def _node(top):
    """The :class:`hw.node.Node` of a board top or a :class:`ByteNode`."""
    return top.node if isinstance(top, ByteNode) else top.core.node


def _link(top):
    """The :class:`HostLink` of a board top or a :class:`ByteNode`."""
    return top.link if isinstance(top, ByteNode) else top.core.link


def preload_weights(top, program):
    """Put ``program``'s SB images straight into the memories of ``top``'s node (a board top
    or a :class:`ByteNode`, before the simulation is created), so that a test can skip the
    slowest part of the loading (:class:`diannao.sim.engines.board.BoardEngine` with
    ``load_weights=False``)."""
    for tile, image in zip(_node(top).tiles, program.sb):
        tile.sb.data.init = image.tolist()


async def _ticks(ctx, n):
    """``n`` clock cycles (``ctx.tick().repeat(n)`` without its async generator, which
    complains when a simulation is dropped while one waits)."""
    for _ in range(n):
        await ctx.tick()


class ByteNode(wiring.Component):
    """A node and its :class:`HostLink`, with an ideal byte line in place of the UART.

    Received bytes are one-cycle pulses on ``rx_data``/``rx_valid``; the link's bytes leave
    at most one per ``byte_cycles`` clocks (``tx_byte``, pulse ``tx_strobe``), as a UART of
    ``byte_cycles`` clocks per byte would send them. The link's timeouts are in the same
    byte times as on a board (:data:`boards.protocol.ABANDON_BYTES`,
    :data:`boards.protocol.GAP_BYTES`).

    Latency: a byte taken from the link is on ``tx_byte`` one cycle later.

    Parameters
    ----------
    config : Config
    byte_cycles : int
        Clocks per byte on the line (>= 2).

    Members
    -------
    rx_data : ``In(8)``, rx_valid : ``In(1)``
    tx_byte : ``Out(8)``, tx_strobe : ``Out(1)``
    """

    def __init__(self, config, byte_cycles=4):
        if not isinstance(config, Config):
            raise TypeError(f"ByteNode config must be a Config, not {config!r}")
        if not isinstance(byte_cycles, int) or isinstance(byte_cycles, bool) or byte_cycles < 2:
            raise ValueError(f"ByteNode byte_cycles must be an int >= 2, not {byte_cycles!r}")
        self.config = config
        self.byte_cycles = byte_cycles
        self.node = Node(config)
        self.link = HostLink(config, ABANDON_BYTES * byte_cycles, gap=GAP_BYTES * byte_cycles)
        super().__init__({"rx_data": In(8), "rx_valid": In(1),
                          "tx_byte": Out(8), "tx_strobe": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.node = node = self.node
        m.submodules.link = link = self.link
        wiring.connect(m, link.host, node.host)
        cool = Signal(range(self.byte_cycles))         # clocks until the line is free
        m.d.comb += [link.rx_data.eq(self.rx_data), link.rx_valid.eq(self.rx_valid),
                     link.tx_ready.eq(cool == 0)]
        m.d.sync += self.tx_strobe.eq(0)
        with m.If(cool != 0):
            m.d.sync += cool.eq(cool - 1)
        with m.Elif(link.tx_valid):
            m.d.sync += [self.tx_byte.eq(link.tx_data), self.tx_strobe.eq(1),
                         cool.eq(self.byte_cycles - 1)]
        return m


class _SimTransport:
    """What :class:`SimUART` and :class:`SimBytes` share: the simulation, the queues, the
    clock, and the monitor of the host port."""

    #: The simulated clock period (seconds).
    period = 1e-8

    def __init__(self, top, byte_cycles, timeout_cycles):
        if not isinstance(timeout_cycles, int) or timeout_cycles < 1:
            raise ValueError(f"{type(self).__name__} timeout_cycles must be a positive int, "
                             f"not {timeout_cycles!r}")
        self.top = top
        self.byte_cycles = byte_cycles
        self.timeout_cycles = timeout_cycles
        #: Simulated cycles so far.
        self.cycles = 0
        #: What the host link executed, in order: ``("write", region, addr, data)`` for a
        #: host-port write, ``("start",)`` for a START that started the node.
        self.executed = []
        self._out = deque()         # bytes to send, and ("pause", cycles) items
        self._in = deque()          # (seconds, byte) received from the board, not yet read
        self._sim = Simulator(top)
        self._sim.add_clock(self.period)
        self._sim.add_testbench(self._drive, background=True)
        self._sim.add_testbench(self._listen, background=True)
        self._sim.add_testbench(self._watch_writes, background=True)
        self._sim.add_testbench(self._watch_starts, background=True)

    @property
    def byte_time(self):
        """Seconds (simulated) of one byte on the line."""
        return self.byte_cycles * self.period

    def clock(self):
        """Simulated seconds so far."""
        return self.cycles * self.period

    def _cycles(self, seconds):
        return max(0, math.ceil(seconds / self.period - 1e-9))

    def _run(self, cycles):
        self.cycles += cycles
        self._sim.run_until(self.cycles * self.period)

    def advance(self, seconds):
        """Run the simulation for ``seconds`` (at least one cycle)."""
        self._run(max(1, self._cycles(seconds)))

    async def _watch_writes(self, ctx):
        host = _link(self.top).host
        while True:
            await ctx.posedge(host.we)
            self.executed.append(("write", ctx.get(host.region), ctx.get(host.addr),
                                  ctx.get(host.wdata)))

    async def _watch_starts(self, ctx):
        host = _link(self.top).host
        while True:
            await ctx.posedge(host.start)
            self.executed.append(("start",))

    def write(self, data):
        """Queue bytes for the board (sent back to back, after what is queued)."""
        self._out.extend(bytes(data))
        return len(data)

    def pause(self, seconds):
        """Queue a silence of ``seconds`` on the line to the board."""
        self._out.append(("pause", max(1, self._cycles(seconds))))

    def flush(self):
        pass

    def read(self, n, timeout=None):
        """Up to ``n`` bytes from the board: as soon as ``n`` have come, else what came within
        ``timeout`` simulated seconds (default ``timeout_cycles``)."""
        if timeout is None:
            limit = self.timeout_cycles
        else:       # a positive timeout runs at least one cycle
            limit = max(1, self._cycles(timeout)) if timeout > 0 else 0
        end = self.cycles + limit
        while len(self._in) < n and self.cycles < end:
            self._run(min(self.byte_cycles, end - self.cycles))
        return bytes(self._in.popleft()[1] for _ in range(min(n, len(self._in))))

    def take(self):
        """Every byte received and not yet read, as ``(seconds, byte)`` pairs (the time is
        the end of the simulation step in which it arrived)."""
        items = list(self._in)
        self._in.clear()
        return items

    def discard(self):
        """Drop the bytes received and not yet read."""
        self._in.clear()

    reset_input_buffer = discard


class SimUART(_SimTransport):
    """A file-like transport whose other end is the ``rx``/``tx`` UART of a board top
    simulated in Amaranth's simulator: :meth:`write` queues bytes that a process shifts
    into ``rx`` (8N1, ``top.divisor`` clocks per bit); :meth:`read` runs the simulation until
    the bytes sent on ``tx`` are there (or the timeout passes, then it returns what it has,
    like a serial port's read timeout).

    Parameters
    ----------
    top : ULX3STop or ICEBreakerTop (anything with ``rx``, ``tx``, ``divisor``, ``core``)
    timeout_cycles : int
        Simulated cycles :meth:`read` waits by default.
    """

    def __init__(self, top, timeout_cycles=200_000):
        self.divisor = top.divisor
        super().__init__(top, 10 * top.divisor, timeout_cycles)

    async def _drive(self, ctx):
        rx, div = self.top.rx, self.divisor
        ctx.set(rx, 1)
        while True:
            if not self._out:
                await _ticks(ctx, div)
                continue
            item = self._out.popleft()
            if isinstance(item, tuple):
                await _ticks(ctx, item[1])
                continue
            for bit in [0] + [(item >> i) & 1 for i in range(8)] + [1]:
                ctx.set(rx, bit)
                await _ticks(ctx, div)

    async def _listen(self, ctx):
        tx, div = self.top.tx, self.divisor
        while True:
            await ctx.negedge(tx)
            await _ticks(ctx, div + div // 2)
            byte = 0
            for i in range(8):
                byte |= ctx.get(tx) << i
                await _ticks(ctx, div)
            if ctx.get(tx):                       # stop bit
                self._in.append((self.clock(), byte))


class SimBytes(_SimTransport):
    """The transport of a :class:`ByteNode`: bytes go to the host link one per
    ``byte_cycles`` clocks, the link's bytes come back at the same rate.

    Parameters
    ----------
    top : ByteNode
    timeout_cycles : int
        Simulated cycles :meth:`read` waits by default.
    """

    def __init__(self, top, timeout_cycles=200_000):
        if not isinstance(top, ByteNode):
            raise TypeError(f"SimBytes needs a ByteNode, not {top!r}")
        super().__init__(top, top.byte_cycles, timeout_cycles)

    async def _drive(self, ctx):
        top, bc = self.top, self.byte_cycles
        while True:
            if not self._out:
                await _ticks(ctx, bc)
                continue
            item = self._out.popleft()
            if isinstance(item, tuple):
                await _ticks(ctx, item[1])
                continue
            ctx.set(top.rx_data, item)
            ctx.set(top.rx_valid, 1)
            await ctx.tick()
            ctx.set(top.rx_valid, 0)
            await _ticks(ctx, bc - 1)

    async def _listen(self, ctx):
        top = self.top
        while True:
            await ctx.posedge(top.tx_strobe)
            self._in.append((self.clock(), ctx.get(top.tx_byte)))
