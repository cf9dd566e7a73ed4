"""The host side of the node's host port: what to write where, defined once.

:class:`HostPort` turns row-level operations (an instruction, an SB row, an NM row, a table,
the counters) into host-port accesses (:class:`hw.node.Region`). Each simulator supplies the
three primitives (:meth:`HostPort.write`, :meth:`HostPort.read`,
:meth:`HostPort.start_and_wait`) — Amaranth's simulator in :mod:`sim.node_runner`, cocotb in
:mod:`sim.cocotb_node`. :func:`load_program` and :func:`run_sample` are the protocol.
"""

import time

import numpy as np

from hw.activation import TABLE_WORDS, table_words
from hw.node import (Region, NODE_COUNTERS, counter_index, host_imem_addr, host_sb_addr,
                     instr_chunks)
from hw.tile import COUNTERS as TILE_COUNTERS
from .mapping import from_rows, as_chw, blocks


__all__ = ["HostPort", "load_program", "run_sample", "pack_row", "unpack_row"]


def pack_row(values):
    """Pack int16 values (element 0 in the low bits) into one int."""
    raw = np.asarray(values, dtype=np.int64).reshape(-1).astype("<i2").tobytes()
    return int.from_bytes(raw, "little")


def unpack_row(word, n):
    """Inverse of :func:`pack_row` for ``n`` values."""
    raw = (int(word) & ((1 << (16 * n)) - 1)).to_bytes(2 * n, "little")
    return np.frombuffer(raw, dtype="<i2").astype(np.int64)


class HostPort:
    """Row-level access to a node through its host port.

    Subclasses implement :meth:`write`, :meth:`read` and :meth:`start_and_wait`, and may
    override the row-level methods with faster paths (e.g. preloading memories directly).
    """

    def __init__(self, config):
        self.config = config

    async def write(self, region, addr, data):
        raise NotImplementedError

    async def read(self, region, addr):
        raise NotImplementedError

    async def start_and_wait(self):
        """Pulse ``start`` and return once the node is idle again."""
        raise NotImplementedError

    async def write_instr(self, pc, word):
        cfg = self.config
        mask = (1 << cfg.row_bits) - 1
        for c in range(instr_chunks(cfg)):
            await self.write(Region.IMEM, host_imem_addr(cfg, pc, c), (word >> (c * cfg.row_bits)) & mask)

    async def write_sb_row(self, tile, row, values):
        for lane in range(self.config.tn):
            await self.write(Region.SB, host_sb_addr(self.config, tile, row, lane),
                             pack_row(values[lane]))

    async def write_nm_row(self, addr, values):
        await self.write(Region.NM, addr, pack_row(values))

    async def read_nm_row(self, addr):
        return unpack_row(await self.read(Region.NM, addr), self.config.tn)

    async def write_table(self, slot, table):
        for w, word in enumerate(table_words(table)):
            await self.write(Region.TABLE, slot * TABLE_WORDS + w, word)

    async def read_counters(self):
        """Node counters and a list of per-tile counter dicts."""
        node = {n: await self.read(Region.COUNTER, counter_index(n)) for n in NODE_COUNTERS}
        tiles = [{n: await self.read(Region.COUNTER, counter_index(n, t)) for n in TILE_COUNTERS}
                 for t in range(self.config.tiles)]
        return node, tiles


async def load_program(port, program):
    """Write the program, every tile's SB image and the activation tables."""
    for pc, word in enumerate(program.words):
        await port.write_instr(pc, word)
    for t, image in enumerate(program.sb):
        for r, row in enumerate(image):
            await port.write_sb_row(t, r, row)
    for slot, table in enumerate(program.tables):
        await port.write_table(slot, table)


async def _read_tensor(port, base, shape, tn):
    c, h, w = as_chw(shape)
    n = h * w * blocks(c, tn)
    rows = [await port.read_nm_row(base + r) for r in range(n)]
    return from_rows(np.array(rows, dtype=np.int64).reshape(n, tn), shape, tn)


async def run_sample(port, program, x):
    """Write one input, run the program, read every layer's output and the counters.

    Returns a dict: ``layer_outputs``, the node counters (``cycles``, ...), ``tiles`` (per
    tile counters; the node zeroes all counters when it starts), ``error`` and ``seconds``
    (wall time of the run from ``start`` to idle, for simulation-speed figures).
    """
    tn = program.config.tn
    for r, row in enumerate(program.input_image(x)):
        await port.write_nm_row(program.input_base + r, row)
    t0 = time.perf_counter()
    await port.start_and_wait()
    seconds = time.perf_counter() - t0
    run, run["tiles"] = await port.read_counters()
    run["seconds"] = seconds
    run["error"] = (await port.read(Region.COUNTER, counter_index("status")) >> 1) & 1
    run["layer_outputs"] = [await _read_tensor(port, l.out_base, l.out_shape, tn)
                            for l in program.layers]
    return run
