"""Whole networks on the node RTL (Amaranth simulator): bit-exact with golden, cycle-equal
with the cycle model; the host-port path; compile errors. Random networks on random
configurations are in test_fuzz.py; the 16-tile tn=16 node runs under Verilator in
test_hdl.py and under Amaranth's simulator in ``make bench``."""

from dataclasses import replace

import numpy as np
import pytest

from diannao.golden.formats import to_fixed
from diannao.golden.network import Network, Conv, Local, FC, LRN, MaxPool, AvgPool
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.isa import LOOP_FIELDS, Op, expand
from diannao.sim.compiler.loops import fold_program
from diannao.sim.tools.workloads import load_workload
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.program import compile_network, CompileError
from diannao.sim.tools.fuzz import differences
from diannao.sim.engines.pysim import run_program


SMALL = preset("small")
#: The small node with the registers of a fast clock (Config.deep_pipeline): every latency
#: grows, results and the cycle model's agreement must not change.
DEEP = SMALL.replace(deep_pipeline=1)


def _net(rng, input_shape, specs):
    """A random network from compact layer specs."""
    layers, shape = [], input_shape
    for spec in specs:
        kind = spec[0]
        if kind == "conv":
            _, o, k, s, p, act = spec
            c = shape[0]
            layers.append(Conv(rng.normal(0, 1 / np.sqrt(c * k * k), (o, c, k, k)),
                               rng.normal(0, 0.1, o), stride=s, pad=p, activation=act))
        elif kind == "fc":
            _, o, act = spec
            n = int(np.prod(shape))
            layers.append(FC(rng.normal(0, 1 / np.sqrt(n), (o, n)), rng.normal(0, 0.1, o),
                             activation=act))
        elif kind == "maxpool":
            layers.append(MaxPool(spec[1], spec[2]))
        else:
            layers.append(AvgPool(spec[1], spec[2]))
        shape = Network(input_shape, layers).output_shape
    return Network(input_shape, layers)


def _check(net, config, batch=2, seed=0, host_port=False):
    """Run ``net`` on the node: every layer equal to golden, cycles and every traffic
    counter equal to the cycle model (:func:`diannao.sim.tools.fuzz.differences`)."""
    rng = np.random.default_rng(seed)
    qnet = quantize(net)
    program = compile_network(qnet, config)
    x = to_fixed(rng.uniform(-1, 1, (batch,) + tuple(net.input_shape)), qnet.input_frac)
    y, runs = run_program(program, x, host_port=host_port)
    assert differences(qnet, program, x, runs) == []
    assert np.array_equal(y, np.stack([qnet.run(xi) for xi in x]))
    return program, runs


@pytest.mark.parametrize("act", ["sigmoid", "tanh", "relu", "identity"])
def test_mlp_each_activation(act):
    net = _net(np.random.default_rng(1), (23,), [("fc", 13, act), ("fc", 6, "identity")])
    _check(net, SMALL)


@pytest.mark.parametrize("config", [SMALL, DEEP], ids=["small", "deep"])
def test_cnn_conv_pool_fc(config):
    net = _net(np.random.default_rng(2), (3, 9, 9),
               [("conv", 6, 3, 1, 1, "relu"), ("maxpool", 2, 2), ("conv", 5, 2, 2, 0, "tanh"),
                ("fc", 7, "sigmoid")])
    _check(net, config)


def test_several_pools_odd_sizes_stride2():
    net = _net(np.random.default_rng(3), (5, 11, 10),
               [("conv", 7, 3, 2, 1, "relu"), ("avgpool", 2, 1), ("maxpool", 2, 2),
                ("fc", 3, "identity")])
    _check(net, SMALL)


@pytest.mark.parametrize("config", [SMALL, DEEP], ids=["small", "deep"])
def test_host_port_path_end_to_end(config):
    net = _net(np.random.default_rng(4), (2, 5, 5),
               [("conv", 5, 3, 1, 1, "relu"), ("maxpool", 2, 2), ("fc", 4, "sigmoid")])
    _check(net, config, batch=1, host_port=True)


@pytest.mark.parametrize("config", [SMALL, DEEP], ids=["small", "deep"])
def test_one_tile_diannao_shape(config):
    net = _net(np.random.default_rng(5), (20,), [("fc", 9, "relu"), ("fc", 5, "identity")])
    _check(net, config.replace(tiles=1), batch=1)


def test_layers_larger_than_nbin_run_in_bands():
    # 3x20x20 input: 400 NBin rows at tn=4; NBin holds 64, so conv and pool go in bands.
    cfg = SMALL.replace(nbin_depth=64)
    net = _net(np.random.default_rng(11), (3, 20, 20),
               [("conv", 5, 3, 2, 1, "relu"), ("maxpool", 2, 2), ("conv", 4, 3, 1, 1, "tanh"),
                ("fc", 3, "identity")])
    program, _ = _check(net, cfg, batch=1)
    loads = [f for f in program.instructions if f["op"] == 1]
    assert len(loads) > len(net.layers)
    assert all(f["count"] <= cfg.nbin_depth for f in loads)


def _uses(program, layer):
    """What the tiling of layer ``layer`` uses: partial sums, column tiles, channel
    chunks (LOADs in runs), output tiles (STOREs)."""
    instrs = [program.instructions[pc] for pc in program.layers[layer].pcs]
    computes = [f for f in instrs if f["op"] in (2, 3, 4)]
    return dict(psums=sum(f["psum_out"] for f in computes),
                columns=any(f["out_row_step"] != f["ocb"] for f in computes),
                channel_chunks=any(f["op"] == 1 and f["runs_m1"] for f in instrs),
                stores=sum(f["op"] == 5 for f in instrs))


@pytest.mark.parametrize("config", [SMALL, DEEP], ids=["plain", "deep"])
def test_fc_larger_than_nbin_keeps_exact_partial_sums(config):
    # 300 inputs are 75 NBin rows at tn=4; NBin holds 32: the reduction goes in chunks,
    # the partial sums exact in between (a large fan-in makes them exceed int16).
    net = _net(np.random.default_rng(12), (300,), [("fc", 9, "relu"), ("fc", 5, "identity")])
    program, _ = _check(net, config.replace(nbin_depth=32), batch=1)
    assert _uses(program, 0)["psums"] >= 2


@pytest.mark.parametrize("shape, layer, uses", [
    # 24 channels (6 blocks) of 9x9, 5x5 pad 2: one output position alone needs 150 NBin
    # rows; NBin holds 24. Some chunks of the top and bottom rows fall in the padding only.
    ((24, 9, 9), ("conv", 6, 5, 1, 2, "tanh"), ("psums", "channel_chunks")),
    # 8 channels of 6x30: one input row is 60 NBin rows.
    ((8, 6, 30), ("conv", 6, 3, 1, 1, "relu"), ("psums", "columns")),
], ids=["channels and kernel rows", "column tiles"])
def test_conv_larger_than_its_buffers_runs_in_tiles_and_chunks(shape, layer, uses):
    net = _net(np.random.default_rng(13), shape, [layer])
    program, _ = _check(net, SMALL.replace(nbin_depth=24, psum_depth=24, imem_depth=1024),
                        batch=1)
    used = _uses(program, 0)
    assert all(used[u] for u in uses) and used["stores"] > 1, used


@pytest.mark.parametrize("config", [
    SMALL.replace(sb_depth=2048),
    SMALL.replace(nbin_depth=40, sb_depth=2048),
    SMALL.replace(nbin_depth=24, psum_depth=24, sb_depth=4096, imem_depth=1024),
    DEEP.replace(sb_depth=2048),
], ids=["whole", "bands", "chunks", "deep"])
def test_locally_connected_layer(config):
    """A kernel per output position (5x7x6 -> 6, 3x3 pad 1): every output position reads
    its own SB rows (``private``), whole, in bands, and with its reduction in chunks of
    partial sums; the tiles split the outputs by blocks and rows."""
    rng = np.random.default_rng(21)
    w = rng.normal(0, 0.3, (6, 7, 6, 5, 3, 3))
    net = Network((5, 7, 6), [Local(w, rng.normal(0, 0.1, 6), pad=1, activation="relu"),
                              MaxPool(2), FC(rng.normal(0, 0.3, (3, 6 * 3 * 3)), np.zeros(3))])
    program, _ = _check(net, config, batch=1)
    assert any(f.get("private") for f in program.instructions)


_TILED = SMALL.replace(nbin_depth=24, nbout_depth=16, psum_depth=16)


@pytest.mark.parametrize("config,channels,size", [
    (SMALL, 10, 5), (_TILED, 10, 5), (_TILED, 13, 4), (DEEP, 3, 5),
    (SMALL.replace(tiles=1), 8, 1),
], ids=["whole", "tiles", "tiles-even", "deep-one-block", "one-tile-size1"])
def test_lrn(config, channels, size):
    """Local response normalisation (AlexNet's place: after a convolution with ReLU, before
    pooling): windows across channel blocks, at the edges, of even size and of one channel;
    with the input box cut into output tiles; calibrated (a shift that saturates none)."""
    rng = np.random.default_rng(channels * 10 + size)
    net = Network((4, 6, 5), [
        Conv(rng.normal(0, 0.5, (channels, 4, 3, 3)), rng.normal(0, 0.1, channels), pad=1,
             activation="relu"),
        LRN(size, alpha=0.5, beta=0.75, k=1.0), MaxPool(2),
        FC(rng.normal(0, 0.3, (3, channels * 3 * 2)), np.zeros(3))])
    x = rng.uniform(-1, 1, (2, 4, 6, 5))
    qnet = quantize(net, calib=x)
    program = compile_network(qnet, config)
    assert any(f.get("lrn") for f in program.instructions)
    xq = to_fixed(x, qnet.input_frac)
    y, runs = run_program(program, xq)
    assert differences(qnet, program, xq, runs) == []
    assert np.array_equal(y, np.stack([qnet.run(xi) for xi in xq]))


def test_more_output_blocks_than_nbout_go_in_groups_of_blocks():
    # 64 outputs are 16 blocks on one tile whose NBout holds 6 rows, and a reduction of
    # 40 rows in NBin of 16: output tiles of 6 blocks, each in chunks.
    net = _net(np.random.default_rng(15), (160,), [("fc", 64, "tanh")])
    cfg = SMALL.replace(tiles=1, nbin_depth=16, nbout_depth=6, psum_depth=8, sb_depth=1024)
    program, _ = _check(net, cfg, batch=1)
    used = _uses(program, 0)
    assert used["stores"] == 3 and used["psums"] >= 3


def test_pooling_in_column_tiles_and_channel_chunks():
    net = _net(np.random.default_rng(14), (20, 8, 10), [("avgpool", 2, 2), ("maxpool", 2, 1)])
    program, _ = _check(net, SMALL.replace(nbin_depth=16), batch=1)
    used = _uses(program, 0)
    assert used["columns"] and used["channel_chunks"] and not used["psums"]


def test_mapping_spreads_few_blocks_over_tiles():
    # One output block on four tiles: the compiler splits output rows instead.
    net = _net(np.random.default_rng(7), (1, 8, 8), [("conv", 3, 3, 1, 1, "relu")])
    program = compile_network(quantize(net), SMALL)
    f = program.instructions[1]
    busy = [cycle_model.tile_emissions(f, t) for t in range(SMALL.tiles)]
    assert sum(1 for b in busy if b) == SMALL.tiles


def _err(net, config, match):
    with pytest.raises(CompileError, match=match):
        compile_network(quantize(net), config)


def test_compile_errors_name_layer_and_limit():
    rng = np.random.default_rng(8)
    big_in = _net(rng, (4, 20, 20), [("conv", 4, 3, 1, 1, "relu")])
    _err(big_in, SMALL.replace(nbin_depth=2), r"layer 0 \(conv\): no tiling fits: one output "
                                              r"needs at least 3 NBin rows; NBin has 2 rows "
                                              r"\(nbin_depth\)")
    big_fc = _net(rng, (300,), [("fc", 4, "relu")])
    _err(big_fc, SMALL.replace(nbin_depth=64, psum_depth=0),
         r"layer 0 \(fc\): no tiling fits.*no partial sums \(psum_depth=0\).*75 rows must "
         r"fit NBin whole")
    wide = _net(rng, (64,), [("fc", 64, "relu")])
    _err(wide, SMALL.replace(sb_depth=8), r"layer 0 \(fc\): SB needs 68 rows per tile "
                                          r"\(2,176 bytes.*sb_depth, 256 bytes\); weights "
                                          r"beyond the node's SB stream from a main memory, "
                                          r"which this configuration does not have "
                                          r"\(Config.mem_bytes is 0\)")
    _err(wide, SMALL.replace(nm_depth=20), r"layer 0 \(fc\).*NM needs .*nm_depth")
    tables = _net(rng, (8,), [("fc", 8, "sigmoid"), ("fc", 8, "tanh"), ("fc", 8, "relu")])
    _err(tables, SMALL.replace(act_tables=2), r"3 distinct activation tables.*holds 2")
    lrn = Network((16, 2, 2), [LRN(5)])
    _err(lrn, SMALL.replace(lrn=0), r"layer 0 \(lrn\): this configuration has no LRN "
                                    r"datapath \(Config.lrn is 0\)")
    _err(lrn, SMALL.replace(nbin_depth=2, nbout_depth=2, psum_depth=2),
         r"layer 0 \(lrn\): no tiling fits.*an LRN output's 4 channel blocks must fit NBin")


#: Nodes whose controller runs LOOPs nested two deep: the compiler folds each layer's
#: repeats (sim.compiler.loops), the node runs them (hw.node_controller).
LOOPS = [SMALL.replace(loop_depth=2, nbin_depth=64, nbout_depth=64),
         DEEP.replace(loop_depth=2, nbin_depth=64, nbout_depth=64),
         SMALL.replace(loop_depth=2, sb_depth=32, mem_bytes=16, mem_latency=5,
                       mem_depth=1 << 14)]


def _nesting(program):
    """The deepest LOOP nesting of ``program``, and every field its LOOPs step."""
    ends, deepest, stepped = [], 0, set()
    for pc, f in enumerate(program):
        while ends and pc >= ends[-1]:
            ends.pop()
        if f["op"] == Op.LOOP:
            ends.append(pc + 1 + f["body"])
            deepest = max(deepest, len(ends))
            stepped |= {k for k in LOOP_FIELDS if f[k]}
    return deepest, stepped


@pytest.mark.parametrize("config, stepped", [
    (LOOPS[0], {"src", "sb_base", "out_base"}), (LOOPS[1], {"src", "sb_base", "out_base"}),
    (LOOPS[2], {"mem", "dst"})], ids=["plain", "deep", "streamed"])
def test_a_program_folded_into_loops_runs_what_it_folds(config, stepped):
    # Bands of a convolution and of a pooling repeat with their addresses stepped: nested
    # LOOPs run them; with streamed weights an SBLOAD's main-memory rows step too. Equal to
    # golden, every counter equal to the cycle model (which counts each LOOP's fetch and
    # decode).
    rng = np.random.default_rng(2)
    net = _net(rng, (6, 12, 12),
               [("conv", 9, 3, 1, 1, "relu"), ("maxpool", 2, 2), ("fc", 7, "sigmoid")])
    qnet = quantize(net)
    flat = compile_network(qnet, config.replace(loop_depth=0))
    program = fold_program(replace(flat, config=config))
    assert [f for _, f in expand(program.instructions) if f["op"] != Op.LOOP] \
        == flat.instructions
    assert len(program.instructions) < len(flat.instructions)
    deepest, fields = _nesting(program.instructions)
    assert deepest == (1 if config.mem_bytes else 2) and stepped <= fields
    x = to_fixed(rng.uniform(-1, 1, (1,) + tuple(net.input_shape)), qnet.input_frac)
    y, runs = run_program(program, x)
    assert differences(qnet, program, x, runs) == []
    assert np.array_equal(y[0], qnet.run(x[0]))


#: A small node whose instruction memory holds a tall layer only with LOOPs.
TALL = SMALL.replace(imem_depth=256, loop_depth=4, nbin_depth=32, nbout_depth=32,
                     psum_depth=32, nm_depth=4096)


@pytest.mark.parametrize("config, shape, outputs", [
    (TALL, (3, 30, 40), 5),
    (TALL.replace(sb_depth=16, mem_bytes=32, mem_depth=1 << 14), (8, 40, 12), 12),
], ids=["resident", "streamed"])
def test_a_layer_made_with_loops_from_its_plan_runs(config, shape, outputs):
    # A convolution whose flat program would not fit the instruction memory is made with
    # LOOPs from its plan (passes of output blocks; in each, LOOPs over bands of output
    # rows, output tiles and chunks), its weights resident or streamed from main memory:
    # equal to golden, every counter equal to the cycle model.
    rng = np.random.default_rng(4)
    net = _net(rng, shape, [("conv", outputs, 3, 1, 1, "relu")])
    program, _ = _check(net, config, batch=1)
    [info] = program.layers
    assert info.looped and info.streamed == bool(config.mem_bytes)
    assert _nesting(program.instructions)[0] >= 2


def test_the_compiler_keeps_loops_that_cost_no_cycle():
    # DianNao's POOL3 folds 673 instructions into 47 at the same cycles; CLASS3's LOOPs
    # would delay it (342 cycles for 340), so its program stays flat.
    for name, kept in (("pool3", True), ("class3", False)):
        qnet = quantize(load_workload(f"diannao-{name}"))
        cfg = preset("diannao")
        flat = compile_network(qnet, cfg.replace(loop_depth=0))
        program = compile_network(qnet, cfg)
        assert (len(program.instructions) < len(flat.instructions)) == kept
        folded = fold_program(replace(flat, config=cfg))
        cycles = [sum(cycle_model.program_cycles(p.instructions, cfg))
                  for p in (flat, program, folded)]
        assert cycles[1] == cycles[0] and (cycles[2] == cycles[0]) == kept


@pytest.mark.parametrize("depth, loops", [
    (0, [dict(op=Op.LOOP, count=1, body=1)]),                  # no loops on this node
    (1, [dict(op=Op.LOOP, count=1, body=2), dict(op=Op.LOOP, count=1, body=1)]),  # too deep
    (1, [dict(op=Op.LOOP, count=0, body=1)]),                  # no iterations
    (1, [dict(op=Op.LOOP, count=1, body=0)]),                  # no body
])
def test_a_loop_the_controller_cannot_run_raises_the_error_flag(depth, loops):
    # (check_loops rejects these programs; the node must not run them either.)
    config = SMALL.replace(loop_depth=depth)
    net = _net(np.random.default_rng(4), (8,), [("fc", 4, "identity")])
    program = compile_network(quantize(net), config)
    bad = replace(program, instructions=loops + program.instructions)
    _, runs = run_program(bad, np.zeros((1, 8), dtype=np.int16))
    assert runs[0]["error"] and runs[0]["status"]["pc"] == len(loops)
