"""Paging: programs longer than the instruction memory, in pages loaded by IMLOAD."""

import pytest

from diannao.hw.config import preset
from diannao.hw.isa import Op
from diannao.sim.compiler.paging import can_page, instruction_room, page

MEM = preset("small").replace(mem_bytes=16, mem_latency=5, mem_depth=4096, imem_depth=16)


def _body(n):
    """``n`` distinct instructions, HALT last."""
    return [dict(op=Op.LOAD, src=i, count=1) for i in range(n - 1)] + [dict(op=Op.HALT)]


def test_a_program_that_fits_is_not_paged():
    paged = page(_body(16), MEM, code_base=7)
    assert paged.code_beats == 0
    assert paged.origin == list(range(16))
    assert [f["op"] for f in paged.instructions] == [Op.LOAD] * 15 + [Op.HALT]


@pytest.mark.parametrize("n", [17, 22, 23, 24, 25, 31, 60, 200])
def test_pages_hold_the_program_in_order_with_their_loads(n):
    cfg, base = MEM, 40
    half, beats = cfg.imem_depth // 2, cfg.instr_beats
    paged = page(_body(n), cfg, code_base=base)
    flat = paged.instructions
    # The program's own instructions, each once and in order; main memory holds them all.
    assert [i for i in paged.origin if i is not None] == list(range(n))
    assert paged.code_beats == len(flat) * beats
    # Page 0 is the program's first half-memory; every page with a successor (from page 1)
    # begins with the IMLOAD of that successor into the other half and ends with the wait.
    assert paged.origin[:half] == list(range(half))
    pages = [flat[k:k + half] for k in range(0, len(flat), half)]
    for k, p in enumerate(pages[1:-1], start=1):
        load, wait = p[0], p[-1]
        assert (load["op"], load["dst"]) == (Op.IMLOAD, ((k + 1) % 2) * half)
        assert load["count"] == len(pages[k + 1])
        assert load["mem"] == base + (k + 1) * half * beats
        assert (wait["op"], wait["count"]) == (Op.SBLOAD, 0)
    # The last page loads pages 0 and 1 back, its own half last, right before HALT.
    *_, other, own, halt = pages[-1]
    mine = (len(pages) - 1) % 2
    assert halt["op"] == Op.HALT
    for load, h in ((other, 1 - mine), (own, mine)):
        assert (load["op"], load["dst"], load["mem"]) == (Op.IMLOAD, h * half,
                                                           base + h * half * beats)
        assert load["count"] == len(pages[h])
    assert all(f["op"] != Op.IMLOAD for f in pages[-1][:-3])


def test_what_cannot_page():
    assert can_page(MEM)
    assert not can_page(MEM.replace(mem_bytes=0))
    assert not can_page(MEM.replace(imem_depth=12))           # not a power of two
    assert not can_page(MEM.replace(imem_depth=4))            # pages too short
    assert instruction_room(MEM.replace(mem_bytes=0)) == 16
    assert instruction_room(MEM) == 4096 // MEM.instr_beats
    with pytest.raises(ValueError, match=r"200 instructions.*16 \(imem_depth\)"):
        page(_body(200), MEM.replace(mem_bytes=0), code_base=0)
