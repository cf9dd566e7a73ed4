# amaranth: UnusedElaboratable=no
"""Running one tile on Amaranth's simulator: preload, start, wait, read back."""

from dataclasses import dataclass

import numpy as np
from amaranth import Elaboratable

from diannao.hw.activation import table_words, TABLE_WORDS
from diannao.hw.isa import encode
from diannao.hw.tile import Tile, COUNTERS
from diannao.sim.compiler.mapping import from_rows
from diannao.sim.engines.vcd import simulate


__all__ = ["load_table", "load_tables", "run_tile", "TileRun", "assemble"]


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


class _Probe(Elaboratable):
    """Elaborates ``tile`` and keeps its NFU-1 (``self.nfu1``) for the testbench to watch."""

    def __init__(self, tile):
        self.tile = tile
        self.nfu1 = None

    def elaborate(self, platform):
        m = self.tile.elaborate(platform)
        self.nfu1 = m.submodules.nfu1
        return m


@dataclass
class TileRun:
    """What :func:`run_tile` saw.

    Attributes
    ----------
    rows : list of (int, numpy.ndarray)
        Every NBout row, in NBout order: its NM address and its ``tn`` int16 values.
    counters : dict
        :data:`diannao.hw.tile.COUNTERS` values, plus ``start_to_done``: cycles from the
        ``start`` cycle to the ``done`` cycle inclusive.
    nfu1_valid : list of int
        NFU-1's ``valid_in`` in each cycle from ``start`` to three cycles after ``done``.
    """
    rows: list
    counters: dict
    nfu1_valid: list

    @property
    def outputs(self):
        """NM address -> row (the last row written to each address)."""
        return dict(self.rows)


def run_tile(config, fields, nbin_rows, sb_rows, tables=(), *, index=0, name="tile",
             max_cycles=10_000_000):
    """Run one compute instruction on a tile in Amaranth's simulator.

    NBin and SB are preloaded directly; tables go through the table write port.

    Parameters
    ----------
    config : diannao.hw.config.Config
    fields : dict
        Instruction fields (:func:`diannao.hw.isa.compute_fields`).
    nbin_rows : array ``[rows, tn]``
    sb_rows : array ``[rows, tn, tn]``
    tables : sequence of diannao.golden.formats.PWLTable
        Loaded into table slots 0, 1, ... through the table write port.
    index : int
        The tile's number in its node (sets its share of the work).
    max_cycles : int
        Cycles the tile may take before the run stops with an error.

    Returns
    -------
    TileRun
    """
    tn = config.tn
    dut = Tile(config)
    top = _Probe(dut)
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
        cycles, valid = 1, []
        while not ctx.get(dut.done):
            valid.append(ctx.get(top.nfu1.valid_in))
            await ctx.tick()
            cycles += 1
            if cycles > max_cycles:
                raise RuntimeError(f"the tile did not finish within {max_cycles} cycles")
        # After done nothing more may reach NFU-1.
        for _ in range(4):
            valid.append(ctx.get(top.nfu1.valid_in))
            await ctx.tick()
        rows = []
        for i in range(ctx.get(dut.nbout_count)):
            row = ctx.get(dut.nbout.data[i])
            rows.append((row.addr, np.array([row.data[j] for j in range(tn)], dtype=np.int64)))
        counters = {n: ctx.get(getattr(dut, n)) for n in COUNTERS}
        counters["start_to_done"] = cycles
        result["run"] = TileRun(rows, counters, valid)

    simulate(top, bench, name=name)
    return result["run"]


def assemble(rows, fields, shape, tn):
    """The output tensor of ``shape`` from NBout ``rows`` (``(address, values)``) of the
    instruction with ``fields``; every output row must be written exactly once.

    Raises
    ------
    ValueError
        A row outside the layer's output, a row written twice, or rows missing.
    """
    n = fields["oh"] * fields["ow"] * fields["ocb"]
    full = np.zeros((n, tn), dtype=np.int64)
    seen = set()
    for addr, values in rows:
        a = addr - fields["out_base"]
        if not 0 <= a < n:
            raise ValueError(f"NBout row for NM address {addr} is outside the layer's output")
        if a in seen:
            raise ValueError(f"NM address {addr} written twice")
        seen.add(a)
        full[a] = values
    if len(seen) != n:
        raise ValueError(f"{n - len(seen)} of {n} output rows missing")
    return from_rows(full, shape, tn)
