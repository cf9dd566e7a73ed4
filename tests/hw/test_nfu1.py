# amaranth: UnusedElaboratable=no
"""NFU-1: exact 16x16 -> 32-bit products, latency 1 (2 with input registers), one row per
cycle."""

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Fragment

from diannao.hw.nfu1 import NFU1
from diannao.sim.engines.vcd import simulate

import helpers as h


class _AsOnFPGA(Elaboratable):
    """Elaborates ``dut`` as an FPGA build would (with a platform): NFU1 then registers
    every product separately instead of one word per lane."""

    def __init__(self, dut):
        self.dut = dut

    def elaborate(self, platform):
        return Fragment.get(self.dut, platform=object())


def _vectors(tn, rng, n, edges):
    xs = rng.integers(-32768, 32768, (n, tn))
    ws = rng.integers(-32768, 32768, (n, tn, tn))
    # extremes: every pairing of the int16 edge values, and all-min/all-max rows
    for k, (a, b) in enumerate([(a, b) for a in edges for b in edges][:n // 2]):
        xs[k] = a
        ws[k] = b
    xs[-1], ws[-1] = -32768, -32768
    xs[-2], ws[-2] = 32767, -32768
    return xs, ws


@pytest.mark.parametrize("input_regs", [False, True], ids=["latency1", "latency2"])
@pytest.mark.parametrize("fpga", [False, True])
@pytest.mark.parametrize("tn", [4, 16])
def test_products_exact_latency_ii_1(tn, fpga, input_regs, rng):
    xs, ws = _vectors(tn, rng, 120, h.INT16_EDGES)
    dut = NFU1(tn, input_regs=input_regs)
    latency = 2 if input_regs else 1
    assert dut.latency == latency
    got = []

    async def bench(ctx):
        for s in range(len(xs) + 3):
            if s < len(xs):
                ctx.set(dut.x.as_value(), h.pack(xs[s]))
                ctx.set(dut.w.as_value(), h.pack(ws[s]))
            else:
                # garbage after the last row must not reach a valid output
                ctx.set(dut.x.as_value(), 0)
            ctx.set(dut.valid_in, int(s < len(xs)))
            await ctx.tick()
            # after this edge the products of step s - (latency - 1) are visible
            k = s - (latency - 1)
            assert ctx.get(dut.o.valid) == int(0 <= k < len(xs))
            if 0 <= k < len(xs):
                got.append(h.unpack(ctx.get(dut.o.payload.as_value()), tn * tn, 32))

    simulate(_AsOnFPGA(dut) if fpga else dut, bench,
             name=f"nfu1_tn{tn}_{'fpga' if fpga else 'sim'}_l{latency}")
    # independent: products[j][i] = w[j][i] * x[i], as int64
    want = (ws * xs[:, None, :]).reshape(len(xs), -1)
    np.testing.assert_array_equal(np.array(got), want)
