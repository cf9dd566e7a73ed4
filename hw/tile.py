"""A tile: NFU-1/2/3 with NBin, NBout, SB and the tile controller."""

from amaranth import *
from amaranth.lib import wiring, data, memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.golden.formats import LRN_SCALE_FRAC
from diannao.hw.activation import Activation, TABLE_WORDS, TABLE_WORD_WIDTH
from diannao.hw.config import Config
from diannao.hw.instr import INSTR
from diannao.hw.nbin import NBin
from diannao.hw.nbout import NBout, PartialSums
from diannao.hw.nfu1 import NFU1
from diannao.hw.nfu2 import NFU2, sat16
from diannao.hw.pipe import delay
from diannao.hw.sb import SB
from diannao.hw.tile_controller import TileController


__all__ = ["Tile", "COUNTERS", "pipeline_latency"]

#: Performance counters of a tile, in the order of :attr:`Tile.counters`.
COUNTERS = ("cycles", "nfu_busy", "nbin_reads", "sb_reads", "nbout_writes")


def pipeline_latency(config):
    """Cycles from a row's emission by the controller to the NBout write of its output.

    Buffer read (``config.read_latency``: 1, 2 with ``deep_pipeline``) + NFU-1 (1, 2 with
    ``deep_pipeline``) + NFU-2 (adder tree log2 tn, accumulator 1, shift 1, rounding and
    saturation 1, +5 with ``deep_pipeline``) + NFU-3 (5, 10 with ``deep_pipeline``).
    """
    deep = config.deep_pipeline
    return (config.read_latency + NFU1.latency_of(deep) + NFU2.latency_of(config.tn, deep)
            + Activation.latency_of(deep))


class Tile(wiring.Component):
    """One DianNao NFU tile (paper: DianNao; DaDianNao's tile).

    Dataflow per cycle: the :class:`TileController` presents an NBin address and an SB
    address; one cycle later the NBin row (or the bias row, or a zero padding row) and the
    SB row enter :class:`NFU1`; products flow through :class:`NFU2` (adder trees,
    accumulators, shifter) and :class:`Activation` (NFU-3) into :class:`NBout`, tagged with
    their NM address. Partial sums stay in the NFU-2 accumulators for the whole reduction
    held in NBin; a reduction split into chunks keeps them between chunks in the
    :class:`hw.nbout.PartialSums` buffer (with ``config.psum_depth``).

    Between the stages rows travel as streams without back-pressure
    (``stream.Signature(..., always_ready=True)``: NFU-1 ``o``, NFU-2 ``o`` -> NFU-3 ``i``,
    NFU-3 ``o``) where a stage's output is all the next one takes. Fixed-latency side-band
    travels in delay lines beside them instead: the controller's valid, bias, zero, first
    and last flags beside the buffer reads and NFU-1 (NFU-1 takes two buffer reads and the
    tile's bias/padding choice, NFU-2 the products with ``first``/``last``, neither a single
    producer's stream), and each output row's NM address beside the whole pipeline, joined
    with NFU-3's ``o`` at the NBout write port.

    Latency: ``3 + emissions + pipeline_latency(config)`` cycles from ``start`` to ``done``
    for a tile with work (three set-up cycles), 2 cycles for a tile without. Throughput one SB row
    and one NBin row per cycle; with ``latch_instr`` the next instruction may start in any
    drain cycle (``draining``, :class:`TileController`; the node starts it a cycle after
    the first, ``5 + emissions`` cycles after the last start).

    Parameters
    ----------
    config : Config
    latch_instr : bool
        Passed to :class:`TileController`: False when the node holds ``instr`` stable from
        ``start`` to ``done``.

    Members
    -------
    index : ``In(range(config.tiles))``
        The tile's number in its node, held constant by the node: every tile is the same
        hardware (one module in the generated Verilog).
    instr : ``In(INSTR)``, start : ``In(1)``
        Latched on ``start`` when idle (not ``busy``) or ``draining``.
    draining, busy, done, flushing : ``Out(1)``
        As :class:`TileController`'s.
    nbin_w : ``Out(WritePort.Signature)``
        Write port of NBin.
    sb_w : ``Out(Signature(en=In(tn), addr=In, data=In(ArrayLayout(signed(16), tn * L))))``
        SB lane writes, ``L = config.mem_lanes`` lanes of ``tn`` weights at a time (1
        without a main memory): lane ``j`` of row ``addr`` takes ``data``'s lane ``j % L``
        if bit ``j`` of ``en`` is set. A host with a ``tn``-value data path writes a row
        in ``tn`` steps, the DMA engine in ``tn / L`` beats.
    tbl_we, tbl_addr, tbl_data : ``In``
        Activation table writes (:func:`hw.activation.table_words`).
    nbout_r : ``Out(ReadPort.Signature)``
        Read port of NBout.
    nbout_count : ``Out``
        Rows written to NBout half ``nbout_sel`` since it was last cleared.
    nbout_clear : ``In(1)``
        Empty NBout half ``nbout_sel``.
    nbout_sel : ``In(1)``
        The NBout half the node reads (a STORE's ``nbout_half``); a compute instruction
        writes the half its own ``nbout_half`` names.
    clear_counters : ``In(1)``
        Zero the performance counters (the node does it when it starts a program).
    cycles, nfu_busy, nbin_reads, sb_reads, nbout_writes : ``Out(config.counter_width)``
        Performance counters (:data:`COUNTERS`); ``cycles`` counts cycles while busy,
        ``nfu_busy`` rows entering NFU-1.
    """

    def __init__(self, config, latch_instr=True):
        if not isinstance(config, Config):
            raise TypeError(f"Tile config must be a Config, not {config!r}")
        self.config = config
        self.latch_instr = latch_instr
        rl = config.read_latency
        self.nbin = NBin(config.tn, config.nbin_depth, read_latency=rl)
        self.sb = SB(config.tn, config.sb_depth, read_latency=rl)
        self.nbout = NBout(config.tn, config.nbout_depth, read_latency=rl)
        self.psum = (PartialSums(config.tn, config.acc_width, config.psum_depth, read_latency=rl)
                     if config.psum_depth else None)
        super().__init__({
            "index": In(range(config.tiles)),
            "instr": In(INSTR),
            "start": In(1),
            "draining": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "flushing": Out(1),
            "nbin_w": Out(self.nbin.write.signature),
            "sb_w": Out(wiring.Signature({    # the members' direction as in nbin_w: inputs
                "en": In(config.tn),
                "addr": In(len(self.sb.write.addr)),
                "data": In(data.ArrayLayout(signed(16), config.tn * config.mem_lanes)),
            })),
            "tbl_we": In(1),
            "tbl_addr": In(ceil_log2(config.act_tables * TABLE_WORDS)),
            "tbl_data": In(TABLE_WORD_WIDTH),
            "nbout_r": Out(self.nbout.read.signature),
            "nbout_count": Out(range(config.nbout_depth + 1)),
            "nbout_clear": In(1),
            "nbout_sel": In(1),
            "clear_counters": In(1),
            **{name: Out(config.counter_width) for name in COUNTERS},
        })

    @property
    def counters(self):
        return [getattr(self, name) for name in COUNTERS]

    def _lrn_product(self, m, ctrl, x, valid, last, out):
        """LRN's product: the input row at each output's window centre (``x`` when the
        controller's ``centre`` reaches NFU-1, ``read_latency`` cycles after its emission)
        is pushed into a FIFO with the output's last row and popped with its NFU-3 output
        ``out``; returns the row NBout takes: ``out``, or with ``ctrl.lrn``
        ``sat16((out * centre + 2**13) >> 14)`` per lane."""
        cfg = self.config
        tn, lrn = cfg.tn, ctrl.lrn
        centre = delay(m, ctrl.centre, cfg.read_latency, "centre")
        held = Signal(x.shape(), name="lrn_centre", reset_less=True)
        with m.If(valid & centre):
            m.d.sync += held.eq(x)
        # Outputs in flight between the push and the pop: at most one per cycle.
        in_flight = pipeline_latency(cfg) - cfg.read_latency + 1
        depth = 1 << ceil_log2(in_flight)
        m.submodules.lrn_fifo = fifo = memory.Memory(shape=x.shape(), depth=depth, init=[])
        wp, rp = fifo.write_port(), fifo.read_port(domain="comb")
        push, pop = valid & last & lrn, out.valid & lrn
        wptr, rptr = Signal(range(depth), name="lrn_wptr"), Signal(range(depth), name="lrn_rptr")
        m.d.comb += [wp.addr.eq(wptr), rp.addr.eq(rptr), wp.en.eq(push),
                     wp.data.eq(Mux(centre, x.as_value(), held.as_value()))]
        with m.If(push):
            m.d.sync += wptr.eq(wptr + 1)
        with m.If(pop):
            m.d.sync += rptr.eq(rptr + 1)
        y = Signal(x.shape(), name="lrn_y")
        rnd = 1 << (LRN_SCALE_FRAC - 1)
        for j in range(tn):
            prod = out.payload[j] * rp.data[j]             # signed 32
            m.d.comb += y[j].eq(Mux(lrn, sat16((prod + rnd) >> LRN_SCALE_FRAC),
                                    out.payload[j]))
        return y

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        tn = cfg.tn
        m.submodules.nbin = nbin = self.nbin
        m.submodules.sb = sb = self.sb
        m.submodules.nbout = nbout = self.nbout
        m.submodules.ctrl = ctrl = TileController(cfg, pipeline_latency(cfg),
                                                  latch_instr=self.latch_instr)
        deep = cfg.deep_pipeline
        m.submodules.nfu1 = nfu1 = NFU1(tn, input_regs=deep)
        m.submodules.nfu2 = nfu2 = NFU2(tn, cfg.acc_width, deep=deep,
                                        psum_depth=cfg.psum_depth,
                                        read_latency=cfg.read_latency)
        if self.psum is not None:
            m.submodules.psum = psum = self.psum
            wiring.connect(m, psum.read, nfu2.psum_r)
            wiring.connect(m, psum.write, nfu2.psum_w)
        m.submodules.nfu3 = nfu3 = Activation(tn, cfg.act_tables, deep=deep)

        wiring.connect(m, wiring.flipped(self.nbin_w), nbin.write)
        m.d.comb += [sb.write.en.eq(self.sb_w.en), sb.write.addr.eq(self.sb_w.addr),
                     sb.write.data.eq(Cat(self.sb_w.data for _ in range(cfg.sb_row_beats)))]
        m.d.comb += [
            ctrl.index.eq(self.index),
            ctrl.instr.eq(self.instr),
            ctrl.start.eq(self.start),
            self.draining.eq(ctrl.draining),
            self.busy.eq(ctrl.busy),
            self.done.eq(ctrl.done),
            self.flushing.eq(ctrl.flushing),
            nfu3.tbl_we.eq(self.tbl_we),
            nfu3.tbl_addr.eq(self.tbl_addr),
            nfu3.tbl_data.eq(self.tbl_data),
        ]

        # Emission: addresses to the buffers.
        m.d.comb += [
            nbin.read.addr.eq(ctrl.nbin_addr),
            # NBin is read on every emission; padding and bias rows ignore the data (x is
            # 0 or the bias row), so the read enable stays off the padding test's path.
            nbin.read.en.eq(ctrl.valid),
            sb.read.addr.eq(ctrl.sb_addr),
            sb.read.en.eq(ctrl.valid),
        ]
        # read_latency cycles later: the data, and the control that travelled beside it.
        rl = cfg.read_latency
        valid1, bias1 = delay(m, ctrl.valid, rl, "valid"), delay(m, ctrl.bias, rl, "bias")
        zero1 = delay(m, ctrl.zero, rl - ctrl.zero_latency, "zero")
        first1, last1 = delay(m, ctrl.first, rl, "first"), delay(m, ctrl.last, rl, "last")
        m.d.comb += nfu1.valid_in.eq(valid1)
        for i in range(tn):
            one = (C(1, 16) << ctrl.bias_exp) if i == 0 else C(0, 16)
            m.d.comb += nfu1.x[i].eq(Mux(bias1, one, Mux(zero1, 0, nbin.read.data[i])))
        if cfg.lrn:
            # LRN: the synapses are the inputs under the SB row's mask (-1 in the window).
            w = sb.read.data.as_value()
            m.d.comb += nfu1.w.eq(Mux(ctrl.lrn, w & nfu1.x.as_value().replicate(tn), w))
        else:
            m.d.comb += nfu1.w.eq(sb.read.data)

        first2 = delay(m, first1, nfu1.latency, "first_nfu1_")
        last2 = delay(m, last1, nfu1.latency, "last_nfu1_")
        if self.psum is not None:
            # The start of an instruction and its rows' psum_in and psum_out reach NFU-2 in
            # lockstep with the rows: the next instruction may start while they cross it.
            into = rl + nfu1.latency
            m.d.comb += [nfu2.restart.eq(delay(m, self.start, into, "restart")),
                         nfu2.psum_in.eq(delay(m, ctrl.psum_in, into, "psum_in")),
                         nfu2.psum_out.eq(delay(m, ctrl.psum_out, into, "psum_out"))]
        m.d.comb += [
            nfu2.valid_in.eq(nfu1.o.valid),
            nfu2.first.eq(first2),
            nfu2.last.eq(last2),
            nfu2.products.eq(nfu1.o.payload),
            nfu2.max_mode.eq(ctrl.max_mode),
            nfu2.shift.eq(ctrl.shift),
            nfu3.act.eq(ctrl.act),
            nfu3.table.eq(ctrl.table),
        ]
        wiring.connect(m, nfu2.o, nfu3.i)
        y = nfu3.o.payload
        if cfg.lrn:
            y = self._lrn_product(m, ctrl, nfu1.x, valid1, last1, nfu3.o)

        # The NM address of each output row, in order of completion: outputs leave NFU-3 in
        # the order their `last` rows were emitted, so a small FIFO-free delay suffices:
        # capture the address at `last` and let it follow the row through the pipeline.
        # Only the NM's address bits travel (the NM ignores the others), in one shift register
        # word (a simulator shifts one word a cycle instead of copying a register per stage).
        # With overlap the row's NBout half travels with it (an instruction may start while
        # the last one's rows drain); a narrow instruction memory's NBout is one, half 0.
        addr = ctrl.out_addr[:max(1, ceil_log2(cfg.nm_depth))]
        tag = Cat(addr, ctrl.nbout_half) if ctrl.overlap else addr
        aw, lat = len(tag), pipeline_latency(cfg)
        line = Signal(aw * lat, name="out_addr_line", reset_less=True)
        m.d.sync += line.eq(Cat(tag, line[:aw * (lat - 1)]))
        tag = line[aw * (lat - 1):]
        addr = tag[:len(addr)]
        # NBout's two halves, each with its count of rows: a compute instruction writes
        # the half it names (from row 0 or nbout_depth // 2; a half may run into the other
        # when a program uses one), the node reads, counts and empties the half it selects.
        # With a narrow instruction memory the node never overlaps a STORE with the tiles'
        # work (it waits for them), so NBout is one: half 0.
        counts = [Signal.like(self.nbout_count, name=f"nbout_count{h}")
                  for h in range(1 if cfg.imem_narrow else 2)]
        half = (C(0, 1) if cfg.imem_narrow else
                tag[-1] if ctrl.overlap else ctrl.nbout_half)
        count = counts[0] if cfg.imem_narrow else Mux(half, counts[1], counts[0])
        m.d.comb += [
            nbout.write.en.eq(nfu3.o.valid),
            nbout.write.addr.eq(Mux(half, cfg.nbout_depth // 2, 0) + count),
            nbout.write.data.data.eq(y),
            nbout.write.data.addr.eq(addr),
            self.nbout_count.eq(counts[0] if cfg.imem_narrow
                                else Mux(self.nbout_sel, counts[1], counts[0])),
        ]
        for h, c in enumerate(counts):
            with m.If(self.nbout_clear & (self.nbout_sel == h)):
                m.d.sync += c.eq(0)
            with m.Elif(nfu3.o.valid & (half == h)):
                m.d.sync += c.eq(c + 1)
        wiring.connect(m, wiring.flipped(self.nbout_r), nbout.read)

        # Counters.
        for name, inc in (("cycles", ctrl.busy), ("nfu_busy", ctrl.valid),
                          ("nbin_reads", ctrl.nbin_en), ("sb_reads", ctrl.valid),
                          ("nbout_writes", nfu3.o.valid)):
            counter = getattr(self, name)
            if name == "nbin_reads":
                # The increment (the padding test) is registered first and the counter reads
                # as the register plus the pending increment: the same value every cycle,
                # without the padding test feeding a carry chain in the same cycle.
                pending = Signal(name="nbin_reads_inc")
                m.d.sync += pending.eq(inc & ~self.clear_counters)
                total, inc = Signal.like(counter, name="nbin_reads_r"), pending
                m.d.comb += counter.eq(total + pending)
            else:
                total = counter
            # Written only when cleared or counting (a simulator skips idle cycles).
            with m.If(self.clear_counters):
                m.d.sync += total.eq(0)
            with m.Elif(inc):
                m.d.sync += total.eq(total + 1)
        return m
