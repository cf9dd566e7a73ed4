# amaranth: UnusedElaboratable=no
"""AdderTree: exact sums in every lane, latency log2(n), a new input vector every cycle."""

import numpy as np
import pytest

from diannao.hw.adder_tree import AdderTree
from diannao.sim.engines.vcd import simulate

import helpers as h


@pytest.mark.parametrize("n,width,lanes", [(2, 16, 1), (4, 32, 3), (16, 32, 16), (8, 5, 2)])
def test_sum_exact_pipelined(n, width, lanes, rng):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    vecs = rng.integers(lo, hi + 1, (64, lanes, n))
    vecs[0], vecs[1], vecs[2] = lo, hi, 0
    vecs[3] = [[lo if (i + j) % 2 else hi for i in range(n)] for j in range(lanes)]
    dut = AdderTree(n, width, lanes)
    lat = int(np.log2(n))
    assert dut.latency == lat
    assert len(dut.sum[0]) == width + lat
    got = {}

    async def bench(ctx):
        for s in range(len(vecs) + lat):
            if s < len(vecs):
                ctx.set(dut.inputs.as_value(), h.pack(vecs[s].reshape(-1), width))
            else:
                ctx.set(dut.inputs.as_value(), 0)
            await ctx.tick()
            # after s+1 edges the vector fed at step s - lat + 1 has come out
            src = s - lat + 1
            if 0 <= src < len(vecs):
                got[src] = [ctx.get(dut.sum[j]) for j in range(lanes)]

    simulate(dut, bench, name=f"adder_tree_{n}x{width}x{lanes}")
    assert [got[i] for i in range(len(vecs))] == vecs.sum(axis=2).tolist()


def test_latency_is_exactly_log2n():
    dut = AdderTree(8, 16)

    async def bench(ctx):
        ctx.set(dut.inputs.as_value(), h.pack([1] * 8, 16))
        await ctx.tick()
        ctx.set(dut.inputs.as_value(), 0)
        seen = []
        for _ in range(5):
            seen.append(ctx.get(dut.sum[0]))
            await ctx.tick()
        # the sum (8) appears after exactly 3 edges, for exactly one cycle
        assert seen == [0, 0, 8, 0, 0]

    simulate(dut, bench, name="adder_tree_latency")
