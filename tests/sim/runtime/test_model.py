"""The model engine: golden values and cycle-model figures, held to the RTL's."""

import numpy as np
import pytest

from diannao.golden.formats import to_fixed
from diannao.golden.network import FC, Conv, MaxPool, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.sim.engines.registry import run_network

SMALL = preset("small")


def _network(rng):
    return Network((3, 10, 10), [
        Conv(rng.normal(0, 0.3, (8, 3, 3, 3)), rng.normal(0, 0.1, 8), pad=1, activation="relu"),
        MaxPool(2),
        FC(rng.normal(0, 0.1, (10, 200)), rng.normal(0, 0.1, 10), activation="tanh")])


def test_model_values_are_golden_and_cycles_the_rtl_counters(rng):
    # The model compiles each layer on its own; its cycles must still be the RTL's, layer
    # by layer and in total (NBin of 40 rows: the conv and the fc go in tiles and chunks).
    qnet = quantize(_network(rng))
    cfg = SMALL.replace(nbin_depth=40, imem_depth=1024)
    x = to_fixed(rng.uniform(-1, 1, (1, 3, 10, 10)), qnet.input_frac)
    model = run_network(qnet, x, "model", config=cfg, intermediates=True)
    rtl = run_network(qnet, x, "pysim", config=cfg, intermediates=True)
    assert np.array_equal(model.outputs, qnet.run(x))
    assert all(np.array_equal(a, b) for a, b in zip(model.layer_outputs, rtl.layer_outputs))
    assert model.report.source == "model" and model.report.rtl_counters is None
    assert model.report.model_cycles == rtl.report.rtl_cycles
    assert [l.cycles for l in model.report.layers] == [l.cycles for l in rtl.report.layers]
    assert model.report.model_counters == rtl.report.rtl_counters
    for layer in model.report.layers:
        assert sum(layer.losses().values()) == layer.cycles
        assert layer.bound in layer.losses()


def test_a_layer_that_does_not_fit_is_reported_and_the_others_run(rng):
    qnet = quantize(_network(rng))
    result = run_network(qnet, np.zeros((3, 10, 10)), "model",
                         config=SMALL.replace(sb_depth=40))
    conv, pool, fc = result.report.layers
    assert not conv.note and not pool.note and conv.cycles and pool.cycles
    assert fc.note.startswith("layer 2 (fc): SB needs") and fc.cycles == 0
    assert fc.macs == 10 * 200
    text = result.report.format()
    assert "not run: layer 2 (fc): SB needs" in text and "(1 layer not run" in text
    assert np.array_equal(result.outputs, qnet.run(np.zeros((3, 10, 10), dtype=np.int64)))


def test_nm_too_small_gives_figures_for_a_larger_one_and_says_so(rng):
    qnet = quantize(_network(rng))
    small_nm = SMALL.replace(nm_depth=200)      # conv: 100 + 200 rows
    result = run_network(qnet, np.zeros((3, 10, 10)), "model", config=small_nm)
    roomy = run_network(qnet, np.zeros((3, 10, 10)), "model", config=SMALL)
    conv = result.report.layers[0]
    # 300 rows of 4 values, 8 bytes each; 200 rows.
    assert conv.caveat == ("its input and output need 2.3 KB of NM, the node has 1.6 KB "
                           "(nm_depth): figures for a node with enough")
    assert [l.cycles for l in result.report.layers] == [l.cycles for l in roomy.report.layers]
    assert "layer 0: its input and output need" in result.report.format()


def test_model_rejects_a_waveform():
    qnet = quantize(_network(np.random.default_rng(0)))
    with pytest.raises(ValueError, match="--vcd needs a simulator"):
        run_network(qnet, np.zeros((3, 10, 10)), "model", vcd="x.vcd")


def test_alexnet_on_a_node_with_main_memory_streams_only_fc6_and_fc7():
    # A DaDianNao node keeps the weights that fit SB resident and streams the layers that do
    # not (fc6: 4.7 MB a tile, fc7: 2.1 MB, for SB's 2 MB) from main memory through the
    # upper half of SB; with halves of 1,024 rows the DMA engine's latency is hidden and the
    # classifiers run within 5% of their bandwidth bound.
    from diannao.sim.runtime.run import model_report
    from diannao.sim.tools.workloads import load_workload
    cfg = preset("dadiannao").replace(mem_bytes=512, mem_latency=100, mem_depth=1 << 18)
    report = model_report(quantize(load_workload("alexnet")), cfg, "dadiannao", 606)
    assert not any(l.note for l in report.layers)
    streamed = [l.index for l in report.layers if l.streamed]
    assert streamed == [10, 11]
    for l in report.layers:
        if l.streamed:
            assert l.roof == "memory"
            assert l.memory_cycles <= l.cycles <= 1.05 * l.memory_cycles
    assert "weights streamed by 2 of 13 layers" in report.format()
