"""NFU-3: 16-segment piecewise-linear activation."""

from amaranth import *
from amaranth.lib import wiring, data, memory, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.golden.formats import INT16_MIN, INT16_MAX
from diannao.hw.buffer import Buffer
from diannao.hw.config import MAX_ACT_TABLES
from diannao.hw.ecp5 import is_ecp5, ecp5_multiplier
from diannao.hw.nbin import row_layout as neuron_row
from diannao.hw.isa import field_width
from diannao.hw.nfu2 import sat16, shift_window, thermometer


__all__ = ["Activation", "SEGMENTS", "TABLE_WORDS", "TABLE_WORD_WIDTH", "table_words"]

SEGMENTS = 16
#: Words per table in the write address space: a header and one word per segment.
TABLE_WORDS = 32
#: Bits of one table word (:func:`table_words`): a segment's ``a_i`` and ``b_i``, 16 bits each.
TABLE_WORD_WIDTH = 32


def table_words(table):
    """The 17 32-bit words that load a :class:`golden.formats.PWLTable` into NFU-3.

    Word 0 is the header (``x_lo`` in bits 0-15, ``k`` in 16-19, ``f`` in 20-23); word
    ``1 + i`` holds segment ``i`` (``a_i`` in bits 0-15, ``b_i`` in 16-31). Write word ``w``
    of table ``t`` at address ``t * TABLE_WORDS + w``.
    """
    header = (table.x_lo & 0xFFFF) | (table.k << 16) | (table.f << 20)
    return [header] + [(int(a) & 0xFFFF) | ((int(b) & 0xFFFF) << 16)
                       for a, b in zip(table.a, table.b)]


class Activation(wiring.Component):
    """NFU-3: ``tn`` 16-segment piecewise-linear units (paper: DianNao NFU-3).

    With ``act`` set, each lane computes (``docs/numbers.md``) with table ``table``::

        i = clamp((x - x_lo) >> k, 0, 15)
        y = sat16(((a_i * x + 2**(f-1)) >> f) + b_i)        (no rounding term when f == 0)

    With ``act`` clear the value passes unchanged (bypass) with the same latency, through
    the same datapath with ``a = 1``, ``f = 0``, ``b = 0``. Each table's header (``x_lo``,
    ``k``, ``f``) lives in registers; the segment coefficients live in one small RAM with a
    read port per lane (every lane reads its own segment in the same cycle; the synchronous
    read is stage 1's register). Tables are written one 32-bit word at a time through
    ``tbl_*`` (layout: :func:`table_words`) while no rows flow. ``act`` and ``table`` are
    per-layer settings and must be stable while rows flow.

    Latency :attr:`latency` cycles, one register stage each: ``d = x - x_lo`` (17 bits);
    segment select and coefficient RAM read (with ``deep``: segment select, then a 2-cycle
    registered RAM read, :class:`hw.buffer.Buffer` with ``read_latency=2``);
    with ``deep`` the multiplier's input registers (on the ECP5 those of a
    :func:`hw.ecp5.ecp5_multiplier`); multiply (16 x 16 -> 32 bits); shift by ``f``; add
    ``b_i`` and the rounding bit, saturate (with ``deep``, the shift and the sum and
    saturation each in two stages). 5 cycles, 10 with ``deep``. With ``deep`` the per-layer
    settings and the selected table's header are registered too: set them three cycles
    before the first row. Throughput one row per cycle (II = 1).

    Parameters
    ----------
    tn : int
        Lanes (power of two >= 2).
    tables : int
        Tables held (1 .. :data:`hw.config.MAX_ACT_TABLES`, 8: what the instruction's
        ``table`` field selects).
    deep : bool
        The five extra stages of ``Config.deep_pipeline``.

    Rows enter and leave as streams without back-pressure (``i`` from NFU-2's ``o``,
    ``o`` to NBout; ``always_ready``), one output row per input row; ``act``, ``table`` and
    the table writes are side-band settings.

    Members
    -------
    i : ``In(stream.Signature(ArrayLayout(signed(16), tn), always_ready=True))``
        Input rows, ``x`` above (``i.payload``).
    act : ``In(1)``
    table : ``In(field_width("table"))``
        The instruction's ``table`` field.
    tbl_we : ``In(1)``
    tbl_addr : ``In(ceil_log2(tables * TABLE_WORDS))``
    tbl_data : ``In(TABLE_WORD_WIDTH)``
    o : ``Out(stream.Signature(ArrayLayout(signed(16), tn), always_ready=True))``
        Output rows, ``y`` above, :attr:`latency` cycles after their input rows.
    """

    def __init__(self, tn, tables=4, deep=False):
        if not isinstance(tn, int) or tn < 2 or tn & (tn - 1):
            raise ValueError(f"Activation tn must be a power of two >= 2, not {tn!r}")
        if not isinstance(tables, int) or not 1 <= tables <= MAX_ACT_TABLES:
            raise ValueError(f"Activation tables must be an int in [1, {MAX_ACT_TABLES}], "
                             f"not {tables!r}")
        self.tn = tn
        self.tables = tables
        self.deep = bool(deep)
        self.latency = self.latency_of(deep)
        super().__init__({
            "i": In(stream.Signature(neuron_row(tn), always_ready=True)),
            "act": In(1),
            "table": In(field_width("table")),
            "tbl_we": In(1),
            "tbl_addr": In(ceil_log2(tables * TABLE_WORDS)),
            "tbl_data": In(TABLE_WORD_WIDTH),
            "o": Out(stream.Signature(neuron_row(tn), always_ready=True)),
        })

    @staticmethod
    def latency_of(deep):
        """NFU-3's latency: 5 cycles, or 10 with ``deep``."""
        return 5 + 5 * bool(deep)

    def elaborate(self, platform):
        m = Module()
        x_lo = [Signal(signed(16), name=f"x_lo{t}", reset_less=True) for t in range(self.tables)]
        f = [Signal(4, name=f"f{t}", reset_less=True) for t in range(self.tables)]
        # Decoded with the header: k as one-hot (bit i: k == i) and the mask of d's bits at
        # k + 4 and above (bit i - 4 for d[i], i = 4..15), for a shallow segment select.
        k_hot = [Signal(16, name=f"k_hot{t}", reset_less=True) for t in range(self.tables)]
        k_mask = [Signal(12, name=f"k_mask{t}", reset_less=True) for t in range(self.tables)]
        # Table writes: with deep, decoded into registers first (a header's enable, the
        # coefficient RAM's write port), a cycle before they take effect.
        word = self.tbl_addr[:5]
        wdata = self.tbl_data
        hdr_en = [self.tbl_we & (self.tbl_addr == t * TABLE_WORDS) for t in range(self.tables)]
        seg_we = self.tbl_we & (word >= 1) & (word <= SEGMENTS)
        seg_waddr = Signal(range(self.tables * SEGMENTS))
        m.d.comb += seg_waddr.eq(Cat((word - 1)[:4], self.tbl_addr[5:]))
        if self.deep:
            wdata_r = Signal(TABLE_WORD_WIDTH, name="tbl_data_r", reset_less=True)
            seg_waddr_r = Signal.like(seg_waddr, name="seg_waddr_r", reset_less=True)
            hdr_en_r = [Signal(name=f"hdr_en{t}") for t in range(self.tables)]
            seg_we_r = Signal(name="seg_we_r")
            m.d.sync += [wdata_r.eq(wdata), seg_waddr_r.eq(seg_waddr), seg_we_r.eq(seg_we),
                         *(r.eq(e) for r, e in zip(hdr_en_r, hdr_en))]
            wdata, seg_waddr, seg_we, hdr_en = wdata_r, seg_waddr_r, seg_we_r, hdr_en_r
        wk = wdata[16:20]
        for t in range(self.tables):
            with m.If(hdr_en[t]):
                m.d.sync += [x_lo[t].eq(wdata[0:16]), f[t].eq(wdata[20:24]),
                             k_hot[t].eq(C(1, 16) << wk),
                             k_mask[t].eq(Cat(*[wk <= i - 4 for i in range(4, 16)]))]

        # The per-layer settings, and below the selected table's header values: with deep
        # registered (they are stable long before the first row arrives), so that their
        # decode does not share a cycle with the rows.
        hdr = m.d.sync if self.deep else m.d.comb
        table, act = Signal(range(self.tables)), Signal()
        hdr += [table.eq(self.table), act.eq(self.act)]
        sel_x_lo, sel_f = Array(x_lo)[table], Array(f)[table]
        sel_hot, sel_mask = Array(k_hot)[table], Array(k_mask)[table]
        # The shift f (4 bits) of the selected table; 0 in bypass (act clear).
        shf = Signal(4)
        hdr += shf.eq(Mux(act, sel_f, 0))
        # Stage 3's saturation test: keep3[n] = (f <= n).
        keep3 = Signal(14)
        hdr += keep3.eq(thermometer(shf, 14))

        # Segment coefficients (a_i in bits 0-15, b_i in 16-31) in one small RAM, row
        # table * 16 + i, with one write port and one non-transparent read port per lane
        # (every lane reads its own segment in the same cycle). The synchronous read is the
        # stage-1 register; on FPGAs the tables take block or distributed RAM (one copy per
        # read port) instead of flip-flops and wide muxes.
        if self.deep:
            # With deep, one registered Buffer per lane (on the ECP5 distributed RAM between
            # an address and a data register): the read takes 2 cycles.
            coef_data = []
            for j in range(self.tn):
                buf = Buffer(32, self.tables * SEGMENTS, read_latency=2)
                m.submodules[f"coef{j}"] = buf
                m.d.comb += [buf.write.addr.eq(seg_waddr), buf.write.data.eq(wdata),
                             buf.write.en.eq(seg_we), buf.read.en.eq(1)]
                coef_data.append(buf.read)
        else:
            m.submodules.coef = coef = memory.Memory(shape=32, depth=self.tables * SEGMENTS,
                                                     init=[])
            wp = coef.write_port()
            m.d.comb += [wp.addr.eq(seg_waddr), wp.data.eq(wdata), wp.en.eq(seg_we)]
            coef_data = [coef.read_port(transparent_for=()) for _ in range(self.tn)]

        # stage_valid[i]: the row in stage i is valid (stage 0 takes x with i.valid).
        stage_valid = [self.i.valid]
        for i in range(self.latency - 1):
            v = Signal(name=f"v{i}")
            m.d.sync += v.eq(stage_valid[-1])
            stage_valid.append(v)
        m.d.sync += self.o.valid.eq(stage_valid[-1])
        # Each stage's registers are written only when its row is valid: a simulator then
        # skips idle cycles. The DSP block's own registers (x1, prod2) are gated only in
        # simulation and generic Verilog, so that an FPGA build keeps one clock enable per
        # DSP block.
        dsp_en = stage_valid if platform is None else [C(1, 1)] * len(stage_valid)

        # The header values of the selected table, decoded once for every lane.
        sel_lo = Signal(signed(16))
        sel_hot_s = Signal(16)
        sel_mask_s = Signal(12)
        hdr += [sel_lo.eq(sel_x_lo), sel_hot_s.eq(sel_hot), sel_mask_s.eq(sel_mask)]

        # Each stage's registers of every lane form one word (one register per lane in
        # hardware; a simulator copies one word per stage and cycle). The multiplier's input
        # and output registers stay one per lane: they are the DSP block's registers.
        def lanes(shape, name):
            return Signal(data.ArrayLayout(shape, self.tn), name=name, reset_less=True)

        # Stage 0: offset from the table's start, d = x - x_lo (signed 17 bits: exact for
        # any int16 x and x_lo), registered with x (signed 16) so that the carry chain does
        # not share a cycle with the segment select and the RAM address.
        d_c, d, x0 = lanes(signed(17), "d_c"), lanes(signed(17), "d"), lanes(signed(16), "x0")
        m.d.comb += [d_c[j].eq(self.i.payload[j] - sel_lo) for j in range(self.tn)]
        with m.If(stage_valid[0]):
            m.d.sync += [d.eq(d_c), x0.eq(self.i.payload)]
        # Stage 2's and 3's lane words.
        b1, b2 = lanes(signed(16), "b1"), lanes(signed(16), "b2")
        q_c, q3 = lanes(signed(18), "q_c"), lanes(signed(18), "q3")
        r_c, r3 = lanes(1, "r_c"), lanes(1, "r3")
        fits_c, fits3 = lanes(1, "fits_c"), lanes(1, "fits3")
        psign_c, psign3 = lanes(1, "psign_c"), lanes(1, "psign3")
        b3 = lanes(signed(16), "b3")
        y_c = lanes(signed(16), "y_c")
        # The stage whose register is the coefficient RAM's read: 1, or 2 after a register
        # of the segment address (deep). The stage whose registers hold the product: 2, or
        # 4 after the RAM and the multiplier's input registers (deep); b travels beside
        # the multiplier.
        s_ram = 1 + 2 * self.deep
        s_mul = s_ram + 1 + self.deep
        ecp5_mul = self.deep and is_ecp5(platform)
        b_in = b1
        if self.deep:
            b_in = lanes(signed(16), "b_r")
            with m.If(stage_valid[s_ram + 1]):
                m.d.sync += b_in.eq(b1)
        with m.If(stage_valid[s_mul]):
            m.d.sync += b2.eq(b_in)
        # The shift: one stage, or with deep two (by f's high bits, then its low bits; the
        # first holds 22 bits of (p << 1) >> (f & 12), enough for the second's 19).
        s_q = s_mul + 1 + self.deep
        coarse_c, coarse = lanes(22, "coarse_c"), lanes(22, "coarse")
        if self.deep:
            fits_a, psign_a, b_a = lanes(1, "fits_a"), lanes(1, "psign_a"), lanes(signed(16), "b_a")
            with m.If(stage_valid[s_mul + 1]):
                m.d.sync += [coarse.eq(coarse_c), fits_a.eq(fits_c), psign_a.eq(psign_c),
                             b_a.eq(b2)]
            with m.If(stage_valid[s_q]):
                m.d.sync += [q3.eq(q_c), r3.eq(r_c), fits3.eq(fits_a), psign3.eq(psign_a),
                             b3.eq(b_a)]
        else:
            with m.If(stage_valid[s_q]):
                m.d.sync += [q3.eq(q_c), r3.eq(r_c), fits3.eq(fits_c), psign3.eq(psign_c),
                             b3.eq(b2)]
        # Stage s_q + 1: the output; with deep, first the sum y (19 bits, with the fit
        # and the sign of p) and then the saturation.
        y4, fits4, psign4 = lanes(signed(19), "y4"), lanes(1, "fits4"), lanes(1, "psign4")
        y_sum = lanes(signed(19), "y_sum")
        if self.deep:
            with m.If(stage_valid[s_q + 1]):
                m.d.sync += [y4.eq(y_sum), fits4.eq(fits3), psign4.eq(psign3)]
            with m.If(stage_valid[s_q + 2]):
                m.d.sync += self.o.payload.eq(y_c)
        else:
            m.d.comb += [y4.eq(y_sum), fits4.eq(fits3), psign4.eq(psign3)]
            with m.If(stage_valid[s_q + 1]):
                m.d.sync += self.o.payload.eq(y_c)

        for j in range(self.tn):
            dj = d[j]
            # Stage 1: segment select (4 bits) -> coefficient RAM read address (table * 16 +
            # segment); the RAM's synchronous read (32 bits: a_i, b_i) is the stage register.
            # clamp(d >> k, 0, 15) without comparators: negative iff d is; for d >= 0,
            # d >> k > 15 iff d has a bit set at k + 4 or above; else the 4 bits d[k:k+4].
            # Bit b of d >> k is the OR over i of d[i + b] & (k == i), d sign-extended.
            dx = Cat(dj, dj[16].replicate(3))
            low4 = Cat(*[(dx[b:b + 16] & sel_hot_s).any() for b in range(4)])
            big = (dj[4:16] & sel_mask_s).any()
            rp = coef_data[j]
            seg_addr = Cat(Mux(dj[16], 0, Mux(big, SEGMENTS - 1, low4)), table)
            x_ram = x0[j]
            if self.deep:
                # The segment address registered (with x) before the RAM read.
                seg_r = Signal(len(rp.addr), name=f"seg_r{j}", reset_less=True)
                x_ram = Signal(signed(16), name=f"x_seg{j}", reset_less=True)
                x_ram2 = Signal(signed(16), name=f"x_seg2_{j}", reset_less=True)
                with m.If(stage_valid[1]):
                    m.d.sync += [seg_r.eq(seg_addr), x_ram.eq(x0[j])]
                with m.If(stage_valid[2]):
                    m.d.sync += x_ram2.eq(x_ram)
                seg_addr, x_ram = seg_r, x_ram2
            m.d.comb += rp.addr.eq(seg_addr)
            # Without reset and used only by the multiplier: the DSP's input register (without
            # deep; with it, the register before it).
            x1 = Signal(signed(16), name=f"x1_{j}", reset_less=True)
            with m.If(dsp_en[s_ram]):
                m.d.sync += x1.eq(x_ram)
            # Bypass (act clear) goes through the same datapath with a = 1, f = 0, b = 0:
            # y = sat16(x) = x, and no copy of x has to travel beside the later stages.
            a1 = Mux(act, rp.data[0:16], 1).as_signed()            # signed 16
            m.d.comb += b1[j].eq(Mux(act, rp.data[16:32], 0))
            # Stage s_mul: multiply, exact signed 16 x 16 -> 32 bits.
            prod2 = Signal(signed(32), name=f"prod2_{j}", reset_less=True)   # DSP output reg
            if ecp5_mul:
                cell, p = ecp5_multiplier(a1, x1)
                m.submodules[f"mul{j}"] = cell
                m.d.comb += prod2.eq(p[:32])
            else:
                a_in, x_in = a1, x1
                if self.deep:
                    # The DSP's input registers.
                    a_in = Signal(signed(16), name=f"a2_{j}", reset_less=True)
                    x_in = Signal(signed(16), name=f"x2_{j}", reset_less=True)
                    with m.If(dsp_en[s_ram + 1]):
                        m.d.sync += [a_in.eq(a1), x_in.eq(x1)]
                with m.If(dsp_en[s_mul]):
                    m.d.sync += prod2.eq(a_in * x_in)
            # Stages 3 and 4: ((p + 2**(f-1)) >> f) == q + r with q = p >> f and r = bit
            # f-1 of p (0 for f = 0), so y = q + b + r. If q is outside int18, |b + r| <=
            # 2**15 cannot bring y back into int16: saturate by the sign of p (read from p's
            # bits 17+f and up); otherwise add in 19 bits. Short carry chains for small FPGAs.
            # Stage 3: shift. pre = (p << 1) >> f (19 bits kept); registered: q's low 18 bits
            # (signed 18), r (1), whether q fits int18 (1), p's sign (1), b (signed 16).
            if self.deep:
                m.d.comb += coarse_c[j].eq(shift_window(Cat(C(0, 1), prod2),
                                                        Cat(C(0, 2), shf[2:4]), 22))
                pre = shift_window(coarse[j], shf[0:2], 19)
            else:
                pre = shift_window(Cat(C(0, 1), prod2), shf, 19)  # bits 0..18 of (p << 1) >> f
            psign = prod2[31]
            m.d.comb += [q_c[j].eq(pre[1:19]), r_c[j].eq(pre[0]), psign_c[j].eq(psign),
                         fits_c[j].eq(((prod2[17:31] ^ psign.replicate(14)) & keep3) == 0)]
            # Stage 4: offset and round in 19 bits (signed), saturate to int16.
            m.d.comb += y_sum[j].eq(q3[j] + b3[j] + r3[j])
            sat = Mux(psign4[j], C(INT16_MIN, signed(16)), C(INT16_MAX, signed(16)))
            m.d.comb += y_c[j].eq(Mux(fits4[j], sat16(y4[j]), sat))
        return m
