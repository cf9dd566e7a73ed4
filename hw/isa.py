"""The instruction set: one layout, its encoder, decoder and disassembler.

A program is a list of coarse instructions (``docs/architecture.md``, "Control and
instruction set"). Every instruction has the same
:data:`INSTR_FIELDS` layout; each opcode reads the fields it needs and ignores the others.
The layout is plain Python and this module imports no Amaranth, so that the compiler and
the tools do not load it; the RTL's Amaranth layout is :data:`hw.instr.INSTR`.

========  ====================================================================================
opcode    meaning
========  ====================================================================================
HALT      end of program; the node raises ``done``.
LOAD      broadcast NM rows down the fat tree into every tile's NBin rows from ``dst`` on,
          densely: ``lines_m1 + 1`` lines of ``runs_m1 + 1`` runs of ``count`` consecutive
          rows from ``src``; from a run's last row the next run starts ``run_step`` rows on,
          from a line's last row the next line ``line_step`` rows on (a box of a tensor:
          runs are the channel blocks of a position, lines the rows of the box). With
          ``sync`` it first waits until the tiles are done (they may read those NBin rows).
CONV      every tile runs its share of a convolution (FC is a convolution whose kernel covers
          the whole input) from NBin and SB into NBout. A reduction split into chunks
          (one CONV each) keeps exact partial sums in the tile's partial-sum buffer: with
          ``psum_out`` an output's sum goes there (not to NBout), with ``psum_in`` it starts
          from there (and there is no bias row); the i-th output of a tile's share uses
          row i, so every chunk of one output tile walks the same outputs in the same order.
          With ``lrn`` (local response normalisation, ``docs/numbers.md``) a 1x1 CONV over
          all ``cb`` channel blocks has no bias row; NFU-1 multiplies each input by itself
          where the SB row holds -1 (the window's mask; elsewhere 0), NFU-2 sums the
          squares and shifts them into the table's input, NFU-3's table gives the scale
          ``g``, and each output is ``g`` times the input at the window's centre (the row
          of channel block ``c == ob``), rounded by 14 bits.
MAXPOOL   per-lane max over a window (NFU-1 with a diagonal ``1`` SB row, NFU-2 max).
AVGPOOL   per-lane average: NFU-1 with a diagonal SB row holding the rounded reciprocal
          ``r``, NFU-2 sum, shifter by ``R`` (``docs/numbers.md``).
STORE     collect every tile's NBout rows of half ``nbout_half`` up the fat tree into NM
          (each row carries its NM address) and empty that half, in the node's store
          engine, which runs beside the controller (LOADs go on meanwhile; a compute
          instruction that writes that half waits for it). With ``sync`` it first waits
          until the tiles are done and the node waits for the engine to finish (a layer's
          last STORE: the next layer loads its rows); without, it drains while the tiles
          compute (the rows are an earlier instruction's, the running one writes the other
          half).
SBLOAD    with a main memory (``Config.mem_bytes``): the DMA engine (:class:`hw.dma.DMA`)
          copies ``count`` SB rows of every tile from main memory, row group ``mem`` on
          (a row group: one SB row per tile, tile 0 first), into SB rows from ``dst``.
          Handed to the engine in a SYNC cycle (once it runs fewer than :data:`DMA_QUEUE`
          operations, with ``sync`` once the tiles are done), it runs beside the
          controller, its beats requested right after the last operation's; a compute
          instruction waits until at most its ``dma_ahead`` operations run (the engine
          finishes them in order: those handed after the one that brings its rows). An
          SBLOAD of no rows is a fence: it waits until none runs. The compiler loads into
          slots of SB the tiles have done reading, ahead of the instructions that read
          them, so the loads overlap the computation.
IMLOAD    with a main memory: the DMA engine copies ``count`` instructions from main memory,
          beat ``mem`` on (``Config.instr_beats`` beats each: its host words, low first),
          into the instruction memory from ``dst``, handed over and run like an SBLOAD. A
          program longer than the instruction memory runs from it in pages of half its
          depth, the program counter wrapping around: pages 0 and 1 are loaded with the
          program, each later page by an IMLOAD at the start of the page before it, into
          the half the page before that held; an SBLOAD of no rows ends each page that
          loads one (it waits until the DMA engine is idle: the next page is in place).
LOOP      with ``Config.loop_depth`` > 0: the next ``body`` instructions run ``count`` times
          (both at least 1). In iteration ``i`` (from 0) each of them has ``i`` times the
          LOOP's own value of every field of :data:`LOOP_FIELDS` (the addresses) added to its
          value of that field, modulo the field's width (a negative step is its two's
          complement). A LOOP in a body nests, up to ``loop_depth`` levels: the steps of the
          enclosing loops add up (the LOOP's own fields never move). An inner body ends
          within its outer one (or with it), and no body holds a HALT (:func:`check_loops`).
          A LOOP costs a fetch and a decode like any instruction; the node goes back to a
          body's first instruction in the decode cycle of its last (:func:`expand` lists
          what the node runs).

A compute instruction does not hold the node: it starts once the tiles are done with the
previous one (once they have emitted its last row when the two agree on
:data:`SETTINGS_FIELDS`: they set up the next one while the pipeline drains), and the node
fetches on while they compute, so a LOAD into the other half of NBin or a STORE of the
other half of NBout overlaps it (with a narrow instruction memory the node waits for the
tiles: they read the instruction it holds, and for every STORE). HALT waits for the tiles,
the store engine and the DMA engine.
========  ====================================================================================

DianNao's control processor gives each buffer a read or write operation, a reuse flag, an
address and a size, and NFU-2 an input (RESET or NBOUT) and an output (NBOUT or NFU-3). Here
LOAD, SBLOAD and STORE are the buffers' operations with their address (``src`` or ``mem``, ``dst``)
and size (``count``); reuse is an SBLOAD the compiler leaves out because SB still holds the
rows; ``psum_in`` is NFU-2's input NBOUT (0: RESET, the bias row) and ``psum_out`` its
output NBOUT (0: NFU-3).

The tile's loop nest for CONV/MAXPOOL/AVGPOOL (see :class:`hw.tile_controller.TileController`)::

    for k in range(blocks of this tile):          # ob = ob_group + k * 2**log2_gob
      for oy in this tile's band of output rows:  # [pos_group*oy_band, +oy_band) ∩ [0, oh)
        for ox in range(ow):
          [CONV without psum_in: one bias row: x = (1 << bias_exp, 0, ...), SB row sb_base + k*sb_step]
          for ky in range(kh): for kx in range(kw): for c in range(cb if CONV else 1):
            (SB: the next row; each output position starts again at block k's first row,
             but with ``private`` (a locally connected layer) the rows run on)
            iy, ix = oy*stride + ky - y_off, ox*stride + kx - x_off   # zero row outside
            x = NBin[nbin_org + ((iy + y_off)*in_w + ix + x_off)*cb + (c if CONV else ob)]
          NBout <- (NM address out_base + oy*(out_row_step + (ow-1)*ocb) + ox*ocb + ob,
                    activation(shift(acc)))          [psum_out: partial sums <- acc]
"""

from enum import IntEnum
from typing import NamedTuple


__all__ = ["Op", "Field", "INSTR_FIELDS", "INSTR_WIDTH", "PC_WIDTH", "SETTINGS_FIELDS", "DMA_QUEUE",
           "LOOP_FIELDS", "field_width", "field_offset", "field_signed", "field_range",
           "check_fields", "wrap", "encode", "decode", "disassemble", "compute_fields",
           "load_fields", "load_rows", "check_loops", "expand", "run_counts"]


class Op(IntEnum):
    HALT = 0
    LOAD = 1
    CONV = 2
    MAXPOOL = 3
    AVGPOOL = 4
    STORE = 5
    SBLOAD = 6
    IMLOAD = 7
    LOOP = 8


_FIELDS = {
    # name: (signed, width)
    "op": (False, 4),
    "act": (False, 1),          # 1: apply activation table `table`; 0: NFU-3 bypass
    "table": (False, 3),
    "shift": (False, 6),        # NFU-2 shifter amount s
    "bias_exp": (False, 4),     # bias input row value is 1 << bias_exp
    "in_h": (False, 12),
    "in_w": (False, 12),
    "cb": (False, 10),          # channel blocks per input position (NBin row stride)
    "kh": (False, 12),
    "kw": (False, 12),
    "stride": (False, 4),
    "y_off": (True, 14),        # iy = oy*stride + ky - y_off
    "x_off": (True, 14),        # ix = ox*stride + kx - x_off
    "oh": (False, 12),
    "ow": (False, 12),
    "ob": (False, 10),          # output blocks of tn neurons/maps in total
    "log2_gob": (False, 4),     # blocks are spread over 2**log2_gob tile groups
    "oy_band": (False, 12),     # output rows per position group
    "sb_base": (False, 16),
    "sb_step": (False, 16),     # SB rows per output block (0: one shared row)
    "nbin_org": (True, 24),     # NBin row of the virtual input position (-y_off, -x_off)
    "row_step": (False, 16),    # = in_w * cb
    "ox_step": (False, 16),     # = stride * cb
    "oy_step": (False, 20),     # = stride * in_w * cb
    "band_in_step": (False, 24),   # = oy_band * stride * in_w * cb
    "out_base": (False, 24),
    "ocb": (False, 10),         # output blocks per output position in NM
    "band_out_step": (False, 24),  # = oy_band * out_w * ocb (out_w: the tensor's width)
    "out_row_step": (False, 24),   # NM rows from a row's last output to the next row's first
    "psum_in": (False, 1),      # CONV: no bias row; each output resumes its partial sum
    "psum_out": (False, 1),     # CONV: each output's sum goes to the partial-sum buffer
    "private": (False, 1),      # CONV: every output position has its own kernel (SB rows)
    "lrn": (False, 1),          # CONV: local response normalisation (no bias row; see above)
    "nbout_half": (False, 1),   # compute: NBout half written; STORE: NBout half drained
    "dma_ahead": (False, 4),    # compute: DMA operations that may still be running at its start
    "sync": (False, 1),         # LOAD, STORE, SBLOAD, IMLOAD: wait until the tiles are done
    "src": (False, 24),         # LOAD: NM row
    "mem": (False, 24),         # SBLOAD: main-memory row group; IMLOAD: main-memory beat
    "dst": (False, 16),         # LOAD: NBin row; SBLOAD: SB row; IMLOAD: instruction address
    "count": (False, 16),       # LOAD: rows per run; SBLOAD: rows; IMLOAD: instructions
    "runs_m1": (False, 12),     # LOAD: runs per line, minus one
    "run_step": (False, 11),    # LOAD: NM step from a run's last row to the next run's first
    "lines_m1": (False, 12),    # LOAD: lines, minus one
    "line_step": (False, 24),   # LOAD: NM step from a line's last row to the next line's
    "body": (False, 12),        # LOOP: instructions in its body
}

#: The fields of a compute instruction that the tile's NFU stages read while its rows cross
#: them (the rest set up the tile's loop, or travel down the pipeline with each row:
#: ``psum_in``, ``psum_out``, ``nbout_half``). A tile takes the next compute instruction
#: while it drains the last one only when the two agree on all of these.
SETTINGS_FIELDS = ("op", "shift", "bias_exp", "act", "table", "lrn")

#: The fields a LOOP steps in its body's instructions: the addresses of LOAD, SBLOAD and
#: IMLOAD (``src``: NM; ``mem``: main memory; ``dst``: NBin, SB or instruction memory) and
#: of a compute instruction (``sb_base``: SB, ``nbin_org``: NBin, ``out_base``: NM).
LOOP_FIELDS = ("src", "mem", "dst", "sb_base", "nbin_org", "out_base")

#: Bits of the program counter: an instruction's address in the instruction memory, as the
#: node reports it to the host.
PC_WIDTH = 16


class Field(NamedTuple):
    """One instruction field: bits ``[offset, offset + width)`` of the instruction word."""
    name: str
    offset: int
    width: int
    signed: bool


def _layout(fields):
    out, offset = [], 0
    for name, (signed, width) in fields.items():
        out.append(Field(name, offset, width, signed))
        offset += width
    return tuple(out)


#: The instruction layout, shared by the RTL, the compiler and the tools: every field in
#: order from bit 0, as plain Python (the RTL builds its Amaranth layout from it,
#: :data:`hw.instr.INSTR`; this module imports no Amaranth).
INSTR_FIELDS = _layout(_FIELDS)
#: Bits of an instruction word.
INSTR_WIDTH = sum(f.width for f in INSTR_FIELDS)

_OFFSETS = {f.name: f.offset for f in INSTR_FIELDS}


def field_width(name):
    """Bits of the instruction field ``name``.

    Raises
    ------
    ValueError
        If ``name`` is not a field of :data:`INSTR_FIELDS`.
    """
    try:
        return _FIELDS[name][1]
    except KeyError:
        raise ValueError(f"unknown instruction field {name!r}") from None


#: DMA operations (``SBLOAD``, ``IMLOAD`` of some rows) the DMA engine holds at once, from
#: the one it is handed to those whose last beats arrive. A compute instruction's
#: ``dma_ahead`` counts up to one fewer (the operation it waits for is one).
DMA_QUEUE = 1 << field_width("dma_ahead")


def field_offset(name):
    """Bit offset of the instruction field ``name`` in the instruction word (``ValueError``
    for an unknown field)."""
    field_width(name)
    return _OFFSETS[name]


def field_signed(name):
    """Whether the instruction field ``name`` is signed (``ValueError`` for an unknown
    field)."""
    field_width(name)
    return _FIELDS[name][0]


def field_range(name):
    """``(lo, hi)``: the values the instruction field ``name`` holds, both included.

    ``[-2**(w-1), 2**(w-1) - 1]`` for a signed field of ``w`` bits, ``[0, 2**w - 1]`` for an
    unsigned one. Raises ``ValueError`` for an unknown field.
    """
    width = field_width(name)
    if _FIELDS[name][0]:
        return -(1 << (width - 1)), (1 << (width - 1)) - 1
    return 0, (1 << width) - 1


def check_fields(fields):
    """Check that every value of the mapping ``fields`` fits its instruction field.

    Raises
    ------
    ValueError
        Naming the first field that is unknown, or whose value is not an int in
        :func:`field_range`.
    """
    for name, value in fields.items():
        lo, hi = field_range(name)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"instruction field {name}={value!r} is out of range [{lo}, {hi}] "
                             f"({field_width(name)} bits)")


def wrap(name, value):
    """``value`` modulo the width of the instruction field ``name``, in :func:`field_range`
    (what the field holds after an addition that overflows it)."""
    width = field_width(name)
    value &= (1 << width) - 1
    if _FIELDS[name][0] and value >> (width - 1):
        value -= 1 << width
    return value


def encode(op=Op.HALT, **fields):
    """Pack an instruction into an int. Raises ``ValueError`` naming a field out of range
    (:func:`check_fields`)."""
    fields["op"] = Op(op)
    check_fields(fields)
    word = 0
    for name, value in fields.items():
        word |= (value & ((1 << field_width(name)) - 1)) << _OFFSETS[name]
    return word


def decode(word):
    """Unpack an int into a dict of every field (``op`` as :class:`Op`)."""
    out = {}
    for name, (signed, width) in _FIELDS.items():
        v = (word >> _OFFSETS[name]) & ((1 << width) - 1)
        if signed and v >> (width - 1):
            v -= 1 << width
        out[name] = v
    out["op"] = Op(out["op"])
    return out


_SHOW = {
    Op.HALT: (),
    Op.LOAD: ("src", "dst", "count", "runs_m1", "run_step", "lines_m1", "line_step", "sync"),
    Op.STORE: ("nbout_half", "sync"),
    Op.SBLOAD: ("mem", "dst", "count", "sync"),
    Op.IMLOAD: ("mem", "dst", "count", "sync"),
    Op.LOOP: ("count", "body") + LOOP_FIELDS,
}
_COMPUTE_SHOW = ("in_h", "in_w", "cb", "kh", "kw", "stride", "y_off", "x_off", "oh", "ow",
                 "ob", "log2_gob", "oy_band", "sb_base", "sb_step", "nbin_org", "out_base",
                 "ocb", "out_row_step", "psum_in", "psum_out", "private", "lrn", "nbout_half",
                 "dma_ahead", "shift", "bias_exp", "act", "table")


def disassemble(words):
    """Text for one instruction word or a list of them, one line each."""
    if isinstance(words, int):
        words = [words]
    lines = []
    for pc, word in enumerate(words):
        f = decode(word)
        names = _SHOW.get(f["op"], _COMPUTE_SHOW)
        args = " ".join(f"{n}={f[n]}" for n in names)
        lines.append(f"{pc:4d}: {f['op'].name:<7} {args}".rstrip())
    return "\n".join(lines)


def compute_fields(*, op, in_h, in_w, cb, kh, kw, stride, y_off, x_off, oh, ow, ob, ocb,
                   log2_gob=0, oy_band=None, sb_base=0, sb_step=0, nbin_base=0, out_base=0,
                   out_w=None, psum_in=0, psum_out=0, private=0, lrn=0, nbout_half=0,
                   dma_ahead=0, shift=0, bias_exp=0, act=0, table=0):
    """The fields of a CONV/MAXPOOL/AVGPOOL instruction, derived steps included.

    ``nbin_base`` is the NBin row of input position ``(0, 0)``; ``out_w`` the width of the
    output tensor in NM (default ``ow``: the instruction writes whole rows).
    """
    if oy_band is None:
        oy_band = oh
    if out_w is None:
        out_w = ow
    return dict(op=Op(op), in_h=in_h, in_w=in_w, cb=cb, kh=kh, kw=kw, stride=stride,
                y_off=y_off, x_off=x_off, oh=oh, ow=ow, ob=ob, log2_gob=log2_gob,
                oy_band=oy_band, sb_base=sb_base, sb_step=sb_step,
                nbin_org=nbin_base - (y_off * in_w + x_off) * cb,
                row_step=in_w * cb, ox_step=stride * cb, oy_step=stride * in_w * cb,
                band_in_step=oy_band * stride * in_w * cb, out_base=out_base, ocb=ocb,
                band_out_step=oy_band * out_w * ocb, out_row_step=(out_w - ow + 1) * ocb,
                psum_in=psum_in, psum_out=psum_out, private=private, lrn=lrn,
                nbout_half=nbout_half, dma_ahead=dma_ahead, shift=shift,
                bias_exp=bias_exp, act=act, table=table)


def load_fields(*, src, dst=0, count, runs=1, run_skip=0, lines=1, line_skip=0, sync=0):
    """The fields of a LOAD of ``lines`` lines of ``runs`` runs of ``count`` rows, skipping
    ``run_skip`` NM rows between runs and ``line_skip`` between lines."""
    return dict(op=Op.LOAD, src=src, dst=dst, count=count, runs_m1=runs - 1,
                run_step=run_skip + 1, lines_m1=lines - 1, line_step=line_skip + 1, sync=sync)


def load_rows(f):
    """Rows a LOAD with fields ``f`` moves."""
    return f.get("count", 0) * (f.get("runs_m1", 0) + 1) * (f.get("lines_m1", 0) + 1)


def check_loops(instructions, loop_depth):
    """Check the LOOPs of a program (a list of instruction field dicts) against the node's
    ``loop_depth`` (``Config.loop_depth``).

    Raises
    ------
    ValueError
        Naming the first LOOP (by its index) whose ``count`` or ``body`` is 0, whose body
        runs past the program's end or its enclosing body's, that nests deeper than
        ``loop_depth``, or whose body holds a HALT.
    """
    ends = []                               # the enclosing bodies' ends, innermost last
    for pc, f in enumerate(instructions):
        while ends and pc >= ends[-1]:
            ends.pop()
        if f["op"] == Op.HALT and ends:
            raise ValueError(f"instruction {pc} is a HALT inside the body of a LOOP")
        if f["op"] != Op.LOOP:
            continue
        where = f"instruction {pc} (LOOP count={f.get('count', 0)} body={f.get('body', 0)})"
        if f.get("count", 0) < 1 or f.get("body", 0) < 1:
            raise ValueError(f"{where}: a LOOP needs count >= 1 and body >= 1")
        end = pc + 1 + f["body"]
        if end > len(instructions) or (ends and end > ends[-1]):
            limit = ends[-1] if ends else len(instructions)
            raise ValueError(f"{where}: its body ends at instruction {end - 1}, past "
                             f"{'its enclosing body' if ends else 'the program'}, which ends "
                             f"at {limit - 1}")
        if len(ends) >= loop_depth:
            raise ValueError(f"{where}: it nests {len(ends) + 1} deep, the node runs at most "
                             f"{loop_depth} (loop_depth)")
        ends.append(end)


def expand(instructions):
    """``(pc, fields)`` for every instruction the node runs, in order: a program's
    instructions with each LOOP's body repeated ``count`` times, its fields stepped
    (:data:`LOOP_FIELDS`, those the dict holds: the fields its op reads; the LOOP itself is
    listed once, as it is fetched once). A program without LOOPs gives its instructions as
    they are. Assumes :func:`check_loops` passes."""
    def run(lo, hi, offset):
        pc = lo
        while pc < hi:
            f = instructions[pc]
            if f["op"] == Op.LOOP:
                yield pc, f
                body = pc + 1 + f["body"]
                for i in range(f["count"]):
                    step = {k: o + i * f.get(k, 0) for k, o in offset.items()}
                    yield from run(pc + 1, body, step)
                pc = body
                continue
            if any(offset[k] for k in LOOP_FIELDS if k in f):
                f = dict(f)
                for k, o in offset.items():
                    if o and k in f:
                        f[k] = wrap(k, f[k] + o)
            yield pc, f
            pc += 1
    yield from run(0, len(instructions), dict.fromkeys(LOOP_FIELDS, 0))


def run_counts(instructions):
    """For each instruction of a program, how many times the node runs it (the product of
    its enclosing LOOPs' counts; 1 for every one of a program without LOOPs): what
    :func:`expand` lists, counted without listing it. Assumes :func:`check_loops` passes."""
    counts, ends = [], []                   # ends: (body end, times) of enclosing loops
    for pc, f in enumerate(instructions):
        while ends and pc >= ends[-1][0]:
            ends.pop()
        times = ends[-1][1] if ends else 1
        counts.append(times)
        if f["op"] == Op.LOOP:
            ends.append((pc + 1 + f["body"], times * f["count"]))
    return counts
