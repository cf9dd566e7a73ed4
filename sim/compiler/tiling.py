"""Tiling: how a layer larger than the buffers is cut into boxes that fit them.

A layer's outputs are cut into *output tiles* (a range of output rows and of output
columns; for pooling also a range of channel blocks) and, for a convolution whose
reduction does not fit NBin, its reduction into *chunks* (a range of kernel rows and of
input channel blocks). For each output tile and chunk, one LOAD brings the *box* of input
the chunk needs (rows x columns x channel blocks of the input tensor, clipped to it) into
NBin and one compute instruction walks it; the partial sums stay exact in each tile's
partial-sum buffer between chunks (``Config.psum_depth``), the bias row is added by the
first chunk, the shifter and activation apply after the last, and a STORE collects the
output tile. A layer that fits is one output tile of one chunk (or bands of whole output
rows when only its input does not fit): the plan the compiler always made.

Among the plans that fit NBin, the partial-sum buffer and NBout, the one with the fewest
cycles by the cycle model (loads, weight loads from main memory, compute, instruction
overheads) is chosen.

A layer whose weights stream from main memory (a configuration with ``Config.mem_bytes``
whose SB does not hold them) reads each compute instruction's SB rows from one of the
*slots* of SB's streaming window (2, 4 or 8 of them, ``stream`` rows per tile each), loaded
by an ``SBLOAD``: the rows of its output blocks for its chunk. A slot no instruction to come
reads before it is loaded again (the least recently read) takes the next rows, and their
SBLOAD goes as early as the slot allows: right after the compute instruction that follows
the slot's last reader (that instruction's start means the tiles have read their last row
of the slot), or right after the last reader itself when main memory's latency covers its
reads (the reader has started, and reads its last row of the slot before a row requested
then can arrive: ``mem_latency`` at least the reader's ``3 + rows + pipeline_latency``
cycles), so that the DMA engine fetches several slots ahead of the tiles, as many as the
window holds, and each compute instruction waits only for its own rows (``dma_ahead``: the
DMA operations handed after them). An instruction whose rows a slot still holds (the
same blocks and chunk as an earlier one: one chunk over several output tiles) loads
nothing. Few large slots make long instructions; many small ones keep more of main
memory's latency covered: the search weighs both.
"""

from dataclasses import dataclass, replace
from functools import cached_property
from itertools import islice, product

from diannao.hw.isa import DMA_QUEUE, Op
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import as_chw, blocks
from diannao.sim.compiler.paging import can_page, instruction_room


__all__ = ["Geometry", "Plan", "Box", "Step", "geometry", "plan_layer", "TilingError",
           "sbload_rows"]


class TilingError(ValueError):
    """No plan fits the configuration; the message says which buffer is too small."""


@dataclass(frozen=True)
class Geometry:
    """A layer's shape as the machine sees it: a convolution (FC: a kernel over the whole
    input) or a pooling, over tensors of channel blocks."""
    kind: str           # "conv" (conv and fc) or "pool"
    cb: int             # input channel blocks
    h: int
    w: int
    ob: int             # output channel blocks
    oh: int
    ow: int
    kh: int
    kw: int
    stride: int
    pad: int
    #: An LRN layer: a 1x1 "convolution" over every channel block of a position at once,
    #: without a bias row; its reduction is never split (the window's centre is kept for
    #: the output) and every output tile holds all of its blocks (the centre's block is
    #: the output's).
    lrn: bool = False
    #: A locally connected layer: every output position has its own kernel, so a
    #: compute instruction's SB rows are its own (never those of another output tile).
    private: bool = False

    @property
    def block_rows(self):
        """A convolution's SB rows of one output block: the bias row (an LRN has none),
        then one per kernel row, kernel column and input channel block."""
        return (not self.lrn) + self.kh * self.kw * self.cb


def geometry(layer, tn):
    """The :class:`Geometry` of a quantized layer."""
    c, h, w = as_chw(layer.in_shape)
    o, oh, ow = as_chw(layer.out_shape)
    if layer.kind == "fc":
        return Geometry("conv", blocks(c, tn), h, w, blocks(o, tn), 1, 1, h, w, 1, 0)
    if layer.kind == "lrn":
        return Geometry("conv", blocks(c, tn), h, w, blocks(c, tn), h, w, 1, 1, 1, 0, lrn=True)
    kind = "conv" if layer.kind in ("conv", "local") else "pool"
    pad = layer.pad if kind == "conv" else 0
    return Geometry(kind, blocks(c, tn), h, w, blocks(o, tn), oh, ow, layer.kernel,
                    layer.kernel, layer.stride, pad, private=layer.kind == "local")


@dataclass(frozen=True)
class Box:
    """The input one chunk of one output tile needs, clipped to the input tensor:
    rows ``[y0, y1)``, columns ``[x0, x1)``, channel blocks ``[c0, c1)``."""
    y0: int
    y1: int
    x0: int
    x1: int
    c0: int
    c1: int

    @property
    def rows(self):
        """NBin rows it fills."""
        return max(0, self.y1 - self.y0) * max(0, self.x1 - self.x0) * (self.c1 - self.c0)


@dataclass(frozen=True)
class Plan:
    """Output tiles of ``band`` rows by ``cols`` columns (by ``cblk`` channel blocks for a
    pooling), and chunks of ``krows`` kernel rows by ``cblk`` input channel blocks (a
    convolution)."""
    g: Geometry
    band: int
    cols: int
    krows: int
    cblk: int
    #: Load whole input rows (and the whole input with one band; every channel block of an
    #: input of one position), as the compiler always did, though a stride may leave the
    #: last ones unused: only where they fit NBin.
    whole: bool = False
    #: Output blocks per output tile of a convolution (0: all; else a multiple of the tile
    #: count, so that each tile's blocks stay in order in its SB).
    oblk: int = 0
    #: Boxes alternate between NBin's halves and output tiles between NBout's, so that a
    #: LOAD and a STORE overlap the computation (a plan of several boxes); else each LOAD
    #: waits for the tiles.
    double: bool = False
    #: Weights stream from main memory: every compute instruction's SB rows, at most this
    #: many per tile, are loaded into a slot of SB's streaming window (0: resident weights).
    stream: int = 0
    #: The streaming window's slots of ``stream`` rows.
    slots: int = 2
    #: Only the output tiles whose first block is in ``range(*blocks)`` (None: all): one
    #: pass of a layer compiled in passes of output blocks (``compiler.program``).
    blocks: tuple = None

    @property
    def nbin_halves(self):
        """Boxes alternate between NBin's halves (``double``, unless one box serves all)."""
        return self.double and not self.one_box

    @property
    def one_box(self):
        """Whole, of an input of one position (a vector): every chunk of every output tile
        reads its channel blocks from one box of them all, loaded once."""
        return self.whole and self.g.kind == "conv" and self.g.h * self.g.w == 1

    @property
    def boxes(self):
        """How many LOADs (boxes) the plan has, empty ones included."""
        return self.tile_count * len(self.chunks)

    @cached_property
    def chunks(self):
        """``[(k0, k1, c0, c1)]``: the reduction's chunks in order (a pooling: one)."""
        g = self.g
        if g.kind == "pool":
            return [(0, g.kh, 0, g.cb)]
        return [(k0, min(k0 + self.krows, g.kh), c0, min(c0 + self.cblk, g.cb))
                for k0 in range(0, g.kh, self.krows) for c0 in range(0, g.cb, self.cblk)]

    @cached_property
    def chunk_starts(self):
        """Per chunk, the SB rows of an output block's chunks before it (a convolution:
        each ``(k1 - k0) * kw * (c1 - c0)``; the bias row not counted)."""
        starts, rows = [], 0
        for k0, k1, c0, c1 in self.chunks:
            starts.append(rows)
            rows += (k1 - k0) * self.g.kw * (c1 - c0)
        return starts

    def out_tiles(self):
        """``[(oy0, oy1, ox0, ox1, b0, b1)]``: output rows, columns and blocks of each
        output tile, in order."""
        return self._out_tiles

    @cached_property
    def _out_tiles(self):
        return list(self.iter_tiles())

    @property
    def block_step(self):
        """Output blocks per output tile (channel blocks for a pooling)."""
        return self.cblk if self.g.kind == "pool" else (self.oblk or self.g.ob)

    def _tile(self, oy0, ox0, b0):
        g = self.g
        return (oy0, min(oy0 + self.band, g.oh), ox0, min(ox0 + self.cols, g.ow),
                b0, min(b0 + self.block_step, g.ob))

    @property
    def _b0s(self):
        """The first blocks of the output tiles, in order."""
        every = range(0, self.g.ob, self.block_step)
        return every if self.blocks is None else [b for b in every if b in range(*self.blocks)]

    def iter_tiles(self):
        """The output tiles of :meth:`out_tiles`, one at a time (a real-size layer's plans
        can have hundreds of thousands: the search reads the first few)."""
        g = self.g
        for b0 in self._b0s:
            for oy0 in range(0, g.oh, self.band):
                for ox0 in range(0, g.ow, self.cols):
                    yield self._tile(oy0, ox0, b0)

    @property
    def tile_count(self):
        """``len(self.out_tiles())``, worked out."""
        g = self.g
        return len(self._b0s) * -(-g.oh // self.band) * -(-g.ow // self.cols)

    @property
    def last_tile(self):
        """``self.out_tiles()[-1]``, worked out."""
        g = self.g
        return self._tile((g.oh - 1) // self.band * self.band,
                          (g.ow - 1) // self.cols * self.cols,
                          self._b0s[-1])

    def steps(self, cfg, count=None):
        """The plan's instructions in program order: :func:`_steps`."""
        return _steps(self, cfg, count)

    def emissions(self, tile, chunk):
        """At most the rows a tile feeds its NFU (and reads from SB) in the compute step of
        output tile ``tile``'s chunk number ``chunk``: all of its blocks and positions, as
        if one tile had them all, with a bias row."""
        g = self.g
        oy0, oy1, ox0, ox1, b0, b1 = tile
        k0, k1, c0, c1 = self.chunks[chunk]
        per_pos = g.kh * g.kw if g.kind == "pool" else (k1 - k0) * g.kw * (c1 - c0) + 1
        return (b1 - b0) * (oy1 - oy0) * (ox1 - ox0) * per_pos

    def box(self, tile, chunk):
        """The :class:`Box` of input an output tile's chunk needs."""
        g = self.g
        oy0, oy1, ox0, ox1, b0, b1 = tile
        k0, k1, c0, c1 = chunk
        if g.kind == "pool":
            c0, c1 = b0, b1
        y0 = max(0, oy0 * g.stride + k0 - g.pad)
        y1 = min(g.h, (oy1 - 1) * g.stride + k1 - g.pad)
        x0 = max(0, ox0 * g.stride - g.pad)
        x1 = min(g.w, (ox1 - 1) * g.stride + g.kw - g.pad)
        if self.whole:
            x0, x1 = 0, g.w
            if self.band == g.oh:
                y0, y1 = 0, g.h
            if self.one_box:
                c0, c1 = 0, g.cb
        return Box(y0, max(y0, y1), x0, max(x0, x1), c0, c1)


@dataclass(frozen=True)
class Step:
    """One instruction of a plan in program order (:meth:`Plan.steps`): a ``"load"`` of the
    box of output tile ``tile`` (an element of :meth:`Plan.out_tiles`) and chunk number
    ``chunk`` into NBin from row ``nbin_base``, the ``"compute"`` of it into NBout half
    ``nbout_half``, a ``"store"`` of NBout half ``nbout_half``, or (streaming weights) an
    ``"sbload"`` of the SB rows of ``tile``'s blocks for chunk ``chunk`` into slot
    ``sb_slot`` of the streaming window, which the compute steps read (``sb_slot``; a
    compute step's ``dma_ahead``: the SBLOADs between the one of its rows and it);
    ``sync``: the LOAD or STORE waits for the tiles; ``box``: the :class:`Box` a load
    brings (:meth:`Plan.box`)."""
    kind: str
    tile: tuple = None
    chunk: int = 0
    nbin_base: int = 0
    nbout_half: int = 0
    sync: int = 0
    sb_slot: int = 0
    dma_ahead: int = 0
    box: Box = None


def sbload_rows(f, cfg):
    """SB rows per tile the SBLOAD of compute instruction fields ``f`` brings: its most
    blocks of a tile, ``sb_step`` rows each."""
    return max(cycle_model.tile_share(f, t)[0] for t in range(cfg.tiles)) * f["sb_step"]


def _stream_steps(steps, slots, private=False, covered=None):
    """``steps`` with the SBLOADs of streamed weights through ``slots`` slots (the module's
    docstring). A locally connected layer's (``private``) rows are each output tile's own.

    ``covered(step)``: whether main memory's latency covers compute step ``step``'s reads
    of its slot (it reads the slot's last row before a row requested once it has started
    can arrive); the SBLOAD that replaces the rows of a slot whose last reader is covered
    goes right after that reader, else after the compute step that follows it."""
    holds, last = [None] * slots, [-1] * slots    # per slot: its rows, its last reader
    readers = []        # compute steps by number
    after = {}          # compute step number -> the SBLOADs right after it (-1: first)
    slot_of = []        # by compute step number
    for s in steps:
        if s.kind != "compute":
            continue
        n = len(slot_of)
        readers.append(s)
        key = (s.tile, s.chunk) if private else (s.tile[4], s.tile[5], s.chunk)
        if key in holds:
            slot = holds.index(key)
        else:
            # The least recently read slot (never the last instruction's: slots >= 2).
            slot = min(range(slots), key=lambda k: last[k])
            holds[slot] = key
            at = last[slot]
            if at >= 0 and not (covered and covered(readers[at])):
                at += 1
            after.setdefault(at, []).append(Step("sbload", s.tile, s.chunk, sb_slot=slot))
        last[slot] = n
        slot_of.append(slot)
    out, n = [], 0
    loaded, into = 0, [None] * slots    # SBLOADs so far; the number of each slot's last

    def load(k):
        nonlocal loaded
        for step in after.get(k, ()):
            out.append(step)
            into[step.sb_slot] = loaded
            loaded += 1

    load(-1)
    for s in steps:
        if s.kind == "compute":
            # The SBLOADs since the last one into its slot, up to the queue's depth.
            slot = slot_of[n]
            ahead = min(DMA_QUEUE - 1, loaded - 1 - into[slot])
            out.append(replace(s, sb_slot=slot, dma_ahead=ahead))
            load(n)
            n += 1
        else:
            out.append(s)
    return out


def _steps(plan, cfg, count=None):
    """The :class:`Step` s of ``plan`` (:func:`_plain_steps`), with the SBLOADs of streamed
    weights (:func:`_stream_steps`)."""
    steps = _plain_steps(plan, cfg, count)
    if not plan.stream:
        return steps
    # A tile reads its last SB row of a compute step at most ``3 + rows +
    # pipeline_latency`` cycles after the step starts (``cycle_model.tile_cycles``); the
    # rows of an SBLOAD handed after that start land at least ``mem_latency`` cycles later.
    most = cfg.mem_latency - 3 - cycle_model.pipeline_latency(cfg)
    return _stream_steps(list(steps), plan.slots, plan.g.private,
                         lambda s: plan.emissions(s.tile, s.chunk) <= most)


def _plain_steps(plan, cfg, count=None):
    """The :class:`Step` s of ``plan`` on ``cfg`` (of its first ``count`` output tiles).

    Boxes alternate between NBin's halves and output tiles between NBout's (``plan.double``;
    a plan of one box has all of NBin): a LOAD fills one half while the tiles compute from
    the other (a box the half holds already is not loaded again), and the STORE of an output tile follows the first compute instruction of the
    next (which starts once the tiles are done with it), so it drains its half while they
    compute into the other. The last STORE waits for the tiles (sync), so that the next
    layer finds its input in NM. Without halves each LOAD and each STORE waits for the
    tiles."""
    half = cfg.nbin_depth // 2
    store, boxes = None, 0
    holds = {}          # NBin row -> the box loaded there last
    for i, tile in enumerate(islice(plan.iter_tiles(), count)):
        out_half = i % 2 if plan.double else 0
        for j, chunk in enumerate(plan.chunks):
            nbin_base = (boxes % 2) * half if plan.nbin_halves else 0
            boxes += 1
            box = plan.box(tile, chunk)
            if box.rows and holds.get(nbin_base) != box:
                # (A box NBin holds there already is not loaded again.)
                holds[nbin_base] = box
                yield Step("load", tile, j, nbin_base,
                           sync=int(not plan.double and plan.boxes > 1), box=box)
            yield Step("compute", tile, j, nbin_base, out_half)
            if j == 0 and store is not None:
                yield store
                store = None
        store = Step("store", nbout_half=out_half)
        if not plan.double:
            yield Step("store", nbout_half=out_half, sync=1)
            store = None
    if store is not None:
        yield Step("store", nbout_half=store.nbout_half, sync=1)


def _candidates(n):
    """Piece sizes worth trying for ``n`` things: ``ceil(n / k)`` for every ``k``."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def _fits(plan, cfg, split):
    """Whether every tile's share of every instruction fits the partial-sum buffer (with
    more than one chunk) and NBout. The first output tile is the largest; the layer keeps
    its tile split (:func:`plan_layer`'s ``split``)."""
    chunked = len(plan.chunks) > 1
    first = next(plan.iter_tiles())
    nbout = (cfg.nbout_depth // 2 if plan.double and plan.tile_count > 1
             else cfg.nbout_depth)
    log2_gob = split(plan, first)["log2_gob"]
    for tile in (first, plan.last_tile):
        f = split(plan, tile, log2_gob)
        for t in range(cfg.tiles):
            nb, nr = cycle_model.tile_share(f, t)
            outputs = nb * nr * f["ow"]
            if outputs > nbout or (chunked and outputs > cfg.psum_depth):
                return False
            # Streamed weights: the first chunk's rows (the most: it has the bias row).
            if plan.stream and nb * f["sb_step"] > plan.stream:
                return False
    return True


#: Slot counts of SB's streaming window the search tries (:func:`plan_layer`).
SLOTS = (2, 4, 8, 16)


def plan_layer(g, cfg, split, where, window=0):
    """The cheapest :class:`Plan` for geometry ``g`` on ``cfg``; with ``window``, whose
    weights stream from main memory through a window of that many SB rows per tile, in
    :data:`SLOTS` slots.

    ``split(plan, tile, log2_gob=None)`` returns the fields of the output tile's first
    compute instruction, with the tile split ``log2_gob`` (None: the one that finishes
    soonest); they serve to check the shares and to estimate cycles.

    Raises
    ------
    TilingError
        If no plan fits, naming the buffer and what one output needs.
    """
    nbin = cfg.nbin_depth
    # Output blocks per tile: all, or (when one output position of every block does not
    # fit NBout or the partial sums) fewer, a multiple of the tile count.
    oblks = [0]
    if g.kind == "conv" and g.ob > cfg.tiles and not g.lrn:
        oblks += [n * cfg.tiles for n in range(-(-g.ob // cfg.tiles) - 1, 0, -1)]
    # Several boxes: in NBin's halves, so that each LOAD overlaps the computation before it,
    # or in the whole of it (bigger boxes, each LOAD waiting for the tiles): the cheaper.
    # (A narrow instruction memory overlaps nothing: the node waits for the tiles.)
    doubles = (False,) if cfg.imem_narrow else (True, False)
    # Resident weights: the whole input in NBin and every output in NBout at once if they
    # fit (one LOAD, one compute, one STORE, as the compiler always made it), else the most
    # blocks an output tile can hold (the first that fits).
    # Streamed weights: the cheapest of every slot count and every count of blocks (fewer
    # blocks per instruction leave a slot more rows of each block: longer chunks, fewer
    # instructions).
    winners, too_long = [], []
    for slots in (SLOTS if window else (2,)):
        best = None
        stream = window // slots
        if window and not stream:
            continue

        def consider(plan):
            """Keep ``plan`` as ``best`` if it fits, its instructions too, and it costs less."""
            nonlocal best
            if _fits(plan, cfg, split):
                cost, instructions = _estimate(plan, cfg, split)
                if instructions < _room(g, cfg) and (best is None or cost < best[0]):
                    best = (cost, plan)

        if g.h * g.w * g.cb <= nbin:
            plan = Plan(g, g.oh, g.ow, g.kh, g.cb, whole=True, stream=stream, slots=slots)
            if not window:
                if _fits(plan, cfg, split):
                    return plan
            else:
                consider(plan)
            if (window and g.kind == "conv" and g.h * g.w == 1 and not g.lrn
                    and cfg.psum_depth):
                # An input of one position (a classifier's vector), loaded once: its
                # reduction in chunks of channel blocks that fit a slot of SB.
                for oblk, double, cblk in product(oblks, doubles, _candidates(g.cb)[1:]):
                    consider(Plan(g, g.oh, g.ow, g.kh, cblk, whole=True, oblk=oblk,
                                  double=double, stream=stream, slots=slots))
        for oblk in oblks:
            found = [f for f in (_search(g, cfg, split, oblk, double, stream, slots, too_long)
                                 for double in doubles) if f is not None]
            if found:
                cheapest = min(found, key=lambda f: f[0])
                if not window:
                    return cheapest[1]
                if best is None or cheapest[0] < best[0]:
                    best = cheapest
        if best is not None:
            winners.append(best[1])
    if winners:
        # The estimates of plans with different slot counts are not comparable (the loads
        # ahead of the first output tiles): the cycle model over each whole plan.
        return min(winners, key=lambda plan: _estimate(
            plan, cfg, split, exact=plan.boxes <= _EXACT_MOST)[0])
    if too_long:
        raise TilingError(f"{where}: every tiling that fits the buffers needs more instructions "
                          f"than the configuration holds: {min(n for n, _ in too_long):,} at "
                          f"the fewest, {instruction_room(cfg):,} at the most (imem_depth"
                          f"{', and mem_depth for pages' if can_page(cfg) else ''}); the "
                          f"cheapest of them would take about "
                          f"{min(c for _, c in too_long):,} cycles (the search's estimate)")
    need = (1 if g.kind == "conv" else min(g.kh, g.h)) * min(g.kw, g.w)
    limits = [f"NBin has {nbin} rows (nbin_depth)"]
    if g.lrn:
        limits.append(f"an LRN output's {g.cb} channel blocks must fit NBin whole")
    elif g.kind == "conv" and cfg.psum_depth == 0:
        limits.append("the configuration keeps no partial sums (psum_depth=0), so the "
                      f"reduction of {g.kh * g.kw * g.cb} rows must fit NBin whole")
    if window:
        least = (f"{g.cb} for its window's mask" if g.lrn else
                 f"{g.kw + 1} for one kernel row of one channel block and its bias")
        limits.append(f"its weights stream from main memory, at most {window // 2} SB rows "
                      f"per tile an instruction (half of SB's streaming window of {window}), "
                      f"and one output block needs {least}")
    raise TilingError(f"{where}: no tiling fits: one output needs at least {need} NBin "
                      f"rows; " + "; ".join(limits) + f"; NBout {cfg.nbout_depth} and "
                      f"partial sums {cfg.psum_depth} rows per tile")


def _room(g, cfg):
    """The most instructions a plan for geometry ``g`` may take: what ``cfg`` holds
    (:func:`paging.instruction_room`), or with LOOPs (``Config.loop_depth``) no bound: the
    compiler makes a real-size layer's repeats into LOOPs and checks the program it makes
    (a locally connected layer's instructions differ by more than their addresses, so they
    do not repeat)."""
    if cfg.loop_depth and not g.private:
        return 1 << 62
    return instruction_room(cfg)


#: Output tile widths tried past the cheapest so far (:func:`_search`).
_PATIENCE = 3


def _search(g, cfg, split, oblk, double, stream=0, slots=2, too_long=None):
    """``(cost, plan)``: the cheapest plan with ``oblk`` output blocks per output tile (in
    halves of NBin and NBout with ``double``), or None. The instruction counts of plans that
    fit the buffers but not the instruction memory go to the list ``too_long``, with their
    estimated cycles: ``(instructions, cycles)``."""
    nbin = cfg.nbin_depth // 2 if double else cfg.nbin_depth
    if nbin < 1:
        return None
    if cfg.imem_narrow:
        # A small FPGA's node loads one run a LOAD: bands of whole input rows only.
        most_y = (nbin // (g.w * g.cb) - g.kh) // g.stride + 1
        plan = next((p for p in (Plan(g, band, g.ow, g.kh, g.cb, whole=True, stream=stream,
                                      slots=slots)
                                 for band in _candidates(g.oh) if band <= most_y)
                     if _fits(p, cfg, split)), None)
        return None if plan is None else (0, plan)
    best = None
    cblks = _candidates(g.cb)
    krows = _candidates(g.kh) if g.kind == "conv" else [g.kh]
    for cblk in cblks:
        for kr in krows:
            if g.kind == "conv" and (cblk < g.cb or kr < g.kh) and (cfg.psum_depth == 0
                                                                     or g.lrn):
                continue
            # One output position needs kr rows of kw columns of cblk blocks.
            if min(kr, g.h) * min(g.kw, g.w) * cblk > nbin:
                continue
            # Streamed weights: a tile's share of the blocks, each with the first chunk's
            # rows (and the bias row), must fit a slot (as _fits checks; here before any
            # plan is made: a real-size layer has thousands).
            if stream and g.kind == "conv":
                share = -(-min(oblk or g.ob, g.ob) // cfg.tiles)
                if share * (min(kr, g.kh) * g.kw * min(cblk, g.cb) + (not g.lrn)) > stream:
                    continue
            most_x = (nbin // (min(kr, g.h) * cblk) - g.kw) // g.stride + 1
            # Narrower output tiles are taller (more rows to share among the tiles, less
            # input loaded twice between bands, more between columns): the cost falls,
            # then rises; the scan stops once it has risen _PATIENCE times in a row.
            pair_best, rises = None, 0
            for cols in [c for c in _candidates(g.ow) if c <= max(1, most_x)]:
                rx = min(g.w, (cols - 1) * g.stride + g.kw)
                most_y = (nbin // (rx * cblk) - kr) // g.stride + 1
                # The tallest output tile that fits NBout and the partial sums.
                plan = next((p for p in (Plan(g, band, cols, kr, cblk, oblk=oblk, double=double,
                                              stream=stream, slots=slots)
                                         for band in _candidates(g.oh) if band <= most_y)
                             if _fits(p, cfg, split)), None)
                if plan is None:
                    continue
                cost, instructions = _estimate(plan, cfg, split)
                if instructions >= _room(g, cfg):      # (and HALT)
                    if too_long is not None:
                        too_long.append((instructions + 1, cost))
                    continue
                if best is None or cost < best[0]:
                    best = (cost, plan)
                if pair_best is None or cost < pair_best:
                    pair_best, rises = cost, 0
                else:
                    rises += 1
                    if rises == _PATIENCE:
                        break
    return best


#: Output tiles up to which :func:`_estimate` runs the cycle model on the whole plan.
_EXACT = 8

#: Boxes up to which the search compares its last candidates over the whole plan (a
#: real-size layer's have hundreds of thousands: their estimates, :func:`_estimate`;
#: DianNao's CONV1, 363,330 boxes: the same plan in 2 s instead of 43).
_EXACT_MOST = 1 << 16


def _estimate(plan, cfg, split, exact=False):
    """``(cycles, instructions)``: the cycles of ``plan`` by the cycle model's timeline and
    its instructions; past :data:`_EXACT` output tiles (unless ``exact``), about them, from
    its first output tiles."""
    log2_gob = split(plan, next(plan.iter_tiles()))["log2_gob"]
    chunks = plan.chunks
    # A compute instruction's cycles depend on its output tile's and chunk's extents and on
    # whether it is the first or last chunk, not on where they lie: one set of fields each.
    shapes = {}

    def compute(tile, j, half, ahead=0):
        k0, k1, c0, c1 = chunks[j]
        key = (tile[1] - tile[0], tile[3] - tile[2], tile[5] - tile[4], k1 - k0, c1 - c0,
               j == 0, j == len(chunks) - 1)
        if key not in shapes:
            shapes[key] = split(plan, tile, log2_gob, j)
        return dict(shapes[key], nbout_half=half, dma_ahead=ahead)

    def cycles(count):
        program = []
        for s in plan.steps(cfg, count):
            if s.kind == "load":
                program.append(dict(op=Op.LOAD, count=s.box.rows, sync=s.sync))
            elif s.kind == "sbload":
                program.append(dict(op=Op.SBLOAD,
                                    count=sbload_rows(compute(s.tile, s.chunk, 0), cfg)))
            elif s.kind == "compute":
                program.append(compute(s.tile, s.chunk, s.nbout_half, s.dma_ahead))
            else:
                program.append(dict(op=Op.STORE, nbout_half=s.nbout_half, sync=s.sync))
        return sum(cycle_model.program_cycles(program, cfg)), len(program)

    if exact or plan.tile_count <= _EXACT:
        return cycles(None)
    # Every output tile after the first taken to cost what the next k add on average, k
    # a band's column tiles (narrower at its end), up to _EXACT of them.
    k = min(-(-plan.g.ow // plan.cols), _EXACT)
    one, n_one = cycles(1)
    more, n_more = cycles(1 + k)
    rest = plan.tile_count - 1
    return one + rest * (more - one) // k, n_one + rest * (n_more - n_one) // k
