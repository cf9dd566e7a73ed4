"""cocotb 2.x testbench: runs a compiled program on the node's generated Verilog.

Started by :func:`diannao.sim.engines.hdl.run_jobs` through cocotb's runner API. The job (the
configuration, a list of programs with their inputs, a cycle budget per run) arrives as a
pickle named by ``DIANNAO_COCOTB_JOB``; the results (one per program, or an error entry for
a run that overran its budget, after which nothing more runs) go to the pickle named by
``DIANNAO_COCOTB_RESULT``. Everything crosses the node's host port
(:mod:`diannao.sim.runtime.host`): program, weights, tables, inputs, outputs and counters.
"""

import os
import pickle
import time
from types import SimpleNamespace

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge, with_timeout
from cocotb.triggers import SimTimeoutError

from diannao.sim.compiler.cycle_model import fetch_cycles
from diannao.sim.runtime.host import HostPort, RunBudgetError, load_program, run_sample

#: The simulated clock period.
CLOCK_NS = 10


#: The Verilog ports of the node's host port (:class:`diannao.hw.node.HostBus`, member
#: ``host``): Amaranth names a member of an interface by its path joined with ``__``.
HOST = {name: f"host__{name}" for name in ("region", "addr", "wdata", "we", "re", "rdata",
                                             "start", "busy", "done", "error")}


class _CocotbPort(HostPort):
    def __init__(self, dut, config):
        super().__init__(config)
        self.dut = dut
        self.host = SimpleNamespace(**{name: getattr(dut, port) for name, port in HOST.items()})

    async def write(self, region, addr, data):
        host = self.host
        host.region.value = region
        host.addr.value = addr
        host.wdata.value = data
        host.we.value = 1
        await RisingEdge(self.dut.clk)
        host.we.value = 0

    async def read(self, region, addr):
        dut, host = self.dut, self.host
        host.region.value = region
        host.addr.value = addr
        host.re.value = 1
        await RisingEdge(dut.clk)
        host.re.value = 0
        for _ in range(self.config.node_read_latency - 1):
            await RisingEdge(dut.clk)
        await ReadOnly()
        raw = host.rdata.value
        if not raw.is_resolvable:
            raise ValueError(f"host read of region {region} address {addr} returned {raw}")
        value = int(raw)
        await FallingEdge(dut.clk)
        return value

    async def start_and_wait(self, budget):
        dut, host = self.dut, self.host
        host.start.value = 1
        await RisingEdge(dut.clk)
        host.start.value = 0
        if "verilator" in cocotb.SIM_NAME.lower():
            # Verilator settles combinational logic before callbacks: wait in C++.
            try:
                await with_timeout(FallingEdge(host.busy), budget * CLOCK_NS, "ns")
            except SimTimeoutError:
                await FallingEdge(dut.clk)
                return False
            return True
        # Icarus shows the generated code's blocking defaults (`busy = 0; case ...`) as
        # glitches to callbacks: sample `busy` once per cycle, when it has settled.
        for _ in range(budget):
            await RisingEdge(dut.clk)
            await ReadOnly()
            if str(host.busy.value) == "0":
                await FallingEdge(dut.clk)
                return True
        await FallingEdge(dut.clk)
        return False


@cocotb.test()
async def run_program(dut):
    """Load each job's program, run every input, store outputs and counters."""
    with open(os.environ["DIANNAO_COCOTB_JOB"], "rb") as f:
        job = pickle.load(f)
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    for name in ("we", "re", "start", "region", "addr", "wdata"):
        getattr(dut, HOST[name]).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    port = _CocotbPort(dut, job["config"])
    # Event-driven simulators (Icarus) leave combinational outputs X until their inputs
    # first change. A bare start (the empty program halts with an error) moves the node
    # controller out of its initial state, so host writes are no longer gated by an X
    # `busy`; one warm-up run of the first program then moves every tile controller.
    # Verilator does not need this, and the runs below zero the counters when they start.
    # An empty program halts after fetch and decode; host writes are refused until then
    # (with a narrow instruction memory the fetch alone takes a cycle per host word).
    if not await port.start_and_wait(fetch_cycles(job["config"]) + 4):
        raise RuntimeError("the node did not halt on the empty program")
    results = []
    try:
        for n, (program, inputs) in enumerate(job["jobs"]):
            t0 = time.perf_counter()
            await load_program(port, program)
            if n == 0:
                await run_sample(port, program, inputs[0], job["budget"])
            t1 = time.perf_counter()
            runs = [await run_sample(port, program, x, job["budget"]) for x in inputs]
            results.append({"runs": runs, "load_seconds": t1 - t0,
                            "run_seconds": time.perf_counter() - t1})
    except RunBudgetError as exc:
        # The node is still busy: it takes no more host writes, so the later jobs cannot run.
        results.append({"error": str(exc), "status": exc.status})
    with open(os.environ["DIANNAO_COCOTB_RESULT"], "wb") as f:
        pickle.dump(results, f)
