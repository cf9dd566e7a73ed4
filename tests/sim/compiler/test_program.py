"""The compiler's NM layout: the live tensors only by default (a layer's output over dead
tensors' rows), every layer's output at its own address with ``intermediates``."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diannao.golden.network import FC, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.sim.compiler.mapping import tensor_rows
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.engines.registry import run_network


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
