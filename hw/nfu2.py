"""NFU-2: adder trees, accumulators, shifter and max."""

from amaranth import *
from amaranth.lib import wiring, data, memory, stream
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.golden.formats import INT16_MIN, INT16_MAX
from diannao.hw.adder_tree import AdderTree
from diannao.hw.isa import field_width
from diannao.hw.nbin import row_layout as neuron_row
from diannao.hw.nfu1 import product_layout
from diannao.hw.pipe import delay


__all__ = ["NFU2", "SHIFT_WIDTH", "sat16", "shift_window", "thermometer", "psum_layout"]

#: Bits of the shifter amount ``s``: the instruction's ``shift`` field.
SHIFT_WIDTH = field_width("shift")


def psum_layout(tn, acc_width):
    """One row of partial sums: the ``tn`` accumulators of NFU-2, exact."""
    return data.ArrayLayout(signed(acc_width), tn)


def sat16(v):
    """``v`` (signed) saturated to int16: in range iff bits 15 and up are all equal, a test
    of a few LUTs instead of two full-width comparisons."""
    hi = v[15:]
    fits = (hi == 0) | (hi == (1 << len(hi)) - 1)
    return Mux(fits, v[:16], Mux(v[-1], C(INT16_MIN, signed(16)), C(INT16_MAX, signed(16))))


def thermometer(amount, width):
    """``width`` bits whose bit ``n`` is ``amount <= n``: bit ``n`` of all-ones << ``amount``.

    Each bit is a function of ``amount``'s few bits; written as ``width`` comparisons, yosys
    maps them to a chain of LUTs (14 levels on the iCE40 for NFU-2's saturation test).
    """
    return (C((1 << width) - 1, width) << amount)[:width]


def shift_window(value, amount, width):
    """The low ``width`` bits of ``value >> amount``: an arithmetic shift (``value`` read
    as signed, sign-extended as far as needed) by the unsigned ``amount``.

    A logarithmic shifter whose largest stage comes first: before the stage that shifts by
    ``2**k`` only ``width + 2**(k+1) - 1`` bits can still reach the window, so each stage
    is only that wide (48-bit accumulator to 17 bits by 0..63: 159 two-input multiplexers
    per lane instead of about 260 for a full-width shifter pruned at its output). Purely
    combinational; one multiplexer level per bit of ``amount``.
    """
    n = len(amount)
    total = width + (1 << n) - 1
    v = Cat(value, value[-1].replicate(max(0, total - len(value))))[:total]
    for k in reversed(range(n)):
        step = 1 << k
        need = width + step - 1
        v = Mux(amount[k], v[step:step + need], v[:need])
    return v


def _signed_lt(a, b):
    """``a < b`` for signed ``a`` and ``b`` of one width, as the unsigned comparison of their
    offset-binary forms (sign bits inverted): the carry out of one subtraction, without the
    overflow correction a signed ``<`` adds after the carry chain. Written as ``<`` (``>``
    adds a zero test)."""
    flip = 1 << (len(a) - 1)
    return (a.as_unsigned() ^ flip) < (b.as_unsigned() ^ flip)


class NFU2(wiring.Component):
    """NFU-2: ``tn`` adder trees of ``tn`` inputs, accumulators, shifter, max (paper: DianNao).

    For each lane ``j`` the tree sums ``products[j][:]`` exactly. The accumulator of
    ``acc_width`` bits then either adds the sum (``max_mode == 0``; the row flagged
    ``first`` starts a new sum) or keeps the running maximum (``max_mode == 1``). After the
    row flagged ``last``, the shifter produces the int16 output (``docs/numbers.md``)::

        y = sat16((acc + 2**(s-1)) >> s)  if s > 0   else   sat16(acc)

    ``max_mode`` and ``shift`` are per-layer settings, registered where they enter (their
    first use is at least one cycle after the first row's ``valid_in``, so the registers
    change no result and keep the instruction's decode off the shifter's path): set them by
    the first row's ``valid_in`` and keep them stable while rows flow.

    Latency from ``valid_in`` of the ``last`` row to ``valid_out``: ``log2(tn) + 3`` cycles
    (the tree, the accumulator, the shift, the rounding add and saturation); with ``deep``
    the tree's sums are registered twice more before the accumulator, the finished sums are
    copied before the shift, the shift is two stages and so are the rounding add and the
    saturation (``log2(tn) + 8``). Throughput one
    row per cycle (II = 1); a new accumulation may start on the row after ``last``.

    The outputs leave as a stream without back-pressure (``o``, ``always_ready``; NFU-3
    takes it as it is).

    Partial sums (with ``psum_depth``): a reduction split into chunks keeps its sums exact
    in a buffer of ``psum_depth`` rows of ``tn`` accumulators (paper: NBout holds partial
    sums; ours at full accumulator width). The i-th accumulation since ``restart`` uses row
    i: its first row's sum is added to row i instead of to 0 when ``psum_in`` is set (the
    row is read ``read_latency`` cycles before it is needed, so it costs no cycle), and
    with ``psum_out`` the finished accumulator is written to row i instead of going on to
    the shifter (no ``o`` row). The input is not a stream: the accumulator flags ``first`` and
    ``last`` travel beside NFU-1 in the tile's delay lines, in lockstep with its products
    (``products``, ``valid_in``), and ``max_mode`` and ``shift`` are per-layer settings.

    Parameters
    ----------
    tn : int
        NFU width (power of two >= 2).
    acc_width : int
        Accumulator bits; the compiler guarantees no layer can overflow it.
    deep : bool
        The five extra stages of ``Config.deep_pipeline``.
    psum_depth : int
        Rows of the partial-sum buffer (0: none; ``psum_in`` and ``psum_out`` are ignored).
    read_latency : int
        Of the partial-sum buffer's read port (1 or 2).

    Members
    -------
    valid_in, first, last : ``In(1)``
    products : ``In(ArrayLayout(ArrayLayout(signed(32), tn), tn))``
    max_mode : ``In(1)``
    shift : ``In(SHIFT_WIDTH)``
    o : ``Out(stream.Signature(ArrayLayout(signed(16), tn), always_ready=True))``
        One output row (``o.payload``, the int16 ``y`` above) per ``last`` row.
    restart, psum_in, psum_out : ``In(1)``
        ``restart``, a pulse in lockstep with ``valid_in`` after the last row of one
        instruction and before the first of the next, returns to row 0 (for the next
        instruction's rows: the rows before it finish with their own); ``psum_in`` and
        ``psum_out`` come with each row, like ``first`` and ``last``. Only with
        ``psum_depth``.
    psum_r : ``In(ReadPort.Signature)``, psum_w : ``In(WritePort.Signature)``
        The partial-sum buffer's ports, driven by NFU-2 (:func:`psum_layout` rows). Only
        with ``psum_depth``.
    """

    def __init__(self, tn, acc_width=48, deep=False, psum_depth=0, read_latency=1):
        if not isinstance(tn, int) or tn < 2 or tn & (tn - 1):
            raise ValueError(f"NFU2 tn must be a power of two >= 2, not {tn!r}")
        if not isinstance(acc_width, int) or not 32 + tn.bit_length() <= acc_width <= 64:
            raise ValueError(f"NFU2 acc_width must be in [{32 + tn.bit_length()}, 64], "
                             f"not {acc_width!r}")
        if not isinstance(psum_depth, int) or psum_depth < 0:
            raise ValueError(f"NFU2 psum_depth must be a non-negative int, not {psum_depth!r}")
        if read_latency not in (1, 2):
            raise ValueError(f"NFU2 read_latency must be 1 or 2, not {read_latency!r}")
        self.tn = tn
        self.acc_width = acc_width
        self.deep = bool(deep)
        self.psum_depth = psum_depth
        self.read_latency = read_latency
        self.latency = self.latency_of(tn, deep)
        psum = {}
        if psum_depth:
            aw, shape = max(1, ceil_log2(psum_depth)), psum_layout(tn, acc_width)
            psum = {
                "restart": In(1),
                "psum_in": In(1),
                "psum_out": In(1),
                "psum_r": In(memory.ReadPort.Signature(addr_width=aw, shape=shape)),
                "psum_w": In(memory.WritePort.Signature(addr_width=aw, shape=shape)),
            }
        super().__init__({
            **psum,
            "valid_in": In(1),
            "first": In(1),
            "last": In(1),
            "products": In(product_layout(tn)),
            "max_mode": In(1),
            "shift": In(SHIFT_WIDTH),
            "o": Out(stream.Signature(neuron_row(tn), always_ready=True)),
        })

    @staticmethod
    def latency_of(tn, deep=False):
        """NFU-2's latency for ``tn``: ``log2(tn) + 3`` cycles, five more with ``deep``."""
        return (tn.bit_length() - 1) + 3 + 5 * bool(deep)

    def elaborate(self, platform):
        m = Module()
        tn = self.tn
        # With deep, the tree sums are registered twice more before the accumulators (sum_a:
        # a stage in which they travel from the trees to the accumulators, whose comparisons
        # read it; sum_r).
        tree_latency = tn.bit_length() - 1 + 2 * self.deep

        # Control travels beside the trees.
        valid = delay(m, self.valid_in, tree_latency, "valid_t")
        first = delay(m, self.first, tree_latency, "first_t")
        last = delay(m, self.last, tree_latency, "last_t")

        # acc_done: an accumulation finished and goes on to the shifter; with psum_out it
        # goes to the partial-sum buffer instead (psum_done).
        acc_done, shifted, rounded = Signal(), Signal(), Signal()
        psum_in, psum_out = C(0, 1), C(0, 1)
        if self.psum_depth:
            # psum_in and psum_out come with each row and travel beside the trees like
            # `first` and `last`; `restart` comes before an instruction's first row and is
            # delayed like the reads and the writes it resets (so that the last rows of the
            # instruction before still use their rows).
            psum_in = delay(m, self.psum_in, tree_latency, "psum_in_t")
            psum_out = delay(m, self.psum_out, tree_latency, "psum_out_t")
            # Row i for the i-th accumulation since restart: read when its first row is
            # read_latency cycles before the accumulator (every first row reads; the sum is
            # used only with psum_in), written when it finishes.
            rd_row, wr_row = (Signal.like(self.psum_r.addr, name=n) for n in ("psum_rd", "psum_wr"))
            early = delay(m, self.valid_in & self.first, tree_latency - self.read_latency,
                          "psum_rd_at")
            rd_restart = delay(m, self.restart, tree_latency - self.read_latency, "rd_restart")
            wr_restart = delay(m, self.restart, tree_latency + 1, "wr_restart")
            m.d.comb += [self.psum_r.addr.eq(rd_row), self.psum_r.en.eq(early)]
            psum_done = Signal()
            m.d.sync += psum_done.eq(valid & last & psum_out)
            m.d.comb += [self.psum_w.addr.eq(wr_row), self.psum_w.en.eq(psum_done)]
            with m.If(rd_restart):
                m.d.sync += rd_row.eq(0)
            with m.Elif(early):
                m.d.sync += rd_row.eq(rd_row + 1)
            with m.If(wr_restart):
                m.d.sync += wr_row.eq(0)
            with m.Elif(psum_done):
                m.d.sync += wr_row.eq(wr_row + 1)
        # With deep the finished sums are copied first (the shifter reads the copy, so the
        # accumulator's own fan-out is its loop): `to_shift` is the shift stage's enable.
        to_shift = shift_en = acc_done
        if self.deep:
            # and the shift is two stages (`to_shift`, then `shift_en`)
            to_shift, shift_en = Signal(), Signal()
            m.d.sync += [to_shift.eq(acc_done), shift_en.eq(to_shift)]
        m.d.sync += [acc_done.eq(valid & last & ~psum_out), shifted.eq(shift_en)]
        if self.deep:
            m.d.sync += [rounded.eq(shifted), self.o.valid.eq(rounded)]
        else:
            m.d.comb += rounded.eq(shifted)
            m.d.sync += self.o.valid.eq(shifted)

        # The per-layer settings, registered (see the docstring), with the shifter's
        # saturation test decoded: keep[i - 15] = (shift <= i - 15) for i in 15..w-2. Word
        # operations here and below (not one term per bit): the same netlist, and far less
        # work per cycle for a simulator.
        w = self.acc_width
        # With deep without reset (the reset net's fan-out across the ECP5).
        shift = Signal(SHIFT_WIDTH, name="shift_r", reset_less=self.deep)
        max_mode = Signal(name="max_mode_r", reset_less=self.deep)
        keep = Signal(w - 16, name="fits_keep", reset_less=self.deep)
        m.d.sync += [shift.eq(self.shift), max_mode.eq(self.max_mode),
                     keep.eq(thermometer(self.shift, w - 16))]
        m.submodules.trees = trees = AdderTree(tn, 32, lanes=tn, reset_less=self.deep)
        m.d.comb += trees.inputs.eq(self.products)
        # The accumulators of all lanes in one word (one register per lane in hardware).
        accs = Signal(data.ArrayLayout(signed(self.acc_width), tn), name="acc", reset_less=True)
        if self.psum_depth:
            m.d.comb += self.psum_w.data.eq(accs)
        # The shifter's stage register of all lanes in one word each: the shifted bits, the
        # int16 fit and the sign, registered between the shift and the rounding add.
        pres = Signal(data.ArrayLayout(17, tn), name="pre_r", reset_less=True)
        fitss = Signal(data.ArrayLayout(1, tn), name="fits_r", reset_less=True)
        signs = Signal(data.ArrayLayout(1, tn), name="sign_r", reset_less=True)
        for j in range(tn):
            tree_sum = trees.sum[j]
            if self.deep:
                sum_a = Signal.like(tree_sum, name=f"sum_a{j}", reset_less=True)
                sum_r = Signal.like(tree_sum, name=f"sum_r{j}", reset_less=True)
                m.d.sync += [sum_a.eq(tree_sum), sum_r.eq(sum_a)]
                tree_sum = sum_r
            acc = accs[j]
            # One adder serves both modes: acc <= base + sum with base = 0 on the first row
            # and in max mode (where acc then takes the tree sum), else acc. In max mode acc
            # always holds one of the group's tree sums, so the comparison needs only the
            # tree sum's width (a shorter carry chain) and only gates the register's enable.
            # On the iCE40 every adder bit is then a 3-input LUT beside its carry (base bit,
            # sum bit, carry in), which lets the 48-bit chain pack unbroken.
            base = Signal(signed(self.acc_width), name=f"base{j}")
            if self.psum_depth:
                m.d.comb += base.eq(Mux(max_mode, 0, Mux(first, Mux(psum_in, self.psum_r.data[j], 0),
                                                         acc)))
            else:
                m.d.comb += base.eq(Mux(first | max_mode, 0, acc))
            take = Signal(name=f"take{j}")
            if self.deep:
                # With deep the maximum has its own register (the tree sum's width; the copy
                # before the shift picks it or acc), and the comparison leaves the loop: a row's
                # sum s(t) is compared a cycle early (while it is the tree's output) with both
                # candidates for the maximum it will meet, mx(t-1) and s(t-1); the row then
                # takes one of the two results by whether the previous row was taken.
                mx = Signal.like(tree_sum, name=f"max{j}", reset_less=True)
                nxt = sum_a
                gt_mx, gt_prev = Signal(name=f"gt_max{j}"), Signal(name=f"gt_prev{j}")
                m.d.sync += [gt_mx.eq(_signed_lt(mx, nxt)), gt_prev.eq(_signed_lt(tree_sum, nxt))]
                took = Signal(name=f"took{j}")
                take_max = Signal(name=f"take_max{j}")
                m.d.comb += take_max.eq(valid & (first | Mux(took, gt_prev, gt_mx)))
                m.d.sync += took.eq(take_max)
                with m.If(take_max):
                    m.d.sync += mx.eq(tree_sum)
                m.d.comb += take.eq(~max_mode)
            else:
                m.d.comb += take.eq(~max_mode | first
                                    | (tree_sum > acc[:len(tree_sum)].as_signed()))
            with m.If(valid & take):
                m.d.sync += acc.eq(base + tree_sum)

            # Round half up, arithmetic shift, saturate; exact for every shift amount s and
            # short enough for small FPGAs (no carry chain wider than 16 bits):
            #   floor((acc + 2**(s-1)) / 2**s) == q + r, q = acc >> s, r = bit s-1 of acc
            # (r = 0 for s = 0). Only the low 17 bits of (acc << 1) >> s are shifted (q's
            # low 16 bits and r); whether q fits int16 is read from acc directly: bits
            # 15+s and up all equal the sign bit. Then q + r overflows only at 0x7FFF + 1.
            # Shift stage (on acc_done): bits 0..16 of (acc << 1) >> s, the fit, the sign.
            if self.deep:
                acc_q = Signal(signed(w), name=f"acc_q{j}", reset_less=True)
                with m.If(acc_done):
                    m.d.sync += acc_q.eq(Mux(max_mode, mx, acc))
                acc = acc_q
            sign = acc[w - 1]
            fit = ((acc[15:w - 1] ^ sign.replicate(w - 16)) & keep) == 0
            if self.deep:
                # With deep the shift is two stages: by multiples of 8 (the window keeps
                # 17 + 7 bits), then by the rest.
                coarse = Signal(24, name=f"coarse{j}", reset_less=True)
                fit_c = Signal(name=f"fits_c{j}", reset_less=True)
                sign_c = Signal(name=f"sign_c{j}", reset_less=True)
                with m.If(to_shift):
                    m.d.sync += [coarse.eq(shift_window(Cat(C(0, 1), acc),
                                                        Cat(C(0, 3), shift[3:]), 24)),
                                 fit_c.eq(fit), sign_c.eq(sign)]
                window, amount, fit, sign = coarse, shift[:3], fit_c, sign_c
            else:
                window, amount = Cat(C(0, 1), acc), shift
            with m.If(shift_en):
                m.d.sync += [
                    pres[j].eq(shift_window(window, amount, 17)),
                    fitss[j].eq(fit),
                    signs[j].eq(sign),
                ]
            # Round and saturate stage (with deep: the round, registered, then saturate).
            pre, fits, sign = pres[j], fitss[j], signs[j]
            low_c = Signal(17, name=f"low_c{j}")
            m.d.comb += low_c.eq(pre[1:17] + pre[0])
            low = Signal(17, name=f"low{j}", reset_less=True)
            if self.deep:
                fits_r = Signal(name=f"fits_rnd{j}", reset_less=True)
                sign_r = Signal(name=f"sign_rnd{j}", reset_less=True)
                with m.If(shifted):
                    m.d.sync += [low.eq(low_c), fits_r.eq(fits), sign_r.eq(sign)]
                fits, sign = fits_r, sign_r
            else:
                m.d.comb += low.eq(low_c)
            sat = Mux(sign, C(INT16_MIN, signed(16)), C(INT16_MAX, signed(16)))
            with m.If(rounded):
                m.d.sync += self.o.payload[j].eq(Mux(fits & ~(low[15] & ~sign), low[:16], sat))
        return m
