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
