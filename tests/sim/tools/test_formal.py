"""The formal proofs (sim/tools/formal.py): each property is proved, and each harness built
with a deliberately wrong reference fails with a counterexample trace (so a proof can
fail)."""

import pytest

from diannao.sim.tools import formal
from diannao.sim.tools.formal import PROPERTIES, check, tools_available


def _require_tools():
    ok, why = tools_available()
    if not ok:
        pytest.skip(why)


@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.name for p in PROPERTIES])
def test_property_is_proved(prop, tmp_path):
    _require_tools()
    result = check(prop, tmp_path)
    assert result.status == "proved", result.detail


@pytest.mark.parametrize("prop", PROPERTIES, ids=[p.name for p in PROPERTIES])
def test_a_wrong_reference_fails_with_a_trace(prop, tmp_path):
    _require_tools()
    result = check(prop, tmp_path, flaw=True)
    assert result.status == "failed", result.detail
    assert result.trace is not None and result.trace.stat().st_size > 0
    assert result.trace.suffix == ".vcd"


def test_command_prints_a_line_per_property(tmp_path, capsys):
    _require_tools()
    assert formal.main(["fat-tree", "nfu2-shifter", "--workdir", str(tmp_path)]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if not l.startswith(" ")]
    assert [l.split()[:2] for l in lines] == [["proved", "fat-tree"], ["proved", "nfu2-shifter"]]
    assert "k-induction (k=4)" in lines[0] and "from reset, 7 cycles" in lines[1]
    with pytest.raises(SystemExit):
        formal.main(["no-such-property"])



def test_host_link_harness_finds_the_link_registers():
    # The host-link proofs state invariants over HostLink's registers, found by name in the
    # elaborated component: a renamed register fails loudly here, without a solver.
    from diannao.boards.host_link import HostLink
    from diannao.hw.config import preset
    link = HostLink(preset("icebreaker"), 80, gap=8)
    inner = link.elaborate(None)
    link._MustUse__silence = inner._MustUse__silence = True
    regs, state, encoding = formal._internals(inner, ("crc", "count", "frame", "runs"))
    assert set(regs) == {"crc", "count", "frame", "runs"} and len(regs["crc"]) == 8
    assert {"HUNT", "RECV", "EXEC", "SEND"} <= set(encoding) and encoding["HUNT"] == 0
    with pytest.raises(ValueError, match="not found"):
        formal._internals(inner, ("crc", "no_such_register"))


def test_host_link_reference_crc_is_the_protocol_crc():
    # The harness's CRC (an XOR table) against boards.protocol.crc8, for every byte.
    from amaranth import Module, Signal
    from amaranth.sim import Simulator
    from diannao.boards.protocol import crc8
    m = Module()
    crc, byte, out = Signal(8), Signal(8), Signal(8)
    m.d.comb += out.eq(formal._crc8_ref(crc, byte))
    sim = Simulator(m)

    async def bench(ctx):
        for b in range(256):
            c = (b * 37 + 11) & 0xFF
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == crc8(bytes([b]), c), (c, b)

    sim.add_testbench(bench)
    sim.run()
