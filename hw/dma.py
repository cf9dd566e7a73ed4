"""The DMA engine that fills SB from main memory (paper: DianNao's DMA of SB)."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.config import Config
from diannao.hw.instr import INSTR
from diannao.hw.isa import DMA_QUEUE, INSTR_WIDTH, Op, field_width
from diannao.hw.main_memory import MemoryBus, mem_addr_width


__all__ = ["DMA"]


class DMA(wiring.Component):
    """Runs ``SBLOAD``: ``count`` SB rows of every tile from main memory; and ``IMLOAD``:
    ``count`` instructions from main memory into the instruction memory.

    Main-memory row group ``mem + r`` (``tiles`` SB rows of ``config.sb_row_beats`` beats
    each, tile 0 first, lanes in order) goes to SB row ``dst + r`` of each tile. The engine
    is handed the instruction by the node controller (``start`` with ``instr`` in the
    controller's SYNC cycle, when ``ready``) and works beside it, as the store engine does:
    the controller goes on fetching, and a compute instruction waits until at most its
    ``dma_ahead`` operations are ``running`` (those handed after the one whose rows it reads:
    the engine finishes them in order).

    The engine is a pipeline of operations: it holds up to :data:`DMA_QUEUE` of them
    ``running`` (handed and not all of their beats arrived), requests their beats in turn,
    one operation's right after the last one's, and writes each beat where it goes while it
    requests later ones. It is ``ready`` for an operation while fewer than
    :data:`DMA_QUEUE` run; an operation of no rows is a fence: ``ready`` once none run, and
    it does nothing.

    Timing: handed an operation of ``B`` beats (``B = count * tiles * config.sb_row_beats``)
    in cycle ``t``, the engine requests a beat a cycle from ``t + 1``, or from the cycle
    after the last request of the operation before if that is later (more cycles when the
    memory refuses one); each beat arrives ``mem_latency`` cycles after its request and is
    written into SB in that cycle, and the operation stops running in the cycle after its
    last: ``B + mem_latency`` cycles after its first request, without stalls.

    An ``IMLOAD`` reads ``B = count * config.instr_beats`` beats from beat ``mem`` on and
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
        Take the ``SBLOAD`` or ``IMLOAD`` (``mem``, ``dst``, ``count``) when ``ready``.
    ready : ``Out(1)``
        For the instruction on ``instr`` (from registers).
    running : ``Out(range(DMA_QUEUE + 1))``
        Operations handed whose beats have not all arrived (a register).
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
            "ready": Out(1),
            "running": Out(range(DMA_QUEUE + 1)),
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
        # The operations handed and running, oldest first (a ring of DMA_QUEUE): each one's
        # first beat's address, its beats (minus one), where they go.
        op = data.StructLayout({"code": 1, "dst": field_width("dst"),
                                "addr": mem_addr_width(cfg), "last": beats_width})
        queue = Array(Signal(op, name=f"queue{k}") for k in range(DMA_QUEUE))
        head = Signal(range(DMA_QUEUE))     # the oldest: its beats arrive
        ask = Signal(range(DMA_QUEUE))      # the next to request
        tail = Signal(range(DMA_QUEUE))     # where the next handed goes
        # Requests: the next beat's address and how many are left.
        addr = Signal(mem_addr_width(cfg))
        to_ask = Signal(beats_width)
        # Responses: the oldest's beats so far, and where the next one goes.
        oldest = queue[head]
        taken = Signal(beats_width)
        part = Signal(range(max(per_row, per_instr)))
        tile = Signal(range(cfg.tiles))
        step = Signal(field_width("dst"))      # rows (instructions) of the oldest so far
        beat_bits = cfg.mem_lanes * cfg.row_bits
        held = Signal(max(1, (per_instr - 1) * beat_bits), reset_less=True)

        m.d.comb += [req.valid.eq(to_ask != 0), req.payload.eq(addr),
                     self.reads.eq(req.valid & req.ready),
                     self.stalls.eq(req.valid & ~req.ready),
                     self.ready.eq(Mux(self.instr.count == 0, self.running == 0,
                                       self.running < DMA_QUEUE))]
        with m.If(req.valid & req.ready):
            m.d.sync += [addr.eq(addr + 1), to_ask.eq(to_ask - 1)]
        # The next operation's requests follow the last one's without a gap: taken from the
        # queue, or from the instruction handed in this cycle when none waits there.
        free = (to_ask == 0) | ((to_ask == 1) & req.ready)
        waiting = ask != tail
        with m.If(free & waiting):
            m.d.sync += [addr.eq(queue[ask].addr), to_ask.eq(queue[ask].last + 1),
                         ask.eq(ask + 1)]

        imload = self.instr.op == Op.IMLOAD
        beats = Mux(imload, self.instr.count * per_instr, self.instr.count * per_group)
        first = Mux(imload, self.instr.mem, self.instr.mem * per_group)
        push = Signal()
        m.d.comb += push.eq(self.start & self.ready & (self.instr.count != 0))
        with m.If(push):
            m.d.sync += [tail.eq(tail + 1), queue[tail].code.eq(imload),
                         queue[tail].dst.eq(self.instr.dst), queue[tail].addr.eq(first),
                         queue[tail].last.eq(beats - 1)]
            with m.If(free & ~waiting):
                m.d.sync += [addr.eq(first), to_ask.eq(beats), ask.eq(ask + 1)]

        last_part = part == Mux(oldest.code, per_instr - 1, per_row - 1)
        m.d.comb += [self.sb_valid.eq(resp.valid & ~oldest.code), self.sb_tile.eq(tile),
                     self.sb_row.eq(oldest.dst + step), self.sb_data.eq(resp.payload),
                     self.sb_lanes.eq(((1 << cfg.mem_lanes) - 1) << (part * cfg.mem_lanes)),
                     self.imem_valid.eq(resp.valid & oldest.code & last_part),
                     self.imem_addr.eq(oldest.dst + step),
                     self.imem_data.eq(Cat(held, resp.payload.as_value()) if per_instr > 1
                                       else resp.payload.as_value())]
        pop = Signal()
        m.d.comb += pop.eq(resp.valid & (taken == oldest.last))
        m.d.sync += self.running.eq(self.running + push - pop)
        with m.If(resp.valid):
            m.d.sync += [taken.eq(taken + 1), part.eq(part + 1)]
            if per_instr > 1:
                # The beats so far of an instruction, the first lowest.
                m.d.sync += held.eq(Cat(held[beat_bits:], resp.payload.as_value()))
            with m.If(last_part):
                m.d.sync += part.eq(0)
                with m.If(oldest.code):
                    m.d.sync += step.eq(step + 1)
                with m.Else():
                    if cfg.tiles > 1:
                        m.d.sync += tile.eq(tile + 1)
                    with m.If(tile == cfg.tiles - 1):
                        m.d.sync += [tile.eq(0), step.eq(step + 1)]
            with m.If(pop):
                m.d.sync += [head.eq(head + 1), taken.eq(0), step.eq(0)]
        return m
