"""Engine ``board``: a node on an FPGA board, over the UART host link.

:class:`BoardEngine` loads program, weights and activation tables, and for each input
writes it, starts the node, polls until done and reads every layer's output and the
counters: the host-port protocol of :mod:`diannao.sim.runtime.host`, carried by
:class:`Link` frames (:mod:`diannao.boards.protocol`, ``docs/host-protocol.md``).
Compiling, input checks, batching and the report are
:func:`diannao.sim.runtime.run.run_network`'s, as for every engine.

:class:`Link` survives a faulty line: every response is checked (sync byte, length, CRC, the
request's tag, silence after it); a request that got no good response is sent again after
the line has been quiet long enough for the board to have abandoned any partial frame, at
most :attr:`Link.attempts` times, then :class:`LinkError` names the command, region and
address. Every command can be repeated safely: WRITE, READ, STATUS and INFO change nothing
twice, and a START carries the node's run count, so a repeated one is refused (``STALE``).

The transport is a serial port (``port="/dev/ttyUSB0"``: :class:`SerialTransport`) or any
object with ``write(bytes)``, ``read(n, timeout)`` (up to ``n`` bytes: as soon as ``n`` have
come, else what came within ``timeout`` seconds), ``discard()`` (drop what was received),
``clock()`` (seconds, the transport's time) and ``byte_time`` (seconds of one byte on the
line), and optionally ``latency`` (seconds a response may come late beyond the line's
time): :class:`diannao.sim.engines.uart_sim.SimUART` and ``SimBytes`` simulate a board,
:class:`diannao.sim.tools.link_faults.FaultInjector` puts faults on either.
"""

import asyncio
import sys
import time
from collections import Counter

from diannao.boards.protocol import (Cmd, Status, FLAG_BUSY, FLAG_DONE, VERSION, RESP_SYNC,
                                     ABANDON_BYTES, ProtocolError, encode_request,
                                     decode_response, request_len, response_len,
                                     status_fields)
from diannao.hw.node import Region
from diannao.sim.runtime.host import HostPort, load_program, run_sample
from diannao.sim.runtime.run import Engine


__all__ = ["BoardEngine", "Link", "LinkPort", "LinkError", "BoardError", "SerialTransport",
           "BOARD_CLOCK_MHZ", "FAILURES", "open_transport"]

#: The clock each board top runs at (MHz).
BOARD_CLOCK_MHZ = {"ulx3s": 125.0, "icebreaker": 30.0}

#: Why an attempt failed (keys of :attr:`Link.stats`), in words.
FAILURES = {
    "timeout": "no response",
    "short": "a response cut short",
    "garbage": "bytes that start no response",
    "bad_crc": "a response with a bad CRC",
    "extra": "bytes right after the response",
    "board_bad_crc": "the board saw a bad CRC",
}


def _request_name(cmd, region, addr):
    """``"WRITE of SB address 12"``; a command without an address by its name alone."""
    try:
        name = Cmd(cmd).name
    except ValueError:
        return f"command 0x{cmd:02X}"
    if cmd not in (Cmd.WRITE, Cmd.READ):
        return name
    try:
        where = Region(region).name
    except ValueError:
        where = f"region {region}"
    return f"{name} of {where} address {addr}"


class BoardError(ProtocolError):
    """The board answered a request with an error status (``status``)."""

    def __init__(self, status, cmd, region=0, addr=0):
        self.status = status
        try:
            name = Status(status).name
        except ValueError:
            name = f"0x{status:02X}"
        super().__init__(f"board answered {_request_name(cmd, region, addr)} with {name}")


class LinkError(ProtocolError):
    """A request that got no good response in :attr:`Link.attempts` attempts.

    Attributes
    ----------
    cmd, region, addr : int
        The request.
    reasons : list of str
        What went wrong at each attempt (keys of :data:`FAILURES`).
    """

    #: What the board may have done, by command.
    EFFECT = {
        Cmd.WRITE: "the word there holds its old value or the new one (every attempt writes "
                   "the whole word or nothing); nothing else was written",
        Cmd.START: "the node may have started once (never twice): STATUS's run count says",
    }

    def __init__(self, cmd, region, addr, reasons):
        self.cmd, self.region, self.addr, self.reasons = cmd, region, addr, list(reasons)
        effect = self.EFFECT.get(cmd, "it changes nothing on the board")
        said = ", ".join(f"{FAILURES.get(r, r)}" for r in reasons)
        super().__init__(f"{_request_name(cmd, region, addr)}: no good response in "
                         f"{len(reasons)} attempts ({said}); {effect}")


class _Failed(Exception):
    """One attempt that got no good response (``reason``: a key of :data:`FAILURES`)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class Link:
    """Request/response transactions with a board, retried over a faulty line.

    An attempt sends the request with a new tag and accepts the first response that starts
    with the sync byte, is whole, has a good CRC and echoes the tag, provided nothing follows
    it within :attr:`silence`; a complete response with another tag (a late or repeated
    answer to an earlier request) is skipped. Anything else fails the attempt: the driver
    then sends nothing for :attr:`quiet` seconds (any partial request on the board has been
    abandoned, and whatever the line still delivers has come and been dropped) and tries
    again, at most :attr:`attempts` times in all.

    Parameters
    ----------
    transport : object
        See the module's docstring.
    tn : int
        The board node's NFU width (sets the frame length).
    attempts : int
        Attempts per request before :class:`LinkError`.
    max_delay : float or None
        The longest (seconds) the transport may hold a byte back (default twice the board's
        abandon time plus the transport's ``latency``); the quiet time covers it.
    stats : collections.Counter or None
        Where to count (a new one by default): ``frames`` (request frames sent),
        ``requests`` (transactions that succeeded), ``retries``, ``detected`` (failed
        attempts) and one count per kind of failure (:data:`FAILURES`), ``stale``
        (responses skipped for their tag), ``failed`` (requests given up).
    trace : callable or None
        Called after every attempt with its tag and the failure's key in :data:`FAILURES`
        (None when it succeeded): fault campaigns pair attempts with the faults they met.
    """

    def __init__(self, transport, tn, *, attempts=8, max_delay=None, stats=None, trace=None):
        missing = [name for name in ("write", "read", "discard", "clock")
                   if not callable(getattr(transport, name, None))]
        if not hasattr(transport, "byte_time"):
            missing.append("byte_time")
        if missing:
            raise TypeError(f"Link transport {transport!r} lacks {', '.join(missing)} (see "
                            f"diannao.sim.engines.board; a serial port: SerialTransport)")
        if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
            raise ValueError(f"Link attempts must be a positive int, not {attempts!r}")
        self.transport = transport
        self.tn = tn
        self.attempts = attempts
        bt = transport.byte_time
        latency = getattr(transport, "latency", 0.0)
        if max_delay is None:
            max_delay = 2 * ABANDON_BYTES * bt + latency
        self.max_delay = max_delay
        #: Seconds a response may take from the request's writing: both frames on the line,
        #: 16 byte times more, the transport's latency.
        self.response_timeout = (request_len(tn) + response_len(tn) + 16) * bt + latency
        #: Seconds of silence a response must be followed by.
        self.silence = 2 * bt
        #: Seconds the driver sends nothing before it sends a request again: the request on
        #: the line, held back by up to ``max_delay``, then the board's abandon time.
        self.quiet = (request_len(tn) + ABANDON_BYTES + 4) * bt + max_delay
        self.stats = Counter() if stats is None else stats
        self.trace = trace
        self._tag = 0

    @property
    def frames(self):
        """Request frames sent."""
        return self.stats["frames"]

    def _attempt(self, frame, tag):
        """Send ``frame`` and return ``(status, payload)`` of its response, or raise
        :class:`_Failed`."""
        t = self.transport
        t.discard()
        t.write(bytes(frame))
        flush = getattr(t, "flush", None)
        if flush:
            flush()
        self.stats["frames"] += 1
        n = response_len(self.tn)
        deadline = t.clock() + self.response_timeout
        buf = bytearray()
        while True:
            if buf and buf[0] != RESP_SYNC:
                raise _Failed("garbage")
            if len(buf) >= n:
                try:
                    status, rtag, payload = decode_response(self.tn, bytes(buf[:n]))
                except ProtocolError:
                    raise _Failed("bad_crc") from None
                if rtag != tag:
                    self.stats["stale"] += 1
                    del buf[:n]
                    continue
                if len(buf) > n or t.read(1, self.silence):
                    raise _Failed("extra")
                return status, payload
            left = deadline - t.clock()
            if left <= 0:
                raise _Failed("short" if buf else "timeout")
            buf += t.read(n - len(buf), left)

    def _resync(self):
        """Send nothing until nothing has come for :attr:`quiet` seconds (bounded: a line
        that never goes quiet raises :class:`ProtocolError`)."""
        t = self.transport
        start = last = t.clock()
        while True:
            now = t.clock()
            left = last + self.quiet - now
            if left <= 0:
                return
            if now - start > 20 * self.quiet:
                raise ProtocolError(f"the line from the board did not go quiet for "
                                    f"{self.quiet:.3g} s within {20 * self.quiet:.3g} s")
            if t.read(1, left):
                last = t.clock()

    def send_frame(self, frame):
        """Send raw request bytes once (no retry); return the response ``(status,
        payload)``, the response recognised by the frame's tag byte. Raises
        :class:`ProtocolError` if no good response came."""
        try:
            return self._attempt(frame, frame[2])
        except _Failed as f:
            raise ProtocolError(f"no good response to {bytes(frame).hex()}: "
                                f"{FAILURES[f.reason]}") from None

    def transact(self, cmd, region=0, addr=0, data=0):
        """One request, retried until a good response (at most :attr:`attempts` times):
        ``(status, payload)``. A ``BAD_CRC`` answer is retried like a lost one.

        Raises
        ------
        LinkError
            No good response in :attr:`attempts` attempts.
        """
        reasons = []
        for attempt in range(self.attempts):
            if attempt:
                self.stats["retries"] += 1
            tag, self._tag = self._tag, (self._tag + 1) & 0xFF
            try:
                status, payload = self._attempt(
                    encode_request(self.tn, cmd, region, addr, data, tag), tag)
                if status == Status.BAD_CRC:
                    raise _Failed("board_bad_crc")
            except _Failed as f:
                reasons.append(f.reason)
                self.stats[f.reason] += 1
                self.stats["detected"] += 1
                if self.trace:
                    self.trace(tag, f.reason)
                self._resync()
                continue
            self.stats["requests"] += 1
            if self.trace:
                self.trace(tag, None)
            return status, payload
        self.stats["failed"] += 1
        raise LinkError(cmd, region, addr, reasons)

    def request(self, cmd, region=0, addr=0, data=0):
        """One transaction (:meth:`transact`); returns the payload, raises
        :class:`BoardError` unless the board answered OK."""
        status, payload = self.transact(cmd, region, addr, data)
        if status != Status.OK:
            raise BoardError(status, cmd, region, addr)
        return payload

    def info(self):
        """``(version, tn, tiles, act_tables)`` of the board."""
        p = self.request(Cmd.INFO)
        return tuple((p >> (8 * i)) & 0xFF for i in range(4))

    def status(self):
        """``(flags, runs)``: the ``FLAG_*`` bits and the node's run count."""
        return status_fields(self.request(Cmd.STATUS))

    def start(self):
        """Start the node once, however often the START must be sent: it carries the run
        count read first, so a START that already ran makes the next ones ``STALE`` (or
        ``BUSY``), and the run count tells whether it ran. Returns the run count after it.

        Raises
        ------
        ProtocolError
            The node is already running, or the run count moved by other than one.
        """
        flags, runs = self.status()
        if flags & FLAG_BUSY:
            raise ProtocolError("START: the node is already running (STATUS says busy)")
        status, _ = self.transact(Cmd.START, data=runs)
        after = (runs + 1) & 0xFF
        if status in (Status.STALE, Status.BUSY):
            # An earlier attempt ran (its response was lost): then the count moved by one.
            now = self.status()[1]
            if now != after:
                raise ProtocolError(f"START was answered {Status(status).name} and the run "
                                    f"count is {now}, not {after}: something else started "
                                    f"the node")
            self.stats["start_confirmed"] += 1
        elif status != Status.OK:
            raise BoardError(status, Cmd.START)
        return after


class LinkPort(HostPort):
    """:class:`diannao.sim.runtime.host.HostPort` over a :class:`Link` (the same protocol as
    the simulators)."""

    def __init__(self, config, link, *, timeout=10.0, progress=None):
        super().__init__(config)
        self.link = link
        self.timeout = timeout
        self.progress = progress

    async def write(self, region, addr, data):
        self.link.request(Cmd.WRITE, region, addr, data)
        if self.progress:
            self.progress()

    async def read(self, region, addr):
        return self.link.request(Cmd.READ, region, addr)

    async def start_and_wait(self, budget):
        """Start the node (:meth:`Link.start`) and poll its flags until it is done, or
        ``timeout`` seconds have passed (``False``: the caller reads where the node stands
        and reports it).

        Raises
        ------
        ProtocolError
            The run count moved again while it ran (something else started the node).
        """
        runs = self.link.start()
        t0 = time.monotonic()
        while True:
            flags, now = self.link.status()
            if now != runs:
                raise ProtocolError(f"the node's run count moved to {now} while run {runs} "
                                    f"ran: something else started it")
            if flags & FLAG_DONE and not flags & FLAG_BUSY:
                return True
            if time.monotonic() - t0 > self.timeout:
                return False

    def limit(self, budget):
        return f"the time limit of {self.timeout:g} s"


class SerialTransport:
    """A pyserial port as a :class:`Link` transport.

    Parameters
    ----------
    port : str
        Device name.
    baud : int
    latency : float
        Seconds a response may come late beyond its time on the line (USB-serial adapters
        deliver in packets: the FTDI's latency timer is 16 ms by default).
    """

    def __init__(self, port, baud=115200, latency=0.05):
        import serial
        self.serial = serial.Serial(port, baudrate=baud, timeout=1.0)
        self.serial.reset_input_buffer()
        self.byte_time = 10 / baud
        self.latency = latency

    def write(self, data):
        self.serial.write(bytes(data))
        self.serial.flush()
        return len(data)

    def read(self, n, timeout):
        self.serial.timeout = max(0.0, timeout)
        return self.serial.read(n)

    def discard(self):
        self.serial.reset_input_buffer()

    def clock(self):
        return time.monotonic()


def open_transport(port, baud=115200):
    """A :class:`SerialTransport` for ``port`` (a device name); other objects are returned
    unchanged."""
    if isinstance(port, str):
        return SerialTransport(port, baud)
    return port


class BoardEngine(Engine):
    """Engine ``board``: a node on an FPGA board, over the UART host link.

    Parameters
    ----------
    port : str or transport
        Serial device (opened with pyserial at ``baud``: :class:`SerialTransport`) or a
        transport (see the module's docstring; e.g.
        :class:`diannao.sim.engines.uart_sim.SimUART`).
    board : str
        ``"ulx3s"`` or ``"icebreaker"``: the bitstream's preset, which the network is
        compiled for unless :func:`~diannao.sim.runtime.run.run_network` is given a
        configuration (which must then match the bitstream).
    baud : int
    timeout : float
        Seconds a run may take.
    load_weights : bool
        With False the SB images are not sent: the weights are already resident (a previous
        run of the same network; DaDianNao keeps its synapses on chip). Program and tables
        are always sent.
    attempts : int
        Attempts per request (:class:`Link`).
    stats : collections.Counter or None
        Where the links of :meth:`run` count frames, retries and failures
        (:attr:`Link.stats`); a new Counter by default, kept as :attr:`stats`.
    trace : callable or None
        Given to the links (:class:`Link`).

    Raises
    ------
    ValueError
        Unknown board, no port.
    diannao.boards.protocol.ProtocolError
        From :meth:`run`: a request that got no good response in ``attempts`` attempts
        (:class:`LinkError`, naming it), an error status, a board whose configuration
        differs, or a node that raised its error flag.
    """

    name = "board"

    def __init__(self, port, board, *, baud=115200, timeout=10.0, load_weights=True,
                 attempts=8, stats=None, trace=None):
        if port is None:
            raise ValueError("engine 'board' needs --port (a serial device)")
        if board not in BOARD_CLOCK_MHZ:
            raise ValueError(f"engine 'board' needs --config ulx3s or --config icebreaker, "
                             f"not {board!r}")
        self.port, self.board, self.baud = port, board, baud
        self.timeout, self.load_weights = timeout, load_weights
        self.attempts, self.trace = attempts, trace
        self.stats = Counter() if stats is None else stats
        self.clock_mhz = BOARD_CLOCK_MHZ[board]
        self.default_config = board

    def run(self, program, batch, *, progress=False, vcd=None):
        if vcd is not None:
            raise ValueError("engine 'board' cannot write a waveform (--vcd)")
        cfg = program.config
        link = Link(open_transport(self.port, self.baud), cfg.tn, attempts=self.attempts,
                    stats=self.stats, trace=self.trace)
        try:
            version, tn, tiles, tables = link.info()
        except LinkError as e:
            raise ProtocolError(f"{e}. A board that never answers INFO may speak another "
                                f"protocol version than this driver's ({VERSION}): rebuild "
                                f"its bitstream") from e
        if (version, tn, tiles) != (VERSION, cfg.tn, cfg.tiles) or tables < len(program.tables):
            raise ProtocolError(f"the board runs protocol {version}, tn={tn}, tiles={tiles}, "
                                f"{tables} tables; expected protocol {VERSION}, tn={cfg.tn}, "
                                f"tiles={cfg.tiles} ({self.board} preset)")
        state = {"n": 0, "t": 0.0}

        def tick():
            state["n"] += 1
            now = time.monotonic()
            if now - state["t"] > 0.5:
                state["t"] = now
                print(f"\r  loading: {state['n']} frames", end="", file=sys.stderr, flush=True)

        hp = LinkPort(cfg, link, timeout=self.timeout, progress=tick if progress else None)

        async def go():
            if self.load_weights:
                await load_program(hp, program)
            else:
                for pc, word in enumerate(program.resident_words):
                    await hp.write_instr(pc, word)
                for slot, table in enumerate(program.tables):
                    await hp.write_table(slot, table)
            if progress:
                print(file=sys.stderr)
            runs = []
            for i, x in enumerate(batch):
                runs.append(await run_sample(hp, program, x))
                if progress:
                    print(f"  sample {i + 1}/{len(batch)}: {runs[-1]['cycles']} cycles",
                          file=sys.stderr)
            if progress and link.stats["retries"]:
                print(f"  link: {link.stats['frames']} frames, {link.stats['retries']} "
                      f"retried", file=sys.stderr)
            return runs

        runs = asyncio.run(go())
        if any(r["error"] for r in runs):
            raise ProtocolError("the node raised its error flag (unknown opcode)")
        return runs, None
