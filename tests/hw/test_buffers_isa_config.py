"""NBin / SB / NBout buffers, the instruction encoding and the configuration object."""

import numpy as np
import pytest
from amaranth import Elaboratable
from hypothesis import given, settings, strategies as st

from diannao.hw.config import Config, PRESETS, load_config, preset
from diannao.hw.isa import (Op, encode, decode, disassemble, compute_fields, load_fields,
                            _FIELDS, field_range, field_width, check_fields, check_loops,
                            expand, run_counts, wrap)
from diannao.hw.node import host_imem_addr, host_sb_addr, instr_chunks
from diannao.hw.nbin import NBin
from diannao.hw.nbout import NBout
from diannao.hw.neuron_memory import NeuronMemory
from diannao.hw.sb import SB
from diannao.sim.engines.vcd import simulate


def test_nbin_write_then_read_latency_1():
    dut = NBin(4, 16)
    rows = np.random.default_rng(0).integers(-32768, 32768, (16, 4))

    async def bench(ctx):
        for a, row in enumerate(rows):
            ctx.set(dut.write.addr, a)
            ctx.set(dut.write.data, row.tolist())
            ctx.set(dut.write.en, 1)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.read.en, 1)
        for a in (3, 0, 15, 7):
            ctx.set(dut.read.addr, a)
            await ctx.tick()
            assert [ctx.get(dut.read.data[i]) for i in range(4)] == rows[a].tolist()

    simulate(dut, bench, name="nbin")


def test_sb_lane_write_enables():
    tn = 4
    dut = SB(tn, 8)

    async def bench(ctx):
        ctx.set(dut.write.addr, 5)
        for lane in range(tn):
            ctx.set(dut.write.data, [[lane * 10 + i + 100 * j for i in range(tn)]
                                     for j in range(tn)])
            ctx.set(dut.write.en, 1 << lane)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.read.addr, 5)
        ctx.set(dut.read.en, 1)
        await ctx.tick()
        for j in range(tn):
            # Lane j was written when en selected it, with data row j of that write.
            assert [ctx.get(dut.read.data[j][i]) for i in range(tn)] == \
                [j * 10 + i + 100 * j for i in range(tn)]

    simulate(dut, bench, name="sb")


def test_nbout_row_keeps_its_address():
    dut = NBout(2, 4)

    async def bench(ctx):
        ctx.set(dut.write.addr, 2)
        ctx.set(dut.write.data, {"data": [-5, 7], "addr": 123456})
        ctx.set(dut.write.en, 1)
        await ctx.tick()
        ctx.set(dut.write.en, 0)
        ctx.set(dut.read.addr, 2)
        ctx.set(dut.read.en, 1)
        await ctx.tick()
        row = ctx.get(dut.read.data)
        assert row.addr == 123456 and [row.data[0], row.data[1]] == [-5, 7]

    simulate(dut, bench, name="nbout")


field_values = st.fixed_dictionaries({
    name: st.integers(-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed
    else st.integers(0, (1 << w) - 1)
    for name, (signed, w) in _FIELDS.items() if name != "op"})


@settings(max_examples=50, deadline=None)
@given(fields=field_values, op=st.sampled_from(list(Op)))
def test_encode_decode_round_trip(fields, op):
    word = encode(op, **fields)
    back = decode(word)
    assert back.pop("op") == op and back == fields


def test_encode_errors_name_the_field():
    with pytest.raises(ValueError, match=r"stride=16 .*\[0, 15\]"):
        encode(Op.CONV, stride=16)
    with pytest.raises(ValueError, match=r"y_off=-8193"):
        encode(Op.CONV, y_off=-8193)
    with pytest.raises(ValueError, match="unknown instruction field 'bogus'"):
        encode(Op.CONV, bogus=1)


def test_field_ranges_and_check():
    assert (field_width("ob"), field_range("ob")) == (10, (0, 1023))
    assert (field_width("y_off"), field_range("y_off")) == (14, (-8192, 8191))
    assert field_range("src") == (0, (1 << 24) - 1)
    check_fields({"op": Op.CONV, "ob": 1023, "y_off": -8192})
    with pytest.raises(ValueError, match=r"^instruction field ob=1024 is out of range "
                                         r"\[0, 1023\] \(10 bits\)$"):
        check_fields({"op": Op.CONV, "ob": 1024})
    with pytest.raises(ValueError, match=r"^instruction field count=1.5 is out of range"):
        check_fields({"count": 1.5})
    with pytest.raises(ValueError, match="unknown instruction field 'bogus'"):
        field_range("bogus")
    # encode uses the same check and message
    with pytest.raises(ValueError, match=r"^instruction field ob=1024 .*\(10 bits\)$"):
        encode(Op.CONV, ob=1024)


def test_disassembler_text():
    f = compute_fields(op=Op.CONV, in_h=8, in_w=8, cb=1, kh=3, kw=3, stride=1, y_off=1,
                       x_off=1, oh=8, ow=8, ob=2, ocb=2, shift=13, act=1, dma_ahead=5)
    text = disassemble([encode(**load_fields(src=3, count=8, lines=8)),
                        encode(**f), encode(Op.STORE, sync=1), encode(Op.HALT)])
    lines = text.splitlines()
    assert lines[0] == ("   0: LOAD    src=3 dst=0 count=8 runs_m1=0 run_step=1 lines_m1=7 "
                        "line_step=1 sync=0")
    assert lines[1].startswith("   1: CONV    in_h=8 in_w=8 cb=1 kh=3 kw=3 stride=1 y_off=1")
    assert "nbin_org=-9" in lines[1] and "shift=13" in lines[1]
    assert "psum_in=0 psum_out=0 private=0 lrn=0 nbout_half=0 dma_ahead=5" in lines[1]
    assert lines[2] == "   2: STORE   nbout_half=0 sync=1" and lines[3] == "   3: HALT"


def test_loop_text_and_what_the_node_runs():
    # Two LOADs stepped by an outer loop (src +100) around an inner one (src +1, dst +4):
    # the expansion lists each LOOP once and its body once per iteration.
    program = [dict(op=Op.LOOP, count=2, body=3, src=100),
               dict(op=Op.LOOP, count=3, body=1, src=1, dst=4),
               load_fields(src=10, dst=0, count=4),
               load_fields(src=50, dst=8, count=1),
               dict(op=Op.HALT)]
    check_loops(program, 2)
    ran = [(pc, f["op"], f.get("src"), f.get("dst")) for pc, f in expand(program)]
    assert ran == [(0, Op.LOOP, 100, None),
                   (1, Op.LOOP, 1, 4), (2, Op.LOAD, 10, 0), (2, Op.LOAD, 11, 4),
                   (2, Op.LOAD, 12, 8), (3, Op.LOAD, 50, 8),
                   (1, Op.LOOP, 1, 4), (2, Op.LOAD, 110, 0), (2, Op.LOAD, 111, 4),
                   (2, Op.LOAD, 112, 8), (3, Op.LOAD, 150, 8), (4, Op.HALT, None, None)]
    assert disassemble(encode(**program[1])) == ("   0: LOOP    count=3 body=1 src=1 mem=0 "
                                                 "dst=4 sb_base=0 nbin_org=0 out_base=0")
    # How often each instruction runs, counted without listing the run.
    assert run_counts(program) == [1, 2, 6, 2, 1]


def test_loop_steps_wrap_at_the_field_width():
    # A negative step is its two's complement; src (24 bits, unsigned) and nbin_org (24
    # bits, signed: [-8388608, 8388607]) wrap around.
    top = (1 << 24) - 1
    program = [dict(op=Op.LOOP, count=3, body=1, src=wrap("src", -2), nbin_org=-500),
               dict(op=Op.CONV, src=1, nbin_org=-8388000), dict(op=Op.HALT)]
    ran = [(f["src"], f["nbin_org"]) for _, f in expand(program) if f["op"] == Op.CONV]
    assert ran == [(1, -8388000), (top, -8388500), (top - 2, 8388216)]


@pytest.mark.parametrize("program,depth,message", [
    ([dict(op=Op.LOOP, count=0, body=1), dict(op=Op.STORE), dict(op=Op.HALT)], 1,
     r"instruction 0 \(LOOP count=0 body=1\): a LOOP needs count >= 1 and body >= 1"),
    ([dict(op=Op.LOOP, count=2, body=3), dict(op=Op.STORE), dict(op=Op.HALT)], 1,
     r"its body ends at instruction 3, past the program, which ends at 2"),
    ([dict(op=Op.LOOP, count=2, body=2), dict(op=Op.LOOP, count=2, body=2),
      dict(op=Op.STORE), dict(op=Op.STORE), dict(op=Op.HALT)], 2,
     r"instruction 1 .*: its body ends at instruction 3, past its enclosing body, which ends "
     r"at 2"),
    ([dict(op=Op.LOOP, count=2, body=2), dict(op=Op.LOOP, count=2, body=1),
      dict(op=Op.STORE), dict(op=Op.HALT)], 1,
     r"instruction 1 .*: it nests 2 deep, the node runs at most 1 \(loop_depth\)"),
    ([dict(op=Op.LOOP, count=2, body=1), dict(op=Op.HALT)], 1,
     r"instruction 1 is a HALT inside the body of a LOOP"),
])
def test_check_loops_names_the_loop_and_the_limit(program, depth, message):
    with pytest.raises(ValueError, match=message):
        check_loops(program, depth)


def test_presets_and_validation():
    assert preset("dadiannao").tiles == 16 and preset("dadiannao").tn == 16
    assert preset("diannao").tiles == 1 and preset("diannao").nbin_depth == 64  # 2 KB
    assert preset("diannao").sb_depth == 64                                    # 32 KB
    assert preset("dadiannao").sb_depth == 4096                                # 2 MB
    assert preset("dadiannao").nm_depth * 16 * 2 == 4 << 20                      # 4 MB
    assert set(PRESETS) >= {"diannao", "dadiannao", "small"}
    with pytest.raises(ValueError, match="tn must be a power of two >= 2, not 6"):
        Config(tn=6)
    with pytest.raises(ValueError, match="tiles must be a power of two >= 1, not 0"):
        Config(tiles=0)
    with pytest.raises(ValueError, match="nbin_depth must be >= 2, not 1"):
        Config(nbin_depth=1)
    with pytest.raises(ValueError, match="psum_depth.*1"):
        Config(psum_depth=1)
    with pytest.raises(TypeError, match="tn must be an int, not '4'"):
        Config(tn="4")
    with pytest.raises(ValueError, match="unknown configuration 'big'"):
        preset("big")
    with pytest.raises(ValueError, match="deep_pipeline must be 0 or 1, not 2"):
        Config(deep_pipeline=2)
    with pytest.raises(ValueError, match="deep_pipeline=1 needs imem_narrow=0"):
        Config(deep_pipeline=1, imem_narrow=1)
    with pytest.raises(ValueError, match=r"loop_depth must be in \[0, 4\], not 5"):
        Config(loop_depth=5)
    with pytest.raises(ValueError, match="loop_depth > 0 needs imem_narrow=0"):
        Config(loop_depth=1, imem_narrow=1)
    # the latencies deep pipelining adds, as documented in docs/architecture.md
    deep = Config(deep_pipeline=1)
    assert (deep.read_latency, deep.node_read_latency) == (2, 3)
    assert (Config().read_latency, Config().node_read_latency) == (1, 1)
    assert preset("ulx3s").deep_pipeline == 1


@pytest.mark.parametrize("name,limit,what", [
    ("nm_depth", 1 << 24, r"24-bit instruction fields src and out_base"),
    ("nbin_depth", 1 << 16, r"16-bit instruction fields dst and count"),
    ("sb_depth", 1 << 16, r"16-bit instruction fields sb_base and sb_step"),
    ("nbout_depth", (1 << 24) - 1, r"NBout rows, up to nbout_depth, in 24 bits"),
    ("imem_depth", 1 << 16, r"16-bit program counter"),
])
def test_depths_the_isa_can_address(name, limit, what):
    assert getattr(Config(**{name: limit}), name) == limit
    with pytest.raises(ValueError, match=rf"^Config\.{name} must be at most {limit} "
                                         rf"\(.*{what}.*\), not {limit + 1}$"):
        Config(**{name: limit + 1})


def test_host_addresses_fit_the_host_port():
    # Every preset's largest SB and IMEM host addresses fit 32 bits.
    for cfg in PRESETS.values():
        assert host_sb_addr(cfg, cfg.tiles - 1, cfg.sb_depth - 1, cfg.tn - 1) < 1 << 32
        assert host_imem_addr(cfg, cfg.imem_depth - 1, instr_chunks(cfg) - 1) < 1 << 32
    # SB: log2(tiles) + log2(sb_depth) + log2(tn) = 8 + 16 + 8 bits fill the port exactly.
    edge = Config(tn=256, tiles=256, sb_depth=1 << 16)
    assert host_sb_addr(edge, 255, (1 << 16) - 1, 255) == (1 << 32) - 1
    with pytest.raises(ValueError, match=r"^Config: the host port's SB addresses need 33 bits "
                                         r"\(.*tiles=512.*sb_depth=65536.*tn=256.*\), but "
                                         r"host.addr has 32$"):
        Config(tn=256, tiles=512, sb_depth=1 << 16)
    # IMEM: the deepest instruction memory with the most host words per instruction.
    deepest = Config(tn=2, tiles=1, imem_depth=1 << 16)
    assert host_imem_addr(deepest, (1 << 16) - 1, instr_chunks(deepest) - 1) < 1 << 32


class _ECP5Platform:
    """Stands in for an amaranth-boards ECP5 platform: only ``family`` is read."""
    family = "ecp5"


def _instances(elaboratable, platform):
    from amaranth.hdl import Fragment, Instance
    found, todo = [], [Fragment.get(elaboratable, platform)]
    while todo:
        frag = todo.pop()
        for sub, *_ in frag.subfragments:
            (found if isinstance(sub, Instance) else todo).append(sub)
    return found


@pytest.mark.parametrize("make,cells,width", [
    (lambda: SB(4, 1024, read_latency=2), 16, 18),           # 256-bit rows, 64-bit lanes
    (lambda: NeuronMemory(4, 4096, read_latency=2), 16, 4),  # 4096 rows: 4-bit columns
    (lambda: NBin(4, 512, read_latency=2), 4, 18),
])
def test_ecp5_buffers_are_block_rams_with_output_registers(make, cells, width):
    """With deep pipelining on an ECP5, a buffer is DP16KDs each holding the whole depth
    (no multiplexer after them) and read through their output registers."""
    cells_found = _instances(make(), _ECP5Platform())
    assert [c.type for c in cells_found] == ["DP16KD"] * cells
    for c in cells_found:
        assert c.parameters["REGMODE_B"] == "OUTREG" and c.parameters["REGMODE_A"] == "NOREG"
        assert c.parameters["DATA_WIDTH_A"] == c.parameters["DATA_WIDTH_B"] == width


def test_ecp5_multipliers_use_their_registers():
    from diannao.hw.nfu1 import NFU1
    cells = _instances(NFU1(4, input_regs=True), _ECP5Platform())
    assert [c.type for c in cells] == ["MULT18X18D"] * 16
    for c in cells:
        assert all(c.parameters[f"REG_{r}_CLK"] == "CLK0"
                   for r in ("INPUTA", "INPUTB", "OUTPUT"))
    # without deep pipelining yosys infers the multipliers
    assert _instances(NFU1(4), _ECP5Platform()) == []


def test_ecp5_small_buffers_are_distributed_ram():
    """Registered buffers of up to DISTRIBUTED_DEPTH rows (the instruction memory, NFU-3's
    coefficients) are LUT RAM on an ECP5, one row deeper a block RAM."""
    from amaranth.hdl import Fragment, MemoryInstance
    from diannao.hw.buffer import Buffer, DISTRIBUTED_DEPTH
    small = Buffer(32, DISTRIBUTED_DEPTH, read_latency=2)
    assert _instances(small, _ECP5Platform()) == []
    found, todo = [], [Fragment.get(small, _ECP5Platform())]
    while todo:
        frag = todo.pop()
        for sub, *_ in frag.subfragments:
            (found if isinstance(sub, MemoryInstance) else todo).append(sub)
    assert [m._attrs.get("ram_style") for m in found] == ["distributed"]
    deeper = Buffer(32, DISTRIBUTED_DEPTH + 1, read_latency=2)
    assert {c.type for c in _instances(deeper, _ECP5Platform())} == {"DP16KD"}


class _Elaborated(Elaboratable):
    """``dut`` elaborated for ``platform`` (for simulating a platform's variant)."""
    def __init__(self, dut, platform):
        self.dut, self.platform = dut, platform

    def elaborate(self, platform):
        from amaranth.hdl import Fragment
        return Fragment.get(self.dut, self.platform)


@pytest.mark.parametrize("platform", [None, _ECP5Platform()], ids=["generic", "ecp5"])
def test_registered_buffer_latency_and_hold(platform):
    """read_latency=2: the row addressed with read.en appears 2 cycles later and stays
    while read.en is low, also while other rows are written; on an ECP5 (distributed RAM
    between registers) as in the generic model."""
    from diannao.hw.buffer import Buffer
    dut = Buffer(32, 32, read_latency=2)
    rows = [int(v) for v in np.random.default_rng(1).integers(0, 2 ** 32, 32)]
    # (addr, en) per cycle, then the expected data two cycles later
    reads = [(3, 1), (9, 1), (9, 0), (20, 0), (31, 1), (0, 1), (5, 0), (5, 0), (17, 1)]
    got = []

    async def bench(ctx):
        for a, row in enumerate(rows):
            ctx.set(dut.write.addr, a)
            ctx.set(dut.write.data, row)
            ctx.set(dut.write.en, 1)
            await ctx.tick()
        ctx.set(dut.write.en, 0)
        for addr, en in reads + [(0, 0), (0, 0)]:
            ctx.set(dut.read.addr, addr)
            ctx.set(dut.read.en, en)
            # a write elsewhere while reading: rows 1 and 2 are never read
            ctx.set(dut.write.addr, 1 + len(got) % 2)
            ctx.set(dut.write.data, 0)
            ctx.set(dut.write.en, 1)
            await ctx.tick()
            got.append(ctx.get(dut.read.data))

    simulate(_Elaborated(dut, platform), bench, name="buffer_rl2")
    want, last = [], None
    for addr, en in reads:
        last = rows[addr] if en else last
        want.append(last)
    # got[t] is sampled in cycle t + 1: the row read in cycle t is there in got[t + 1]
    assert got[1:len(want) + 1] == want


def test_tiles_limited_by_the_tiles_busy_register():
    assert Config(tn=2, tiles=32).tiles == 32
    with pytest.raises(ValueError, match=r"Config.tiles must be at most tn \* 16 = 32 .*not 64"):
        Config(tn=2, tiles=64)


def test_load_config_from_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"preset": "small", "nbin_depth": 64, "deep_pipeline": 1}')
    assert load_config(path) == preset("small").replace(nbin_depth=64, deep_pipeline=1)
    path.write_text('{"tn": 8}')
    assert load_config(path) == Config(tn=8)
    for text, match in [('{"tn": 8, "nbn_depth": 3}', "unknown field 'nbn_depth'"),
                        ('{"preset": "big"}', "unknown configuration 'big'"),
                        ('{"tn": 3}', "Config.tn must be a power of two >= 2, not 3"),
                        ('[1, 2]', "must be a JSON object"),
                        ('{"tn": 8,}', "invalid JSON at line 1 column 10")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=rf"^{path}: .*{match}"):
            load_config(path)
