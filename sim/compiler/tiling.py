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
cycles by the cycle model (loads, compute, instruction overheads) is chosen.
"""

from dataclasses import dataclass

from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import as_chw, blocks


__all__ = ["Geometry", "Plan", "Box", "geometry", "plan_layer", "TilingError"]


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


def geometry(layer, tn):
    """The :class:`Geometry` of a quantized layer."""
    c, h, w = as_chw(layer.in_shape)
    o, oh, ow = as_chw(layer.out_shape)
    if layer.kind == "fc":
        return Geometry("conv", blocks(c, tn), h, w, blocks(o, tn), 1, 1, h, w, 1, 0)
    kind = "conv" if layer.kind == "conv" else "pool"
    pad = layer.pad if layer.kind == "conv" else 0
    return Geometry(kind, blocks(c, tn), h, w, blocks(o, tn), oh, ow, layer.kernel,
                    layer.kernel, layer.stride, pad)


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
    #: Load whole input rows (and the whole input with one band), as the compiler always
    #: did, though a stride may leave the last ones unused: only where they fit NBin.
    whole: bool = False
    #: Output blocks per output tile of a convolution (0: all; else a multiple of the tile
    #: count, so that each tile's blocks stay in order in its SB).
    oblk: int = 0
    #: Boxes alternate between NBin's halves and output tiles between NBout's, so that a
    #: LOAD and a STORE overlap the computation (a plan of several boxes); else each LOAD
    #: waits for the tiles.
    double: bool = False

    @property
    def boxes(self):
        """How many LOADs (boxes) the plan has, empty ones included."""
        return len(self.out_tiles()) * len(self.chunks)

    @property
    def chunks(self):
        """``[(k0, k1, c0, c1)]``: the reduction's chunks in order (a pooling: one)."""
        g = self.g
        if g.kind == "pool":
            return [(0, g.kh, 0, g.cb)]
        return [(k0, min(k0 + self.krows, g.kh), c0, min(c0 + self.cblk, g.cb))
                for k0 in range(0, g.kh, self.krows) for c0 in range(0, g.cb, self.cblk)]

    def out_tiles(self):
        """``[(oy0, oy1, ox0, ox1, b0, b1)]``: output rows, columns and blocks of each
        output tile, in order."""
        g = self.g
        bstep = self.cblk if g.kind == "pool" else (self.oblk or g.ob)
        return [(oy0, min(oy0 + self.band, g.oh), ox0, min(ox0 + self.cols, g.ow),
                 b0, min(b0 + bstep, g.ob))
                for b0 in range(0, g.ob, bstep)
                for oy0 in range(0, g.oh, self.band)
                for ox0 in range(0, g.ow, self.cols)]

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
        return Box(y0, max(y0, y1), x0, max(x0, x1), c0, c1)


def _candidates(n):
    """Piece sizes worth trying for ``n`` things: ``ceil(n / k)`` for every ``k``."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


def _fits(plan, cfg, split):
    """Whether every tile's share of every instruction fits the partial-sum buffer (with
    more than one chunk) and NBout. The first output tile is the largest; the layer keeps
    its tile split (:func:`plan_layer`'s ``split``)."""
    chunked = len(plan.chunks) > 1
    tiles = plan.out_tiles()
    nbout = cfg.nbout_depth // 2 if plan.double and len(tiles) > 1 else cfg.nbout_depth
    log2_gob = split(plan, tiles[0])["log2_gob"]
    for tile in (tiles[0], tiles[-1]):
        f = split(plan, tile, log2_gob)
        for t in range(cfg.tiles):
            nb, nr = cycle_model.tile_share(f, t)
            outputs = nb * nr * f["ow"]
            if outputs > nbout or (chunked and outputs > cfg.psum_depth):
                return False
    return True


def plan_layer(g, cfg, split, where):
    """The cheapest :class:`Plan` for geometry ``g`` on ``cfg``.

    ``split(plan, tile, log2_gob=None)`` returns the fields of the output tile's first
    compute instruction, with the tile split ``log2_gob`` (None: the one that finishes
    soonest); they serve to check the shares and to estimate cycles.

    Raises
    ------
    TilingError
        If no plan fits, naming the buffer and what one output needs.
    """
    nbin = cfg.nbin_depth
    # The whole input in NBin and every output in NBout at once: one LOAD, one compute, one
    # STORE, as the compiler always made it.
    if g.h * g.w * g.cb <= nbin:
        plan = Plan(g, g.oh, g.ow, g.kh, g.cb, whole=True)
        if _fits(plan, cfg, split):
            return plan
    # Output blocks per tile: all, or (when one output position of every block does not
    # fit NBout or the partial sums) fewer, a multiple of the tile count.
    oblks = [0]
    if g.kind == "conv" and g.ob > cfg.tiles:
        oblks += [n * cfg.tiles for n in range(-(-g.ob // cfg.tiles) - 1, 0, -1)]
    # Several boxes: in NBin's halves, so that each LOAD overlaps the computation before it,
    # or in the whole of it (bigger boxes, each LOAD waiting for the tiles): the cheaper.
    # (A narrow instruction memory overlaps nothing: the node waits for the tiles.)
    doubles = (False,) if cfg.imem_narrow else (True, False)
    for oblk in oblks:
        found = [f for f in (_search(g, cfg, split, oblk, double) for double in doubles)
                 if f is not None]
        if found:
            return min(found, key=lambda f: f[0])[1]
    need = (1 if g.kind == "conv" else min(g.kh, g.h)) * min(g.kw, g.w)
    limits = [f"NBin has {nbin} rows (nbin_depth)"]
    if g.kind == "conv" and cfg.psum_depth == 0:
        limits.append("the configuration keeps no partial sums (psum_depth=0), so the "
                      f"reduction of {g.kh * g.kw * g.cb} rows must fit NBin whole")
    raise TilingError(f"{where}: no tiling fits: one output needs at least {need} NBin "
                      f"rows; " + "; ".join(limits) + f"; NBout {cfg.nbout_depth} and "
                      f"partial sums {cfg.psum_depth} rows per tile")


def _search(g, cfg, split, oblk, double):
    """``(cost, plan)``: the cheapest plan with ``oblk`` output blocks per output tile (in
    halves of NBin and NBout with ``double``), or None."""
    nbin = cfg.nbin_depth // 2 if double else cfg.nbin_depth
    if nbin < 1:
        return None
    if cfg.imem_narrow:
        # A small FPGA's node loads one run a LOAD: bands of whole input rows only.
        most_y = (nbin // (g.w * g.cb) - g.kh) // g.stride + 1
        plan = next((p for p in (Plan(g, band, g.ow, g.kh, g.cb, whole=True)
                                 for band in _candidates(g.oh) if band <= most_y)
                     if _fits(p, cfg, split)), None)
        return None if plan is None else (0, plan)
    best = None
    cblks = _candidates(g.cb)
    krows = _candidates(g.kh) if g.kind == "conv" else [g.kh]
    for cblk in cblks:
        for kr in krows:
            if g.kind == "conv" and (cblk < g.cb or kr < g.kh) and cfg.psum_depth == 0:
                continue
            # One output position needs kr rows of kw columns of cblk blocks.
            if min(kr, g.h) * min(g.kw, g.w) * cblk > nbin:
                continue
            most_x = (nbin // (min(kr, g.h) * cblk) - g.kw) // g.stride + 1
            for cols in [c for c in _candidates(g.ow) if c <= max(1, most_x)]:
                rx = min(g.w, (cols - 1) * g.stride + g.kw)
                most_y = (nbin // (rx * cblk) - kr) // g.stride + 1
                # The tallest output tile that fits NBout and the partial sums.
                plan = next((p for p in (Plan(g, band, cols, kr, cblk, oblk=oblk, double=double)
                                         for band in _candidates(g.oh) if band <= most_y)
                             if _fits(p, cfg, split)), None)
                if plan is None:
                    continue
                cost = _estimate(plan, cfg, split)
                if best is None or cost < best[0]:
                    best = (cost, plan)
                break           # narrower tiles of the same height only cost more
    return best


def _estimate(plan, cfg, split):
    """About the cycles of ``plan`` by the cycle model's timeline: every output tile costs
    what the first (the largest) does; with ``plan.double`` each chunk's LOAD overlaps the
    chunk before, so a chunk costs the longer of its computation and its LOAD."""
    tiles = plan.out_tiles()
    f = split(plan, tiles[0])
    fetch = cycle_model.fetch_cycles(cfg) + 1
    move = cycle_model.tree_latency(cfg.tiles) + cfg.node_read_latency + 1
    per_tile = 0
    for j, chunk in enumerate(plan.chunks):
        fj = dict(f, psum_in=int(j > 0), kh=chunk[1] - chunk[0], cb=chunk[3] - chunk[2])
        compute = max(cycle_model.compute_profile(fj, cfg)[0]) + 1
        load = plan.box(tiles[0], chunk).rows + fetch + move
        per_tile += max(compute, load + fetch) if plan.double else compute + load + fetch
    return len(tiles) * per_tile
