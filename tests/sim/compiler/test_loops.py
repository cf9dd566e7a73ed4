"""Folding repeats into LOOPs: the node runs exactly the program it was given (the RTL runs
folded programs in tests/hw/test_node.py and in the fuzz)."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from diannao.golden.network import FC, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.isa import Op, check_loops, expand, load_fields, wrap
from diannao.sim.compiler.loops import fold, fold_program, offset, repeat, translate
from diannao.sim.compiler.program import compile_network


def _ran(program):
    return [f for _, f in expand(program) if f["op"] != Op.LOOP]


def test_a_run_of_loads_becomes_one_loop():
    program = [load_fields(src=7 + 3 * i, dst=2 * i, count=4) for i in range(10)]
    assert fold(program, 1) == [dict(op=Op.LOOP, count=10, body=1, src=3, mem=0, dst=2,
                                     sb_base=0, nbin_org=0, out_base=0), program[0]]


def test_a_repeat_of_loops_nests():
    # Rows of three LOADs: src steps 1 along a row, 100 from row to row.
    program = [load_fields(src=100 * i + j, count=1) for i in range(4) for j in range(3)]
    one, two = fold(program, 1), fold(program, 2)
    assert [f.get("src") for f in one] == [100, 0, 1, 2] and _ran(one) == program
    assert [(f["op"], f.get("count"), f.get("body"), f.get("src")) for f in two] == [
        (Op.LOOP, 4, 2, 100), (Op.LOOP, 3, 1, 1), (Op.LOAD, 1, None, 0)]
    assert _ran(two) == program
    check_loops(two + [dict(op=Op.HALT)], 2)


def test_what_does_not_repeat_stays():
    program = [load_fields(src=s, count=c) for s, c in [(0, 1), (5, 1), (5, 2), (9, 3)]]
    assert fold(program, 2) == program


def test_a_loop_never_moves_the_fields_its_op_does_not_hold():
    # A STORE holds no address: it repeats unchanged beside a LOAD whose src steps.
    program = [f for i in range(5) for f in (load_fields(src=4 * i, count=4),
                                              dict(op=Op.STORE, nbout_half=0, sync=0))]
    folded = fold(program, 1)
    assert len(folded) == 3 and folded[0]["src"] == 4 and _ran(folded) == program


def test_fold_takes_a_program_without_loops():
    with pytest.raises(ValueError, match="without LOOPs"):
        fold([dict(op=Op.LOOP, count=2, body=1), load_fields(src=0, count=1)], 1)


_instr = st.one_of(
    st.builds(lambda s, d, c: load_fields(src=s, dst=d, count=c),
              st.integers(0, 40), st.integers(0, 40), st.integers(1, 3)),
    st.builds(lambda s, h: dict(op=Op.SBLOAD, mem=s, dst=h, count=2, sync=0),
              st.integers(0, 40), st.integers(0, 8)),
    st.builds(lambda h, s: dict(op=Op.STORE, nbout_half=h, sync=s),
              st.integers(0, 1), st.integers(0, 1)))


@st.composite
def _programs(draw):
    """Pieces that repeat with steps (as a compiler's tiles and chunks do), nested, between
    instructions that do not."""
    def piece(level):
        if level == 0 or draw(st.booleans()):
            return [draw(_instr)]
        body = [f for _ in range(draw(st.integers(1, 3))) for f in piece(level - 1)]
        step = dict(src=draw(st.integers(-3, 3)), mem=draw(st.integers(-3, 3)),
                    dst=draw(st.integers(0, 3)))
        out = []
        for i in range(draw(st.integers(1, 5))):
            for f in body:
                out.append({k: v + i * step[k] if k in step and k in f else v
                            for k, v in f.items()})
        return out
    return [f for _ in range(draw(st.integers(1, 4))) for f in piece(2)
            if all(f.get(k, 0) >= 0 for k in ("src", "mem", "dst"))]


@settings(max_examples=200, deadline=None)
@given(program=_programs(), depth=st.integers(1, 3))
def test_the_folded_program_runs_what_it_folds(program, depth):
    folded = fold(program, depth, max_body=8)
    check_loops(folded + [dict(op=Op.HALT)], depth)
    assert _ran(folded) == program
    assert len(folded) <= len(program)


def test_fold_program_takes_a_program_that_does_not_page():
    # A loop may not cross a page: a paged program is refused, naming why.
    net = Network((40,), [FC(np.full((30, 40), 0.01), np.zeros(30)),
                          FC(np.full((20, 30), 0.01), np.zeros(20))])
    cfg = preset("small").replace(sb_depth=16, mem_bytes=32, mem_depth=1 << 14, imem_depth=8)
    program = compile_network(quantize(net), cfg)
    assert len(program.instructions) > cfg.imem_depth
    with pytest.raises(ValueError, match="takes a program that does not page"):
        fold_program(replace(program, config=cfg.replace(loop_depth=2)))


def test_translate_moves_addresses_and_offset_finds_the_move():
    a = [load_fields(src=3, dst=0, count=2), dict(op=Op.SBLOAD, mem=7, dst=4, count=2),
         dict(op=Op.LOOP, count=2, body=1, src=1, mem=0, dst=0, sb_base=0, nbin_org=0,
              out_base=0), dict(op=Op.STORE, nbout_half=1, sync=0)]
    b = translate(a, dict(src=5, mem=-2))
    assert [f.get("src") for f in b] == [8, None, 1, None]      # a LOOP's steps stay
    assert [f.get("mem") for f in b] == [None, 5, 0, None]
    # (A step is modulo the field's width, as a LOOP adds it.)
    assert offset(a[:2], b[:2]) == dict(src=5, mem=wrap("mem", -2), dst=0, sb_base=0,
                                        nbin_org=0, out_base=0)
    assert offset(a[:2], a[:1]) is None                        # not the same length
    assert offset(a[:1], [dict(a[0], count=3)]) is None        # not only addresses


def _bands(k, parity=True):
    """A layer of ``k`` bands as the compiler lists it: a first LOAD, then per band a LOAD
    (its NM row 10 on from the last) and a compute instruction into NBout's half ``band
    mod 2`` (with ``parity``), then a STORE that waits."""
    out = [load_fields(src=0, count=1)]
    for band in range(k):
        out += [load_fields(src=3 + 10 * band, count=2),
                dict(op=Op.CONV, out_base=100 + 4 * band, nbout_half=band % 2 if parity else 0)]
    return out + [dict(op=Op.STORE, nbout_half=0, sync=1)]


@pytest.mark.parametrize("n", [6, 7, 40])
@pytest.mark.parametrize("parity", [False, True])
def test_repeat_loops_over_the_period_the_samples_show(n, parity):
    # Bands repeat with their addresses stepped (every one, or every other one when NBout's
    # halves alternate): from samples of a few bands, a LOOP over them whose run is the
    # listing of all n.
    looped = repeat(lambda k: _bands(k, parity), n, dict(src=10, out_base=4), depth=2)
    assert [f for _, f in expand(looped) if f["op"] != Op.LOOP] == _bands(n, parity)
    check_loops(looped + [dict(op=Op.HALT)], 2)
    assert len(looped) < 12


def test_repeat_gives_none_when_the_samples_do_not_repeat():
    # A layer whose bands grow: no period, nothing made.
    def growing(k):
        return [load_fields(src=0, count=b + 1) for b in range(k) for _ in range(b + 1)]
    assert repeat(growing, 30, dict(src=0), depth=2) is None
