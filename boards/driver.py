"""The host driver: runs a quantized network on a board over the UART host link.

:func:`run_board` compiles the network for the board's preset, loads program, weights and
activation tables, and for each input writes it, starts the node, polls until done and reads
every layer's output and the counters — the host-port protocol of :mod:`sim.host`, carried
by :class:`Link` frames (:mod:`boards.protocol`, ``docs/host-protocol.md``).

The transport is a pyserial port (``port="/dev/ttyUSB0"``) or any object with
``write(bytes)`` and ``read(n) -> bytes`` (fewer bytes on timeout), e.g.
:class:`boards.sim_uart.SimUART` for a board top in Amaranth's simulator.
"""

import asyncio
import sys
import time

import numpy as np

from hw.config import preset
from hw.node import Region
from sim.host import HostPort, load_program, run_sample
from .protocol import (Cmd, Status, FLAG_BUSY, FLAG_DONE, FLAG_ERROR, VERSION, ProtocolError,
                       encode_request, decode_response, response_len)


__all__ = ["Link", "LinkPort", "BOARD_CLOCK_MHZ", "open_transport", "run_board"]

#: The clock each board top runs at (MHz).
BOARD_CLOCK_MHZ = {"ulx3s": 125.0, "icebreaker": 30.0}


class BoardError(ProtocolError):
    """The board answered a request with an error status."""

    def __init__(self, status, cmd):
        self.status = status
        name = Status(status).name if status in Status._value2member_map_ else f"0x{status:02X}"
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
    """:class:`sim.host.HostPort` over a :class:`Link` (the same protocol as the simulators)."""

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


def run_board(qnet, x_q, *, port, board, baud=115200, progress=False, timeout=10.0,
              config=None, clock_mhz=None, load_weights=True, **options):
    """Run ``qnet`` on inputs ``x_q`` (one sample or a batch) on a board.

    Parameters
    ----------
    qnet : golden.quant.QNetwork
    x_q : array_like of int or float, or sim.inputs.CheckedInput
        Checked with :func:`sim.inputs.ensure_checked` (int16 values, or floats quantized
        at the input format) before anything is sent.
    port : str or transport
        Serial device (opened with pyserial at ``baud``) or an object with
        ``write``/``read`` (e.g. :class:`boards.sim_uart.SimUART`).
    board : str
        ``"ulx3s"`` or ``"icebreaker"``; the network is compiled for that preset (or for
        ``config`` if given, which must match the bitstream).
    progress : bool
        Progress of the loading on stderr.
    timeout : float
        Seconds to wait for a run to finish.
    clock_mhz : float
        Clock for the report's throughput (default the board's clock).
    load_weights : bool
        With False the SB images are not sent: the weights are already resident (a previous
        run of the same network; DaDianNao keeps its synapses on chip). Program and tables
        are always sent.

    Returns
    -------
    sim.engines.RunResult
        Outputs, per-layer outputs and a report whose ``runs`` hold each sample's counters.

    Raises
    ------
    ValueError
        Unknown board, a bad input (:func:`sim.inputs.check_input`), or a network that does
        not fit (:class:`sim.compiler.CompileError`).
    boards.protocol.ProtocolError
        No or bad response, an error status, or a board whose configuration differs.
    """
    from sim.compiler import compile_network
    from sim.engines import RunResult
    from sim.inputs import ensure_checked
    from sim.report import build_report

    x = ensure_checked(qnet, x_q)
    if board not in BOARD_CLOCK_MHZ:
        raise ValueError(f"unknown board {board!r}; choose one of {', '.join(BOARD_CLOCK_MHZ)}")
    cfg = preset(board) if config is None else (preset(config) if isinstance(config, str)
                                                 else config)
    program = compile_network(qnet, cfg)
    batch = x.batch

    transport = open_transport(port, baud)
    link = Link(transport, cfg.tn)
    version, tn, tiles, tables = link.info()
    if (version, tn, tiles) != (VERSION, cfg.tn, cfg.tiles) or tables < len(program.tables):
        raise ProtocolError(f"the board runs protocol {version}, tn={tn}, tiles={tiles}, "
                            f"{tables} tables; expected protocol {VERSION}, tn={cfg.tn}, "
                            f"tiles={cfg.tiles} ({board} preset)")

    state = {"n": 0, "t": 0.0}

    def tick():
        state["n"] += 1
        now = time.monotonic()
        if now - state["t"] > 0.5:
            state["t"] = now
            print(f"\r  loading: {state['n']} frames", end="", file=sys.stderr, flush=True)

    hp = LinkPort(cfg, link, timeout=timeout, progress=tick if progress else None)

    async def go():
        if load_weights:
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
    y = np.stack([r["layer_outputs"][-1] for r in runs])
    per_layer = [np.stack([r["layer_outputs"][i] for r in runs])
                 for i in range(len(program.layers))]
    report = build_report(program, board, rtl_cycles=runs[0]["cycles"], run=runs[0],
                          clock_mhz=clock_mhz or BOARD_CLOCK_MHZ[board])
    report.runs = runs
    return RunResult(x.unbatch(y), [x.unbatch(a) for a in per_layer], report, input=x)
