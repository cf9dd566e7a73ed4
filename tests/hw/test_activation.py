"""NFU-3 (Activation): every int16 input through each built-in table, bit for bit with
golden.formats.PWLTable.eval; bypass; latency; table slots."""

import numpy as np
import pytest

from golden.formats import build_table
from hw.activation import Activation, TABLE_WORDS, table_words
from sim.waves import simulate


def _run(tables, table_index, xs, tn=16, act=1):
    dut = Activation(tn, tables=len(tables))
    got, latencies = [], []

    async def bench(ctx):
        for t, table in enumerate(tables):
            for w, word in enumerate(table_words(table)):
                ctx.set(dut.tbl_we, 1)
                ctx.set(dut.tbl_addr, t * TABLE_WORDS + w)
                ctx.set(dut.tbl_data, word)
                await ctx.tick()
        ctx.set(dut.tbl_we, 0)
        ctx.set(dut.table, table_index)
        ctx.set(dut.act, act)
        rows = xs.reshape(-1, tn)
        sent = 0
        for k in range(len(rows) + Activation.latency):
            if k < len(rows):
                ctx.set(dut.x, rows[k].tolist())
                ctx.set(dut.valid_in, 1)
            else:
                ctx.set(dut.valid_in, 0)
            await ctx.tick()
            if ctx.get(dut.valid_out):
                latencies.append(k + 1 - len(got) // tn)
                got.extend(ctx.get(dut.y[j]) for j in range(tn))

    simulate(dut, bench, name=f"activation_{table_index}")
    return np.array(got), latencies


ALL = np.arange(-32768, 32768, dtype=np.int64)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "identity"])
def test_every_int16_input_matches_golden(name):
    table = build_table(name, 8)
    # Put the table in slot 1 of 2 to exercise table selection.
    y, lat = _run([build_table("identity", 8), table], 1, ALL)
    assert np.array_equal(y, table.eval(ALL))
    assert set(lat) == {Activation.latency}


def test_bypass_passes_values_with_the_same_latency():
    xs = np.random.default_rng(0).integers(-32768, 32768, 64)
    y, lat = _run([build_table("sigmoid", 8)], 0, xs, act=0)
    assert np.array_equal(y, xs) and set(lat) == {Activation.latency}


def test_parameter_validation():
    with pytest.raises(ValueError, match="12"):
        Activation(12)
    with pytest.raises(ValueError, match="9"):
        Activation(4, tables=9)
