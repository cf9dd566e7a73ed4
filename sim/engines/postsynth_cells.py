"""Verilog for the cells of a board netlist that the YoWASP Yosys package's models cannot
simulate, and the test bench's top module (:mod:`diannao.sim.engines.postsynth`).

Everything else in the netlist (iCE40: ``SB_LUT4``, ``SB_CARRY``, ``SB_DFF*``,
``SB_RAM40_4K``, ``SB_MAC16``; ECP5: ``LUT4``, ``PFUMX``, ``L6MUX21``, ``CCU2C``,
``TRELLIS_FF``, ``TRELLIS_DPR16X4``, ``TRELLIS_IO``) runs on the package's own models,
``share/ice40/cells_sim.v`` and ``share/ecp5/cells_sim.v``. The cells here are renamed in
the netlist (yosys ``chtype``, :data:`REPLACED`) so that they cannot collide with the
package's declarations of the same names:

PLLs (``SB_PLL40_PAD``, ``EHXPLLL``)
    Blackboxes in the package (no behaviour). The stand-in passes its reference clock
    through as the PLL's output and raises ``LOCK`` after 16 clocks: the simulation's clock
    is the design's clock (only its frequency differs from the board's).
``SB_IO``, ``TRELLIS_IO`` (pads)
    The package's models test an input against ``1'bz`` (``CLOCK_ENABLE === 1'bz``, an
    unconnected pin pulled up; ``T === 1'bz``), which Verilator 5 rejects ("Unsupported:
    tristate in top-level IO"). The stand-ins model what the board tops use: a plain input
    and a plain tristate output (iCE40 ``PIN_TYPE`` ``6'b000001`` and ``6'b101001``, ECP5
    ``DIR`` ``"INPUT"`` and ``"OUTPUT"``), and stop the simulation on any other mode.
``DP16KD`` (ECP5 block RAM)
    Declared ``(* blackbox *)`` in the package (parameters only). The model: data widths
    18, 9 and 4 (both ports alike), a row address ``AD[13:4]`` / ``[13:3]`` / ``[13:2]``,
    ``AD[1:0]`` as the two 9-bit byte enables of an 18-bit write, ``WRITEMODE = "NORMAL"``
    (a port's output does not change while it writes), a synchronous reset that zeroes the
    output, ``REGMODE = "OUTREG"`` as one more register enabled by ``OCE``; read and write
    of one row in the same cycle read the old data. It stops the simulation on any other
    mode or on non-zero initial contents.
``MULT18X18D`` (ECP5 multiplier)
    In the package's blackbox file only. The model: input registers A and B (with
    ``SIGNEDA``/``SIGNEDB``), pipeline and output registers on the clock, clock enable and
    synchronous reset each names (``REG_*_CLK = "NONE"`` bypasses one), and the 36-bit
    product, signed or unsigned per operand. The cascade and shift paths (``SOURCEA``,
    ``SOURCEB`` high, ``MULT_BYPASS``) stop the simulation.

The DP16KD and MULT18X18D models are this project's, written from Lattice's descriptions
(TN1264, TN1267) and from yosys's own description of the DP16KD
(``share/lattice/brams_16kd.txt``: NORMAL is "rdwr no_change", the reset zeroes the
output, the output starts at zero). ``hw/ecp5.py``, which instantiates these cells, rests on
the same reading: a misreading shared by both would not show here; the board run does.
"""

import re


__all__ = ["REPLACED", "FAMILY", "cell_models", "bench_top", "BENCH_TOP"]

#: The test bench's top module (:func:`bench_top`).
BENCH_TOP = "diannao_postsynth"

#: Board -> the FPGA family of its netlist.
FAMILY = {"icebreaker": "ice40", "ulx3s": "ecp5"}

#: Family -> {cell type in the netlist: the module that stands in for it}.
REPLACED = {
    "ice40": {"SB_PLL40_PAD": "diannao_sim_pll_ice40", "SB_IO": "diannao_sim_sb_io"},
    "ecp5": {"EHXPLLL": "diannao_sim_pll_ecp5", "TRELLIS_IO": "diannao_sim_trellis_io",
             "DP16KD": "diannao_sim_dp16kd", "MULT18X18D": "diannao_sim_mult18x18d"},
}

#: PLL stand-ins: (reference clock pin, output clock pin, the other ports), by family.
_PLL_PORTS = {
    "ice40": ("PACKAGEPIN", "PLLOUTGLOBAL",
              ["PLLOUTCORE", "EXTFEEDBACK", "DYNAMICDELAY", "LOCK", "BYPASS", "RESETB",
               "LATCHINPUTVALUE", "SDO", "SDI", "SCLK"]),
    "ecp5": ("CLKI", "CLKOP",
             ["CLKFB", "PHASESEL1", "PHASESEL0", "PHASEDIR", "PHASESTEP", "PHASELOADREG",
              "STDBY", "PLLWAKESYNC", "RST", "ENCLKOP", "ENCLKOS", "ENCLKOS2", "ENCLKOS3",
              "CLKOS", "CLKOS2", "CLKOS3", "LOCK", "INTLOCK", "REFCLK", "CLKINTFB"]),
}
_PLL_OUTPUTS = {"PLLOUTCORE", "SDO", "LOCK", "CLKOS", "CLKOS2", "CLKOS3", "INTLOCK",
                "REFCLK", "CLKINTFB"}


def instance_parameters(netlist, cell):
    """The parameter names given to the instances of ``cell`` in the Verilog ``netlist``
    (as ``write_verilog`` writes them: ``cell #( .NAME(value), ... ) name ( ... );``)."""
    names = set()
    for block in re.findall(r"^\s*" + re.escape(cell) + r" #\((.*?)\n\s*\) ", netlist,
                            re.M | re.S):
        names.update(re.findall(r"\.(\w+)\(", block))
    return sorted(names)


def _pll(family, parameters):
    clock_in, clock_out, others = _PLL_PORTS[family]
    name = REPLACED[family]["SB_PLL40_PAD" if family == "ice40" else "EHXPLLL"]
    ports = [f"input {clock_in}", f"output {clock_out}"]
    for p in others:
        width = "[7:0] " if p == "DYNAMICDELAY" else ""
        ports.append(f"{'output' if p in _PLL_OUTPUTS else 'input'} {width}{p}")
    params = "".join(f"  parameter {p} = 0;\n" for p in parameters)
    return f"""
// The {family} PLL: the reference clock passes through; LOCK after 16 clocks.
module {name}({", ".join(ports)});
{params}  reg [4:0] count = 0;
  always @(posedge {clock_in}) if (!count[4]) count <= count + 1;
  assign {clock_out} = {clock_in};
  assign LOCK = count[4];
endmodule
"""


_SB_IO = """
// iCE40 SB_IO: plain input (PIN_TYPE 6'b000001) or plain tristate output (6'b101001).
module diannao_sim_sb_io(inout PACKAGE_PIN, input LATCH_INPUT_VALUE, input CLOCK_ENABLE,
                         input INPUT_CLK, input OUTPUT_CLK, input OUTPUT_ENABLE,
                         input D_OUT_0, input D_OUT_1, output D_IN_0, output D_IN_1);
  parameter [5:0] PIN_TYPE = 6'b000000;
  parameter [0:0] PULLUP = 1'b0;
  parameter [0:0] NEG_TRIGGER = 1'b0;
  parameter IO_STANDARD = "SB_LVCMOS";
  initial if (PIN_TYPE != 6'b000001 && PIN_TYPE != 6'b101001)
    $fatal(1, "diannao_sim_sb_io: PIN_TYPE %b is not modelled", PIN_TYPE);
  assign D_IN_0 = PACKAGE_PIN;
  assign D_IN_1 = 1'b0;
  generate if (PIN_TYPE == 6'b101001)
    assign PACKAGE_PIN = OUTPUT_ENABLE ? D_OUT_0 : 1'bz;
  endgenerate
endmodule
"""


_TRELLIS_IO = """
// ECP5 TRELLIS_IO: plain input (DIR "INPUT") or tristate output (DIR "OUTPUT").
module diannao_sim_trellis_io(inout B, input I, input T, output O);
  parameter DIR = "INPUT";
  initial if (DIR != "INPUT" && DIR != "OUTPUT")
    $fatal(1, "diannao_sim_trellis_io: DIR %s is not modelled", DIR);
  generate if (DIR == "INPUT") begin : in
    assign O = B;
  end else begin : out
    assign B = T ? 1'bz : I;
    assign O = 1'b0;
  end endgenerate
endmodule
"""


def _names(prefix, n):
    return [f"{prefix}{i}" for i in range(n)]


def _bus(prefix, n):
    """``{P<n-1>, ..., P0}``."""
    return "{" + ", ".join(reversed(_names(prefix, n))) + "}"


def _dp16kd():
    ports = []
    for p in "AB":
        ports += [f"input {n}" for n in _names(f"DI{p}", 18) + _names(f"AD{p}", 14)
                  + [f"CE{p}", f"OCE{p}", f"CLK{p}", f"WE{p}", f"RST{p}"]
                  + _names(f"CS{p}", 3)]
        ports += [f"output {n}" for n in _names(f"DO{p}", 18)]
    initvals = "".join(f"  parameter [319:0] INITVAL_{i:02X} = 320'h0;\n" for i in range(64))
    nonzero = " || ".join(f"INITVAL_{i:02X} != 0" for i in range(64))
    body = []
    for p in "AB":
        body.append(f"""
  wire [17:0] di_{p} = {_bus(f"DI{p}", 18)};
  wire [13:0] ad_{p} = {_bus(f"AD{p}", 14)};
  wire [11:0] row_{p} = ad_{p} >> SHIFT;
  reg [W-1:0] latch_{p} = 0, out_{p} = 0;
  always @(posedge CLK{p}) begin
    if (RST{p})
      latch_{p} <= 0;
    else if (CE{p}) begin
      if (WE{p}) begin
        if (W == 18) begin
          if (ad_{p}[0]) mem[row_{p}][8:0] <= di_{p}[8:0];
          if (ad_{p}[1]) mem[row_{p}][17:9] <= di_{p}[17:9];
        end else
          mem[row_{p}] <= di_{p}[W-1:0];
      end else
        latch_{p} <= mem[row_{p}];
    end
    if (RST{p})
      out_{p} <= 0;
    else if (OCE{p})
      out_{p} <= latch_{p};
  end
  wire [17:0] do_{p} = REGMODE_{p} == "OUTREG" ? out_{p} : latch_{p};
  assign {_bus(f"DO{p}", 18)} = do_{p};
""")
    return f"""
// ECP5 DP16KD: 18/9/4-bit rows (both ports alike), NORMAL write mode, NOREG or OUTREG.
module diannao_sim_dp16kd({", ".join(ports)});
  parameter DATA_WIDTH_A = 18;
  parameter DATA_WIDTH_B = 18;
  parameter REGMODE_A = "NOREG";
  parameter REGMODE_B = "NOREG";
  parameter RESETMODE = "SYNC";
  parameter ASYNC_RESET_RELEASE = "SYNC";
  parameter CSDECODE_A = "0b000";
  parameter CSDECODE_B = "0b000";
  parameter WRITEMODE_A = "NORMAL";
  parameter WRITEMODE_B = "NORMAL";
  parameter CLKAMUX = "CLKA";
  parameter CLKBMUX = "CLKB";
  parameter GSR = "ENABLED";
  parameter INIT_DATA = "STATIC";
{initvals}  localparam W = DATA_WIDTH_A;
  localparam SHIFT = W == 18 ? 4 : W == 9 ? 3 : 2;
  localparam DEPTH = 1 << (14 - SHIFT);
  initial begin
    if (DATA_WIDTH_B != W || (W != 18 && W != 9 && W != 4))
      $fatal(1, "diannao_sim_dp16kd: data widths %0d/%0d are not modelled", W, DATA_WIDTH_B);
    if (WRITEMODE_A != "NORMAL" || WRITEMODE_B != "NORMAL" || RESETMODE != "SYNC"
        || CSDECODE_A != "0b000" || CSDECODE_B != "0b000" || CLKAMUX != "CLKA"
        || CLKBMUX != "CLKB")
      $fatal(1, "diannao_sim_dp16kd: a write, reset, chip-select or clock mode not modelled");
    if ((REGMODE_A != "NOREG" && REGMODE_A != "OUTREG")
        || (REGMODE_B != "NOREG" && REGMODE_B != "OUTREG"))
      $fatal(1, "diannao_sim_dp16kd: REGMODE not modelled");
    if ({nonzero})
      $fatal(1, "diannao_sim_dp16kd: initial contents are not modelled");
  end
  always @* if ({{CSA2, CSA1, CSA0, CSB2, CSB1, CSB0}} != 6'b0)
    $fatal(1, "diannao_sim_dp16kd: chip selects other than 0 are not modelled");
  reg [W-1:0] mem [0:DEPTH-1];
  integer i;
  initial for (i = 0; i < DEPTH; i = i + 1) mem[i] = 0;
{"".join(body)}endmodule
"""


def _dsp_register():
    return """
// One MULT18X18D register: bypassed ("NONE") or on the named clock, enable and reset.
module diannao_sim_dsp_reg #(parameter WIDTH = 18, parameter CLK = "NONE",
                             parameter CE = "CE0", parameter RST = "RST0")
                            (input [3:0] clk, input [3:0] ce, input [3:0] rst,
                             input [WIDTH-1:0] d, output [WIDTH-1:0] q);
  localparam C = CLK == "CLK1" ? 1 : CLK == "CLK2" ? 2 : CLK == "CLK3" ? 3 : 0;
  localparam E = CE == "CE1" ? 1 : CE == "CE2" ? 2 : CE == "CE3" ? 3 : 0;
  localparam R = RST == "RST1" ? 1 : RST == "RST2" ? 2 : RST == "RST3" ? 3 : 0;
  initial if ((CLK != "NONE" && CLK != "CLK0" && CLK != "CLK1" && CLK != "CLK2"
               && CLK != "CLK3") || (CE != "CE0" && CE != "CE1" && CE != "CE2" && CE != "CE3")
              || (RST != "RST0" && RST != "RST1" && RST != "RST2" && RST != "RST3"))
    $fatal(1, "diannao_sim_dsp_reg: clock, enable or reset selection not modelled");
  generate if (CLK == "NONE")
    assign q = d;
  else begin : r
    reg [WIDTH-1:0] value = 0;
    always @(posedge clk[C])
      if (rst[R]) value <= 0;
      else if (ce[E]) value <= d;
    assign q = value;
  end endgenerate
endmodule
"""


def _mult18x18d():
    ports = [f"input {n}" for n in _names("A", 18) + _names("B", 18) + _names("C", 18)
             + ["SIGNEDA", "SIGNEDB", "SOURCEA", "SOURCEB"] + _names("CLK", 4)
             + _names("CE", 4) + _names("RST", 4)]
    ports += [f"output {n}" for n in _names("P", 36) + ["SIGNEDP"]]
    regs = {"INPUTA": None, "INPUTB": None, "INPUTC": None, "PIPELINE": None, "OUTPUT": None}
    params = "".join(f'  parameter REG_{r}_CLK = "NONE";\n  parameter REG_{r}_CE = "CE0";\n'
                     f'  parameter REG_{r}_RST = "RST0";\n' for r in regs)

    def reg(name, width, d, q):
        return (f"  diannao_sim_dsp_reg #(.WIDTH({width}), .CLK(REG_{name}_CLK), "
                f".CE(REG_{name}_CE), .RST(REG_{name}_RST))\n"
                f"    reg_{name.lower()}(.clk(clk), .ce(ce), .rst(rst), .d({d}), .q({q}));\n")

    return f"""
// ECP5 MULT18X18D: registered or not, signed or unsigned 18x18 -> 36 bits.
module diannao_sim_mult18x18d({", ".join(ports)});
{params}  parameter CLK0_DIV = "ENABLED";
  parameter CLK1_DIV = "ENABLED";
  parameter CLK2_DIV = "ENABLED";
  parameter CLK3_DIV = "ENABLED";
  parameter HIGHSPEED_CLK = "NONE";
  parameter GSR = "ENABLED";
  parameter CAS_MATCH_REG = "FALSE";
  parameter SOURCEB_MODE = "B_SHIFT";
  parameter MULT_BYPASS = "DISABLED";
  parameter RESETMODE = "SYNC";
  initial if (MULT_BYPASS != "DISABLED" || RESETMODE != "SYNC")
    $fatal(1, "diannao_sim_mult18x18d: MULT_BYPASS or an asynchronous reset is not modelled");
  always @* if (SOURCEA === 1'b1 || SOURCEB === 1'b1)
    $fatal(1, "diannao_sim_mult18x18d: the shift inputs (SOURCEA/SOURCEB) are not modelled");
  wire [3:0] clk = {_bus("CLK", 4)}, ce = {_bus("CE", 4)}, rst = {_bus("RST", 4)};
  wire [18:0] a, b;
  wire [36:0] product, piped, out;
{reg("INPUTA", 19, "{SIGNEDA, " + _bus("A", 18) + "}", "a")}{reg("INPUTB", 19, "{SIGNEDB, " + _bus("B", 18) + "}", "b")}  wire [35:0] a36 = {{{{18{{a[18] & a[17]}}}}, a[17:0]}};
  wire [35:0] b36 = {{{{18{{b[18] & b[17]}}}}, b[17:0]}};
  wire [35:0] full = a36 * b36;
  assign product = {{a[18] | b[18], full}};
{reg("PIPELINE", 37, "product", "piped")}{reg("OUTPUT", 37, "piped", "out")}  assign {{SIGNEDP, {_bus("P", 36)}}} = out;
endmodule
"""


def cell_models(family, netlist):
    """Verilog of the modules standing in for ``family``'s replaced cells
    (:data:`REPLACED`), the PLL's parameters taken from its instance in ``netlist``."""
    pll = next(name for cell, name in REPLACED[family].items() if "PLL" in cell)
    text = _pll(family, instance_parameters(netlist, pll))
    if family == "ice40":
        return text + _SB_IO
    return text + _TRELLIS_IO + _dp16kd() + _dsp_register() + _mult18x18d()


def top_ports(netlist, module="top"):
    """``{port: direction}`` of ``module`` in the Verilog ``netlist``."""
    m = re.search(r"^module " + re.escape(module) + r"\((.*?)\);(.*?)^endmodule", netlist,
                  re.M | re.S)
    if m is None:
        raise ValueError(f"the netlist has no module {module!r}")
    names = [n.strip() for n in m.group(1).split(",")]
    dirs = dict((name, d) for d, name in
                re.findall(r"^\s*(input|output|inout)\s+(?:\[[^\]]*\]\s*)?(\S+);", m.group(2),
                           re.M))
    return {n: dirs[n] for n in names}


def bench_top(netlist, clock_pin, rx_pin, tx_pin):
    """The bench's top module, :data:`BENCH_TOP`: ports ``clk``, ``rx``, ``tx`` on the
    board top's clock and UART pins; its other inputs held low, its other outputs open.

    Raises
    ------
    ValueError
        A pin the board top does not have.
    """
    ports = top_ports(netlist)
    for pin in (clock_pin, rx_pin, tx_pin):
        if pin not in ports:
            raise ValueError(f"the board netlist has no pin {pin!r} (it has "
                             f"{', '.join(ports)})")
    conns = [f".{clock_pin}(clk)", f".{rx_pin}(rx_pin)", f".{tx_pin}(tx_pin)"]
    conns += [f".{p}(1'b0)" for p, d in ports.items()
              if d == "input" and p not in (clock_pin, rx_pin)]
    joined = ",\n    ".join(conns)
    return f"""
// The board top's clock and UART pins as the bench's ports.
module {BENCH_TOP}(input clk, input rx, output tx);
  wire rx_pin = rx;
  wire tx_pin;
  assign tx = tx_pin;
  top board(
    {joined});
endmodule
"""
