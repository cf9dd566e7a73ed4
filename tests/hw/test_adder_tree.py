# amaranth: UnusedElaboratable=no
"""AdderTree: exact sums, latency log2(n), a new input vector every cycle."""

import numpy as np
import pytest

from hw.adder_tree import AdderTree
from sim.waves import simulate



@pytest.mark.parametrize("n,width", [(2, 16), (4, 32), (16, 32), (8, 5)])
def test_sum_exact_pipelined(n, width, rng, h):
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    vecs = rng.integers(lo, hi + 1, (64, n))
    vecs[0], vecs[1], vecs[2] = lo, hi, 0
    vecs[3] = [lo if i % 2 else hi for i in range(n)]
    dut = AdderTree(n, width)
    lat = int(np.log2(n))
    assert dut.latency == lat
    assert len(dut.sum) == width + lat
    got = {}

    async def bench(ctx):
        for s in range(len(vecs) + lat):
            if s < len(vecs):
                ctx.set(dut.inputs.as_value(), h.pack(vecs[s], width))
            else:
                ctx.set(dut.inputs.as_value(), 0)
            await ctx.tick()
            # after s+1 edges the vector fed at step s - lat + 1 has come out
            src = s - lat + 1
            if 0 <= src < len(vecs):
                got[src] = ctx.get(dut.sum)

    simulate(dut, bench, name=f"adder_tree_{n}x{width}")
    assert [got[i] for i in range(len(vecs))] == [int(v) for v in vecs.sum(axis=1)]


def test_latency_is_exactly_log2n(h):
    dut = AdderTree(8, 16)

    async def bench(ctx):
        ctx.set(dut.inputs.as_value(), h.pack([1] * 8, 16))
        await ctx.tick()
        ctx.set(dut.inputs.as_value(), 0)
        seen = []
        for _ in range(5):
            seen.append(ctx.get(dut.sum))
            await ctx.tick()
        # the sum (8) appears after exactly 3 edges, for exactly one cycle
        assert seen == [0, 0, 8, 0, 0]

    simulate(dut, bench, name="adder_tree_latency")


@pytest.mark.parametrize("n,width,bad", [(3, 16, "3"), (0, 16, "0"), (4, 0, "0")])
def test_rejects_bad_parameters(n, width, bad):
    with pytest.raises(ValueError, match=bad):
        AdderTree(n, width)
