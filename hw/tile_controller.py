"""The tile controller: walks a layer's loop nest over NBin and SB."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .config import Config
from .isa import INSTR, Op
from .nbout import ADDR_WIDTH


__all__ = ["TileController"]

_PTR = 24   # internal pointer width; every address is checked by the compiler


def _mul_small(small, big):
    """``small * big`` as shift-and-add over the few bits of ``small`` (no DSP inferred)."""
    terms = [Mux(small[i], big << i, 0) for i in range(len(small))]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


class TileController(wiring.Component):
    """Executes the tile-level part of CONV / MAXPOOL / AVGPOOL instructions.

    On ``start`` it latches ``instr`` and works out this tile's share (DESIGN §4): with
    ``G = 2**log2_gob`` tile groups over output blocks, the tile numbered ``index`` (an input
    held constant by the node, so that every tile is the same hardware) takes blocks
    ``ob ≡ index mod G`` and output rows ``[p*oy_band, (p+1)*oy_band)`` with
    ``p = index >> log2_gob``. Then it walks the loop nest documented in :mod:`hw.isa`,
    emitting one row a cycle: the NBin and SB addresses, whether the input is the bias row
    (``x = (1 << bias_exp, 0, ...)``) or a zero padding row, the accumulator ``first`` and
    ``last`` flags and, on ``last``, the NM address of the output row. Pointers advance by
    additions only.

    Timing: one set-up cycle, then one cycle per emitted row with no bubbles (II = 1), then
    ``drain`` cycles while the last row crosses the pipeline; ``done`` pulses in the last of
    those cycles. A tile with no share finishes after the set-up cycle. Emitted rows::

        blocks * rows_of_band * ow * (kh * kw * cb + 1)       CONV
        blocks * rows_of_band * ow * (kh * kw)                MAXPOOL, AVGPOOL

    Parameters
    ----------
    config : Config
    drain : int
        Cycles from the last emission to the NBout write of the last row.
    latch_instr : bool
        True (default): ``instr`` is latched on ``start``. False: ``instr`` is used directly
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
        super().__init__({
            "index": In(range(config.tiles)),
            "instr": In(INSTR),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            # One emission per cycle while `valid`.
            "valid": Out(1),
            "nbin_addr": Out(_PTR),
            "nbin_en": Out(1),
            "sb_addr": Out(_PTR),
            "bias": Out(1),
            "zero": Out(1),
            "first": Out(1),
            "last": Out(1),
            "out_addr": Out(ADDR_WIDTH),
            # Per-layer settings, stable while busy.
            "max_mode": Out(1),
            "shift": Out(6),
            "bias_exp": Out(4),
            "act": Out(1),
            "table": Out(3),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        ins = Signal(INSTR, name="ins") if self.latch_instr else self.instr
        conv = Signal()
        m.d.comb += [
            conv.eq(ins.op == Op.CONV),
            self.max_mode.eq(ins.op == Op.MAXPOOL),
            self.shift.eq(ins.shift),
            self.bias_exp.eq(ins.bias_exp),
            self.act.eq(ins.act),
            self.table.eq(ins.table),
        ]

        # Loop counters.
        k, nblocks = Signal(10), Signal(11)
        oy, ox = Signal(12), Signal(12)
        ky, kx, c = Signal(12), Signal(12), Signal(10)
        pos_start = Signal()
        # Input coordinates of the window origin, and pointers.
        iy_base, ix_base = Signal(signed(16)), Signal(signed(16))
        p_k, p_oy, p_ox, p_ky, p_kx = (Signal(_PTR, name=n)
                                       for n in ("p_k", "p_oy", "p_ox", "p_ky", "p_kx"))
        sb_k, sb = Signal(_PTR), Signal(_PTR)
        out_k, out = Signal(ADDR_WIDTH), Signal(ADDR_WIDTH)
        drain = Signal(range(self.drain + 1))

        cbl = Mux(conv, ins.cb, 1)
        iy = iy_base + ky
        ix = ix_base + kx
        inside = (iy >= 0) & (iy < ins.in_h) & (ix >= 0) & (ix < ins.in_w)
        bias_now = pos_start & conv
        # Loop bounds minus one, registered in SETUP: the loop tests are equalities between
        # registers, with no subtraction on the emission-to-pointer path.
        cbl_m1 = Signal((cbl - 1).shape(), name="cbl_m1")
        kw_m1 = Signal((ins.kw - 1).shape(), name="kw_m1")
        kh_m1 = Signal((ins.kh - 1).shape(), name="kh_m1")
        ow_m1 = Signal((ins.ow - 1).shape(), name="ow_m1")
        oy_end_m1 = Signal(14, name="oy_end_m1")
        nblocks_m1 = Signal((nblocks - 1).shape(), name="nblocks_m1")
        last_c, last_kx, last_ky = c == cbl_m1, kx == kw_m1, ky == kh_m1

        m.d.comb += [
            self.nbin_addr.eq(p_kx + c),
            self.sb_addr.eq(sb),
            self.bias.eq(bias_now),
            self.zero.eq(~bias_now & ~inside),
            self.first.eq(pos_start),
            self.last.eq(~bias_now & last_c & last_kx & last_ky),
            self.out_addr.eq(out),
        ]

        # This tile's share (set-up cycle).
        gmask = Signal(cfg.log2_tiles + 1)
        m.d.comb += gmask.eq((C(1, cfg.log2_tiles + 1) << ins.log2_gob) - 1)
        ob_group = Signal(max(1, cfg.log2_tiles))
        pos_group = Signal(max(1, cfg.log2_tiles))
        m.d.comb += [ob_group.eq(self.index & gmask), pos_group.eq(self.index >> ins.log2_gob)]
        oy0 = Signal(16)
        m.d.comb += oy0.eq(_mul_small(pos_group, ins.oy_band))

        # The share's block count and whether it is empty are worked out from `instr` in the
        # start cycle and registered (the same values as from `ins` in SETUP): this keeps
        # the SETUP cycle's `done` off a long path through the node controller.
        src = self.instr
        src_gmask = Signal(cfg.log2_tiles + 1)
        m.d.comb += src_gmask.eq((C(1, cfg.log2_tiles + 1) << src.log2_gob) - 1)
        src_ob_group = Signal(max(1, cfg.log2_tiles))
        src_pos_group = Signal(max(1, cfg.log2_tiles))
        m.d.comb += [src_ob_group.eq(self.index & src_gmask),
                     src_pos_group.eq(self.index >> src.log2_gob)]
        src_blocks = Signal(11)
        m.d.comb += src_blocks.eq(Mux(src.ob > src_ob_group,
                                      (src.ob - src_ob_group + src_gmask) >> src.log2_gob, 0))
        src_oy0 = Signal(16)
        m.d.comb += src_oy0.eq(_mul_small(src_pos_group, src.oy_band))
        blocks, empty = Signal(11), Signal()

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    if self.latch_instr:
                        m.d.sync += ins.eq(self.instr)
                    m.d.sync += [blocks.eq(src_blocks),
                                 empty.eq((src_blocks == 0) | (src_oy0 >= src.oh)
                                          | (src.ow == 0))]
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                p0 = Signal(_PTR)
                m.d.comb += p0.eq(ins.nbin_org + Mux(conv, 0, ob_group)
                                  + _mul_small(pos_group, ins.band_in_step))
                o0 = Signal(ADDR_WIDTH)
                m.d.comb += o0.eq(ins.out_base + ob_group
                                  + _mul_small(pos_group, ins.band_out_step))
                m.d.sync += [
                    k.eq(0), nblocks.eq(blocks), nblocks_m1.eq(blocks - 1),
                    cbl_m1.eq(cbl - 1), kw_m1.eq(ins.kw - 1), kh_m1.eq(ins.kh - 1),
                    ow_m1.eq(ins.ow - 1),
                    oy.eq(oy0),
                    oy_end_m1.eq(Mux(oy0 + ins.oy_band > ins.oh, ins.oh,
                                     oy0 + ins.oy_band)[:13] - 1),
                    ox.eq(0), ky.eq(0), kx.eq(0), c.eq(0), pos_start.eq(1),
                    iy_base.eq(_mul_small(ins.stride, oy0) - ins.y_off),
                    ix_base.eq(-ins.x_off),
                    p_k.eq(ins.nbin_org + Mux(conv, 0, ob_group)),
                    p_oy.eq(p0), p_ox.eq(p0), p_ky.eq(p0), p_kx.eq(p0),
                    sb_k.eq(ins.sb_base), sb.eq(ins.sb_base),
                    out_k.eq(o0), out.eq(o0),
                ]
                with m.If(empty):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.valid.eq(1), self.nbin_en.eq(~bias_now & inside)]
                m.d.sync += sb.eq(sb + conv)
                with m.If(bias_now):
                    m.d.sync += pos_start.eq(0)
                with m.Else():
                    m.d.sync += pos_start.eq(0)
                    with m.If(~last_c):
                        m.d.sync += c.eq(c + 1)
                    with m.Elif(~last_kx):
                        m.d.sync += [c.eq(0), kx.eq(kx + 1), p_kx.eq(p_kx + ins.cb)]
                    with m.Elif(~last_ky):
                        m.d.sync += [c.eq(0), kx.eq(0), ky.eq(ky + 1),
                                     p_ky.eq(p_ky + ins.row_step), p_kx.eq(p_ky + ins.row_step)]
                    with m.Else():
                        # Next output position.
                        m.d.sync += [c.eq(0), kx.eq(0), ky.eq(0), pos_start.eq(1), sb.eq(sb_k)]
                        with m.If(ox != ow_m1):
                            nxt = p_ox + ins.ox_step
                            m.d.sync += [ox.eq(ox + 1), ix_base.eq(ix_base + ins.stride),
                                         p_ox.eq(nxt), p_ky.eq(nxt), p_kx.eq(nxt),
                                         out.eq(out + ins.ocb)]
                        with m.Elif(oy != oy_end_m1):
                            nxt = p_oy + ins.oy_step
                            m.d.sync += [ox.eq(0), oy.eq(oy + 1),
                                         ix_base.eq(-ins.x_off), iy_base.eq(iy_base + ins.stride),
                                         p_oy.eq(nxt), p_ox.eq(nxt), p_ky.eq(nxt), p_kx.eq(nxt),
                                         out.eq(out + ins.ocb)]
                        with m.Elif(k != nblocks_m1):
                            g = C(1, cfg.log2_tiles + 1) << ins.log2_gob
                            nk = p_k + Mux(conv, 0, g)
                            nxt = nk + _mul_small(pos_group, ins.band_in_step)
                            m.d.sync += [k.eq(k + 1), ox.eq(0), oy.eq(oy0),
                                         ix_base.eq(-ins.x_off),
                                         iy_base.eq(_mul_small(ins.stride, oy0) - ins.y_off),
                                         p_k.eq(nk), p_oy.eq(nxt), p_ox.eq(nxt), p_ky.eq(nxt),
                                         p_kx.eq(nxt),
                                         sb_k.eq(sb_k + ins.sb_step), sb.eq(sb_k + ins.sb_step),
                                         out_k.eq(out_k + g), out.eq(out_k + g)]
                        with m.Else():
                            m.d.sync += drain.eq(self.drain - 1)
                            m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
        return m
