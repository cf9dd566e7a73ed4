# amaranth: UnusedElaboratable=no
"""Post-synthesis simulation: the netlist yosys makes for a board (the board build's own
script, written as Verilog) runs the digits networks over its UART bit-exact with golden and
cycle-equal with the cycle model, on the YoWASP Yosys package's cell models. The iCEBreaker
runs in ``make test`` (measured 71 s with the netlist and the simulator build cached, 181 s
without); the ULX3S (a larger netlist: about 6 minutes) with marker ``synth``, which
``make test`` leaves out, and in ``make postsynth``. The fast tests check the pieces: the
netlist script, the bench's top module and the stand-ins for the cells the package cannot
simulate."""

import re
import subprocess

import pytest

from diannao.boards.build import build_plan, netlist_script
from diannao.sim.engines.hdl import simulator_available
from diannao.sim.engines.postsynth import (board_config, build_bench, cycle_limit,
                                           unconnected_defaults, vendor_models)
from diannao.sim.engines.postsynth_cells import (BENCH_TOP, REPLACED, bench_top, cell_models,
                                                 instance_parameters, top_ports)
from diannao.sim.tools.postsynth import check_board


def test_netlist_script_is_the_board_build_script(tmp_path):
    """The netlist is what the board build synthesizes: the build's yosys script, lines in
    order, up to where it writes the JSON for nextpnr; then the extra commands and the
    Verilog."""
    for board, synth in (("icebreaker", "synth_ice40 -dsp -top top"),
                         ("ulx3s", "synth_ecp5 -noabc9 -run :check -top top")):
        build_plan(board, build_dir=tmp_path / board, divisor=2, do_build=False)
        build = (tmp_path / board / "top.ys").read_text().splitlines()
        script = netlist_script("\n".join(build), ["chtype -map A B"]).splitlines()
        cut = build.index("write_json top.json")
        assert script[:cut] == build[:cut]
        assert any(line.strip() == synth for line in script[:cut])
        assert script[cut:cut + 2] == ["chtype -map A B", "write_verilog -noattr netlist.v"]
    with pytest.raises(RuntimeError, match="write_json top.json"):
        netlist_script("read_rtlil top.il\nsynth_ice40\n")


_NETLIST = """
module top(uart_0__rx__io, uart_0__tx__io, clk25_0__io, uart_0__dtr__io, led_0__io);
  input uart_0__rx__io;
  output uart_0__tx__io;
  input clk25_0__io;
  input uart_0__dtr__io;
  output [1:0] led_0__io;
  diannao_sim_pll_ecp5 #(
    .CLKI_DIV(32'd1),
    .FEEDBK_PATH("CLKOP")
  ) pll (
    .CLKI(clk25_0__io)
  );
endmodule
"""


def test_bench_top_wires_clock_and_uart():
    assert top_ports(_NETLIST)["led_0__io"] == "output"
    bench = bench_top(_NETLIST, "clk25_0__io", "uart_0__rx__io", "uart_0__tx__io")
    assert f"module {BENCH_TOP}(input clk, input rx, output tx);" in bench
    assert ".clk25_0__io(clk)" in bench and ".uart_0__dtr__io(1'b0)" in bench
    assert "led_0__io" not in bench
    with pytest.raises(ValueError, match="'clk12_0__io'"):
        bench_top(_NETLIST, "clk12_0__io", "uart_0__rx__io", "uart_0__tx__io")


def test_pll_stand_in_takes_the_instance_parameters():
    assert instance_parameters(_NETLIST, "diannao_sim_pll_ecp5") == ["CLKI_DIV", "FEEDBK_PATH"]
    models = cell_models("ecp5", _NETLIST)
    assert "parameter CLKI_DIV = 0;" in models and "parameter FEEDBK_PATH = 0;" in models


def test_vendor_models_are_the_packages():
    for board, family in (("icebreaker", "ice40"), ("ulx3s", "ecp5")):
        path = vendor_models(board)
        assert path.parts[-3:] == ("share", family, "cells_sim.v")
    # What the stand-ins replace and why: the package cannot simulate these.
    ecp5 = vendor_models("ulx3s").read_text()
    assert re.search(r"\(\* blackbox \*\)\s*module DP16KD", ecp5)
    assert "MULT18X18D" not in ecp5
    ice40 = vendor_models("icebreaker").read_text()
    assert re.search(r"\(\* blackbox \*\)\s*module SB_PLL40_PAD", ice40)
    assert "module SB_MAC16" in ice40 and "module SB_RAM40_4K" in ice40
    assert set(REPLACED["ice40"]) == {"SB_PLL40_PAD", "SB_IO"}


def test_icarus_guards():
    """Icarus reads the iCE40 models without their default port values: an instance that
    leaves such an input open is named; the ECP5 models it cannot read at all."""
    ok, why = simulator_available("icarus")
    if not ok:
        pytest.skip(why)
    netlist = "  SB_DFFE #(\n    .X(1)\n  ) ff (\n    .C(clk),\n    .D(d),\n    .Q(q)\n  );\n"
    assert unconnected_defaults(netlist, vendor_models("icebreaker").read_text()) == ["ff.E"]
    with pytest.raises(ValueError, match="Icarus 11 cannot parse the package's ECP5 models"):
        build_bench("ulx3s", None, "icarus")


def test_cycle_limit_covers_the_uart_traffic():
    """The limit of simulated cycles is at least the UART time of loading the weights
    (each SB word one request and one response of 20 clocks a byte)."""
    from diannao.golden.quant import quantize
    from diannao.sim.compiler.program import compile_network
    from diannao.sim.tools.digits import load_network, load_test_set
    qnet = quantize(load_network("mlp"))
    program = compile_network(qnet, board_config("icebreaker"), intermediates=True)
    x, _ = load_test_set((64,))
    words = sum(len(image) for image in program.sb) * 2
    assert cycle_limit("icebreaker", [(program, qnet.quantize_input(x[:1]))]) > words * 21 * 20


def _connect(prefix, n, signal):
    return ", ".join(f".{prefix}{i}({signal}[{i}])" for i in range(n))


# A self-checking bench of the ECP5 stand-ins in the modes hw/ecp5.py uses: a DP16KD with
# 18-bit rows, byte enables on AD[1:0] and the output register (2 cycles from address to
# data, data held while CE is low), and without it (1 cycle); a MULT18X18D with input and
# output registers (2 cycles), signed.
_CELLS_BENCH = f"""
`timescale 1ns/1ps
module cells_bench;
  reg clk = 0;
  always #5 clk = ~clk;
  reg [17:0] di = 0;
  reg [13:0] wa = 0, ra = 0;
  reg we = 0, ce = 0;
  wire [17:0] q2, q1;
  diannao_sim_dp16kd #(.REGMODE_B("OUTREG")) ram2 (
    .CLKA(clk), .CEA(1'b1), .OCEA(1'b1), .RSTA(1'b0), .WEA(we),
    .CSA0(1'b0), .CSA1(1'b0), .CSA2(1'b0),
    .CLKB(clk), .CEB(ce), .OCEB(1'b1), .RSTB(1'b0), .WEB(1'b0),
    .CSB0(1'b0), .CSB1(1'b0), .CSB2(1'b0),
    {_connect("DIA", 18, "di")}, {_connect("ADA", 14, "wa")}, {_connect("ADB", 14, "ra")},
    {_connect("DOB", 18, "q2")});
  diannao_sim_dp16kd ram1 (
    .CLKA(clk), .CEA(1'b1), .OCEA(1'b1), .RSTA(1'b0), .WEA(we),
    .CSA0(1'b0), .CSA1(1'b0), .CSA2(1'b0),
    .CLKB(clk), .CEB(ce), .OCEB(1'b1), .RSTB(1'b0), .WEB(1'b0),
    .CSB0(1'b0), .CSB1(1'b0), .CSB2(1'b0),
    {_connect("DIA", 18, "di")}, {_connect("ADA", 14, "wa")}, {_connect("ADB", 14, "ra")},
    {_connect("DOB", 18, "q1")});
  reg [17:0] a = 0, b = 0;
  wire [17:0] zero = 0;
  wire [35:0] p;
  diannao_sim_mult18x18d #(.REG_INPUTA_CLK("CLK0"), .REG_INPUTB_CLK("CLK0"),
                           .REG_OUTPUT_CLK("CLK0")) mul (
    .CLK0(clk), .CE0(1'b1), .RST0(1'b0), .CLK1(1'b0), .CE1(1'b0), .RST1(1'b0),
    .CLK2(1'b0), .CE2(1'b0), .RST2(1'b0), .CLK3(1'b0), .CE3(1'b0), .RST3(1'b0),
    .SIGNEDA(1'b1), .SIGNEDB(1'b1), .SOURCEA(1'b0), .SOURCEB(1'b0),
    {_connect("A", 18, "a")}, {_connect("B", 18, "b")}, {_connect("C", 18, "zero")},
    {_connect("P", 36, "p")});
  integer errors = 0;
  task check(input [35:0] got, input [35:0] want, input [255:0] what);
    if (got !== want) begin
      $display("FAIL %0s: got %h, want %h", what, got, want);
      errors = errors + 1;
    end
  endtask
  initial begin
    @(negedge clk);
    // Row 5: both bytes; row 6: both bytes; then row 5's low byte alone.
    we = 1; wa = {{10'd5, 4'b0011}}; di = 18'h2abcd;
    @(negedge clk); wa = {{10'd6, 4'b0011}}; di = 18'h1f0f0;
    @(negedge clk); wa = {{10'd5, 4'b0001}}; di = 18'h3ffff;
    @(negedge clk); we = 0;
    ce = 1; ra = {{10'd5, 4'b0000}};
    @(negedge clk); ra = {{10'd6, 4'b0000}};
    check(q1, {{18'h2abcd & 18'h3fe00 | 18'h1ff}}, "NOREG row 5 after 1 cycle");
    check(q2, 0, "OUTREG row 5 not yet after 1 cycle");
    @(negedge clk); ce = 0; ra = {{10'd7, 4'b0000}};
    check(q1, 18'h1f0f0, "NOREG row 6");
    check(q2, {{18'h2abcd & 18'h3fe00 | 18'h1ff}}, "OUTREG row 5 after 2 cycles");
    @(negedge clk);
    check(q2, 18'h1f0f0, "OUTREG row 6 after 2 cycles");
    @(negedge clk);
    check(q2, 18'h1f0f0, "OUTREG holds while CE is low");
    check(q1, 18'h1f0f0, "NOREG holds while CE is low");
    a = -18'sd3; b = 18'sd5;
    @(negedge clk); a = 18'sd131071; b = -18'sd131072;
    check(p, 0, "product not yet after 1 cycle");
    @(negedge clk);
    check(p, -36'sd15, "-3 * 5 after 2 cycles");
    @(negedge clk);
    check(p, 36'sd131071 * -36'sd131072, "131071 * -131072");
    if (errors == 0) $display("PASS");
    $finish;
  end
endmodule
"""


def _run_cells_bench(tmp_path, models):
    ok, why = simulator_available("icarus")
    if not ok:
        pytest.skip(why)
    (tmp_path / "models.v").write_text(models)
    (tmp_path / "bench.v").write_text(_CELLS_BENCH)
    subprocess.run(["iverilog", "-g2012", "-o", "bench.vvp", "-s", "cells_bench", "models.v",
                    "bench.v"], cwd=tmp_path, check=True, capture_output=True, timeout=120)
    done = subprocess.run(["vvp", "bench.vvp"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    return done.stdout + done.stderr


def test_ecp5_stand_ins_behave_as_documented(tmp_path):
    out = _run_cells_bench(tmp_path, cell_models("ecp5", _NETLIST))
    assert "PASS" in out and "FAIL" not in out, out


def test_ecp5_stand_in_bench_can_fail(tmp_path):
    """The same bench on a DP16KD whose output register is one cycle late fails."""
    models = cell_models("ecp5", _NETLIST).replace(
        "out_B <= latch_B;", "out_B <= out2_B; out2_B <= latch_B;").replace(
        "reg [W-1:0] latch_B = 0, out_B = 0;", "reg [W-1:0] latch_B = 0, out_B = 0, out2_B = 0;")
    assert "out2_B" in models
    out = _run_cells_bench(tmp_path, models)
    assert "FAIL OUTREG row 5 after 2 cycles" in out, out


def test_dp16kd_stand_in_refuses_unmodelled_modes(tmp_path):
    ok, why = simulator_available("icarus")
    if not ok:
        pytest.skip(why)
    (tmp_path / "models.v").write_text(cell_models("ecp5", _NETLIST))
    (tmp_path / "bench.v").write_text(
        "module b; diannao_sim_dp16kd #(.WRITEMODE_A(\"WRITETHROUGH\")) r(); endmodule\n")
    subprocess.run(["iverilog", "-g2012", "-o", "b.vvp", "-s", "b", "models.v", "bench.v"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=120)
    done = subprocess.run(["vvp", "b.vvp"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert "not modelled" in done.stdout + done.stderr


def _check(board, request):
    ok, why = simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    result = check_board(board)
    request.node.user_properties.append(("board", result.format()))
    print(result.format())
    assert result.problems == []
    return result


@pytest.mark.slow
def test_icebreaker_netlist_runs_digits(request):
    """The iCEBreaker's synthesized netlist (SB_LUT4, SB_CARRY, SB_DFF*, SB_RAM40_4K,
    SB_MAC16 on the package's models) runs the digits MLP and CNN over its UART: every
    layer bit-exact with golden, every counter equal to the cycle model."""
    result = _check("icebreaker", request)
    assert result.info["cells"]["SB_MAC16"] == 6


@pytest.mark.synth
def test_ulx3s_netlist_runs_digits(request):
    """The ULX3S's synthesized netlist (the DP16KD block RAMs with output registers and
    the MULT18X18D multipliers with their registers of hw/ecp5.py, on this project's
    stand-ins; LUT4, CCU2C, TRELLIS_FF, TRELLIS_DPR16X4 on the package's models) runs the
    digits MLP and CNN over its UART: bit-exact with golden, cycle-equal with the model."""
    result = _check("ulx3s", request)
    assert result.info["cells"]["diannao_sim_mult18x18d"] == 40
    assert result.info["cells"]["diannao_sim_dp16kd"] == 54
