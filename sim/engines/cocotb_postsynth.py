"""cocotb 2.x test: the host driver runs programs on a board's synthesized netlist through
its UART pins.

Started by :func:`diannao.sim.engines.postsynth.run_postsynth` through cocotb's runner API.
The job (the board, the UART divisor, the programs with their inputs, a limit on simulated
cycles) arrives as a pickle named by ``DIANNAO_COCOTB_JOB``; the results (the runs of each
program, the link's statistics, the simulated cycles, or the error that stopped the run) go
to the pickle named by ``DIANNAO_COCOTB_RESULT``.

The driver is :class:`diannao.sim.engines.board.BoardEngine`, the one that drives a real
board: its protocol (:class:`~diannao.sim.engines.board.Link`) is blocking code, so it runs
in a thread of cocotb's :func:`cocotb.task.bridge`, and its transport, :class:`CocotbUART`,
returns to the simulator (:func:`cocotb.task.resume`) whenever it waits for bytes. Simulated
time stands still while the driver thread runs: the transport's clock is the simulator's.
Every byte crosses the netlist's UART pins, bit by bit (8N1, ``divisor`` clocks per bit):
program, weights, tables, inputs, STARTs, status polls, outputs and counters.
"""

import math
import os
import pickle
import time
import traceback
from collections import deque

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Event, FallingEdge, First, Timer

from diannao.sim.engines.board import BoardEngine


#: The simulated clock period (ns).
CLOCK_NS = 10
#: Clocks before the driver starts: the PLL stand-in locks after 16, the reset synchronizer
#: releases the design 2 later (a request sent before would be lost, and retried).
STARTUP_CYCLES = 64


class SimulationLimit(RuntimeError):
    """The run reached its limit of simulated cycles."""


class CocotbUART:
    """A :class:`~diannao.sim.engines.board.Link` transport whose other end is a
    simulated UART: ``rx`` (driven, idle high) and ``tx`` (sampled) of the design, 8N1 at
    ``divisor`` clocks of ``clock_ns`` per bit.

    :meth:`write`, :meth:`read`, :meth:`discard` and :meth:`clock` are called from the
    driver's thread (:func:`cocotb.task.bridge`); :meth:`read` hands control to the simulator
    until the bytes have come or its timeout has passed, in simulated time. Two tasks in
    the simulator shift the queued bytes into ``rx`` and collect the bytes on ``tx`` (a
    byte whose stop bit is low is counted in :attr:`framing_errors` and dropped).

    Parameters
    ----------
    rx, tx : cocotb handles
    clk : cocotb handle
        The clock: bytes start on its falling edges.
    divisor : int
        Clocks per bit.
    clock_ns : int
    limit_cycles : int
        Simulated cycles after which :meth:`read` raises :class:`SimulationLimit`.
    """

    def __init__(self, rx, tx, clk, divisor, clock_ns, limit_cycles):
        self.rx, self.tx, self.clk = rx, tx, clk
        self.divisor = divisor
        self.clock_ns = clock_ns
        self.limit_ns = limit_cycles * clock_ns
        self.limit_cycles = limit_cycles
        #: Seconds of one byte on the line.
        self.byte_time = 10 * divisor * clock_ns * 1e-9
        self.framing_errors = 0
        self._out = deque()
        self._in = deque()
        self._kick = Event()
        self._got = Event()
        self._now_ns = get_sim_time("ns")

    def start(self):
        """Start the tasks that drive ``rx`` and sample ``tx``."""
        self.rx.value = 1
        cocotb.start_soon(self._drive())
        cocotb.start_soon(self._listen())

    # The driver thread's side.

    def write(self, data):
        """Queue bytes for the design (sent back to back after what is queued, once the
        simulation runs again)."""
        self._out.extend(bytes(data))
        return len(data)

    def read(self, n, timeout):
        """Up to ``n`` bytes from the design: as soon as ``n`` have come, else what came
        within ``timeout`` simulated seconds."""
        return resume(self._read)(n, timeout)

    def discard(self):
        """Drop the bytes received and not yet read."""
        self._in.clear()

    def clock(self):
        """Simulated seconds (the simulator does not run while the driver thread does)."""
        return self._now_ns * 1e-9

    # The simulator's side.

    async def _read(self, n, timeout):
        if self._out:
            self._kick.set()
        now = get_sim_time("ns")
        deadline = now + max(self.clock_ns, math.ceil(timeout * 1e9))
        while len(self._in) < n:
            now = get_sim_time("ns")
            if now >= self.limit_ns:
                raise SimulationLimit(f"the run reached its limit of {self.limit_cycles:,} "
                                      f"simulated cycles")
            if now >= deadline:
                break
            self._got.clear()
            await First(self._got.wait(), Timer(min(deadline, self.limit_ns) - now, "ns"))
        self._now_ns = get_sim_time("ns")
        return bytes(self._in.popleft() for _ in range(min(n, len(self._in))))

    async def _drive(self):
        bit = self.divisor * self.clock_ns
        while True:
            if not self._out:
                self._kick.clear()
                await self._kick.wait()
                continue
            await FallingEdge(self.clk)
            while self._out:
                byte = self._out.popleft()
                for value in [0] + [(byte >> i) & 1 for i in range(8)] + [1]:
                    self.rx.value = value
                    await Timer(bit, "ns")

    async def _listen(self):
        bit = self.divisor * self.clock_ns
        # The middle of the start bit, then of each data bit, at a falling clock edge
        # (the line changes at rising edges).
        first = (3 * self.divisor // 2) * self.clock_ns + self.clock_ns // 2
        while True:
            await FallingEdge(self.tx)
            await Timer(first, "ns")
            byte = 0
            for i in range(8):
                byte |= int(self.tx.value) << i
                await Timer(bit, "ns")
            if str(self.tx.value) == "1":
                self._in.append(byte)
                self._got.set()
            else:
                self.framing_errors += 1


@cocotb.test()
async def run_programs(dut):
    """Run each job's program on its inputs over the UART with the board driver."""
    with open(os.environ["DIANNAO_COCOTB_JOB"], "rb") as f:
        job = pickle.load(f)
    clock_ns = job["clock_ns"]
    cocotb.start_soon(Clock(dut.clk, clock_ns, unit="ns").start())
    uart = CocotbUART(dut.rx, dut.tx, dut.clk, job["divisor"], clock_ns, job["limit_cycles"])
    uart.start()
    await ClockCycles(dut.clk, STARTUP_CYCLES)
    engine = BoardEngine(uart, job["board"], timeout=job["poll_seconds"])
    result = {"jobs": [], "error": None}
    t0 = time.perf_counter()

    def run_all():
        for program, batch in job["jobs"]:
            runs, _ = engine.run(program, batch)
            result["jobs"].append(runs)

    try:
        await bridge(run_all)()
    except Exception as exc:                      # reported by the caller, with the cause
        result["error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"
    result["cycles"] = int(get_sim_time("ns")) // clock_ns
    result["seconds"] = time.perf_counter() - t0
    result["link"] = dict(engine.stats)
    result["framing_errors"] = uart.framing_errors
    with open(os.environ["DIANNAO_COCOTB_RESULT"], "wb") as f:
        pickle.dump(result, f)
