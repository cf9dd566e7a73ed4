"""The DMA engine that fills SB from main memory (paper: DianNao's DMA of SB)."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.config import Config
from diannao.hw.instr import INSTR
from diannao.hw.isa import INSTR_WIDTH, Op, field_width
from diannao.hw.main_memory import MemoryBus, mem_addr_width


__all__ = ["DMA"]


class DMA(wiring.Component):
    """Runs ``SBLOAD``: ``count`` SB rows of every tile from main memory; and ``IMLOAD``:
    ``count`` instructions from main memory into the instruction memory.

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

    An ``IMLOAD`` reads ``B = count * config.instr_beats`` beats from beat ``src`` on and
    writes each instruction, its beats put together (lanes in order, each a host word of
    the instruction, low first), to instruction ``dst + i`` in the cycle its last beat
    arrives; the same timing.

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
    imem_valid : ``Out(1)``
        An instruction for the instruction memory this cycle: ``imem_data`` at ``imem_addr``.
    imem_addr, imem_data : ``Out``
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
            "imem_valid": Out(1),
            "imem_addr": Out(max(1, ceil_log2(config.imem_depth))),
            "imem_data": Out(INSTR_WIDTH),
            "reads": Out(1),
            "stalls": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        per_row, per_instr = cfg.sb_row_beats, cfg.instr_beats
        per_group = cfg.tiles * per_row
        beats_width = field_width("count") + ceil_log2(max(per_group, per_instr)) + 1
        req, resp = self.bus.req, self.bus.resp
        # Requests: the next beat's address and how many are left.
        addr = Signal(mem_addr_width(cfg))
        to_ask = Signal(beats_width)
        # Responses: how many are still to come, and where the next one goes.
        to_take = Signal(beats_width)
        part = Signal(range(max(per_row, per_instr)))
        tile = Signal(range(cfg.tiles))
        row = Signal.like(self.sb_row)
        # An IMLOAD: its instructions' address, and the beats of one so far.
        code = Signal()
        pc = Signal.like(self.imem_addr)
        beat_bits = cfg.mem_lanes * cfg.row_bits
        held = Signal(max(1, (per_instr - 1) * beat_bits), reset_less=True)

        imload = self.instr.op == Op.IMLOAD
        beats = Mux(imload, self.instr.count * per_instr, self.instr.count * per_group)
        with m.If(self.start & ~self.busy & (self.instr.count != 0)):
            m.d.sync += [addr.eq(Mux(imload, self.instr.src, self.instr.src * per_group)),
                         to_ask.eq(beats), to_take.eq(beats), code.eq(imload),
                         part.eq(0), tile.eq(0), row.eq(self.instr.dst),
                         pc.eq(self.instr.dst), self.busy.eq(1)]

        m.d.comb += [req.valid.eq(to_ask != 0), req.payload.eq(addr),
                     self.reads.eq(req.valid & req.ready),
                     self.stalls.eq(req.valid & ~req.ready)]
        with m.If(req.valid & req.ready):
            m.d.sync += [addr.eq(addr + 1), to_ask.eq(to_ask - 1)]

        last_part = part == Mux(code, per_instr - 1, per_row - 1)
        m.d.comb += [self.sb_valid.eq(resp.valid & ~code), self.sb_tile.eq(tile),
                     self.sb_row.eq(row), self.sb_data.eq(resp.payload),
                     self.sb_lanes.eq(((1 << cfg.mem_lanes) - 1) << (part * cfg.mem_lanes)),
                     self.imem_valid.eq(resp.valid & code & last_part), self.imem_addr.eq(pc),
                     self.imem_data.eq(Cat(held, resp.payload.as_value()) if per_instr > 1
                                       else resp.payload.as_value())]
        with m.If(resp.valid):
            m.d.sync += [to_take.eq(to_take - 1), part.eq(part + 1)]
            with m.If(to_take == 1):
                m.d.sync += self.busy.eq(0)
            if per_instr > 1:
                # The beats so far of an instruction, the first lowest.
                m.d.sync += held.eq(Cat(held[beat_bits:], resp.payload.as_value()))
            with m.If(last_part):
                m.d.sync += part.eq(0)
                with m.If(code):
                    m.d.sync += pc.eq(pc + 1)
                with m.Else():
                    if cfg.tiles > 1:
                        m.d.sync += tile.eq(tile + 1)
                    with m.If(tile == cfg.tiles - 1):
                        m.d.sync += [tile.eq(0), row.eq(row + 1)]
        return m
