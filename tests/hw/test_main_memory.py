"""Main memory and the DMA engine: the memory model's latency and stalls, SBLOAD, and
networks whose weights stream from main memory on the node RTL (Amaranth simulator),
bit-exact with golden and, at the configured bandwidth, cycle-equal with the cycle model."""

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from diannao.golden.formats import to_fixed
from diannao.golden.network import Network, Conv, FC, LRN, Local, MaxPool
from diannao.golden.quant import quantize
from diannao.hw.config import Config, preset
from diannao.hw.isa import Op
from diannao.hw.dma import DMA
from diannao.hw.main_memory import MainMemory, lfsr_next
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.program import compile_network, CompileError, _compile
from diannao.sim.engines.pysim import run_program
from diannao.sim.tools.fuzz import differences, refills_beside_reader


#: The small node with a main memory and an SB too small for the test networks' weights.
STREAM = preset("small").replace(sb_depth=16, mem_bytes=16, mem_latency=7, mem_depth=4096)


def _conv_net(rng, c=5, o=10, k=3, fc=7):
    return Network((c, 6, 6), [
        Conv(rng.normal(0, 1 / np.sqrt(c * k * k), (o, c, k, k)), rng.normal(0, .1, o),
             pad=1, activation="relu"),
        MaxPool(2),
        FC(rng.normal(0, .2, (fc, o * 9)), rng.normal(0, .1, fc), activation="tanh")])


def _run(net, config, batch=1, seed=0, host_port=False):
    rng = np.random.default_rng(seed)
    qnet = quantize(net)
    program = compile_network(qnet, config)
    x = to_fixed(rng.uniform(-1, 1, (batch,) + tuple(net.input_shape)), qnet.input_frac)
    y, runs = run_program(program, x, host_port=host_port)
    assert np.array_equal(y, np.stack([qnet.run(xi) for xi in x]))
    return qnet, program, x, runs


def test_memory_model_latency_and_stalls():
    # Requests every cycle at addresses 0, 1, ...: each taken request's beat comes back
    # exactly mem_latency cycles later, in order; ready follows the LFSR sequence written
    # again here from its definition (low 4 bits >= mem_stalls).
    cfg = preset("small").replace(mem_bytes=16, mem_latency=3, mem_depth=64, mem_stalls=6,
                                  mem_seed=0xACE1)
    dut = MainMemory(cfg)
    seen = []

    async def bench(ctx):
        for a in range(64):
            ctx.set(dut.data[a], [a * 2, a * 2 + 1])
        state, addr = cfg.mem_seed, 0
        for cycle in range(60):
            ctx.set(dut.bus.req.valid, 1)
            ctx.set(dut.bus.req.payload, addr)
            ready = ctx.get(dut.bus.req.ready)
            assert ready == ((state & 15) >= cfg.mem_stalls), cycle
            if ctx.get(dut.bus.resp.valid):
                seen.append((cycle, list(ctx.get(dut.bus.resp.payload))))
            if ready:
                seen.append(("req", cycle, addr))
                addr += 1
            state = lfsr_next(state)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    requests = [(c, a) for tag, c, a in (e for e in seen if e[0] == "req")]
    responses = [e for e in seen if e[0] != "req"]
    assert 0 < len(requests) < 60                      # some refused, most taken
    for (cycle, addr), (when, beat) in zip(requests, responses):
        assert when == cycle + cfg.mem_latency and beat == [addr * 2, addr * 2 + 1]


def test_dma_pays_the_latency_once_for_a_stream_of_operations():
    # Four SBLOADs of one row group (tiles * sb_row_beats = 8 beats each), handed every
    # third cycle as the controller does from cycle 0: the engine requests a beat in every
    # cycle from 1 to 32 without a gap, writes operation i's beats to SB row 4 * i (tile
    # by tile, two beats each) mem_latency cycles after their requests, and runs none from
    # cycle 1 + 32 + mem_latency on; a fence (no rows) is ready only then.
    cfg = STREAM
    assert cfg.tiles * cfg.sb_row_beats == 8
    m = Module()
    m.submodules.dma = dma = DMA(cfg)
    m.submodules.mem = mem = MainMemory(cfg)
    wiring.connect(m, dma.bus, mem.bus)
    seen = {"reads": [], "rows": [], "running": []}

    async def bench(ctx):
        for cycle in range(60):
            handing = cycle in (0, 3, 6, 9)
            ctx.set(dma.instr.op, Op.SBLOAD)
            ctx.set(dma.instr.mem, cycle // 3)
            ctx.set(dma.instr.dst, 4 * (cycle // 3))
            ctx.set(dma.instr.count, 1 if cycle < 12 else 0)
            ctx.set(dma.start, handing)
            if handing:
                assert ctx.get(dma.ready), cycle
            if ctx.get(dma.reads):
                seen["reads"].append(cycle)
            if ctx.get(dma.sb_valid):
                seen["rows"].append((cycle, ctx.get(dma.sb_row), ctx.get(dma.sb_tile)))
            seen["running"].append(ctx.get(dma.running))
            if cycle >= 12:
                assert ctx.get(dma.ready) == (cycle >= 1 + 32 + cfg.mem_latency), cycle
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen["reads"] == list(range(1, 33))
    assert seen["rows"] == [(1 + b + cfg.mem_latency, 4 * (b // 8), b % 8 // 2)
                            for b in range(32)]
    assert seen["running"][1 + 32 + cfg.mem_latency - 1] == 1
    assert not any(seen["running"][1 + 32 + cfg.mem_latency:])


@pytest.mark.parametrize("stalls", [0, 9])
def test_a_classifier_fetches_its_weights_slots_ahead(rng, stalls):
    # FC 128 -> 8 (one input position): 2 blocks of 33 SB rows for SB's 16. The compiler
    # loads the input once and streams the rows through slots several operations ahead of
    # the tiles, refilling a slot right after its last reader (main memory's latency covers
    # that reader's reads). The RTL equals golden; without stalls every counter equals the
    # model, with
    # them the run takes at least the model's cycles and at most as many more as the memory
    # refused requests.
    net = Network((128,), [FC(rng.normal(0, .1, (8, 128)), rng.normal(0, .1, 8),
                              activation="relu")])
    cfg = STREAM.replace(mem_latency=20, mem_stalls=stalls, mem_seed=0xACE1)
    qnet, program, x, runs = _run(net, cfg, batch=2)
    aheads = [f["dma_ahead"] for f in program.instructions if f["op"] == Op.CONV]
    assert max(aheads) > 1
    # Each compute instruction reads its slot in 3 + 2 + 12 cycles at most, less than the
    # latency of 20: the SBLOAD that refills a slot follows its last reader directly.
    assert refills_beside_reader(program.instructions)
    assert sum(f["op"] == Op.LOAD for f in program.instructions) == 1
    if stalls:
        predicted = sum(cycle_model.program_cycles(program.instructions, cfg))
        assert all(predicted <= r["cycles"] <= predicted + r["mem_stalls"] for r in runs)
        assert any(r["mem_stalls"] for r in runs)
    else:
        assert differences(qnet, program, x, runs) == []


def test_fc_streams_and_matches_golden_and_the_model(rng):
    # SB of 8 rows does not hold both layers' weights. Of the two programs (the first layer
    # streaming through the upper half while the second stays in the lower half, or both
    # streaming through all of SB) the compiler keeps the one with fewer model cycles; both
    # run bit-exact and cycle-equal.
    net = Network((40,), [FC(rng.normal(0, .2, (12, 40)), rng.normal(0, .1, 12), activation="relu"),
                          FC(rng.normal(0, .2, (6, 12)), rng.normal(0, .1, 6))])
    cfg = STREAM.replace(sb_depth=8)
    qnet = quantize(net)
    mixed = _compile(qnet, cfg, False, window=4)
    assert [l.streamed for l in mixed.layers] == [True, False]
    assert all(f["dst"] >= 4 for f in mixed.instructions if f["op"] == Op.SBLOAD)
    every = _compile(qnet, cfg, False, window=8)
    assert all(l.streamed for l in every.layers)
    chosen = compile_network(qnet, cfg)
    cycles = [sum(cycle_model.program_cycles(p.instructions, cfg)) for p in (mixed, every)]
    assert sum(cycle_model.program_cycles(chosen.instructions, cfg)) == min(cycles)
    x = to_fixed(rng.uniform(-1, 1, (2, 40)), qnet.input_frac)
    for program in (mixed, every):
        y, runs = run_program(program, x)
        assert np.array_equal(y, np.stack([qnet.run(xi) for xi in x]))
        assert differences(qnet, program, x, runs) == []
        assert runs[0]["mem_reads"] > 0 and runs[0]["mem_stalls"] == 0


@pytest.mark.parametrize("config", [
    STREAM,
    STREAM.replace(mem_bytes=8, mem_latency=1),           # one lane a beat, no latency to hide
    STREAM.replace(mem_bytes=32, tiles=2, sb_depth=12),   # one SB row a beat
    STREAM.replace(deep_pipeline=1),
], ids=["lanes2", "lane1", "row", "deep"])
def test_conv_pool_fc_stream(rng, config):
    qnet, program, x, runs = _run(_conv_net(rng), config)
    assert program.layers[0].streamed
    assert differences(qnet, program, x, runs) == []


def test_lrn_masks_stream(rng):
    # When the weights do not fit SB together, every layer's SB rows stream: LRN's masks too.
    net = Network((3, 3, 3), [Conv(rng.normal(0, .3, (12, 3, 3, 3)), rng.normal(0, .1, 12),
                                   pad=1, activation="relu"),
                              LRN(3, alpha=0.1, beta=0.75, k=2.0)])
    qnet, program, x, runs = _run(net, STREAM.replace(sb_depth=8))
    assert all(l.streamed for l in program.layers)
    assert differences(qnet, program, x, runs) == []


def test_locally_connected_rows_stream_per_output_tile(rng):
    # Every output position has its own kernel: each SBLOAD brings rows of its own, never
    # rows main memory holds for another output tile (the fuzzer found that reuse).
    net = Network((9, 3, 3), [Local(rng.normal(0, .3, (6, 2, 2, 9, 2, 2)), rng.normal(0, .1, 6),
                                    activation="relu")])
    qnet, program, x, runs = _run(net, STREAM.replace(sb_depth=6, tiles=2), batch=2)
    loads = [f["mem"] for f in program.instructions if f["op"] == Op.SBLOAD]
    assert program.layers[0].streamed and len(set(loads)) == len(loads) > 1
    assert differences(qnet, program, x, runs) == []


def test_host_port_writes_main_memory(rng):
    qnet, program, x, runs = _run(_conv_net(rng, c=3, o=4, fc=3), STREAM, host_port=True)
    assert differences(qnet, program, x, runs) == []


@pytest.mark.parametrize("host_port", [False, True], ids=["back door", "host port"])
def test_a_program_longer_than_the_instruction_memory_runs_in_pages(rng, host_port):
    # An instruction memory of 16: pages of 8, each from the third on loaded by an IMLOAD
    # from main memory, where the instructions follow the streamed weights, and pages 0 and
    # 1 loaded back at the end: both samples (two runs) give golden's values and every
    # counter the model's (main-memory reads count the IMLOADs' beats).
    cfg = STREAM.replace(imem_depth=16)
    qnet, program, x, runs = _run(_conv_net(rng), cfg, batch=2, host_port=host_port)
    assert len(program.instructions) > 3 * cfg.imem_depth
    assert program.code_base == len(program.mem) * cfg.tiles * cfg.sb_row_beats > 0
    loads = [f for f in program.instructions if f["op"] == Op.IMLOAD]
    assert loads and all(f["mem"] >= program.code_base for f in loads)
    assert runs[0]["mem_reads"] == sum(cycle_model.dma_beats(f, cfg)
                                       for f in program.instructions)
    assert differences(qnet, program, x, runs) == []


def test_a_program_too_long_for_main_memory_names_mem_depth(rng):
    # (Named when the instructions outgrow it, or with the streamed weights.)
    with pytest.raises(CompileError, match=r"main memory.*mem_depth"):
        compile_network(quantize(_conv_net(rng)), STREAM.replace(imem_depth=8, mem_depth=512))


def test_weights_that_fit_stay_resident(rng):
    program = compile_network(quantize(_conv_net(rng)), STREAM.replace(sb_depth=256))
    assert not any(l.streamed for l in program.layers) and len(program.mem) == 0
    assert all(f["op"] != Op.SBLOAD for f in program.instructions)


def test_no_main_memory_names_the_field(rng):
    with pytest.raises(CompileError, match=r"mem_bytes is 0"):
        compile_network(quantize(_conv_net(rng)), STREAM.replace(mem_bytes=0))


def test_main_memory_too_small_names_mem_depth(rng):
    with pytest.raises(CompileError, match=r"mem_depth"):
        compile_network(quantize(_conv_net(rng)), STREAM.replace(mem_depth=64))


@pytest.mark.parametrize("field, value, match", [
    ("mem_bytes", 12, "power of two"), ("mem_bytes", 4, "power of two"),
    ("mem_bytes", 64, "power of two"), ("mem_latency", 0, "mem_latency"),
    ("mem_stalls", 16, "mem_stalls"), ("mem_seed", 0, "mem_seed"),
    ("mem_depth", 3, "mem_depth")])
def test_config_rejects_bad_memory_fields(field, value, match):
    with pytest.raises(ValueError, match=match):
        STREAM.replace(**{field: value})


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_layers_buffers_bandwidths_and_stalls(data):
    """Random layer shapes, SB sizes, bandwidths, latencies (long ones covering short
    instructions' reads: slots refilled right after their last reader) and stall patterns,
    programs in pages from main memory or not: the RTL
    equals golden bit for bit; without stalls every counter equals the model; with stalls
    the run takes at least the model's cycles and at most as many more as the memory
    refused requests."""
    tn = 4
    tiles = data.draw(st.sampled_from([1, 2]), "tiles")
    cfg = Config(tn=tn, tiles=tiles, nbin_depth=data.draw(st.sampled_from([32, 64, 256])),
                 nbout_depth=64, psum_depth=64, nm_depth=1024,
                 imem_depth=data.draw(st.sampled_from([1024, 1024, 16, 64]), "imem_depth"),
                 sb_depth=data.draw(st.sampled_from([4, 8, 16])),
                 mem_bytes=data.draw(st.sampled_from([8, 16, 32])),
                 mem_latency=data.draw(st.one_of(st.integers(1, 20), st.integers(21, 60)),
                                         "mem_latency"), mem_depth=1 << 14,
                 mem_stalls=data.draw(st.sampled_from([0, 0, 3, 9])),
                 mem_seed=data.draw(st.integers(1, 0xFFFF)))
    c = data.draw(st.integers(1, 9), "in channels")
    o = data.draw(st.integers(1, 9), "out channels")
    k = data.draw(st.integers(1, 3), "kernel")
    size = data.draw(st.integers(k, 6), "size")
    rng = np.random.default_rng(data.draw(st.integers(0, 1 << 16), "seed"))
    layers = [Conv(rng.normal(0, 1 / np.sqrt(c * k * k), (o, c, k, k)), rng.normal(0, .1, o),
                   activation="relu")]
    if data.draw(st.booleans(), "fc"):
        n = o * (size - k + 1) ** 2
        layers.append(FC(rng.normal(0, 1 / np.sqrt(n), (3, n)), rng.normal(0, .1, 3)))
    net = Network((c, size, size), layers)
    try:
        qnet, program, x, runs = _run(net, cfg, seed=1)
    except CompileError as exc:
        # Only a reduction that needs partial sums beyond the buffers may be refused.
        assert "no tiling fits" in str(exc), exc
        assume(False)
    if cfg.mem_stalls == 0:
        assert differences(qnet, program, x, runs) == []
    else:
        predicted = sum(cycle_model.program_cycles(program.instructions, cfg))
        run = runs[0]
        assert predicted <= run["cycles"] <= predicted + run["mem_stalls"]
