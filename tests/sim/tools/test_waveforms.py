"""``diannao wave``: the VCD inspector on a real Amaranth-simulator VCD of a small network
(checked against the program and the cycle model) and on hand-written Verilator-style VCDs."""

import re

import numpy as np
import pytest

from diannao.golden.formats import to_fixed
from diannao.golden.network import Network, Conv, FC, MaxPool
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.isa import Op, encode, field_width, INSTR_FIELDS, INSTR_WIDTH
from diannao.sim.compiler import cycle_model
from diannao.sim.cli import main
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.pysim import run_program
from diannao.sim.tools.waveforms import Wave, normalize


SMALL = preset("small")
COMPUTE = (Op.CONV, Op.MAXPOOL, Op.AVGPOOL)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A conv/maxpool/fc network on the small node (4 tiles, tn=4), one sample, with a VCD."""
    rng = np.random.default_rng(0)
    net = Network((2, 5, 5), [
        Conv(rng.normal(0, .3, (3, 2, 3, 3)), rng.normal(0, .1, 3), stride=1, pad=1,
             activation="relu"),
        MaxPool(2, 2),
        FC(rng.normal(0, .3, (4, 12)), rng.normal(0, .1, 4), activation="tanh")])
    qnet = quantize(net)
    program = compile_network(qnet, SMALL)
    x = to_fixed(rng.uniform(-1, 1, (1, 2, 5, 5)), qnet.input_frac)
    vcd = tmp_path_factory.mktemp("wave") / "net.vcd"
    _, runs = run_program(program, x, vcd=vcd)
    return program, runs[0], vcd


def _wave_cli(capsys, *args):
    status = main(["wave", *map(str, args)])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def _emissions(program, tile):
    return sum(cycle_model.tile_emissions(f, tile) for f in program.instructions
               if f["op"] in COMPUTE)


def _outputs(program, tile):
    total = 0
    for f in program.instructions:
        if f["op"] in COMPUTE:
            blocks, rows = cycle_model.tile_share(f, tile)
            total += blocks * rows * f["ow"]
    return total


def _rows(out):
    """(cycle, hex, unsigned, [signed], [real]) rows of ``--signal`` output."""
    rows = []
    for line in out.splitlines():
        tok = line.split()
        if len(tok) >= 4 and tok[0].isdigit() and tok[1].isdigit():
            rows.append((int(tok[0]), tok[2], *tok[3:]))
    return rows


# -- the real VCD (Amaranth simulator) --------------------------------------------------------

def test_list_finds_controller_signals(run, capsys):
    _, _, vcd = run
    out = _wave_cli(capsys, vcd, "--list", "ctrl")
    for name, width in [("bench.top.ctrl.pc", 8), ("bench.top.ctrl.ins", INSTR_WIDTH),
                        ("bench.top.ctrl.ins.op", field_width("op")),
                        ("bench.top.tile0.ctrl.valid", 1),
                        ("bench.top.tile3.ctrl.ins", INSTR_WIDTH),
                        ("bench.top.tile2.ctrl.ins.nbin_org", 24)]:
        assert re.search(rf"^{re.escape(name)}\s+{width}$", out, re.M), name
    assert "bench.top.tile0.nfu1.o__valid" not in out
    regex = _wave_cli(capsys, vcd, "--list", r"tile\d\.nfu[123]\.o__valid$")
    assert regex.splitlines()[-1].startswith("12 of ")


def test_signal_counts_emissions_like_the_cycle_model(run, capsys):
    program, counters, vcd = run
    for tile in range(SMALL.tiles):
        out = _wave_cli(capsys, vcd, "--signal", f"tile{tile}.ctrl.valid")
        rows = _rows(out)
        last = int(re.search(r"cycles \d+\.\.(\d+) of", out).group(1))
        # Cycles at 1 = run lengths between the printed changes.
        ends = [c for c, *_ in rows[1:]] + [last + 1]
        high = sum(end - c for (c, _, v, *_), end in zip(rows, ends) if v == "1")
        assert high == _emissions(program, tile) == counters["tiles"][tile]["nfu_busy"]


def test_signal_pc_and_signed_fixed_point(run, capsys):
    program, _, vcd = run
    pcs = [int(r[2]) for r in _rows(_wave_cli(capsys, vcd, "--signal", "ctrl.pc"))]
    assert pcs == list(range(len(program.instructions) + 1))
    conv = next(f for f in program.instructions if f["op"] == Op.CONV)
    assert conv["nbin_org"] < 0
    width = field_width("nbin_org")
    out = _wave_cli(capsys, vcd, "--signal", "top.tile1.ctrl.ins.nbin_org", "--frac", "1")
    assert "bench.top.tile1.ctrl.ins.nbin_org  24 bits" in out
    row = next(r for r in _rows(out) if int(r[3]) == conv["nbin_org"])
    assert int(row[1], 16) == conv["nbin_org"] % (1 << width)
    assert int(row[2]) == conv["nbin_org"] % (1 << width)
    assert float(row[4]) == conv["nbin_org"] / 2
    # --from/--to: the value at --from, then changes inside the window only.
    first = _rows(out)[1][0]
    win = _rows(_wave_cli(capsys, vcd, "--signal", "top.tile1.ctrl.ins.nbin_org", "--signed",
                          "--from", first - 5, "--to", first))
    assert [(c, int(s)) for c, _, _, s in win] == [(first - 5, 0), (first, conv["nbin_org"])]


def test_instructions_decode_the_program(run, capsys):
    program, _, vcd = run
    events = Wave(vcd).instructions()
    node = [e for e in events if e.register == "ctrl.ins"]
    assert [e.word for e in node] == program.words
    assert [e.fields["op"] for e in node] == [f["op"] for f in program.instructions]
    assert [e.pc for e in node] == list(range(len(program.instructions)))
    compute = [(pc, w) for pc, (f, w) in enumerate(zip(program.instructions, program.words))
               if f["op"] in COMPUTE]
    for tile in range(SMALL.tiles):
        mine = [(e.pc, e.word) for e in events if e.register == f"tile{tile}.ctrl.ins"]
        assert mine == compute
    # Each tile latches in the cycle after the node's ISSUE, one after the node's register
    # (latched by the decode; ISSUE starts the tiles once they are free, here at once).
    for e in events:
        if e.register != "ctrl.ins":
            assert e.cycle == node[e.pc].cycle + 1
    # The cycles between latches are the cycle model's instruction cycles.
    model = cycle_model.program_cycles(program.instructions, SMALL)
    assert [b.cycle - a.cycle for a, b in zip(node, node[1:])] == model[:-1]
    out = _wave_cli(capsys, vcd, "--instructions", "--where", "ctrl.ins")
    lines = [l for l in out.splitlines() if re.match(r"\s+\d+\s+ctrl\.ins\s", l)]
    assert len(lines) == len(program.instructions)
    from diannao.hw.isa import disassemble
    for line, text in zip(lines, disassemble(program.words).splitlines()):
        pc, rest = text.split(":", 1)
        assert line.split()[2] == pc.strip() and line.endswith(rest.strip())


def test_activity_equals_cycle_model_utilization(run, capsys, tmp_path):
    program, counters, vcd = run
    cycles = sum(cycle_model.program_cycles(program.instructions, SMALL))
    assert counters["cycles"] == cycles
    act = Wave(vcd).activity(window=25)
    assert act.gate == "bench.top.host__busy"          # the node's busy (HostBus), not ctrl's
    assert act.tiles == [f"tile{t}" for t in range(SMALL.tiles)]
    assert act.stages == ["emit", "nfu1", "nfu2", "nfu3"]
    assert act.counted == cycles
    for t in range(SMALL.tiles):
        tile = f"tile{t}"
        assert act.active[tile, "emit"] == act.active[tile, "nfu1"] == _emissions(program, t)
        assert act.active[tile, "nfu2"] == act.active[tile, "nfu3"] == _outputs(program, t)
        assert act.utilization(tile, "emit") == counters["tiles"][t]["nfu_busy"] / cycles
    assert sum(w[2] for w in act.windows) == cycles
    assert all(w1 - w0 + 1 <= 25 for w0, w1, _, _ in act.windows)
    png = tmp_path / "act.png"
    out = _wave_cli(capsys, vcd, "--activity", "--window", 25, "--plot", png)
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"
    assert f"({cycles} counted cycles)" in out
    for t in range(SMALL.tiles):
        e = _emissions(program, t)
        assert re.search(rf"^  tile{t}\s+{e}\s+{100 * e / cycles:.2f}%", out, re.M)
    total = sum(_emissions(program, t) for t in range(SMALL.tiles))
    assert re.search(rf"^  all\s+{total}\s+{100 * total / (SMALL.tiles * cycles):.2f}%", out, re.M)


def test_errors(run, capsys, tmp_path):
    _, _, vcd = run
    assert main(["wave", str(vcd), "--signal", "ins.op"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("diannao: error: signal name 'ins.op' is ambiguous")
    assert "bench.top.tile3.ctrl.ins.op" in err and "bench.top.ctrl.ins.op" in err
    assert main(["wave", str(vcd), "--signal", "no_such_thing"]) == 2
    assert "no signal 'no_such_thing'" in capsys.readouterr().err
    assert main(["wave", str(tmp_path / "missing.vcd"), "--list"]) == 2
    assert "no such VCD file" in capsys.readouterr().err
    assert main(["wave", str(vcd), "--signal", "ctrl.pc", "--from", "100000"]) == 2
    assert "outside the trace" in capsys.readouterr().err


# -- hand-written Verilator-style VCDs ---------------------------------------------------------

def _verilator_vcd(path, *, clock=True):
    """A VCD shaped like Verilator's: TOP.diannao_node scopes, ``[msb:lsb]`` after names,
    binary vectors, the node's ``ins`` whole but tile0's struct flattened as ``ins__<field>``,
    clock toggling every time unit (rising edges at 1, 3, 5...), one alias shared by two
    scopes.

    Node program: LOAD, CONV, the same CONV again, HALT, decoded in cycles 1, 4, 7, 9 (so
    latched in 2, 5, 8, 10); tile0 starts in cycles 4 and 7.
    """
    load = encode(Op.LOAD, src=3, dst=0, count=2)
    conv = encode(Op.CONV, in_h=4, in_w=4, cb=1, kh=3, kw=3, stride=1, y_off=1, x_off=1, oh=4,
                  ow=4, ob=1, nbin_org=-5, shift=9, act=1)
    halt = encode(Op.HALT)
    n = 14
    per_cycle = {                                            # value in each cycle 0..13
        "busy": [0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0],
        "pc": [0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4, 4],
        "node_ins": [0, 0, load, load, load, conv, conv, conv, conv, conv, halt, halt, halt, halt],
        "tile_ins": [0] * 5 + [conv] * 9,
        "t0_start": [0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        "t0_busy": [0, 0, 0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 0],
        "t0_valid": [0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0],
        "t0_v1": [0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0],
        "t0_v2": [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0],
        "t0_v3": [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
        "t1_valid": [0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0],
        "acc": [0, 0, 0, 0, 0, 0, 0, -384, -384, 640, 0, 0, 0, 0],
    }
    fields = [(f.name, f.offset, f.width) for f in INSTR_FIELDS]
    codes = iter(f"{chr(33 + i // 90)}{chr(33 + i % 90)}" for i in range(1000))
    decls, dumps = [], []

    def var(name, width, series, code=None):
        code = code or next(codes)
        rng = f" [{width - 1}:0]" if width > 1 else ""
        decls.append(f"  $var wire {width:>3} {code} {name}{rng} $end")
        dumps.append((code, width, series))
        return code

    clk = busy = None
    decls.append("$scope module TOP $end")
    if clock:
        clk = next(codes)
        decls.append(f"  $var wire   1 {clk} clk $end")
    busy = var("host__busy", 1, per_cycle["busy"])       # the node's host port (HostBus)
    decls.append(" $scope module diannao_node $end")
    if clock:
        decls.append(f"  $var wire   1 {clk} clk $end")
    decls.append(f"  $var wire   1 {busy} host__busy $end")
    decls.append("  $scope module ctrl $end")
    var("pc", 8, per_cycle["pc"])
    var("ins", INSTR_WIDTH, per_cycle["node_ins"])
    decls.append("  $upscope $end")
    decls.append("  $scope module tile0 $end")
    decls.append("   $scope module ctrl $end")
    for name, off, width in fields:
        var(f"ins__{name}", width, [(w >> off) & ((1 << width) - 1) for w in per_cycle["tile_ins"]])
    var("start", 1, per_cycle["t0_start"])
    var("busy", 1, per_cycle["t0_busy"])
    var("valid", 1, per_cycle["t0_valid"])
    decls.append("   $upscope $end")
    for k, key in ((1, "t0_v1"), (2, "t0_v2"), (3, "t0_v3")):
        decls.append(f"   $scope module nfu{k} $end")
        var("o__valid", 1, per_cycle[key])           # the NFUs' output streams o
        if k == 2:
            var("acc", 16, [v & 0xFFFF for v in per_cycle["acc"]])
        decls.append("   $upscope $end")
    decls.append("  $upscope $end")
    decls.append("  $scope module tile1 $end")
    decls.append("   $scope module ctrl $end")
    var("valid", 1, per_cycle["t1_valid"])
    decls.append("   $upscope $end")
    decls.append("  $upscope $end")
    decls.append(" $upscope $end")
    decls.append("$upscope $end")

    lines = ["$version Generated by VerilatedVcd $end", "$date Sat Nov 21 2026 $end",
             "$timescale 1ps $end", "", *decls, "$enddefinitions $end", "", "", "#0",
             "$dumpvars"]
    if clock:
        lines.append(f"0{clk}")
    # Registers change at rising edge k (time 2k + 1) to their cycle-k value.
    for code, width, series in dumps:
        lines.append(f"{series[0]}{code}" if width == 1 else f"b{series[0]:b} {code}")
    lines.append("$end")
    for k in range(n):
        lines.append(f"#{2 * k + 1}")
        if clock:
            lines.append(f"1{clk}")
        for code, width, series in dumps:
            if k and series[k] != series[k - 1]:
                lines.append(f"{series[k]}{code}" if width == 1 else f"b{series[k]:b} {code}")
        if clock:
            lines.append(f"#{2 * k + 2}")
            lines.append(f"0{clk}")
    path.write_text("\n".join(lines) + "\n")
    return dict(load=load, conv=conv, halt=halt, per_cycle=per_cycle, n=n)


def test_normalize_tolerates_both_styles():
    assert normalize("bench.top.ctrl.\\ins.op") == ("bench", "top", "ctrl", "ins", "op")
    assert normalize("TOP.diannao_node.tile0.ctrl.ins__op[2:0]") == \
        ("TOP", "diannao_node", "tile0", "ctrl", "ins", "op")
    assert normalize("TOP.diannao_node__DOT__tile0__DOT__ctrl__DOT__valid") == \
        ("TOP", "diannao_node", "tile0", "ctrl", "valid")


def test_verilator_style_vcd(tmp_path, capsys):
    vcd = tmp_path / "verilator.vcd"
    spec = _verilator_vcd(vcd)
    pc = spec["per_cycle"]
    w = Wave(vcd)
    assert w.clock.name == "TOP.clk" and w.cycles == spec["n"]
    assert w.edges == [2 * k + 1 for k in range(spec["n"])]

    # Names: ranges dropped, suffixes, '__' for '.', Amaranth-style leading scopes.
    out = _wave_cli(capsys, vcd, "--list", "tile0.ctrl.ins.op")
    assert re.search(rf"^TOP\.diannao_node\.tile0\.ctrl\.ins__op\s+{field_width('op')}$", out,
                     re.M)
    for name in ("tile0.ctrl.ins.op", "tile0.ctrl.ins__op", "ins.op",
                 "TOP.diannao_node.tile0.ctrl.ins__op[2:0]", "bench.top.tile0.ctrl.ins.op"):
        assert w.find(name).name == "TOP.diannao_node.tile0.ctrl.ins__op", name
    assert w.find("ctrl.pc").name == "TOP.diannao_node.ctrl.pc"
    assert w.find("bench.top.tile0.ctrl.valid").name == "TOP.diannao_node.tile0.ctrl.valid"
    assert w.find("diannao_node.host.busy").code == w.find("TOP.host__busy").code   # aliases
    with pytest.raises(ValueError, match="ambiguous.*\n.*tile0.ctrl.valid\n.*tile1.ctrl.valid"):
        w.find("ctrl.valid")

    # Values per cycle, signed and fixed point.
    assert w.ints(w.find("ctrl.pc")) == pc["pc"]
    out = _wave_cli(capsys, vcd, "--signal", "nfu2.acc", "--frac", "8")
    assert [(c, h, int(s), float(r)) for c, h, _, s, r in _rows(out)] == [
        (0, "0x0000", 0, 0.0), (7, "0xfe80", -384, -1.5), (9, "0x0280", 640, 2.5),
        (10, "0x0000", 0, 0.0)]

    # Instructions: the node's whole register (the repeated CONV seen through pc), tile0's
    # reassembled from flattened fields (the repeat seen through start/busy).
    events = w.instructions()
    node = [(e.cycle, e.pc, e.word) for e in events if e.register == "diannao_node.ctrl.ins"]
    assert node == [(2, 0, spec["load"]), (5, 1, spec["conv"]), (8, 2, spec["conv"]),
                    (10, 3, spec["halt"])]
    tile = [(e.cycle, e.pc, e.word) for e in events if e.register == "diannao_node.tile0.ctrl.ins"]
    assert tile == [(5, 1, spec["conv"]), (8, 2, spec["conv"])]
    out = _wave_cli(capsys, vcd, "--instructions")
    assert "CONV    in_h=4 in_w=4 cb=1 kh=3 kw=3" in out and "nbin_org=-5" in out
    assert re.search(r"^\s+2\s+diannao_node\.ctrl\.ins\s+0\s+LOAD\s+src=3 dst=0 count=2 runs_m1=0 run_step=0 lines_m1=0 line_step=0 sync=0$",
                     out, re.M)

    # Activity, gated by the node's busy, TOP.host__busy (cycles 1..9), not tile0.ctrl.busy.
    act = w.activity(window=4)
    assert act.gate == "TOP.host__busy" and (act.first, act.last, act.counted) == (1, 9, 9)
    assert act.tiles == ["diannao_node.tile0", "diannao_node.tile1"]
    t0, t1 = act.tiles
    busy = [k for k in range(spec["n"]) if pc["busy"][k]]
    for (tile, stage), key in {(t0, "emit"): "t0_valid", (t0, "nfu1"): "t0_v1",
                               (t0, "nfu2"): "t0_v2", (t0, "nfu3"): "t0_v3",
                               (t1, "emit"): "t1_valid"}.items():
        assert act.active[tile, stage] == sum(pc[key][k] for k in busy), (tile, stage)
    assert (t1, "nfu1") not in act.active
    assert [(a, b, n) for a, b, n, _ in act.windows] == [(1, 4, 4), (5, 8, 4), (9, 9, 1)]
    all_cycles = w.activity(window=100, busy=None)
    assert all_cycles.counted == spec["n"] and all_cycles.active[t0, "nfu3"] == 1
    out = _wave_cli(capsys, vcd, "--activity", "--window", 4)
    assert re.search(r"^  diannao_node\.tile0\s+3\s+33\.33%\s+3\s+33\.33%\s+1\s+11\.11%\s+0\s+0\.00%",
                     out, re.M)


def test_verilator_style_vcd_without_clock_uses_period(tmp_path, capsys):
    vcd = tmp_path / "noclk.vcd"
    spec = _verilator_vcd(vcd, clock=False)
    assert main(["wave", str(vcd), "--signal", "ctrl.pc"]) == 2
    assert "no clock found" in capsys.readouterr().err
    w = Wave(vcd, period="2ps", offset=1)
    assert w.edges[:3] == [1, 3, 5]
    assert w.ints(w.find("ctrl.pc"))[:spec["n"] - 1] == spec["per_cycle"]["pc"][:spec["n"] - 1]
    out = _wave_cli(capsys, vcd, "--signal", "ctrl.pc", "--period", 2, "--offset", 1)
    assert [int(r[2]) for r in _rows(out)] == [0, 1, 2, 3, 4]
    assert main(["wave", str(vcd), "--signal", "ctrl.pc", "--period", "abc"]) == 2
    assert "bad time 'abc'" in capsys.readouterr().err
