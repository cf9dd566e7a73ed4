"""The tiling's plans, checked against their definition for random layers and buffers
(fast: no RTL; the node tests and the fuzz campaign run tiled layers on the RTL)."""

from hypothesis import given, strategies as st

from diannao.hw.config import preset
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.tiling import Geometry, Step, TilingError, _stream_steps, plan_layer


@st.composite
def _cases(draw):
    kind = draw(st.sampled_from(["conv", "pool"]))
    k = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    pad = draw(st.integers(0, k - 1)) if kind == "conv" else 0
    h, w = draw(st.integers(k, 14)), draw(st.integers(k, 14))
    cb = draw(st.integers(1, 6))
    ob = draw(st.integers(1, 6)) if kind == "conv" else cb
    g = Geometry(kind, cb, h, w, ob, (h + 2 * pad - k) // stride + 1,
                 (w + 2 * pad - k) // stride + 1, k, k, stride, pad)
    cfg = preset("small").replace(nbin_depth=draw(st.integers(2, 200)),
                                  nbout_depth=draw(st.integers(2, 64)),
                                  psum_depth=draw(st.sampled_from([0, 2, 8, 64])))
    return g, cfg


def _split(plan, tile, log2_gob=None, chunk=0, nbin_base=0, nbout_half=0):
    """Fields enough for the shares (cycle_model.tile_share) and the estimate (of chunk
    number ``chunk``), with the split that spreads the outputs best when none is given."""
    oy0, oy1, ox0, ox1, b0, b1 = tile
    oh = oy1 - oy0
    k0, k1, c0, c1 = plan.chunks[chunk]
    last = len(plan.chunks) - 1

    def fields(lg):
        return dict(op=2 if plan.g.kind == "conv" else 3, log2_gob=lg, ob=b1 - b0, oh=oh,
                    oy_band=-(-oh // (4 >> lg)), ow=ox1 - ox0, kh=k1 - k0, kw=plan.g.kw,
                    cb=c1 - c0, stride=plan.g.stride, in_h=plan.g.h, in_w=plan.g.w,
                    y_off=plan.g.pad, x_off=plan.g.pad, psum_in=int(chunk > 0),
                    psum_out=int(chunk < last), nbout_half=nbout_half)

    if log2_gob is not None:
        return fields(log2_gob)
    return min((fields(lg) for lg in range(3)), key=lambda f: max(
        cycle_model.tile_share(f, t)[0] * cycle_model.tile_share(f, t)[1] for t in range(4)))


@given(_cases())
def test_a_plan_covers_every_output_and_every_term_once_within_the_buffers(case):
    g, cfg = case
    # The least NBin one output needs: a kernel row of one channel block with partial
    # sums; without them (or for a pooling, whose window is not split) the whole window.
    window = min(g.kh, g.h) * min(g.kw, g.w)
    if g.kind == "pool":
        least = window
    else:
        least = min(g.kw, g.w) if cfg.psum_depth else window * g.cb
    try:
        plan = plan_layer(g, cfg, _split, "layer")
    except TilingError as exc:
        assert "no tiling fits" in str(exc) and least > cfg.nbin_depth
        return
    assert least <= cfg.nbin_depth
    # Outputs: every (oy, ox, block) in exactly one output tile.
    seen = {}
    for tile in plan.out_tiles():
        oy0, oy1, ox0, ox1, b0, b1 = tile
        for key in ((y, x, b) for y in range(oy0, oy1) for x in range(ox0, ox1)
                    for b in range(b0, b1)):
            seen[key] = seen.get(key, 0) + 1
    blocks = g.ob
    assert seen == {(y, x, b): 1 for y in range(g.oh) for x in range(g.ow)
                    for b in range(blocks)}
    # Reduction: every (ky, channel block) in exactly one chunk.
    terms = {}
    for k0, k1, c0, c1 in plan.chunks:
        for key in ((ky, c) for ky in range(k0, k1) for c in range(c0, c1)):
            terms[key] = terms.get(key, 0) + 1
    assert terms == {(ky, c): 1 for ky in range(g.kh) for c in range(g.cb)}
    if len(plan.chunks) > 1:
        assert g.kind == "conv" and cfg.psum_depth
    for tile in plan.out_tiles():
        oy0, oy1, ox0, ox1, b0, b1 = tile
        for chunk in plan.chunks:
            box = plan.box(tile, chunk)
            assert box.rows <= (cfg.nbin_depth // 2 if plan.double else cfg.nbin_depth)
            # Every input inside the tensor that the chunk reads lies in the box.
            k0, k1, c0, c1 = chunk
            for oy in range(oy0, oy1):
                for ky in range(k0, k1):
                    iy = oy * g.stride + ky - g.pad
                    assert not 0 <= iy < g.h or box.y0 <= iy < box.y1
            for ox in range(ox0, ox1):
                for kx in range(g.kw):
                    ix = ox * g.stride + kx - g.pad
                    assert not 0 <= ix < g.w or box.x0 <= ix < box.x1
        f = _split(plan, tile)
        nbout = cfg.nbout_depth // 2 if plan.double and len(plan.out_tiles()) > 1 \
            else cfg.nbout_depth
        for t in range(cfg.tiles):
            nb, nr = cycle_model.tile_share(f, t)
            assert nb * nr * f["ow"] <= nbout
            if len(plan.chunks) > 1:
                assert nb * nr * f["ow"] <= cfg.psum_depth


def _compute(tile, chunk):
    return Step("compute", (0, 1, 0, 1) + tile, chunk)


def test_streamed_rows_go_into_the_least_recently_read_slot_as_early_as_it_allows():
    # Five segments through three slots, the fourth compute step reading its segment again
    # (the same blocks and chunk) from where it lies. Worked out by hand:
    #   segments 0, 1, 2 take slots 0, 1, 2, loaded first of all;
    #   segment 3 takes slot 0 (read last by compute 0): loaded right after compute 1;
    #   compute 4 finds segment 1 in slot 1; segment 4 takes slot 2 (read last by compute
    #   2; slot 0 was read by compute 3): loaded right after compute 3.
    # dma_ahead: the SBLOADs handed after the one of its rows, before it.
    seg = [((0, 1), 0), ((0, 1), 1), ((1, 2), 0), ((1, 2), 1), ((2, 3), 0)]
    steps = [_compute(*seg[i]) for i in (0, 1, 2, 3, 1, 4)]
    out = _stream_steps(steps, 3)
    got = [(s.kind[0], s.sb_slot, s.dma_ahead) for s in out]
    assert got == [("s", 0, 0), ("s", 1, 0), ("s", 2, 0),
                   ("c", 0, 2), ("c", 1, 1), ("s", 0, 0),
                   ("c", 2, 1), ("c", 0, 0), ("s", 2, 0),
                   ("c", 1, 3), ("c", 2, 0)]
    loads = [(s.tile[4:], s.chunk) for s in out if s.kind == "sbload"]
    assert loads == [seg[0], seg[1], seg[2], seg[3], seg[4]]


def test_two_slots_are_the_halves():
    # With two slots each segment goes into the half the step before does not read, loaded
    # right after that step (and the first two first of all).
    steps = [_compute((b, b + 1), 0) for b in range(4)]
    got = [(s.kind[0], s.sb_slot, s.dma_ahead) for s in _stream_steps(steps, 2)]
    assert got == [("s", 0, 0), ("s", 1, 0), ("c", 0, 1), ("c", 1, 0), ("s", 0, 0),
                   ("c", 0, 0), ("s", 1, 0), ("c", 1, 0)]


def test_a_slot_whose_reader_the_latency_covers_is_loaded_right_after_it():
    # The steps of test_two_slots_are_the_halves, main memory's latency covering the reads
    # of the compute steps of blocks 0 and 2 only: the SBLOAD of block 2 goes right after
    # compute 0 (the last reader of slot 0), the one of block 3 after compute 2, as before
    # (compute 1, slot 1's last reader, is not covered).
    steps = [_compute((b, b + 1), 0) for b in range(4)]
    out = _stream_steps(steps, 2, covered=lambda s: s.tile[4] in (0, 2))
    got = [(s.kind[0], s.sb_slot, s.dma_ahead) for s in out]
    assert got == [("s", 0, 0), ("s", 1, 0), ("c", 0, 1), ("s", 0, 0), ("c", 1, 1),
                   ("c", 0, 0), ("s", 1, 0), ("c", 1, 0)]
    assert [s.tile[4] for s in out if s.kind == "sbload"] == [0, 1, 2, 3]
    # Every reader covered: each SBLOAD right after the reader it replaces.
    got = [(s.kind[0], s.sb_slot) for s in _stream_steps(steps, 2, covered=lambda s: True)]
    assert got == [("s", 0), ("s", 1), ("c", 0), ("s", 0), ("c", 1), ("s", 1), ("c", 0),
                   ("c", 1)]
