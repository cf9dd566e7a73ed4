"""The host link: protocol frames from a byte stream to the node's host port and back."""

from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from diannao.hw.config import Config
from diannao.hw.node import HostBus, Region
from diannao.boards.protocol import (REQ_SYNC, RESP_SYNC, VERSION, ADDR_BYTES, Cmd, Status,
                                     word_bytes)


__all__ = ["HostLink", "crc8_step"]


def crc8_step(crc, byte):
    """CRC-8/SMBUS of one more byte, as an Amaranth expression (a small XOR network)."""
    crc = crc ^ byte
    for _ in range(8):
        crc = Mux(crc[7], (crc << 1)[:8] ^ 0x07, (crc << 1)[:8])
    return crc[:8]


class HostLink(wiring.Component):
    """Executes host-link request frames (:mod:`boards.protocol`, ``docs/host-protocol.md``)
    on a node's host port and sends the response frames.

    A request (``0xA5``, then ``8 + W`` bytes, ``W = 2 * tn``) is collected byte by byte
    while its CRC-8 is computed; a frame whose CRC does not match is answered with
    ``BAD_CRC`` and not executed; an unknown command with ``BAD_CMD``; WRITE, READ of NM and
    START while the node is busy with ``BUSY``; a START whose data byte is not the run
    count (the STARTs executed so far, modulo 256) with ``STALE``, so that a repeated START
    never runs the program twice. Every response echoes the request's tag byte.

    Framing by silence: the sync byte starts a frame only if nothing was received for
    ``gap`` cycles before it (bytes received while a response is sent count), so that the
    tail of a repeated or interrupted request, which arrives back to back with other
    bytes, is never taken for a frame; a frame interrupted for ``timeout`` cycles is
    abandoned (no response). One request is handled at a time: bytes that arrive while a
    response is being sent are dropped, so the host waits for each response.

    Latency: the host-port strobes (``host.we``, ``host.re``, ``host.start``: registers)
    are high 2 cycles after the CRC byte is received; READ data is captured
    ``config.node_read_latency`` cycles after ``host.re``; the first response byte is offered to
    the transmitter 1-2 cycles after that, each further byte 1 cycle after the transmitter
    takes the last. Throughput: bound by the byte streams: one request per ``9 + W`` received
    bytes plus ``4 + W`` sent bytes.

    Parameters
    ----------
    config : Config
        The node's configuration (host word width, INFO fields).
    timeout : int
        Cycles of silence after which a partial frame is dropped (>= 1).
    gap : int or None
        Cycles of silence needed before a sync byte starts a frame (1 to ``timeout``;
        default ``timeout // 10``: with ``timeout`` 40 byte times, 4).

    Members
    -------
    rx_data : ``In(8)``, rx_valid : ``In(1)``
        Received bytes (one-cycle pulses, no back-pressure).
    tx_data : ``Out(8)``, tx_valid : ``Out(1)``, tx_ready : ``In(1)``
        Bytes to send (a byte moves when ``tx_valid & tx_ready``).
    host : ``Out(HostBus(config))``
        The node's host port (:class:`hw.node.HostBus`; the node has the flipped member),
        its control and status.
    """

    def __init__(self, config, timeout=1 << 20, gap=None):
        if not isinstance(config, Config):
            raise TypeError(f"HostLink config must be a Config, not {config!r}")
        if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 1:
            raise ValueError(f"HostLink timeout must be a positive int, not {timeout!r}")
        if gap is None:
            gap = max(1, timeout // 10)
        if not isinstance(gap, int) or isinstance(gap, bool) or not 1 <= gap <= timeout:
            raise ValueError(f"HostLink gap must be an int from 1 to the timeout ({timeout}), "
                             f"not {gap!r}")
        self.config = config
        self.timeout = timeout
        self.gap = gap
        super().__init__({
            "rx_data": In(8),
            "rx_valid": In(1),
            "tx_data": Out(8),
            "tx_valid": Out(1),
            "tx_ready": In(1),
            "host": Out(HostBus(config)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        w = word_bytes(cfg.tn)
        body_len = 1 + 1 + 1 + ADDR_BYTES + w    # cmd, tag, region, addr, data
        # the body, first byte in the low bits (the CRC byte is checked, not kept)
        frame = Signal(8 * body_len, reset_less=True)
        count = Signal(range(body_len + 1))
        crc = Signal(8)
        # Cycles since the last received byte, in every state (free-running between bytes),
        # and two sticky flags set from it, so that no comparison sits on the counter's
        # carry chain: `quiet` after `gap` cycles (a sync byte may start a frame), `expired`
        # after `timeout` (a partial frame is abandoned). Both set at reset.
        idle = Signal(range(self.timeout))
        quiet = Signal(init=1)
        expired = Signal(init=1)
        with m.If(self.rx_valid):
            m.d.sync += [idle.eq(0), quiet.eq(0), expired.eq(0)]
        with m.Else():
            m.d.sync += idle.eq(idle + 1)
            with m.If(idle == self.gap - 1):
                m.d.sync += quiet.eq(1)
            with m.If(idle == self.timeout - 1):
                m.d.sync += expired.eq(1)

        host = self.host
        cmd = frame[0:8]
        tag = frame[8:16]
        data_at = 24 + 8 * ADDR_BYTES
        m.d.comb += [
            host.region.eq(frame[16:24]),
            host.addr.eq(frame[24:data_at]),
            host.wdata.eq(frame[data_at:data_at + 8 * w]),
        ]
        # Whether the frame's CRC byte (the last one received) differs from the CRC of its
        # body, registered as the byte arrives so that EXEC starts from a register.
        crc_bad = Signal()

        # Sticky "done since START".
        done_seen = Signal()
        with m.If(host.start):
            m.d.sync += done_seen.eq(0)
        with m.Elif(host.done):
            m.d.sync += done_seen.eq(1)
        flags = Cat(host.busy, done_seen, host.error)
        # STARTs executed, modulo 256: a START runs only if its data byte equals it.
        runs = Signal(8)

        status = Signal(8)
        payload = Signal(8 * w, reset_less=True)
        info = Cat(C(VERSION, 8), C(cfg.tn, 8), C(cfg.tiles, 8), C(cfg.act_tables, 8))
        # status, tag and payload, shifted out low byte first
        resp = Signal(8 * (2 + w), reset_less=True)
        left = Signal(range(w + 4))           # response bytes still to send after SYNC
        tx_crc = Signal(8)

        # The host-port strobes are registers, high for one cycle after EXEC decides: the
        # command decode does not share a cycle with the node's address decode.
        we, re, go = Signal(), Signal(), Signal()
        m.d.sync += [we.eq(0), re.eq(0), go.eq(0)]
        m.d.comb += [host.we.eq(we), host.re.eq(re), host.start.eq(go)]
        rl = cfg.node_read_latency

        with m.FSM():
            with m.State("HUNT"):
                with m.If(self.rx_valid & (self.rx_data == REQ_SYNC) & quiet):
                    m.d.sync += [count.eq(0), crc.eq(0)]
                    m.next = "RECV"
            with m.State("RECV"):
                with m.If(self.rx_valid):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == body_len):
                        m.d.sync += crc_bad.eq(self.rx_data != crc)
                        m.next = "EXEC"
                    with m.Else():
                        m.d.sync += [frame.eq(Cat(frame[8:], self.rx_data)),
                                     crc.eq(crc8_step(crc, self.rx_data))]
                with m.Elif(expired):
                    m.next = "HUNT"
            with m.State("EXEC"):
                m.d.sync += [payload.eq(0), status.eq(Status.OK)]
                with m.If(crc_bad):
                    m.d.sync += status.eq(Status.BAD_CRC)
                    m.next = "RESPOND"
                with m.Elif(((cmd == Cmd.WRITE) | (cmd == Cmd.READ))
                            & (frame[16:24] >= len(Region))):
                    # An unknown region: the node sees only its low bits (found by the
                    # formal proof host-link-executes), so it is refused, not aliased.
                    m.d.sync += status.eq(Status.BAD_CMD)
                    m.next = "RESPOND"
                with m.Else():
                    with m.Switch(cmd):
                        with m.Case(Cmd.WRITE):
                            with m.If(host.busy):
                                m.d.sync += status.eq(Status.BUSY)
                            with m.Else():
                                m.d.sync += we.eq(1)
                            m.next = "RESPOND"
                        with m.Case(Cmd.READ):
                            # Registers and counters can be read while the node runs (where
                            # a run that overran its time limit stands); NM cannot.
                            with m.If(host.busy & (host.region == Region.NM)):
                                m.d.sync += status.eq(Status.BUSY)
                                m.next = "RESPOND"
                            with m.Else():
                                m.d.sync += re.eq(1)
                                m.next = "READ_WAIT0"
                        with m.Case(Cmd.START):
                            # Conditional on the run count: a repeated START (its response
                            # lost, or the frame duplicated) finds the count moved on.
                            with m.If(host.busy):
                                m.d.sync += status.eq(Status.BUSY)
                            with m.Elif(host.wdata[:8] != runs):
                                m.d.sync += status.eq(Status.STALE)
                            with m.Else():
                                m.d.sync += [go.eq(1), runs.eq(runs + 1)]
                            m.next = "RESPOND"
                        with m.Case(Cmd.STATUS):
                            m.d.sync += payload.eq(Cat(flags, C(0, 5), runs))
                            m.next = "RESPOND"
                        with m.Case(Cmd.INFO):
                            m.d.sync += payload.eq(info)
                            m.next = "RESPOND"
                        with m.Default():
                            m.d.sync += status.eq(Status.BAD_CMD)
                            m.next = "RESPOND"
            # host.re is high in READ_WAIT0; the data follows node_read_latency cycles later.
            for k in range(rl):
                with m.State(f"READ_WAIT{k}"):
                    m.next = f"READ_WAIT{k + 1}" if k + 1 < rl else "READ"
            with m.State("READ"):
                m.d.sync += payload.eq(host.rdata)
                m.next = "RESPOND"
            with m.State("RESPOND"):
                m.d.sync += [resp.eq(Cat(status, tag, payload)), left.eq(w + 3), tx_crc.eq(0)]
                m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [self.tx_data.eq(RESP_SYNC), self.tx_valid.eq(1)]
                with m.If(self.tx_ready):
                    m.next = "SEND"
            with m.State("SEND"):
                m.d.comb += self.tx_valid.eq(1)
                with m.If(left == 1):
                    m.d.comb += self.tx_data.eq(tx_crc)
                with m.Else():
                    m.d.comb += self.tx_data.eq(resp[:8])
                with m.If(self.tx_ready):
                    m.next = "NEXT"
            with m.State("NEXT"):
                # The byte has gone: step to the next (a state of its own, so that the
                # transmitter's handshake is not in the shift register's enable).
                m.d.sync += [resp.eq(resp >> 8), left.eq(left - 1),
                             tx_crc.eq(crc8_step(tx_crc, resp[:8]))]
                m.next = "SEND"
                with m.If(left == 1):
                    m.next = "HUNT"
        return m
