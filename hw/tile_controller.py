"""The tile controller: walks a layer's loop nest over NBin and SB."""

from amaranth import *
from amaranth.utils import ceil_log2
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from diannao.hw.config import Config
from diannao.hw.instr import INSTR, SETTINGS
from diannao.hw.isa import SETTINGS_FIELDS, Op, field_width
from diannao.hw.nfu2 import SHIFT_WIDTH


__all__ = ["TileController", "LEVEL_WIDTHS", "COORD_WIDTH"]

#: Bits of each loop level's count of iterations (:class:`TileController`), from the
#: instruction field that bounds it: channel blocks ``cb``, kernel ``kw`` and ``kh``, output
#: width ``ow``, the band's output rows (``oy_band``, cut at ``oh``) and the output blocks of
#: this tile, derived: ``ob`` plus one carry bit (the count rounds ``ob + 2**log2_gob - 1``
#: down, which needs one bit more than ``ob``).
LEVEL_WIDTHS = {"c": field_width("cb"), "kx": field_width("kw"), "ky": field_width("kh"),
                "ox": field_width("ow"), "oy": max(field_width("oh"), field_width("oy_band")),
                "k": field_width("ob") + 1}

#: Bits of the signed input coordinates ``iy``, ``ix`` (and of the band's first output row
#: ``oy0`` they start from): a choice of ours, not derived from the fields; the padding test
#: compares them exactly, everything else on them is exact modulo ``2**COORD_WIDTH``.
COORD_WIDTH = 16


def _abits(depth):
    """Address bits of a buffer of ``depth`` rows."""
    return max(1, ceil_log2(depth))


def _mul_small(small, big):
    """``small * big`` as shift-and-add over the few bits of ``small`` (no DSP inferred)."""
    terms = [Mux(small[i], big << i, 0) for i in range(len(small))]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class TileController(wiring.Component):
    """Executes the tile-level part of CONV / MAXPOOL / AVGPOOL instructions.

    On ``start`` it latches ``instr`` and works out this tile's share
    (``docs/architecture.md``, "Mapping"): with
    ``G = 2**log2_gob`` tile groups over output blocks, the tile numbered ``index`` (an input
    held constant by the node, so that every tile is the same hardware) takes blocks
    ``ob ≡ index mod G`` and output rows ``[p*oy_band, (p+1)*oy_band)`` with
    ``p = index >> log2_gob``. Then it walks the loop nest documented in :mod:`hw.isa`,
    emitting one row a cycle: the NBin and SB addresses, whether the input is the bias row
    (``x = (1 << bias_exp, 0, ...)``; a CONV with ``psum_in`` or ``lrn`` has none) or a
    zero padding row, the accumulator ``first`` and ``last`` flags, on ``last`` the NM
    address of the output row and, with ``config.lrn``, ``centre``: the row of an LRN
    output's own channel block (``c == ob``). Pointers advance by additions only.

    Timing: three set-up cycles, then one cycle per emitted row with no bubbles (II = 1),
    then ``drain`` cycles while the last row crosses the pipeline; ``done`` pulses in the
    last of those cycles. A tile with no share finishes in the second set-up cycle.
    It takes ``start`` when idle, and (with ``latch_instr``) in any drain cycle
    (``draining``) for an instruction that agrees with the draining one on
    :data:`hw.isa.SETTINGS_FIELDS`, the fields the NFU stages read while rows cross them
    (the node checks that, once for all tiles). It then sets up the next instruction while
    the last rows drain (``flushing`` until they have landed: up to the cycle ``done``
    would have pulsed in, included; no ``done`` for the drained instruction unless it is
    that very cycle). What each emission's NFU stages need of the instruction beyond those
    fields (``psum_in``, ``psum_out``, ``nbout_half``) is valid with the emission and
    travels down the pipeline with its row. Emitted rows::

        blocks * rows_of_band * ow * (kh * kw * cb + 1)       CONV (+ 0 with psum_in or lrn)
        blocks * rows_of_band * ow * (kh * kw)                MAXPOOL, AVGPOOL

    Parameters
    ----------
    config : Config
    drain : int
        Cycles from the last emission to the NBout write of the last row.
    latch_instr : bool
        True (default): ``instr`` is latched on ``start`` (with ``deep_pipeline`` it follows
        ``instr`` while idle, which leaves the same value). False: ``instr`` is used directly
        and must stay stable from ``start`` until ``done`` (the node guarantees it with a
        narrow instruction memory; saves a ~350-bit register on small FPGAs).

    Members
    -------
    index : ``In(range(config.tiles))``
        This tile's number in the node, held constant by the node (a port rather than a
        parameter, so that all tiles are one module in the generated Verilog).
    """

    def __init__(self, config, drain, latch_instr=True):
        if not isinstance(config, Config):
            raise TypeError(f"TileController config must be a Config, not {config!r}")
        if not isinstance(drain, int) or drain < 1:
            raise ValueError(f"TileController drain must be a positive int, not {drain!r}")
        self.config = config
        self.drain = drain
        self.latch_instr = bool(latch_instr)
        #: Whether it takes the next instruction while it drains the last: with a latched
        #: instruction (a narrow instruction memory's node holds it until ``done``).
        self.overlap = self.latch_instr
        #: Cycles by which ``zero`` and ``nbin_en`` follow their emission: 0, or 1 with
        #: ``config.deep_pipeline``.
        self.zero_latency = config.deep_pipeline
        super().__init__({
            "index": In(range(config.tiles)),
            "instr": In(INSTR),
            "start": In(1),
            "draining": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "flushing": Out(1),
            # One emission per cycle while `valid`.
            "valid": Out(1),
            "nbin_addr": Out(_abits(config.nbin_depth)),
            "nbin_en": Out(1),
            "sb_addr": Out(_abits(config.sb_depth)),
            "bias": Out(1),
            "zero": Out(1),
            "first": Out(1),
            "last": Out(1),
            "out_addr": Out(_abits(config.nm_depth)),
            # Per-layer settings, stable while busy (SETTINGS_FIELDS), and the emission's
            # psum_in, psum_out and nbout_half, valid with it.
            "max_mode": Out(1),
            "shift": Out(SHIFT_WIDTH),
            "bias_exp": Out(field_width("bias_exp")),
            "act": Out(field_width("act")),
            "table": Out(field_width("table")),
            "psum_in": Out(1),
            "psum_out": Out(1),
            "nbout_half": Out(1),
            # With config.lrn: the instruction is an LRN CONV, and the emission is the row
            # at its window's centre (channel block c == the output's block ob).
            **({"lrn": Out(1), "centre": Out(1)} if config.lrn else {}),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ins = Signal(INSTR, name="ins", reset_less=True) if self.latch_instr else self.instr
        # Whether the instruction is a CONV: latched with it (a register: it selects the
        # pointer steps), or decoded from an unlatched instruction.
        conv = Signal()
        # Whether each output starts with a bias row: a CONV that does not resume partial
        # sums (latched or decoded like `conv`).
        bias_rows = Signal()
        # (Without a partial-sum buffer no program sets psum_in; without config.lrn, lrn.)
        resume = self.instr.psum_in if cfg.psum_depth else C(0, 1)
        if cfg.lrn:
            resume = resume | self.instr.lrn
        # The settings the NFU stages read while rows cross them (SETTINGS_FIELDS): with
        # overlap a small register of their own, set when an instruction starts, which the
        # rows of the last one still draining share (the node starts one in a drain only if
        # they agree); else the instruction's.
        settings = ins
        if self.overlap:
            settings = Signal(SETTINGS, name="settings", reset_less=True)
            with m.If(self.start):
                m.d.sync += [getattr(settings, n).eq(getattr(self.instr, n))
                             for n in SETTINGS_FIELDS]
        if self.latch_instr:
            latch = [ins.eq(self.instr), conv.eq(self.instr.op == Op.CONV),
                     bias_rows.eq((self.instr.op == Op.CONV) & ~resume)]
        else:
            m.d.comb += [conv.eq(ins.op == Op.CONV), bias_rows.eq(conv & ~resume)]
        m.d.comb += [
            self.max_mode.eq(settings.op == Op.MAXPOOL),
            self.shift.eq(settings.shift),
            self.bias_exp.eq(settings.bias_exp),
            self.act.eq(settings.act),
            self.table.eq(settings.table),
            self.psum_in.eq(ins.psum_in & conv),
            self.psum_out.eq(ins.psum_out & conv),
            self.nbout_half.eq(ins.nbout_half),
        ]
        if cfg.lrn:
            m.d.comb += self.lrn.eq(settings.lrn & (settings.op == Op.CONV))

        # The share of this tile (docs/architecture.md, "Mapping"): its group offsets and
        # first output row are
        # registered in the start cycle (from `instr`), its block count and whether it is
        # empty in the first set-up cycle; an empty share ends in the second.
        src = self.instr
        gmask = Signal(cfg.log2_tiles + 1)
        ob_group = Signal(max(1, cfg.log2_tiles))
        pos_group = Signal(max(1, cfg.log2_tiles))
        # gmask = 2**log2_gob - 1, bit i being log2_gob > i (one LUT each, not a shift and a
        # subtraction in a chain)
        m.d.comb += [gmask.eq(Cat(*(src.log2_gob > i for i in range(len(gmask))))),
                     ob_group.eq(self.index & gmask),
                     pos_group.eq(self.index >> src.log2_gob)]
        oy0 = Signal(COORD_WIDTH)
        ob_group_r = Signal.like(ob_group, name="ob_group_r")
        ob_round = Signal(LEVEL_WIDTHS["k"])  # ob + 2**log2_gob - 1
        has_blocks = Signal()                # ob > ob_group
        # Pointers and addresses keep only the buffers' address bits: they move by additions
        # only, whose low bits depend only on the operands' low bits.
        nbin_w, sb_w, out_w = (_abits(d) for d in (cfg.nbin_depth, cfg.sb_depth, cfg.nm_depth))
        band_in_off = Signal(nbin_w)         # pos_group * band_in_step
        band_out_off = Signal(out_w)         # pos_group * band_out_step
        blocks, empty = Signal(LEVEL_WIDTHS["k"]), Signal()

        # The loop nest keeps, for each level, a count of the iterations left after the
        # current one and a flag `last_*` (that count is zero), both registers; the next
        # flag is worked out beside the next count (`count == 1` when stepping, the level's
        # `*_one` when it restarts), so the choice of the next state starts from registers.
        # `c` runs over channel blocks (1 for pooling), then `kx`, `ky`, `ox`, `oy` (this
        # tile's band) and `k` (this tile's output blocks).
        levels = LEVEL_WIDTHS
        left = {n: Signal(w, name=f"{n}_left") for n, w in levels.items()}
        last = {n: Signal(name=f"last_{n}") for n in levels}
        span_m1 = {n: Signal(w, name=f"{n}_span_m1") for n, w in levels.items()}
        one = {n: Signal(name=f"{n}_one") for n in levels}
        # And one step further: `left == 1` as a register (`next_last`: the step after this
        # one is the last), with `two` (the level has two iterations) for its restart, so
        # that the next last flags are a multiplexer over registers.
        next_last = {n: Signal(name=f"{n}_next_last") for n in levels}
        two = {n: Signal(name=f"{n}_two") for n in levels}

        # The branch each row takes, one-hot: the bias row, or the step of the innermost
        # level that is not at its last iteration, or the end. A register, worked out a
        # cycle ahead from the next values of `pos_start` and the last flags; all zero
        # outside RUN.
        last_next = {n: Signal(name=f"last_{n}_next") for n in levels}
        br = {n: Signal(name=f"br_{n}") for n in ("bias", *levels, "end")}
        running = Signal()

        def branch(pos_start, last):
            # Each term a flat AND (not a chain through the levels): two LUT levels.
            bias = pos_start & bias_rows
            sel, names = {"bias": bias}, list(levels)
            for i, n in enumerate(names):
                sel[n] = Cat(~bias, *(last[k] for k in names[:i]), ~last[n]).all()
            sel["end"] = Cat(~bias, *(last[k] for k in names)).all()
            return sel

        pos_start, pos_start_next = Signal(), Signal()
        # Input coordinates of the current emission and of its window's origin.
        coord = signed(COORD_WIDTH)
        iy, ix = Signal(coord), Signal(coord)
        iy_base, ix_base = Signal(coord), Signal(coord)
        iy0, ix0 = Signal(coord), Signal(coord)
        # NBin pointers: of the current emission, and where each loop level started.
        # The loop's data registers (set up before RUN) have no reset.
        p_c, p_kx, p_ky, p_ox, p_oy, p_kb = (Signal(nbin_w, name=n, reset_less=True) for n in
                                             ("p_c", "p_kx", "p_ky", "p_ox", "p_oy", "p_kb"))
        pk_step = Signal(cfg.log2_tiles + 1)     # NBin step per block: 0 (CONV) or 2**log2_gob
        g = Signal(cfg.log2_tiles + 1)           # 2**log2_gob
        sb_k, sb = Signal(sb_w, reset_less=True), Signal(sb_w, reset_less=True)
        out_k, out = Signal(out_w, reset_less=True), Signal(out_w, reset_less=True)
        drain = Signal(range(self.drain + 1))
        # Set-up partial results.
        rows_avail_m1, band_m1 = Signal(field_width("oh")), Signal(field_width("oy_band"))
        # y_lo = oy0 + 2*oy0 needs two bits more than oy0 (y_hi, 4*oy0 + 8*oy0, is cut to
        # the same width): iy is COORD_WIDTH bits, the sums are exact modulo 2**COORD_WIDTH.
        y_lo, y_hi = Signal(COORD_WIDTH + 2), Signal(COORD_WIDTH + 2)

        # Whether the emission's input position lies inside the input (else a zero padding
        # row). With deep_pipeline the row and column tests are registered, and `zero` and
        # `nbin_en` follow the emission by `zero_latency` (1).
        inside = Signal()
        in_y, in_x = (iy >= 0) & (iy < ins.in_h), (ix >= 0) & (ix < ins.in_w)
        zbias, zrun = br["bias"], running
        if self.zero_latency:
            in_y_r, in_x_r = Signal(name="in_y_d"), Signal(name="in_x_d")
            zbias, zrun = Signal(name="bias_d"), Signal(name="running_d")
            m.d.sync += [in_y_r.eq(in_y), in_x_r.eq(in_x), zbias.eq(br["bias"]),
                         zrun.eq(running)]
            in_y, in_x = in_y_r, in_x_r
        m.d.comb += inside.eq(in_y & in_x)
        bias_now = br["bias"]
        m.d.comb += [
            self.valid.eq(running),
            self.nbin_en.eq(zrun & ~zbias & inside),
            self.nbin_addr.eq(p_c),
            self.sb_addr.eq(sb),
            self.bias.eq(bias_now),
            self.zero.eq(~zbias & ~inside),
            self.first.eq(pos_start),
            self.last.eq(~bias_now & last["c"] & last["kx"] & last["ky"]),
            self.out_addr.eq(out),
        ]

        # Set up an instruction (`instr`) in the cycle it is taken.
        low = len(ob_group)
        begin = [
            oy0.eq(_mul_small(pos_group, src.oy_band)),
            ob_group_r.eq(ob_group), ob_round.eq(src.ob + gmask),
            # ob > ob_group, without a carry chain over ob's bits (this comparison of the
            # node's instruction was the ULX3S's critical path): ob_group < 2**L.
            has_blocks.eq((src.ob[low:] != 0) | (src.ob[:low] > ob_group)),
            band_in_off.eq(_mul_small(pos_group, src.band_in_step)),
            band_out_off.eq(_mul_small(pos_group, src.band_out_step)),
            g.eq(gmask + 1),
        ]
        # Cycles until the rows of an instruction drained under the next one have landed and
        # been counted (the cycle after its last NBout write, where `done` would have pulsed).
        if self.overlap:
            # (`flushing` is a register equal to `tail != 0`: the node reads it from afar.)
            tail = Signal(range(self.drain + 1))
            with m.If(tail != 0):
                m.d.sync += [tail.eq(tail - 1), self.flushing.eq(tail != 1)]

        # (The node starts a tile only when it is idle or draining.)
        with m.If(self.start):
            m.d.sync += begin
            if self.latch_instr and not cfg.deep_pipeline:
                m.d.sync += latch
        init = Signal()         # the second set-up cycle
        m.d.sync += init.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                if self.latch_instr and cfg.deep_pipeline:
                    # With deep_pipeline it follows `instr` while idle (and draining,
                    # below), so it holds the instruction of the start cycle without
                    # `start` in its (wide) enable.
                    m.d.sync += latch
                with m.If(self.start):
                    m.next = "SETUP"
            with m.State("SETUP"):
                # First set-up cycle: the block count, whether the share is empty, and the
                # partial sums of the band's rows and first input row, each a short path
                # from registers (stride * oy0 as two pairs of shift-and-add terms).
                m.d.comb += self.busy.eq(1)
                nblocks = Signal(LEVEL_WIDTHS["k"])
                m.d.comb += nblocks.eq(Mux(has_blocks, (ob_round - ob_group_r) >> ins.log2_gob,
                                           0))
                terms = [Mux(ins.stride[i], oy0 << i, 0) for i in range(4)]
                m.d.sync += init.eq(1)
                m.d.sync += [blocks.eq(nblocks),
                             # no blocks iff ob <= ob_group (else ob_round - ob_group >= g)
                             empty.eq(~has_blocks | (oy0 >= ins.oh) | (ins.ow == 0)),
                             rows_avail_m1.eq(ins.oh + ~oy0),     # oh - oy0 - 1
                             band_m1.eq(ins.oy_band - 1),
                             y_lo.eq(terms[0] + terms[1]), y_hi.eq(terms[2] + terms[3])]
                m.next = "SETUP2"
            with m.State("SETUP2"):
                # Second set-up cycle: an empty share ends here; otherwise the loop state
                # (loaded below, under `init`).
                m.d.comb += self.busy.eq(1)
                with m.If(empty):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "SETUP3"
            with m.State("SETUP3"):
                # Third set-up cycle: the first row's branch (below, under `init2`).
                m.d.comb += self.busy.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                # The rows (the branch of each, below, under `running`).
                m.d.comb += self.busy.eq(1)
                with m.If(br["end"]):
                    m.d.sync += drain.eq(self.drain - 1)
                    m.next = "DRAIN"

            with m.State("DRAIN"):
                m.d.comb += [self.busy.eq(1), self.draining.eq(1)]
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                if self.overlap:
                    if cfg.deep_pipeline:
                        # It follows `instr` while draining too (the settings register
                        # keeps what the drain needs): no `start` in its wide enable.
                        m.d.sync += latch
                    # The next instruction (the node starts one only if it agrees on
                    # SETTINGS_FIELDS): set up while this one's rows drain.
                    with m.If(self.start):
                        m.d.sync += [tail.eq(drain), self.flushing.eq(drain != 0)]
                        m.next = "SETUP"
        # The loop state, loaded in the second set-up cycle: under `init`, a register set in
        # the first (not a decode of the state: these registers lie across the tile, and
        # the state's decode into all their enables was the ULX3S's critical path).
        rows_m1 = Signal(LEVEL_WIDTHS["oy"])
        m.d.comb += rows_m1.eq(Mux(rows_avail_m1 < band_m1, rows_avail_m1, band_m1))
        cbl = Mux(conv, ins.cb, 1)
        # Sums of three terms, registered every cycle from registers set at the start (the
        # first input row's from y_lo and y_hi, set in the first set-up cycle): valid in the
        # second set-up cycle (the third for y0, which loads the row registers then, under
        # `init2`), each a cycle of its own; and the first input column, -x_off (its carry
        # chain into the column registers' multiplexers was the ULX3S's critical path).
        p0, o0, y0, x0 = Signal(nbin_w), Signal(out_w), Signal(coord), Signal(coord)
        sums = [p0.eq(ins.nbin_org + Mux(conv, 0, ob_group_r) + band_in_off),
                o0.eq(ins.out_base + ob_group_r + band_out_off),
                y0.eq(y_lo + y_hi - ins.y_off)]
        # (-x_off registered with deep_pipeline only: a small FPGA has no room to spare.)
        if cfg.deep_pipeline:
            sums.append(x0.eq(-ins.x_off))
        else:
            m.d.comb += x0.eq(-ins.x_off)
        m.d.sync += sums
        init2 = Signal()        # the third set-up cycle
        m.d.sync += init2.eq(init & ~empty)
        with m.If(init2):
            m.d.sync += [iy0.eq(y0), iy_base.eq(y0), iy.eq(y0)]
        # The branch register, under `init2` and `running` (which is high in RUN), not a
        # decode of the state either: the first row's from the loop state's registers; in
        # RUN the next row's, from the next values of pos_start and the last flags (below,
        # by this row's branch); after the last, all zero (no loop register moves).
        # With it, the SB row's own choice, registers too (SB's address register lies by
        # SB, across the tile from the controller: on the ULX3S the branch's decode into
        # its enable was the critical path): `sb_on`, the row steps on (every row of an
        # output position; a locally connected layer's rows run on across positions);
        # `sb_back`, it goes back to its block's first row (a new output position). (The
        # next block's, on `br_k`.) With deep_pipeline only: without, they are decoded from
        # the branch (on the iCEBreaker the registers' inputs lengthened the branch's own
        # critical path).
        sb_registered = bool(cfg.deep_pipeline)
        sb_on, sb_back = Signal(), Signal()
        private = ins.private

        def sb_choice(sel):
            new_pos = sel["ox"] | sel["oy"]
            return [sb_on.eq(Cat(sel["bias"], sel["c"], sel["kx"], sel["ky"]).any()
                             | (new_pos & private)),
                    sb_back.eq(new_pos & ~private)]

        with m.If(init2):
            sel = branch(pos_start, last)
            m.d.sync += [br[n].eq(v) for n, v in sel.items()]
            if sb_registered:
                m.d.sync += sb_choice(sel)
            m.d.sync += running.eq(1)
        with m.If(running):
            sel = branch(pos_start_next, last_next)
            m.d.sync += [br[n].eq(v) for n, v in sel.items()]
            if sb_registered:
                m.d.sync += sb_choice(sel)
            with m.If(br["end"]):
                m.d.sync += running.eq(0)
                m.d.sync += [b.eq(0) for b in br.values()]
                if sb_registered:
                    m.d.sync += [sb_on.eq(0), sb_back.eq(0)]
        with m.If(init):
            # Whether a level has one (two) iterations, tested on the span itself (not on
            # span - 1: no carry chain before the test); rows_m1 == 0 iff either bound is
            # 0, rows_m1 == 1 iff the smaller bound is 1.
            ra, rb = rows_avail_m1, band_m1
            for n, span_m1_now, is_one, is_two in (
                    ("c", cbl - 1, ~conv | (ins.cb == 1), conv & (ins.cb == 2)),
                    ("kx", ins.kw - 1, ins.kw == 1, ins.kw == 2),
                    ("ky", ins.kh - 1, ins.kh == 1, ins.kh == 2),
                    ("ox", ins.ow - 1, ins.ow == 1, ins.ow == 2),
                    ("oy", rows_m1, (ra == 0) | (rb == 0),
                     ((ra == 1) | (rb == 1)) & (ra != 0) & (rb != 0)),
                    ("k", blocks - 1, blocks == 1, blocks == 2)):
                m.d.sync += [span_m1[n].eq(span_m1_now), one[n].eq(is_one),
                             left[n].eq(span_m1_now), last[n].eq(is_one),
                             two[n].eq(is_two), next_last[n].eq(is_two)]
            m.d.sync += [
                pos_start.eq(1),
                ix0.eq(x0), ix_base.eq(x0), ix.eq(x0),
                pk_step.eq(Mux(conv, 0, g)),
                p_kb.eq(p0), p_oy.eq(p0), p_ox.eq(p0), p_ky.eq(p0), p_kx.eq(p0),
                p_c.eq(p0),
                sb_k.eq(ins.sb_base), sb.eq(ins.sb_base),
                out_k.eq(o0), out.eq(o0),
            ]
        # The loop's registers in RUN, each a multiplexer over the one-hot branch `br` (a
        # register, worked out a cycle ahead): the choice starts from registers and every
        # candidate is an adder on registers.
        def on(*names):
            return Cat(*(br[n] for n in names)).any()

        # The SB row steps on with every row of an output position; at the end of one (ox,
        # oy) each position starts again at its block's first row, but a locally connected
        # layer's (``private``) positions have rows of their own: they run on (`sb_on`,
        # `sb_back`, above).
        if not sb_registered:
            m.d.comb += sb_choice(br)
        with m.If(sb_on):
            m.d.sync += sb.eq(sb + conv)
        with m.If(on("c")):
            m.d.sync += p_c.eq(p_c + 1)
        with m.If(on("kx")):
            nxt = p_kx + ins.cb
            m.d.sync += [ix.eq(ix + 1), p_kx.eq(nxt), p_c.eq(nxt)]
        with m.If(on("ky")):
            nxt = p_ky + ins.row_step
            m.d.sync += [ix.eq(ix_base), iy.eq(iy + 1), p_ky.eq(nxt), p_kx.eq(nxt), p_c.eq(nxt)]
        with m.If(on("ox")):
            nxt, x = p_ox + ins.ox_step, ix_base + ins.stride
            m.d.sync += [ix_base.eq(x), ix.eq(x), iy.eq(iy_base),
                         p_ox.eq(nxt), p_ky.eq(nxt), p_kx.eq(nxt), p_c.eq(nxt),
                         out.eq(out + ins.ocb)]
        with m.If(on("oy")):
            nxt, y = p_oy + ins.oy_step, iy_base + ins.stride
            m.d.sync += [ix_base.eq(ix0), ix.eq(ix0), iy_base.eq(y), iy.eq(y),
                         p_oy.eq(nxt), p_ox.eq(nxt), p_ky.eq(nxt), p_kx.eq(nxt), p_c.eq(nxt),
                         out.eq(out + ins.out_row_step)]
        with m.If(on("k")):
            nxt, nsb, nout = p_kb + pk_step, sb_k + ins.sb_step, out_k + g
            m.d.sync += [ix_base.eq(ix0), ix.eq(ix0), iy_base.eq(iy0), iy.eq(iy0),
                         p_kb.eq(nxt), p_oy.eq(nxt), p_ox.eq(nxt), p_ky.eq(nxt),
                         p_kx.eq(nxt), p_c.eq(nxt),
                         sb_k.eq(nsb), sb.eq(nsb), out_k.eq(nout), out.eq(nout)]
        with m.If(sb_back):
            m.d.sync += sb.eq(sb_k)
        if cfg.lrn:
            # The centre of an LRN window: `dist` = ob - c counts down with c from the
            # output's block ob (ob_group + k * 2**log2_gob, kept in `ob_now`) at each
            # output's first channel block.
            ob_now = Signal(LEVEL_WIDTHS["k"], reset_less=True)
            dist = Signal(LEVEL_WIDTHS["k"], reset_less=True)
            with m.If(self.start & (~self.busy | self.draining)):
                m.d.sync += [ob_now.eq(ob_group), dist.eq(ob_group)]
            with m.If(on("c")):
                m.d.sync += dist.eq(dist - 1)
            with m.If(on("kx", "ky", "ox", "oy")):
                m.d.sync += dist.eq(ob_now)
            with m.If(on("k")):
                m.d.sync += [ob_now.eq(ob_now + g), dist.eq(ob_now + g)]
            m.d.comb += self.centre.eq(running & (dist == 0))
        with m.If(running):
            m.d.sync += pos_start.eq(pos_start_next)
        # Each level's count and last flag: restarted by any branch of an outer level,
        # stepped by its own.
        order = list(levels)
        for i, n in enumerate(order):
            restart = on(*order[i + 1:]) if i + 1 < len(order) else C(0, 1)
            with m.If(restart):
                m.d.sync += [left[n].eq(span_m1[n]), last[n].eq(one[n]),
                             next_last[n].eq(two[n])]
            with m.If(on(n)):
                m.d.sync += [left[n].eq(left[n] - 1), last[n].eq(next_last[n]),
                             next_last[n].eq(left[n] == 2)]
            m.d.comb += last_next[n].eq(Mux(restart, one[n],
                                            Mux(on(n), next_last[n], last[n])))
        m.d.comb += pos_start_next.eq(on("ox", "oy", "k"))

        return m
