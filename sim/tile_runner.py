"""Running one tile on Amaranth's simulator: preload, start, wait, read back."""

import numpy as np

from hw.activation import table_words, TABLE_WORDS
from hw.isa import encode
from hw.tile import Tile, COUNTERS
from .host import pack_row, unpack_row
from .waves import simulate


__all__ = ["pack_row", "unpack_row", "load_table", "load_tables", "run_tile"]


async def load_table(ctx, port, slot, table):
    """Write one PWL table into ``slot`` through a ``tbl_we/tbl_addr/tbl_data`` port, one
    word a cycle."""
    for w, word in enumerate(table_words(table)):
        ctx.set(port.tbl_we, 1)
        ctx.set(port.tbl_addr, slot * TABLE_WORDS + w)
        ctx.set(port.tbl_data, word)
        await ctx.tick()
    ctx.set(port.tbl_we, 0)


async def load_tables(ctx, port, tables):
    """Write PWL tables into slots 0, 1, ... (see :func:`load_table`)."""
    for slot, table in enumerate(tables):
        await load_table(ctx, port, slot, table)


def run_tile(config, fields, nbin_rows, sb_rows, tables=(), *, index=0, name="tile"):
    """Run one compute instruction on a tile in Amaranth's simulator.

    Parameters
    ----------
    config : hw.config.Config
    fields : dict
        Instruction fields (:func:`hw.isa.compute_fields`).
    nbin_rows : array ``[rows, tn]``
    sb_rows : array ``[rows, tn, tn]``
    tables : sequence of golden.formats.PWLTable
        Loaded into table slots 0, 1, ... through the table write port.

    Returns
    -------
    outputs : dict
        NM address -> int16 row (``np.ndarray`` of ``tn``) for every NBout row.
    counters : dict
        :data:`hw.tile.COUNTERS` values, plus ``start_to_done``: cycles from the ``start``
        cycle to the ``done`` cycle inclusive.
    """
    tn = config.tn
    dut = Tile(config)
    result = {}

    async def bench(ctx):
        for i, row in enumerate(np.asarray(nbin_rows)):
            ctx.set(dut.nbin.data[i], row.tolist())
        for i, row in enumerate(np.asarray(sb_rows)):
            ctx.set(dut.sb.data[i], row.tolist())
        await load_tables(ctx, dut, tables)
        ctx.set(dut.index, index)
        ctx.set(dut.instr.as_value(), encode(**fields))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 1
        while not ctx.get(dut.done):
            await ctx.tick()
            cycles += 1
        await ctx.tick()
        count = ctx.get(dut.nbout_count)
        outputs = {}
        for i in range(count):
            row = ctx.get(dut.nbout.data[i])
            outputs[row.addr] = np.array([row.data[j] for j in range(tn)], dtype=np.int64)
        result["outputs"] = outputs
        result["counters"] = {n: ctx.get(getattr(dut, n)) for n in COUNTERS}
        result["counters"]["start_to_done"] = cycles

    simulate(dut, bench, name=name)
    return result["outputs"], result["counters"]
