"""cocotb 2.x testbench: runs a compiled program on the node's generated Verilog.

Started by :func:`sim.hdl.run_hdl` through cocotb's runner API. The job (program and
inputs) arrives as a pickle named by ``DIANNAO_COCOTB_JOB``; the results go to the pickle
named by ``DIANNAO_COCOTB_RESULT``. Everything crosses the node's host port
(:mod:`sim.host`): program, weights, tables, inputs, outputs and counters.
"""

import os
import pickle
import time

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge

from .host import HostPort, load_program, run_sample


class _CocotbPort(HostPort):
    def __init__(self, dut, config):
        super().__init__(config)
        self.dut = dut

    async def write(self, region, addr, data):
        dut = self.dut
        dut.host_region.value = region
        dut.host_addr.value = addr
        dut.host_wdata.value = data
        dut.host_we.value = 1
        await RisingEdge(dut.clk)
        dut.host_we.value = 0

    async def read(self, region, addr):
        dut = self.dut
        dut.host_region.value = region
        dut.host_addr.value = addr
        dut.host_re.value = 1
        await RisingEdge(dut.clk)
        dut.host_re.value = 0
        for _ in range(self.config.node_read_latency - 1):
            await RisingEdge(dut.clk)
        await ReadOnly()
        raw = dut.host_rdata.value
        if not raw.is_resolvable:
            raise ValueError(f"host read of region {region} address {addr} returned {raw}")
        value = int(raw)
        await FallingEdge(dut.clk)
        return value

    async def start_and_wait(self):
        dut = self.dut
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        if "verilator" in cocotb.SIM_NAME.lower():
            # Verilator settles combinational logic before callbacks: wait in C++.
            await FallingEdge(dut.busy)
            return
        # Icarus shows the generated code's blocking defaults (`busy = 0; case ...`) as
        # glitches to callbacks: sample `busy` once per cycle, when it has settled.
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            if str(dut.busy.value) == "0":
                break
        await FallingEdge(dut.clk)


@cocotb.test()
async def run_program(dut):
    """Load the job's program, run every input, store outputs and counters."""
    with open(os.environ["DIANNAO_COCOTB_JOB"], "rb") as f:
        job = pickle.load(f)
    program, inputs = job["program"], job["inputs"]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    for name in ("host_we", "host_re", "start", "host_region", "host_addr", "host_wdata"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    for _ in range(2):
        await RisingEdge(dut.clk)
    dut.rst.value = 0
    port = _CocotbPort(dut, program.config)
    # Event-driven simulators (Icarus) leave combinational outputs X until their inputs
    # first change. A bare start (the empty program halts with an error) moves the node
    # controller out of its initial state, so host writes are no longer gated by an X
    # `busy`; one warm-up run then moves every tile controller. Verilator does not need
    # this, and the runs below zero the counters when they start.
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    await ClockCycles(dut.clk, 4)     # an empty program halts after fetch and decode
    t0 = time.perf_counter()
    await load_program(port, program)
    for r, row in enumerate(program.input_image(inputs[0])):
        await port.write_nm_row(program.input_base + r, row)
    await port.start_and_wait()
    t1 = time.perf_counter()
    runs = []
    for x in inputs:
        runs.append(await run_sample(port, program, x))
    t2 = time.perf_counter()
    with open(os.environ["DIANNAO_COCOTB_RESULT"], "wb") as f:
        pickle.dump({"runs": runs, "load_seconds": t1 - t0, "run_seconds": t2 - t1}, f)
