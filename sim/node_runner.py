"""Running compiled programs on the node in Amaranth's simulator."""

import sys
import time

import numpy as np

from hw.activation import table_words, TABLE_WORDS
from hw.node import (Node, Region, NODE_COUNTERS, host_sb_addr, host_imem_addr,
                     counter_index, instr_chunks)
from hw.tile import COUNTERS as TILE_COUNTERS
from . import cycle_model
from .mapping import from_rows
from .tile_runner import pack_row, unpack_row
from .waves import simulate


__all__ = ["run_program"]


class _Progress:
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
            print(f"\r  [{bar:<30}] {100 * frac:5.1f}%  {self.done}/{self.total} cycles  "
                  f"{rate:,.0f} cycles/s", end="", file=sys.stderr, flush=True)

    def close(self):
        if self.enabled:
            print(file=sys.stderr)


def run_program(program, inputs, *, host_port=False, progress=False, name="node", vcd=None):
    """Run ``program`` on every input sample (int16 ``[batch, *input_shape]``).

    Weights, tables and the program are loaded once; for each sample the input is written
    to NM, the node is started, and the output is read back from NM.

    With ``host_port`` everything (program, SB, tables, inputs, outputs, counters) goes
    through the node's host port; otherwise memories are preloaded directly (fast) and
    only the tables use the host port.

    Returns
    -------
    outputs : numpy.ndarray ``[batch, *output_shape]``
    runs : list of dict
        Per sample: ``cycles`` and the other node counters, ``tiles`` (per-tile counter
        dicts for that run) and ``layer_outputs`` (list of per-layer int16 outputs).
    """
    cfg = program.config
    tn = cfg.tn
    inputs = np.asarray(inputs)
    dut = Node(cfg)
    words = program.words
    predicted = sum(cycle_model.program_cycles(program.instructions, cfg))
    bar = _Progress(predicted * len(inputs), progress)
    result = {"outputs": [], "runs": []}
    chunks = instr_chunks(cfg)

    async def host_write(ctx, region, addr, data):
        ctx.set(dut.host_region, region)
        ctx.set(dut.host_addr, addr)
        ctx.set(dut.host_wdata, data)
        ctx.set(dut.host_we, 1)
        await ctx.tick()
        ctx.set(dut.host_we, 0)

    async def host_read(ctx, region, addr):
        ctx.set(dut.host_region, region)
        ctx.set(dut.host_addr, addr)
        ctx.set(dut.host_re, 1)
        await ctx.tick()
        ctx.set(dut.host_re, 0)
        return ctx.get(dut.host_rdata)

    def tile_counters(ctx):
        return [{n: ctx.get(getattr(t, n)) for n in TILE_COUNTERS} for t in dut.tiles]

    async def bench(ctx):
        # Program, weights, tables.
        mask = (1 << cfg.row_bits) - 1
        for pc, word in enumerate(words):
            if host_port:
                for c in range(chunks):
                    await host_write(ctx, Region.IMEM, host_imem_addr(cfg, pc, c),
                                     (word >> (c * cfg.row_bits)) & mask)
            else:
                ctx.set(dut.imem_data[pc], word)
        for t, image in enumerate(program.sb):
            for r, row in enumerate(image):
                if host_port:
                    for lane in range(tn):
                        await host_write(ctx, Region.SB, host_sb_addr(cfg, t, r, lane),
                                         pack_row(row[lane]))
                else:
                    ctx.set(dut.tiles[t].sb.data[r], row.tolist())
        for s, table in enumerate(program.tables):
            for w, word in enumerate(table_words(table)):
                await host_write(ctx, Region.TABLE, s * TABLE_WORDS + w, word)

        for x in inputs:
            rows = program.input_image(x)
            for r, row in enumerate(rows):
                if host_port:
                    await host_write(ctx, Region.NM, program.input_base + r, pack_row(row))
                else:
                    ctx.set(dut.nm.data[program.input_base + r], row.tolist())
            before = tile_counters(ctx)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            steps = 0
            while True:
                done = ctx.get(dut.done)
                await ctx.tick()
                steps += 1
                if steps % 256 == 0:
                    bar.advance(256)
                if done:
                    break
            bar.advance(steps % 256)
            run = {}
            if host_port:
                for n in NODE_COUNTERS:
                    run[n] = await host_read(ctx, Region.COUNTER, counter_index(n))
                run["tiles"] = [{n: await host_read(ctx, Region.COUNTER, counter_index(n, t))
                                 for n in TILE_COUNTERS} for t in range(cfg.tiles)]
            else:
                run.update({n: ctx.get(getattr(dut, n)) for n in NODE_COUNTERS})
                run["tiles"] = tile_counters(ctx)
            for t, b in enumerate(before):
                for n in TILE_COUNTERS:
                    run["tiles"][t][n] = (run["tiles"][t][n] - b[n]) % (1 << 32)
            run["error"] = ctx.get(dut.error)

            async def read_tensor(base, shape):
                c, h, w = (shape[0], 1, 1) if len(shape) == 1 else shape
                n = h * w * -(-c // tn)
                if host_port:
                    raw = [unpack_row(await host_read(ctx, Region.NM, base + r), tn)
                           for r in range(n)]
                else:
                    raw = [[v for v in ctx.get(dut.nm.data[base + r])] for r in range(n)]
                return from_rows(np.array(raw, dtype=np.int64).reshape(n, tn), shape, tn)

            run["layer_outputs"] = [await read_tensor(l.out_base, l.out_shape)
                                    for l in program.layers]
            result["outputs"].append(run["layer_outputs"][-1])
            result["runs"].append(run)

    simulate(dut, bench, name=name, vcd=vcd)
    bar.close()
    return np.stack(result["outputs"]), result["runs"]
