"""diannao.sim.tools.bench on small layers (the full benchmark, ~15 s, runs in ``diannao bench``)."""

from diannao.hw.config import preset
from diannao.sim.tools import bench


def test_run_layer_small_tile():
    cfg = preset("small").replace(tiles=1, nbin_depth=128, sb_depth=128, nbout_depth=128)
    rows = [bench.run_layer("fc", "fc", (37,), 10, None, 1, 0, config=cfg),
            bench.run_layer("conv", "conv", (5, 6, 6), 6, 3, 1, 1, config=cfg)]
    for r in rows:
        assert r["ok"], r
        assert r["cycles"] == r["model_cycles"] and r["busy"] == r["model_busy"]
        assert 0 < r["mac_utilization"] <= r["utilization"] <= 1
    text = bench.format_table(rows)
    assert "fc" in text and "conv" in text and "equal" in text
