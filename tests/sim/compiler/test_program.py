"""The compiler's NM layout: the live tensors only by default (a layer's output over dead
tensors' rows), every layer's output at its own address with ``intermediates``. Real-size
layers made with LOOPs from their plans: what runs is the flat program of the same passes,
and DianNao's CONV5 does its layer's work exactly."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from diannao.golden.network import FC, Conv, MaxPool, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.isa import Op, check_loops, expand
from diannao.sim.compiler import cycle_model, program as compiler
from diannao.sim.compiler.mapping import tensor_rows
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.engines.registry import run_network
from diannao.sim.tools.workloads import load_workload


SMALL = preset("small")


def _chain(widths, seed=0):
    """FC layers ``widths[0] -> widths[1] -> ...`` with seeded weights."""
    rng = np.random.default_rng(seed)
    return Network((widths[0],), [FC(rng.normal(0, 1 / np.sqrt(n), (o, n)), rng.normal(0, 0.1, o))
                                  for n, o in zip(widths, widths[1:])])


def _span(base, shape, tn):
    return range(base, base + tensor_rows(shape, tn))


def _overlap(a, b):
    return max(a.start, b.start) < min(a.stop, b.stop)


@settings(max_examples=60, deadline=None)
@given(widths=st.lists(st.integers(1, 40), min_size=2, max_size=7))
def test_layout_keeps_live_tensors_apart(widths):
    """Reuse: every layer reads the previous one's output, and its input and output never
    share a row; with intermediates no two tensors share a row. Both fit the rows they
    claim, and reuse never needs more."""
    qnet = quantize(_chain(widths))
    tn = SMALL.tn
    reuse = compile_network(qnet, SMALL)
    keep = compile_network(qnet, SMALL, intermediates=True)
    for program in (reuse, keep):
        assert program.layers[0].in_base == program.input_base
        for prev, info in zip(program.layers, program.layers[1:]):
            assert info.in_base == prev.out_base
        for info in program.layers:
            span = _span(info.out_base, info.out_shape, tn)
            assert not _overlap(_span(info.in_base, info.in_shape, tn), span)
            assert span.stop <= program.nm_rows
    spans = [_span(keep.input_base, keep.input_shape, tn)]
    spans += [_span(i.out_base, i.out_shape, tn) for i in keep.layers]
    assert not any(_overlap(a, b) for i, a in enumerate(spans) for b in spans[i + 1:])
    assert reuse.nm_rows <= keep.nm_rows
    assert [i.kept for i in keep.layers] == [True] * len(keep.layers)
    assert [i.kept for i in reuse.layers] == [False] * (len(widths) - 2) + [True]
    assert reuse.output_base == reuse.layers[-1].out_base


def test_a_network_that_fits_only_by_reusing_rows():
    """12 -> 40 -> 4 -> 40 (tn=4: 3, 10, 1, 10 rows): 24 rows with every output kept, 13
    at most with reuse; NM of 16 rows compiles without intermediates and names the reason with."""
    qnet = quantize(_chain([12, 40, 4, 40]))
    cfg = SMALL.replace(nm_depth=16)
    program = compile_network(qnet, cfg)
    assert program.nm_rows <= 16
    with pytest.raises(CompileError, match=r"layer 2 \(fc\): NM needs 24 rows with every "
                                           r"layer's output kept, but has 16 \(nm_depth\)"):
        compile_network(qnet, cfg, intermediates=True)
    with pytest.raises(CompileError, match=r"layer 0 \(fc\): NM needs 13 rows for its input "
                                           r"\(3 rows\) and output \(10 rows\), but has 12"):
        compile_network(qnet, SMALL.replace(nm_depth=12))


def test_rtl_over_reused_rows_equals_golden():
    """On the RTL (Amaranth simulator): the last layer's output, written over the rows of
    dead tensors, equals golden; the run returns no intermediates unless asked, and with
    them every layer equals golden."""
    qnet = quantize(_chain([8, 16, 4, 8], seed=3))
    program = compile_network(qnet, SMALL)
    assert any(i.out_base < i.in_base for i in program.layers)      # rows reused
    x = np.random.default_rng(5).integers(-20000, 20000, (2, 8))
    got = run_network(qnet, x, "pysim", config=SMALL)
    assert np.array_equal(got.outputs, qnet.run(x)) and got.layer_outputs is None
    kept = run_network(qnet, x, "pysim", config=SMALL, intermediates=True)
    for ours, ref in zip(kept.layer_outputs, qnet.run(x, intermediates=True)[1]):
        assert np.array_equal(ours, ref)
    assert np.array_equal(kept.outputs, got.outputs)
    assert got.report.rtl_cycles == kept.report.rtl_cycles      # the layout moves no cycle


def _flat_passes(qnet, program):
    """``qnet`` compiled as :func:`compile_network` did into ``program``, with the same
    streaming window of SB, but with every layer made with LOOPs listed flat instead: each
    pass of it from its plan as it is (the sample of all its bands), nothing repeated and
    nothing moved from another pass (in an instruction memory large enough to hold them)."""
    config, huge = program.config, compiler._huge
    # The window the compiler chose (it compares the cycles of two): its first SB row is
    # the least an SBLOAD writes.
    loads = [f["dst"] for f in program.instructions if f["op"] == Op.SBLOAD and f["count"]]
    window = config.sb_depth - min(loads) if loads else 0
    with mock.patch.object(compiler, "repeat", lambda sample, n, *args, **kw: sample(n)), \
            mock.patch.object(compiler, "offset", lambda a, b: None), \
            mock.patch.object(compiler, "_huge", lambda g, plan, _: huge(g, plan, config)):
        return compiler._compile(qnet, config.replace(imem_depth=1 << 14), False, window)


def _ran(program):
    """What the node runs, without the LOOPs and paging's IMLOADs and waits."""
    return [f for _, f in expand(program.instructions)
            if f["op"] not in (Op.LOOP, Op.IMLOAD) and not (f["op"] == Op.SBLOAD
                                                             and f["count"] == 0)]


@st.composite
def _tall_layers(draw):
    """A convolution (and maybe a max pooling) of many output rows, on a small node whose
    instruction memory is too small for its flat program: the compiler makes it with
    LOOPs."""
    c, o, k = draw(st.integers(1, 10)), draw(st.integers(1, 14)), draw(st.integers(1, 4))
    stride, pad = draw(st.integers(1, 2)), draw(st.integers(0, k - 1))
    h, w = draw(st.integers(k + 24, 60)), draw(st.integers(k, 24))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    layers = [Conv(rng.normal(0, .2, (o, c, k, k)), rng.normal(0, .1, o), stride=stride,
                   pad=pad)]
    if draw(st.booleans()):
        layers.append(MaxPool(2, 2))
    net = Network((c, h, w), layers)
    memory = (dict(sb_depth=draw(st.sampled_from([16, 32])), mem_bytes=32, mem_depth=1 << 16)
              if draw(st.booleans()) else {})
    config = SMALL.replace(imem_depth=draw(st.sampled_from([128, 256, 512])),
                           loop_depth=draw(st.sampled_from([3, 4])),
                           nbin_depth=draw(st.sampled_from([32, 64])),
                           nbout_depth=draw(st.sampled_from([16, 64])), psum_depth=64,
                           nm_depth=1 << 14, **memory)
    return net, config


@settings(max_examples=25, deadline=None)
@given(case=_tall_layers())
def test_a_layer_made_with_loops_runs_its_flat_passes(case):
    # The band LOOPs come from flat samples of a few bands; the passes after the first are
    # the first moved. What the node runs must be the flat program of the same passes,
    # instruction for instruction, with the same main-memory and SB images; the cycle model
    # that sums a loop's repeating iterations at once must equal the one that lists them.
    net, config = case
    try:
        net.shapes()
    except ValueError:
        assume(False)
    qnet = quantize(net)
    try:
        program = compile_network(qnet, config)
    except CompileError:
        assume(False)             # too large for these buffers even with LOOPs
    assume(any(info.looped for info in program.layers))
    check_loops(program.instructions, config.loop_depth)
    assert len(program.instructions) <= config.imem_depth
    reference = _flat_passes(qnet, program)
    assert _ran(program) == _ran(reference)
    assert np.array_equal(program.mem, reference.mem)
    assert all(np.array_equal(a, b) for a, b in zip(program.sb, reference.sb))
    # Each layer's first compute instruction (what reports and the fuzz read its tile
    # split from) is one the layer runs.
    ran = list(expand(program.instructions))
    for info in program.layers:
        first = next(f for pc, f in ran if pc in info.pcs and f["op"] in
                     (Op.CONV, Op.MAXPOOL, Op.AVGPOOL))
        assert (info.fields["op"], info.fields["log2_gob"]) == (first["op"], first["log2_gob"])
    listed = cycle_model.timeline(program.instructions, config)[0]
    assert cycle_model.profile(program.instructions, config).total == sum(listed)


def test_diannao_conv5_does_its_layers_work_with_loops():
    # DianNao's CONV5 (256x256x256, 11x11 -> 384: 30 million instructions flat, 24 MB of
    # weights streamed through SB's 32 KB) compiles with LOOPs into its instruction memory.
    # The work its loops run, counted from the ISA's fields, is the layer's: every output
    # row written once, each after its bias row and 11 x 11 x 16 kernel rows.
    config = preset("diannao").replace(nm_depth=1 << 22)
    qnet = quantize(load_workload("diannao-conv5"))
    program = compile_network(qnet, config)
    [info] = program.layers
    assert info.looped and info.streamed
    assert len(program.instructions) <= config.imem_depth
    check_loops(program.instructions, config.loop_depth)
    prof = cycle_model.profile(program.instructions, config)
    outputs = 246 * 246 * 384 // 16
    rows = writes = 0
    for f, n in zip(program.instructions, prof.runs):
        if f["op"] == Op.CONV:
            [traffic] = cycle_model.compute_profile(f, config)[1]
            rows += n * traffic["nfu_busy"]
            writes += n * traffic["nbout_writes"]
    assert writes == outputs
    assert rows == outputs * (1 + 11 * 11 * 16)
    assert prof.total >= rows
