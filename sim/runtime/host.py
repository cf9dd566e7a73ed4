"""The host side of the node's host port: what to write where, defined once.

:class:`HostPort` turns row-level operations (an instruction, an SB row, an NM row, a table,
the counters) into host-port accesses (:class:`hw.node.Region`). Each simulator supplies the
three primitives (:meth:`HostPort.write`, :meth:`HostPort.read`,
:meth:`HostPort.start_and_wait`) — Amaranth's simulator in :mod:`diannao.sim.engines.pysim`, cocotb in
:mod:`diannao.sim.engines.cocotb_bench`. :func:`load_program` and :func:`run_sample` are the protocol.
"""

import time

import numpy as np

from diannao.hw.activation import TABLE_WORDS, table_words
from diannao.hw.node import (Region, NODE_COUNTERS, STATUS, counter_index, host_imem_addr,
                             host_sb_addr, instr_chunks)
from diannao.hw.node_controller import STATES
from diannao.hw.tile import COUNTERS as TILE_COUNTERS
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import from_rows, as_chw, blocks


__all__ = ["HostPort", "load_program", "run_sample", "pack_row", "unpack_row",
           "RunBudgetError", "check_jobs", "cycle_budget", "read_status", "BUDGET_MARGIN"]

#: Cycles a run may take beyond twice the cycle model's prediction (:func:`cycle_budget`).
BUDGET_MARGIN = 1000


class RunBudgetError(RuntimeError):
    """A run that did not finish within its cycle budget. The message says where the node
    stands (program counter, instruction, controller state, busy tiles); ``status`` holds the
    decoded registers (:func:`read_status`)."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


def cycle_budget(program):
    """Cycles a run of ``program`` may take before it is stopped: twice the cycle model's
    prediction plus :data:`BUDGET_MARGIN`. A node that runs longer is broken (or the model
    is), never just slow: the model is exact."""
    return 2 * sum(cycle_model.program_cycles(program.instructions, program.config)) \
        + BUDGET_MARGIN


def check_jobs(config, jobs):
    """``jobs`` (``(program, inputs)`` pairs) as a list with int16-range arrays, after
    checking that every program was compiled for ``config``, the node that will run them.

    Raises
    ------
    ValueError
        A program compiled for another configuration.
    """
    out = []
    for program, inputs in jobs:
        if program.config != config:
            raise ValueError(f"a program compiled for {program.config} cannot run on {config}")
        out.append((program, np.asarray(inputs)))
    return out


def pack_row(values, width=16):
    """Pack signed ints (flattened, element 0 in the low bits) into one int of ``width``-bit
    two's complement fields."""
    flat = np.asarray(values, dtype=np.int64).reshape(-1)
    if width == 16:
        return int.from_bytes(flat.astype("<i2").tobytes(), "little")
    word, mask = 0, (1 << width) - 1
    for i, v in enumerate(flat.tolist()):
        word |= (v & mask) << (i * width)
    return word


def unpack_row(word, n, width=16):
    """Inverse of :func:`pack_row`: ``n`` signed ``width``-bit fields as an int64 array."""
    word = int(word) & ((1 << (width * n)) - 1)
    if width == 16:
        return np.frombuffer(word.to_bytes(2 * n, "little"), dtype="<i2").astype(np.int64)
    mask, sign = (1 << width) - 1, 1 << (width - 1)
    fields = [(word >> (i * width)) & mask for i in range(n)]
    return np.array([v - (1 << width) if v & sign else v for v in fields], dtype=np.int64)


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

    async def start_and_wait(self, budget):
        """Pulse ``start`` and wait until the node is idle again: ``True``; or, after
        ``budget`` cycles (or the port's time limit) with the node still busy, ``False``
        with the node left as it is."""
        raise NotImplementedError

    def limit(self, budget):
        """Text: the limit :meth:`start_and_wait` applies for ``budget``."""
        return f"its budget of {budget:,} cycles"

    async def write_instr(self, pc, word):
        cfg = self.config
        mask = (1 << cfg.row_bits) - 1
        for c in range(instr_chunks(cfg)):
            await self.write(Region.IMEM, host_imem_addr(cfg, pc, c), (word >> (c * cfg.row_bits)) & mask)

    async def write_code(self, beat, word):
        """Instruction ``word`` in main memory from beat ``beat`` on: its host words a
        lane each, low first (host word ``beat * mem_lanes + c`` of region MEM)."""
        cfg = self.config
        mask = (1 << cfg.row_bits) - 1
        for c in range(instr_chunks(cfg)):
            await self.write(Region.MEM, beat * cfg.mem_lanes + c,
                             (word >> (c * cfg.row_bits)) & mask)

    async def write_sb_row(self, tile, row, values):
        for lane in range(self.config.tn):
            await self.write(Region.SB, host_sb_addr(self.config, tile, row, lane),
                             pack_row(values[lane]))

    async def write_nm_row(self, addr, values):
        await self.write(Region.NM, addr, pack_row(values))

    async def write_mem_group(self, group, rows):
        """Main-memory row group ``group``: SB row ``rows[t]`` (``[tn, tn]``) of each tile
        ``t``, lane by lane (host word ``(group * tiles + t) * tn + lane`` of region MEM)."""
        tn = self.config.tn
        for t, row in enumerate(rows):
            for lane in range(tn):
                await self.write(Region.MEM, (group * len(rows) + t) * tn + lane,
                                 pack_row(row[lane]))

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
    """Write the program (a paged program's first two pages into the instruction memory,
    the others into main memory), every tile's SB image, the main-memory image of streamed
    weights and the activation tables."""
    for pc, word in enumerate(program.resident_words):
        await port.write_instr(pc, word)
    for j, word in enumerate(program.code_words):
        await port.write_code(program.code_base + j * program.config.instr_beats, word)
    for t, image in enumerate(program.sb):
        for r, row in enumerate(image):
            await port.write_sb_row(t, r, row)
    if program.mem is not None:
        for g, rows in enumerate(program.mem):
            await port.write_mem_group(g, rows)
    for slot, table in enumerate(program.tables):
        await port.write_table(slot, table)


async def _read_tensor(port, base, shape, tn):
    c, h, w = as_chw(shape)
    n = h * w * blocks(c, tn)
    rows = [await port.read_nm_row(base + r) for r in range(n)]
    return from_rows(np.array(rows, dtype=np.int64).reshape(n, tn), shape, tn)


async def read_status(port):
    """The node's ``status`` and ``tiles_busy`` registers, decoded: a dict with ``busy``,
    ``error``, ``state`` (a name of :data:`hw.node_controller.STATES`), ``pc`` and
    ``tiles_busy`` (a list of tile indices)."""
    raw = await port.read(Region.COUNTER, counter_index("status"))
    fields = {}
    for name, field in STATUS:
        fields[name] = (raw >> field.offset) & ((1 << field.width) - 1)
    busy_mask = await port.read(Region.COUNTER, counter_index("tiles_busy"))
    state = fields["state"]
    return dict(busy=fields["busy"], error=fields["error"], pc=fields["pc"],
                state=STATES[state] if state < len(STATES) else f"unknown ({state})",
                tiles_busy=[t for t in range(port.config.tiles) if busy_mask >> t & 1])


def _where(program, status):
    """Text: the instruction a node in ``status`` is executing and what it waits for."""
    # The controller steps its pc when it decodes: in FETCH and DECODE, pc is the
    # instruction being read; after DECODE, the one after it.
    depth = program.config.imem_depth
    pc = (status["pc"] - (status["state"] not in ("IDLE", "FETCH", "DECODE"))) % depth
    text = f"pc {pc}"
    if len(program.instructions) > depth:
        text += " (instruction memory address of a paged program)"
    elif 0 <= pc < len(program.instructions):
        text += f" ({program.instructions[pc]['op'].name}"
        layer = next((l for l in program.layers if pc in l.pcs), None)
        text += f" of layer {layer.index} ({layer.kind}))" if layer else ")"
    text += f", controller state {status['state']}"
    if status["state"] in ("ISSUE", "WAIT", "SYNC", "HALT"):       # waiting for the tiles
        text += f", tiles not done: {status['tiles_busy'] or 'none'}"
    return text


async def run_sample(port, program, x, budget=None):
    """Write one input, run the program, read the layers' outputs and the counters.

    Returns a dict: ``layer_outputs`` (per layer its output, or None for a layer whose
    output NM no longer holds: :attr:`LayerInfo.kept`), the node counters (``cycles``, ...), ``tiles`` (per
    tile counters; the node zeroes all counters when it starts), ``status`` (the node's
    registers after the run, :func:`read_status`), ``error`` and ``seconds`` (wall time of
    the run from ``start`` to idle, for simulation-speed figures).

    Raises
    ------
    RunBudgetError
        If the node is still busy after ``budget`` cycles (default :func:`cycle_budget`).
    """
    tn = program.config.tn
    budget = cycle_budget(program) if budget is None else budget
    for r, row in enumerate(program.input_image(x)):
        await port.write_nm_row(program.input_base + r, row)
    t0 = time.perf_counter()
    finished = await port.start_and_wait(budget)
    seconds = time.perf_counter() - t0
    if not finished:
        status = await read_status(port)
        predicted = sum(cycle_model.program_cycles(program.instructions, program.config))
        raise RunBudgetError(
            f"the node did not finish within {port.limit(budget)} (the cycle model "
            f"predicts {predicted:,}); it stands at {_where(program, status)}", status)
    run, run["tiles"] = await port.read_counters()
    run["seconds"] = seconds
    run["status"] = await read_status(port)
    run["error"] = run["status"]["error"]
    run["layer_outputs"] = [await _read_tensor(port, l.out_base, l.out_shape, tn)
                            if l.kept else None for l in program.layers]
    return run
