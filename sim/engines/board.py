"""Engine ``board``: a node on an FPGA board, over the UART host link.

:class:`BoardEngine` loads program, weights and activation tables, and for each input
writes it, starts the node, polls until done and reads every layer's output and the
counters: the host-port protocol of :mod:`diannao.sim.runtime.host`, carried by
:class:`Link` frames (:mod:`diannao.boards.protocol`, ``docs/host-protocol.md``).
Compiling, input checks, batching and the report are
:func:`diannao.sim.runtime.run.run_network`'s, as for every engine.

The transport is a pyserial port (``port="/dev/ttyUSB0"``) or any object with
``write(bytes)`` and ``read(n) -> bytes`` (fewer bytes on timeout), e.g.
:class:`diannao.sim.engines.uart_sim.SimUART` for a board top in Amaranth's simulator.
"""

import asyncio
import sys
import time

from diannao.boards.protocol import (Cmd, Status, FLAG_BUSY, FLAG_DONE, VERSION, ProtocolError,
                                     encode_request, decode_response, response_len)
from diannao.sim.runtime.host import HostPort, load_program, run_sample
from diannao.sim.runtime.run import Engine


__all__ = ["BoardEngine", "Link", "LinkPort", "BOARD_CLOCK_MHZ", "open_transport"]

#: The clock each board top runs at (MHz).
BOARD_CLOCK_MHZ = {"ulx3s": 125.0, "icebreaker": 30.0}


class BoardError(ProtocolError):
    """The board answered a request with an error status."""

    def __init__(self, status, cmd):
        self.status = status
        try:
            name = Status(status).name
        except ValueError:
            name = f"0x{status:02X}"
        super().__init__(f"board answered {Cmd(cmd).name} with {name}")


class Link:
    """Request/response transactions with a board.

    Parameters
    ----------
    transport : object with ``write(bytes)`` and ``read(n)``
    tn : int
        The board node's NFU width (sets the frame length).
    """

    def __init__(self, transport, tn):
        if not hasattr(transport, "write") or not hasattr(transport, "read"):
            raise TypeError(f"Link transport needs write() and read(), not {transport!r}")
        self.transport = transport
        self.tn = tn
        self.frames = 0

    def send_frame(self, frame):
        """Send raw request bytes; return the response ``(status, payload)``."""
        self.transport.write(bytes(frame))
        flush = getattr(self.transport, "flush", None)
        if flush:
            flush()
        resp = self.transport.read(response_len(self.tn))
        self.frames += 1
        return decode_response(self.tn, bytes(resp))

    def request(self, cmd, region=0, addr=0, data=0):
        """One transaction; returns the payload, raises :class:`BoardError` unless OK."""
        status, payload = self.send_frame(encode_request(self.tn, cmd, region, addr, data))
        if status != Status.OK:
            raise BoardError(status, cmd)
        return payload

    def info(self):
        """``(version, tn, tiles, act_tables)`` of the board."""
        p = self.request(Cmd.INFO)
        return tuple((p >> (8 * i)) & 0xFF for i in range(4))

    def status(self):
        return self.request(Cmd.STATUS) & 0xFF


class LinkPort(HostPort):
    """:class:`diannao.sim.runtime.host.HostPort` over a :class:`Link` (the same protocol as the simulators)."""

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
        """Start the node and poll its flags until it is done, or ``timeout`` seconds have
        passed (``False``: the caller reads where the node stands and reports it)."""
        self.link.request(Cmd.START)
        t0 = time.monotonic()
        while True:
            flags = self.link.status()
            if flags & FLAG_DONE and not flags & FLAG_BUSY:
                return True
            if time.monotonic() - t0 > self.timeout:
                return False

    def limit(self, budget):
        return f"the time limit of {self.timeout:g} s"


def open_transport(port, baud=115200, timeout=2.0):
    """A pyserial port for ``port`` (a device name); other objects are returned unchanged."""
    if isinstance(port, str):
        import serial
        ser = serial.Serial(port, baudrate=baud, timeout=timeout)
        ser.reset_input_buffer()
        return ser
    return port


class BoardEngine(Engine):
    """Engine ``board``: a node on an FPGA board, over the UART host link.

    Parameters
    ----------
    port : str or transport
        Serial device (opened with pyserial at ``baud``) or an object with
        ``write``/``read`` (e.g. :class:`diannao.sim.engines.uart_sim.SimUART`).
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

    Raises
    ------
    ValueError
        Unknown board, no port.
    diannao.boards.protocol.ProtocolError
        From :meth:`run`: no or bad response, an error status, a board whose
        configuration differs, or a node that raised its error flag.
    """

    name = "board"

    def __init__(self, port, board, *, baud=115200, timeout=10.0, load_weights=True):
        if port is None:
            raise ValueError("engine 'board' needs --port (a serial device)")
        if board not in BOARD_CLOCK_MHZ:
            raise ValueError(f"engine 'board' needs --config ulx3s or --config icebreaker, "
                             f"not {board!r}")
        self.port, self.board, self.baud = port, board, baud
        self.timeout, self.load_weights = timeout, load_weights
        self.clock_mhz = BOARD_CLOCK_MHZ[board]
        self.default_config = board

    def run(self, program, batch, *, progress=False, vcd=None):
        if vcd is not None:
            raise ValueError("engine 'board' cannot write a waveform (--vcd)")
        cfg = program.config
        link = Link(open_transport(self.port, self.baud), cfg.tn)
        version, tn, tiles, tables = link.info()
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
                for pc, word in enumerate(program.words):
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
            return runs

        runs = asyncio.run(go())
        if any(r["error"] for r in runs):
            raise ProtocolError("the node raised its error flag (unknown opcode)")
        return runs, None
