"""Running compiled programs on the node in Amaranth's simulator."""

import sys
import time

import numpy as np

from diannao.hw.node import Node, host_imem_addr, instr_chunks
from diannao.sim.compiler import cycle_model
from diannao.sim.runtime.host import HostPort, check_jobs, load_program, pack_row, run_sample
from diannao.sim.runtime.run import Engine
from diannao.sim.engines.vcd import simulate


__all__ = ["AmaranthEngine", "run_program", "run_jobs", "Progress"]


class Progress:
    """A one-line progress bar on stderr, driven by simulated cycles."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.done, self.t0, self.last = total, enabled, 0, time.time(), 0

    def advance(self, cycles):
        self.done += cycles
        now = time.time()
        if self.enabled and (now - self.last > 0.5 or self.done >= self.total):
            self.last = now
            frac = min(1.0, self.done / max(1, self.total))
            rate = self.done / max(1e-9, now - self.t0)
            bar = "#" * int(30 * frac)
            print(f"\r  [{bar:<30}] {100 * frac:5.1f}%  {self.done:,}/{self.total:,} cycles  "
                  f"{rate:,.0f} cycles/s", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.enabled:
            print(file=sys.stderr)


class _AmaranthPort(HostPort):
    """The host port driven from an Amaranth testbench."""

    def __init__(self, ctx, dut, progress):
        super().__init__(dut.config)
        self.ctx, self.dut, self.progress = ctx, dut, progress

    async def write(self, region, addr, data):
        ctx, host = self.ctx, self.dut.host
        ctx.set(host.region, region)
        ctx.set(host.addr, addr)
        ctx.set(host.wdata, data)
        ctx.set(host.we, 1)
        await ctx.tick()
        ctx.set(host.we, 0)

    async def read(self, region, addr):
        ctx, host = self.ctx, self.dut.host
        ctx.set(host.region, region)
        ctx.set(host.addr, addr)
        ctx.set(host.re, 1)
        await ctx.tick()
        ctx.set(host.re, 0)
        for _ in range(self.config.node_read_latency - 1):
            await ctx.tick()
        return ctx.get(host.rdata)

    async def start_and_wait(self, budget):
        ctx, host = self.ctx, self.dut.host
        ctx.set(host.start, 1)
        await ctx.tick()
        ctx.set(host.start, 0)
        for steps in range(1, budget + 1):
            done = ctx.get(host.done)
            await ctx.tick()
            if steps % 256 == 0:
                self.progress.advance(256)
            if done:
                self.progress.advance(steps % 256)
                return True
        return False


class _Backdoor(_AmaranthPort):
    """Like :class:`_AmaranthPort`, but program, SB and NM go straight into the memories."""

    async def write_instr(self, pc, word):
        cfg = self.config
        if cfg.imem_narrow:          # one host word per row (hw.node.host_imem_addr)
            mask = (1 << cfg.row_bits) - 1
            for c in range(instr_chunks(cfg)):
                self.ctx.set(self.dut.imem_data[host_imem_addr(cfg, pc, c)],
                             (word >> (c * cfg.row_bits)) & mask)
        else:
            self.ctx.set(self.dut.imem_data[pc], word)

    async def write_sb_row(self, tile, row, values):
        self.ctx.set(self.dut.tiles[tile].sb.data[row], np.asarray(values).tolist())

    async def write_nm_row(self, addr, values):
        self.ctx.set(self.dut.nm.data[addr], np.asarray(values).tolist())

    async def write_mem_group(self, group, rows):
        cfg = self.config
        lanes = cfg.mem_lanes
        for t, row in enumerate(rows):
            first = (group * cfg.tiles + t) * cfg.sb_row_beats
            for b in range(cfg.sb_row_beats):
                self.ctx.set(self.dut.mem.data[first + b],
                             [pack_row(row[b * lanes + j]) for j in range(lanes)])

    async def write_code(self, beat, word):
        cfg = self.config
        lanes, mask = cfg.mem_lanes, (1 << cfg.row_bits) - 1
        chunks = [(word >> (c * cfg.row_bits)) & mask
                  for c in range(cfg.instr_beats * lanes)]
        for b in range(cfg.instr_beats):
            self.ctx.set(self.dut.mem.data[beat + b], chunks[b * lanes:(b + 1) * lanes])

    async def read_nm_row(self, addr):
        return np.array(list(self.ctx.get(self.dut.nm.data[addr])), dtype=np.int64)


def run_jobs(config, jobs, *, host_port=False, progress=False, name="node", vcd=None,
             budget=None):
    """Run several programs compiled for ``config`` on one simulated node, one after the
    other (each loaded as :func:`run_program` loads it).

    Returns a list of ``(outputs, runs)``, one per job, as :func:`run_program`.
    """
    jobs = check_jobs(config, jobs)
    dut = Node(config)
    predicted = sum(sum(cycle_model.program_cycles(p.instructions, config)) * len(x)
                    for p, x in jobs)
    bar = Progress(predicted, progress)
    results = []

    async def bench(ctx):
        port = (_AmaranthPort if host_port else _Backdoor)(ctx, dut, bar)
        for program, inputs in jobs:
            await load_program(port, program)
            runs = [await run_sample(port, program, x, budget) for x in inputs]
            results.append((np.stack([r["layer_outputs"][-1] for r in runs]), runs))

    try:
        simulate(dut, bench, name=name, vcd=vcd)
    finally:
        bar.close()
    return results


def run_program(program, inputs, *, host_port=False, progress=False, name="node", vcd=None,
                budget=None):
    """Run ``program`` on every input sample (int16 ``[batch, *input_shape]``).

    Program, weights and tables are loaded once; for each sample the input is written to
    NM, the node runs, and every layer's output is read back from NM. With ``host_port``
    everything goes through the node's host port (:mod:`diannao.sim.runtime.host`); otherwise program, SB
    and NM are accessed directly in the memories (fast), and tables and counters still use
    the host port. Each run may take ``budget`` cycles (default
    :func:`diannao.sim.runtime.host.cycle_budget`).

    Returns
    -------
    outputs : numpy.ndarray ``[batch, *output_shape]``
    runs : list of dict
        Per sample, from :func:`diannao.sim.runtime.host.run_sample`.

    Raises
    ------
    diannao.sim.runtime.host.RunBudgetError
        If a run overran its budget (the message says where the node stood).
    """
    [(outputs, runs)] = run_jobs(program.config, [(program, inputs)], host_port=host_port,
                                 progress=progress, name=name, vcd=vcd, budget=budget)
    return outputs, runs


class AmaranthEngine(Engine):
    """Engine ``pysim``: the node RTL in Amaranth's simulator (:func:`run_program`).

    Parameters
    ----------
    host_port : bool
        Load program, weights and inputs through the host port instead of straight into
        the memories (slower; the same path the other engines take).
    """

    name = "pysim"

    def __init__(self, *, host_port=False):
        self.host_port = host_port

    def run(self, program, batch, *, progress=False, vcd=None):
        _, runs = run_program(program, batch, progress=progress, vcd=vcd,
                              host_port=self.host_port)
        return runs, None
