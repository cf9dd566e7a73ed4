# amaranth: UnusedElaboratable=no
"""TileController: the emitted row sequence equals the loop nest documented in hw.isa,
written out again here in plain Python; one emission per cycle; done after the drain."""

import pytest
from hypothesis import assume, given, settings, strategies as st

from diannao.hw.config import preset
from diannao.hw.isa import Op, encode, compute_fields
from diannao.hw.tile_controller import TileController
from diannao.sim.engines.vcd import simulate


def reference(f, index):
    """The loop nest of hw/isa.py's docstring for tile ``index``: a list of emissions."""
    g = 1 << f["log2_gob"]
    ob_group, pos_group = index % g, index // g
    conv = f["op"] == Op.CONV
    cbl = f["cb"] if conv else 1
    in_h, in_w, cb = f["in_h"], f["in_w"], f["cb"]
    nbin_base = f["nbin_org"] + (f["y_off"] * in_w + f["x_off"]) * cb
    out = []
    for k, ob in enumerate(range(ob_group, f["ob"], g)):
        sb_blk = f["sb_base"] + k * f["sb_step"]
        oy0 = pos_group * f["oy_band"]
        for oy in range(oy0, min(oy0 + f["oy_band"], f["oh"])):
            for ox in range(f["ow"]):
                addr = f["out_base"] + (oy * f["ow"] + ox) * f["ocb"] + ob
                sb = sb_blk
                if conv:
                    out.append(dict(bias=1, zero=0, first=1, last=0, sb=sb, nbin=None))
                    sb += 1
                n = 0
                for ky in range(f["kh"]):
                    for kx in range(f["kw"]):
                        for c in range(cbl):
                            iy = oy * f["stride"] + ky - f["y_off"]
                            ix = ox * f["stride"] + kx - f["x_off"]
                            inside = 0 <= iy < in_h and 0 <= ix < in_w
                            last = n == f["kh"] * f["kw"] * cbl - 1
                            out.append(dict(
                                bias=0, zero=int(not inside),
                                first=int(n == 0 and not conv), last=int(last),
                                sb=sb if conv else f["sb_base"],
                                nbin=nbin_base + (iy * in_w + ix) * cb + (c if conv else ob)
                                if inside else None,
                                out=addr if last else None))
                            n += 1
                            sb += conv
    return out


def run(config, f, index, drain=4):
    dut = TileController(config, drain)
    rec = {}

    async def bench(ctx):
        ctx.set(dut.index, index)
        ctx.set(dut.instr.as_value(), encode(**f))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        em, cycles, first_valid, last_valid = [], 1, None, None
        while not ctx.get(dut.done):
            assert ctx.get(dut.busy)
            if ctx.get(dut.valid):
                first_valid = cycles if first_valid is None else first_valid
                last_valid = cycles
                e = dict(bias=ctx.get(dut.bias), zero=ctx.get(dut.zero),
                         first=ctx.get(dut.first), last=ctx.get(dut.last),
                         sb=ctx.get(dut.sb_addr),
                         nbin=ctx.get(dut.nbin_addr) if ctx.get(dut.nbin_en) else None)
                if not e["bias"]:
                    e["out"] = ctx.get(dut.out_addr) if e["last"] else None
                em.append(e)
            else:
                assert not ctx.get(dut.nbin_en)
            await ctx.tick()
            cycles += 1
            assert cycles < 100_000
        assert ctx.get(dut.valid) == 0
        await ctx.tick()
        assert not ctx.get(dut.busy)
        rec.update(em=em, cycles=cycles, first_valid=first_valid, last_valid=last_valid)

    simulate(dut, bench, name="tile_controller")
    return rec


def _fields(op, c, h, w, o, k, s, p, tn, **kw):
    cb, ob = -(-c // tn), -(-o // tn)
    if op != Op.CONV:
        p, ob = 0, cb
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    return compute_fields(op=op, in_h=h, in_w=w, cb=cb, kh=k, kw=k, stride=s, y_off=p,
                          x_off=p, oh=oh, ow=ow, ob=ob, ocb=ob,
                          sb_step=1 + k * k * cb if op == Op.CONV else 0, **kw)


def _check(cfg, f, index, drain=4):
    rec = run(cfg, f, index, drain)
    want = reference(f, index)
    assert len(rec["em"]) == len(want)
    for i, (g, w) in enumerate(zip(rec["em"], want)):
        assert g == w, f"emission {i}: {g} != {w}"
    if want:
        # (cycles 1 to 3 are the set-up cycles) one emission per cycle without gaps, then
        # the drain
        assert rec["first_valid"] == 4
        assert rec["last_valid"] == 3 + len(want)
        assert rec["cycles"] == 3 + len(want) + drain
    else:
        assert rec["cycles"] == 2


@pytest.mark.parametrize("op", [Op.CONV, Op.MAXPOOL, Op.AVGPOOL])
@pytest.mark.parametrize("k,s,p", [(1, 1, 0), (3, 1, 1), (3, 2, 2), (2, 3, 0)])
def test_single_tile_loop_nest(op, k, s, p):
    cfg = preset("small").replace(tiles=1)
    f = _fields(op, 6, 5, 7, 9, k, s, p, cfg.tn, sb_base=3, nbin_base=5, out_base=11)
    _check(cfg, f, 0)


@pytest.mark.parametrize("log2_gob,band", [(0, 2), (1, 3), (2, 5), (1, 1)])
@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_share_of_each_tile(log2_gob, band, index):
    cfg = preset("small")           # 4 tiles
    f = _fields(Op.CONV, 5, 5, 4, 10, 3, 1, 1, cfg.tn, log2_gob=log2_gob, oy_band=band,
                sb_base=2, out_base=7)
    _check(cfg, f, index, drain=2)


@settings(max_examples=30, deadline=None)
@given(op=st.sampled_from([Op.CONV, Op.MAXPOOL]), c=st.integers(1, 9), h=st.integers(1, 6),
       w=st.integers(1, 6), o=st.integers(1, 9), k=st.integers(1, 4), s=st.integers(1, 3),
       p=st.integers(0, 2), index=st.integers(0, 3), log2_gob=st.integers(0, 2),
       band=st.integers(1, 4))
def test_loop_nest_hypothesis(op, c, h, w, o, k, s, p, index, log2_gob, band):
    assume(h + 2 * p >= k and w + 2 * p >= k and (op == Op.CONV or (h >= k and w >= k)))
    cfg = preset("small")
    f = _fields(op, c, h, w, o, k, s, p, cfg.tn, log2_gob=log2_gob, oy_band=band)
    _check(cfg, f, index, drain=1)
