"""Tile: pipeline properties and counters, next to test_tile.py's layer sweep.

* NFU-1 ``valid_in`` probed every cycle: no bubble from the first to the last emission
  (II = 1), nothing after ``done``;
* every counter against the cycle model / an independent count, on every layer kind, with
  int16 extremes in inputs and weights;
* 4-tile shares with each tile holding only its own SB blocks, including a tile with no
  share (1 cycle);
* the VCD + GTKWave save file: every trace named in the save file is declared in the VCD,
  NFU value traces are signed decimal.
"""

import re

import numpy as np
import pytest

from diannao.sim.compiler.cycle_model import tile_cycles, tile_emissions, tile_share

import helpers as h


def _no_bubbles(valid, emissions):
    ones = [i for i, v in enumerate(valid) if v]
    assert len(ones) == emissions
    assert ones[-1] - ones[0] + 1 == emissions, "NFU-1 valid dropped between emissions"


@pytest.mark.parametrize("n,o", [(512, 64), (512, 128)])
def test_long_fc_initiation_interval_one(n, o, rng):
    case = h.fc_case(16, rng, (n,), o, shift=14, bias_exp=3, edges=True)
    res, f = h.check_layer(case, name=f"ii_fc_{n}_{o}")
    assert res.counters["nfu_busy"] == tile_emissions(f, 0) == (o // 16) * (n // 16 + 1)
    _no_bubbles(res.nfu1_valid, tile_emissions(f, 0))


def test_conv_with_padding_has_no_bubbles(rng):
    """Zero (padding) rows, bias rows and block changes all go at one row per cycle."""
    case = h.conv_case(4, rng, 6, 5, 6, 9, 3, 2, 2, act="tanh")
    res, f = h.check_layer(case, name="ii_conv")
    _no_bubbles(res.nfu1_valid, tile_emissions(f, 0))


@pytest.mark.parametrize("tn", [4, 16])
def test_conv_extremes_all_counters(tn, rng):
    """int16 extremes in x, w and b with a shift that saturates both ways."""
    case = h.conv_case(tn, rng, 5, 5, 4, 7, 3, 1, 1, shift=16, bias_exp=14, xr=32768 - 1,
                       wr=32767, br=32767, edges=True)
    assert (case.expected == 32767).any() and (case.expected == -32768).any()
    res, f = h.check_layer(case, name=f"conv_edges_{tn}")
    # NBin reads: emissions that are neither bias nor padding rows, counted independently
    x_pad = np.pad(np.ones((5, 4)), 1)
    inside = sum(x_pad[oy:oy + 3, ox:ox + 3].sum() for oy in range(5) for ox in range(4))
    cb, ob = -(-5 // tn), -(-7 // tn)
    assert res.counters["nbin_reads"] == ob * cb * inside


@pytest.mark.parametrize("tn", [4, 16])
def test_fc_over_feature_map_extremes(tn, rng):
    case = h.fc_case(tn, rng, (5, 3, 2), 6, shift=15, bias_exp=1, xr=32767, wr=32767,
                     edges=True)
    res, f = h.check_layer(case, name=f"fc_chw_{tn}")
    assert (f["kh"], f["kw"]) == (3, 2)


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("tn,act", [(4, None), (16, "sigmoid")])
def test_pools_all_counters(kind, tn, act, rng):
    case = h.pool_case(tn, rng, kind, 6, 7, 5, 3, 2, act=act)
    res, f = h.check_layer(case, name=f"{kind}_{tn}")
    assert res.counters["nbin_reads"] == tile_emissions(f, 0)   # no padding in pools


@pytest.mark.parametrize("log2_gob", [0, 1, 2])
def test_four_tile_shares(log2_gob, rng):
    """Index 0..3 on a 4-tile config: disjoint shares whose union is the golden output."""
    tn = 4
    case = h.conv_case(tn, rng, 3, 7, 5, 10, 3, 1, 1, act="relu")   # 3 output blocks
    oh = case.out_shape[1]
    band = -(-oh // (4 >> log2_gob))
    f = case.fields(log2_gob=log2_gob, oy_band=band)
    cfg = h.tile_config(case, tn, tiles=4)
    rows, no_share = [], 0
    for index in range(4):
        res = h.run_tile(cfg, f, case.nbin_rows, case.sb_rows(index, log2_gob),
                            case.tables, index=index, name=f"share_{log2_gob}_{index}")
        cnt = res.counters
        assert cnt["start_to_done"] == tile_cycles(f, index, cfg)
        assert cnt["nfu_busy"] == tile_emissions(f, index)
        blocks, nrows = tile_share(f, index)
        assert len(res.rows) == blocks * nrows * f["ow"]
        no_share += blocks * nrows == 0
        addrs = {a for a, _ in res.rows}
        assert not addrs & {a for a, _ in rows}, "two tiles wrote the same output row"
        rows += res.rows
    np.testing.assert_array_equal(h.assemble(rows, f, case.out_shape, tn), case.expected)
    if log2_gob == 2:
        assert no_share == 1          # 3 blocks over 4 tile groups: tile 3 has nothing


def _gtkw_traces(text):
    """(name, flags) of every trace line of a GTKWave save file."""
    flags, out = 0, []
    for line in text.splitlines():
        if line.startswith("@"):
            flags = int(line[1:], 16)
        elif line and line[0] not in "[-*":
            out.append((line, flags))
    return out


def _vcd_vars(path):
    """The VCD's variables, read here rather than with :mod:`diannao.sim.engines.vcd`'s own
    reader, so that the check does not lean on the code that chose the traces."""
    names, scope = set(), []
    with open(path) as fh:
        for line in fh:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                scope.append(tok[2])
            elif tok[0] == "$upscope":
                scope.pop()
            elif tok[0] == "$var":
                size = int(tok[2])
                names.add(".".join(scope + [tok[4]]) + (f"[{size - 1}:0]" if size > 1 else ""))
            elif tok[0] == "$enddefinitions":
                break
    return names


def test_vcd_and_gtkw(tmp_path, monkeypatch, rng):
    monkeypatch.setenv("DIANNAO_VCD", str(tmp_path))
    case = h.conv_case(4, rng, 3, 4, 4, 5, 3, 1, 1, act="sigmoid")
    h.check_layer(case, name="wave layer")
    vcd, gtkw = tmp_path / "wave_layer.vcd", tmp_path / "wave_layer.gtkw"
    assert vcd.exists() and gtkw.exists()
    declared = _vcd_vars(vcd)
    traces = _gtkw_traces(gtkw.read_text())
    assert len(traces) > 20
    for name, _ in traces:
        assert name in declared, f"{name} in the save file is not a VCD variable"
    names = [n for n, _ in traces]
    for pat in (r"\.fsm_state$", r"\\ins\.op\[", r"ctrl\.nbin_addr\[", r"ctrl\.sb_addr\[",
                r"nfu1\.o__valid$", r"nfu3\.o__valid$", r"nfu1\.\\x\[0\]",
                r"nfu2\.\\o__payload\[0\]", r"nfu3\.\\o__payload\[3\]"):
        assert any(re.search(pat, n) for n in names), f"no trace matches {pat}"
    values = [(n, fl) for n, fl in traces
              if re.search(r"nfu1\.\\x\[\d+\]|nfu[23]\.\\o__payload\[\d+\]", n)]
    assert len(values) == 3 * 4
    for n, fl in values:
        assert fl & 0x400 and fl & 0x4, f"{n} is not shown as signed decimal (flags {fl:#x})"
    # the VCD holds the run: the NFU-3 lane 0 output changed at least once
    assert "nfu3" in vcd.read_text()
