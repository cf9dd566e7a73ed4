"""The node's latencies measured on the RTL against a table written by hand.

Every figure below comes from the stage counts documented in ``docs/architecture.md``, not
from the RTL modules nor from the cycle model; the RTL's cycle counter must match them, and
so must the cycle model's latency functions.
"""

import numpy as np
import pytest

from diannao.golden.network import FC, Network
from diannao.golden.quant import quantize
from diannao.hw.config import Config, preset
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.pysim import run_program

#: Cycles from a row's emission to its NBout write, by ``(tn, deep_pipeline)``: buffer read
#: (1; 2 deep) + NFU-1 (1; 2) + NFU-2 (log2 tn + 3; log2 tn + 8) + NFU-3 (5; 10).
PIPELINE = {(2, 0): 1 + 1 + 4 + 5, (4, 0): 1 + 1 + 5 + 5, (8, 0): 1 + 1 + 6 + 5,
            (16, 0): 1 + 1 + 7 + 5,
            (2, 1): 2 + 2 + 9 + 10, (4, 1): 2 + 2 + 10 + 10, (8, 1): 2 + 2 + 11 + 10,
            (16, 1): 2 + 2 + 12 + 10}
#: Instruction fetch cycles: 1; 3 deep (registered read, then a register); narrow: one per
#: host word of the 533-bit instruction (tn=2: 32-bit words, 17; tn=4: 64-bit words, 9).
FETCH = {"plain": 1, "deep": 3, "narrow tn=2": 17, "narrow tn=4": 9}
#: Fat-tree levels (one register each way), by tiles.
TREE = {1: 1, 2: 1, 4: 2, 8: 3, 16: 4}
#: NM/NBout read latency at the node: 1; 3 deep (a register in front of the block RAM and
#: the RAM's output register).
NODE_READ = {0: 1, 1: 3}

CONFIGS = {
    "small": (preset("small"), "plain"),
    "deep": (preset("small").replace(deep_pipeline=1), "deep"),
    "narrow tn=2 16 tiles": (Config(tn=2, tiles=16, imem_narrow=1, imem_depth=16),
                             "narrow tn=2"),
    "narrow tn=4 2 tiles": (Config(tn=4, tiles=2, imem_narrow=1, imem_depth=16), "narrow tn=4"),
    "tn=8 2 tiles deep": (Config(tn=8, tiles=2, deep_pipeline=1), "deep"),
}


def _expected(cfg, fetch, n, o):
    """Cycles of LOAD, CONV (an FC n -> o on tile 0, the others idle or equal), STORE and
    HALT, from the tables above and the documented instruction timings
    (``hw.node_controller.NodeController``)."""
    fd = FETCH[fetch] + 1                              # fetch, decode
    tn, tree, rl = cfg.tn, TREE[cfg.tiles], NODE_READ[cfg.deep_pipeline]
    cb, ob = -(-n // tn), -(-o // tn)
    per_tile = -(-ob // cfg.tiles)                     # blocks of the busiest tile
    load = fd + cb + 1 + tree + rl
    emissions = per_tile * (1 + cb)                    # a bias row, then the input rows
    busy = 3 + emissions + PIPELINE[(tn, cfg.deep_pipeline)]    # tiles, start to done
    drain = ob + cfg.tiles + 1 + tree + rl             # a STORE's rows, tile steps, tree
    if cfg.imem_narrow:
        # ISSUE starts the tiles and WAIT holds the node through their done cycle; the
        # STORE's SYNC cycle finds them free.
        conv = fd + 1 + busy
        store = fd + 1 + drain
    else:
        # ISSUE starts the tiles and the node moves on: the STORE is fetched and decoded
        # while they work, and its SYNC waits until the cycle after their done.
        conv = fd + 1
        store = busy + 1 + drain
    return load + conv + store + fd


@pytest.mark.parametrize("name", CONFIGS)
def test_latency_tables_match_the_cycle_model(name):
    cfg, fetch = CONFIGS[name]
    assert cycle_model.pipeline_latency(cfg) == PIPELINE[(cfg.tn, cfg.deep_pipeline)]
    assert cycle_model.fetch_cycles(cfg) == FETCH[fetch]
    assert cycle_model.tree_latency(cfg.tiles) == TREE[cfg.tiles]
    assert cfg.node_read_latency == NODE_READ[cfg.deep_pipeline]


@pytest.mark.parametrize("name", CONFIGS)
def test_rtl_cycles_equal_the_hand_table(name):
    cfg, fetch = CONFIGS[name]
    rng = np.random.default_rng(0)
    n, o = 3 * cfg.tn + 1, cfg.tn * cfg.tiles - 1       # every tile but the last: all blocks
    qnet = quantize(Network((n,), [FC(rng.normal(0, 0.3, (o, n)), rng.normal(0, 0.1, o))]))
    program = compile_network(qnet, cfg)
    assert [f["op"].name for f in program.instructions] == ["LOAD", "CONV", "STORE", "HALT"]
    assert program.instructions[1]["log2_gob"] == cfg.log2_tiles   # blocks over the tiles
    x = rng.integers(-300, 300, (1, n))
    y, runs = run_program(program, x)
    assert np.array_equal(y, qnet.run(x))
    assert runs[0]["cycles"] == _expected(cfg, fetch, n, o)
