"""The DMA engine that fills SB from main memory (paper: DianNao's DMA of SB)."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.config import Config
from diannao.hw.instr import INSTR
from diannao.hw.isa import field_width
from diannao.hw.main_memory import MemoryBus, mem_addr_width


__all__ = ["DMA"]


class DMA(wiring.Component):
    """Runs ``SBLOAD``: ``count`` SB rows of every tile from main memory.

    Main-memory row group ``src + r`` (``tiles`` SB rows of ``config.sb_row_beats`` beats
    each, tile 0 first, lanes in order) goes to SB row ``dst + r`` of each tile. The engine
    is handed the instruction by the node controller (``start`` with ``instr`` in the
    controller's SYNC cycle) and works beside it, as the store engine does: the controller
    goes on fetching, and a compute instruction waits until the engine is idle (its SB
    rows are then in place).

    Timing: handed the instruction in cycle ``t``, the engine requests a beat a cycle from
    ``t + 1`` (``B = count * tiles * config.sb_row_beats`` of them, more cycles when the
    memory refuses one), writes each beat into SB in the cycle it arrives (``mem_latency``
    cycles after its request), and is idle again from the cycle after the last:
    ``B + mem_latency`` cycles busy without stalls. An ``SBLOAD`` of no rows does nothing.

    Parameters
    ----------
    config : Config
        With ``mem_bytes`` > 0.

    Members
    -------
    start : ``In(1)``, instr : ``In(INSTR)``
        Take the ``SBLOAD`` (``src``, ``dst``, ``count``) when idle.
    busy : ``Out(1)``
    bus : ``Out(MemoryBus(config))``
    sb_valid : ``Out(1)``
        A beat for SB this cycle: lanes ``sb_lanes`` of row ``sb_row`` of tile ``sb_tile``
        take ``sb_data`` (the beat's lane ``j`` goes to the lanes ``j + k * mem_lanes``).
    sb_tile, sb_row, sb_lanes, sb_data : ``Out``
    reads, stalls : ``Out(1)``
        Pulses for the node's counters: a request taken, a request refused.
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"DMA config must be a Config, not {config!r}")
        self.config = config
        super().__init__({
            "start": In(1),
            "instr": In(INSTR),
            "busy": Out(1),
            "bus": Out(MemoryBus(config)),
            "sb_valid": Out(1),
            "sb_tile": Out(range(config.tiles)),
            "sb_row": Out(max(1, ceil_log2(config.sb_depth))),
            "sb_lanes": Out(config.tn),
            "sb_data": Out(data.ArrayLayout(unsigned(config.row_bits), config.mem_lanes)),
            "reads": Out(1),
            "stalls": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        per_row = cfg.sb_row_beats
        beats_width = field_width("count") + ceil_log2(cfg.tiles * per_row) + 1
        req, resp = self.bus.req, self.bus.resp
        # Requests: the next beat's address and how many are left.
        addr = Signal(mem_addr_width(cfg))
        to_ask = Signal(beats_width)
        # Responses: how many are still to come, and where the next one goes.
        to_take = Signal(beats_width)
        part = Signal(range(per_row))
        tile = Signal(range(cfg.tiles))
        row = Signal.like(self.sb_row)

        beats = self.instr.count * (cfg.tiles * per_row)
        with m.If(self.start & ~self.busy & (self.instr.count != 0)):
            m.d.sync += [addr.eq(self.instr.src * (cfg.tiles * per_row)),
                         to_ask.eq(beats), to_take.eq(beats),
                         part.eq(0), tile.eq(0), row.eq(self.instr.dst), self.busy.eq(1)]

        m.d.comb += [req.valid.eq(to_ask != 0), req.payload.eq(addr),
                     self.reads.eq(req.valid & req.ready),
                     self.stalls.eq(req.valid & ~req.ready)]
        with m.If(req.valid & req.ready):
            m.d.sync += [addr.eq(addr + 1), to_ask.eq(to_ask - 1)]

        m.d.comb += [self.sb_valid.eq(resp.valid), self.sb_tile.eq(tile),
                     self.sb_row.eq(row), self.sb_data.eq(resp.payload),
                     self.sb_lanes.eq(((1 << cfg.mem_lanes) - 1) << (part * cfg.mem_lanes))]
        with m.If(resp.valid):
            m.d.sync += to_take.eq(to_take - 1)
            with m.If(to_take == 1):
                m.d.sync += self.busy.eq(0)
            if per_row > 1:
                m.d.sync += part.eq(part + 1)
            with m.If(part == per_row - 1):
                m.d.sync += part.eq(0)
                if cfg.tiles > 1:
                    m.d.sync += tile.eq(tile + 1)
                with m.If(tile == cfg.tiles - 1):
                    m.d.sync += [tile.eq(0), row.eq(row + 1)]
        return m
