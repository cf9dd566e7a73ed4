"""Whole layers on one tile: outputs bit for bit with golden, cycles equal to the model."""

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from diannao.golden.formats import build_table
from diannao.golden.layers import conv2d_int, fc_int, maxpool_int, avgpool_int, activation_int
from diannao.hw.config import preset
from diannao.hw.isa import Op, compute_fields, encode
from diannao.hw.tile import Tile, pipeline_latency
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.mapping import conv_sb_rows, layer_fields, pool_sb_row, to_rows
from diannao.sim.engines.pysim_tile import run_tile
from diannao.sim.engines.vcd import simulate

import helpers as h

SMALL = preset("small").replace(tiles=1)
TN16 = preset("small").replace(tn=16, tiles=1, nbin_depth=512, nbout_depth=256, sb_depth=512)


def run_conv(cfg, x, w, b, stride, pad, shift, bias_exp, act=None, index=0, **split):
    tn = cfg.tn
    ref = conv2d_int(x, w, b, stride, pad, bias_exp, shift)
    tables = []
    if act:
        tables = [build_table(act, 8)]
        ref = activation_int(ref, tables[0])
    f = layer_fields("conv", x.shape, ref.shape, tn=tn, kernel=w.shape[2], stride=stride,
                     pad=pad, shift=shift, bias_exp=bias_exp, act=int(bool(act)), **split)
    sb = conv_sb_rows(w, b, tn)
    g = 1 << f["log2_gob"]
    sb = sb[index & (g - 1)::g].reshape(-1, tn, tn)
    run = run_tile(cfg, f, to_rows(x, tn), sb, tables, index=index,
                   name=f"conv_{x.shape}_{w.shape}_{stride}_{pad}")
    cnt = run.counters
    assert cnt["start_to_done"] == cycle_model.tile_cycles(f, index, cfg)
    assert cnt["nfu_busy"] == cycle_model.tile_emissions(f, index)
    assert cnt["cycles"] == cnt["start_to_done"]
    return run.rows, ref, f, cnt


def _random_conv(rng, c, h, w, o, k):
    x = rng.integers(-512, 512, (c, h, w))
    wt = rng.integers(-300, 300, (o, c, k, k))
    b = rng.integers(-2000, 2000, o)
    return x, wt, b


@pytest.mark.parametrize("cfg", [SMALL, TN16], ids=["tn4", "tn16"])
@pytest.mark.parametrize("k,stride,pad", [(1, 1, 0), (2, 2, 0), (3, 1, 1), (3, 2, 2),
                                          (4, 3, 1), (5, 1, 2), (5, 3, 0)])
def test_conv_layers(cfg, k, stride, pad):
    rng = np.random.default_rng(k * 10 + stride)
    x, w, b = _random_conv(rng, 5, 9, 8, 7, k)              # 5 and 7: not multiples of tn
    outs, ref, f, _ = run_conv(cfg, x, w, b, stride, pad, shift=9, bias_exp=2, act="relu")
    assert np.array_equal(h.assemble(outs, f, ref.shape, cfg.tn), ref)


@pytest.mark.parametrize("cfg", [SMALL, TN16], ids=["tn4", "tn16"])
@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "identity"])
def test_fc_each_activation(cfg, act):
    rng = np.random.default_rng(len(act))
    n, o = 37, 19
    x = rng.integers(-2000, 2000, n)
    w = rng.integers(-3000, 3000, (o, n))
    b = rng.integers(-5000, 5000, o)
    ref = activation_int(fc_int(x, w, b, 3, 14), build_table(act, 8))
    outs, _, f, _ = run_conv(cfg, x.reshape(n, 1, 1), w.reshape(o, n, 1, 1), b, 1, 0,
                             shift=14, bias_exp=3, act=act)
    assert np.array_equal(h.assemble(outs, f, (o,), cfg.tn), ref)


def test_fc_over_a_feature_map_is_a_whole_input_kernel():
    rng = np.random.default_rng(3)
    x = rng.integers(-1000, 1000, (6, 3, 4))
    w = rng.integers(-500, 500, (9, 6 * 3 * 4))
    b = rng.integers(-500, 500, 9)
    ref = fc_int(x, w, b, 1, 10)
    f = layer_fields("fc", x.shape, (9,), tn=SMALL.tn, shift=10, bias_exp=1)
    assert (f["kh"], f["kw"]) == (3, 4)
    sb = conv_sb_rows(w.reshape(9, 6, 3, 4), b, SMALL.tn).reshape(-1, SMALL.tn, SMALL.tn)
    run = run_tile(SMALL, f, to_rows(x, SMALL.tn), sb)
    outs, cnt = run.rows, run.counters
    assert np.array_equal(h.assemble(outs, f, (9,), SMALL.tn), ref)
    assert cnt["start_to_done"] == cycle_model.tile_cycles(f, 0, SMALL)


@pytest.mark.parametrize("cfg", [SMALL, TN16], ids=["tn4", "tn16"])
@pytest.mark.parametrize("kind,size,stride", [("maxpool", 2, 2), ("maxpool", 3, 1),
                                              ("avgpool", 2, 2), ("avgpool", 3, 2)])
def test_pool_layers(cfg, kind, size, stride):
    rng = np.random.default_rng(size + stride)
    x = rng.integers(-32768, 32768, (7, 9, 7))
    ref = (maxpool_int if kind == "maxpool" else avgpool_int)(x, size, stride)
    f = layer_fields(kind, x.shape, ref.shape, tn=cfg.tn, kernel=size, stride=stride)
    run = run_tile(cfg, f, to_rows(x, cfg.tn), pool_sb_row(kind, size, cfg.tn)[None])
    outs, cnt = run.rows, run.counters
    assert np.array_equal(h.assemble(outs, f, ref.shape, cfg.tn), ref)
    assert cnt["start_to_done"] == cycle_model.tile_cycles(f, 0, cfg)


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 9), height=st.integers(1, 7), w=st.integers(1, 7),
       o=st.integers(1, 9), k=st.integers(1, 4), stride=st.integers(1, 3), pad=st.integers(0, 2),
       seed=st.integers(0, 2 ** 16))
def test_hypothesis_conv(c, height, w, o, k, stride, pad, seed):
    assume(height + 2 * pad >= k and w + 2 * pad >= k)
    x, wt, b = _random_conv(np.random.default_rng(seed), c, height, w, o, k)
    outs, ref, f, _ = run_conv(SMALL, x, wt, b, stride, pad, shift=8, bias_exp=0)
    assert np.array_equal(h.assemble(outs, f, ref.shape, SMALL.tn), ref)


@settings(max_examples=12, deadline=None)
@given(n=st.integers(1, 70), o=st.integers(1, 13), seed=st.integers(0, 2 ** 16))
def test_hypothesis_fc(n, o, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.integers(-32768, 32768, n), rng.integers(-32768, 32768, (o, n)), \
        rng.integers(-32768, 32768, o)
    outs, ref, f, _ = run_conv(SMALL, x.reshape(n, 1, 1), w.reshape(o, n, 1, 1), b, 1, 0,
                               shift=20, bias_exp=14)
    assert np.array_equal(h.assemble(outs, f, (o,), SMALL.tn),
                          fc_int(x, w, b, 14, 20))


def _two_chunks(shift_b):
    """An FC of 8 inputs and 4 outputs (tn=4) as two chunks of one reduction: A (the bias
    row and inputs 0-3) keeps its sums in the partial-sum buffer, B (inputs 4-7) resumes
    them and writes NBout; with ``shift_b`` differing from A's shift, B is a separate FC of
    inputs 4-7 with a zero bias (SB rows 3 and 4; no partial sums)."""
    chained = shift_b == 12
    fields = dict(op=Op.CONV, in_h=1, in_w=1, cb=1, kh=1, kw=1, stride=1, y_off=0, x_off=0,
                  oh=1, ow=1, ob=1, ocb=1, bias_exp=2)
    a = compute_fields(**fields, sb_base=0, nbin_base=0, psum_out=int(chained), shift=12)
    b = compute_fields(**fields, sb_base=2 if chained else 3, nbin_base=1,
                       psum_in=int(chained), shift=shift_b,
                       out_base=1, nbout_half=1)
    return a, b


@pytest.mark.parametrize("shift_b", [12, 9], ids=["same settings", "other shift"])
def test_next_instruction_starts_while_the_last_drains(shift_b):
    # A tile drains A from 4 + e cycles after its start (three set-up cycles, e emissions,
    # docs/architecture.md "Tile") and is idle from 3 + e + pipeline latency + 1. With the
    # same settings (the node checks them) it takes B in the first drain cycle, even when
    # B resumes the partial sums A is still writing; with another shift B waits until the
    # tile is idle. Either way both outputs are golden's.
    cfg = SMALL
    rng = np.random.default_rng(17)
    x, w, bias = rng.integers(-900, 900, 8), rng.integers(-900, 900, (4, 8)), \
        rng.integers(-900, 900, 4)
    a, b = _two_chunks(shift_b)
    sb = conv_sb_rows(w.reshape(4, 8, 1, 1), bias, cfg.tn).reshape(-1, cfg.tn, cfg.tn)
    sb = np.concatenate([sb, np.zeros_like(sb[:1]), sb[2:3]])     # B's own: rows 3 and 4
    nbin = to_rows(x.reshape(8, 1, 1), cfg.tn)
    dut = Tile(cfg)
    seen = {}

    async def bench(ctx):
        for i, row in enumerate(nbin):
            ctx.set(dut.nbin.data[i], row.tolist())
        for i, row in enumerate(sb):
            ctx.set(dut.sb.data[i], row.tolist())
        cycle = 0
        for name, f in (("a", a), ("b", b)):
            ctx.set(dut.instr.as_value(), encode(**f))
            # As the node does: B in a drain cycle of A only when their settings agree.
            while ctx.get(dut.busy) and not (ctx.get(dut.draining) and shift_b == 12):
                await ctx.tick()
                cycle += 1
            seen[name + " draining"] = ctx.get(dut.draining)
            ctx.set(dut.start, 1)
            seen[name] = cycle
            await ctx.tick()
            cycle += 1
            ctx.set(dut.start, 0)
        while not ctx.get(dut.done):
            await ctx.tick()
            cycle += 1
        seen["b done"] = cycle
        await ctx.tick()                # the last NBout write lands in the done cycle
        seen["rows"] = [ctx.get(dut.nbout.data[half * cfg.nbout_depth // 2 + i])
                        for half in (0, 1) for i in range(2)]

    simulate(dut, bench, name=f"tile_overlap_{shift_b}")
    pl = pipeline_latency(cfg)
    e_a, e_b = 2, (1 if shift_b == 12 else 2)
    assert seen["a"] == 0
    if shift_b == 12:
        assert seen["b"] == 4 + e_a and seen["b draining"]
        want = fc_int(x, w, bias, 2, 12)
    else:
        assert seen["b"] == 3 + e_a + pl + 1
        assert seen["rows"][0].addr == 0            # A's output, in NBout half 0
        want = fc_int(x[4:], w[:, 4:], np.zeros(4, dtype=np.int64), 2, shift_b)
    assert seen["b done"] - seen["b"] == 3 + e_b + pl
    got = seen["rows"][2]                           # B's output, in NBout half 1
    assert got.addr == 1
    assert [got.data[j] for j in range(cfg.tn)] == want.tolist()
