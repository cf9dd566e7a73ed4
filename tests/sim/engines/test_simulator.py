"""The simulator speed trick (diannao.sim.engines.simulator): the same values as Amaranth's
plain simulator, installed only on the Amaranth it was written for, and removable."""

import random
import subprocess
import sys
import tempfile

import pytest
from amaranth import Cat, Module, Signal, signed
from amaranth import sim as amaranth_sim
from amaranth.lib import memory
from amaranth.lib.data import ArrayLayout
from amaranth.sim import _pyrtl   # the private class the trick replaces a method of

from diannao.sim.engines import simulator


ORIGINAL = _pyrtl._RHSValueCompiler.__dict__["on_Concat"]


@pytest.fixture(autouse=True)
def restore():
    """Leave the trick as the test found it."""
    was = simulator.SPEEDUP_ACTIVE
    yield
    simulator.uninstall()
    if was:
        simulator.install()


TN, DEPTH, STEPS = 3, 8, 40
LANE = 16 * TN                                    # bits per SB lane (one write-enable bit)
ROW = ArrayLayout(ArrayLayout(signed(16), TN), TN)  # an SB row (hw.sb.row_layout)


def _design():
    m = Module()
    ports = dict(
        en=Signal(5), b=Signal(), s=Signal(signed(1)), x=Signal(4),
        rep=Signal(5 * 7), srep=Signal(9), mixed=Signal(3), xrep=Signal(12), one=Signal(1),
        masked=Signal(8), y=Signal(8))
    p = ports
    m.d.comb += [
        p["rep"].eq(Cat(p["en"][i].replicate(7) for i in range(5))),   # the write-enable form
        p["srep"].eq(p["s"].replicate(9)),                              # a signed bit
        p["mixed"].eq(Cat(p["b"], p["b"], p["en"][0])),                 # not all one value
        p["xrep"].eq(p["x"].replicate(3)),                              # a wider value
        p["one"].eq(Cat(p["b"])),                                       # one part
        p["masked"].eq(p["y"] & Cat(p["b"].replicate(8))),              # inside an expression
    ]
    m.submodules.mem = mem = memory.Memory(shape=ROW, depth=DEPTH, init=[])
    wp = mem.write_port(granularity=1)               # as hw.buffer.Buffer for hw.sb.SB
    rp = mem.read_port(domain="comb")
    return m, ports, wp, rp


def _expected_comb(v):
    en, b, s, x, y = v["en"], v["b"], v["s"], v["x"], v["y"]
    rep = 0
    for i in range(5):
        if en >> i & 1:
            rep |= 0x7F << (7 * i)
    return dict(rep=rep, srep=0x1FF if s else 0, mixed=b | b << 1 | (en & 1) << 2,
                xrep=x | x << 4 | x << 8, one=b, masked=y if b else 0)


def _run(sim_class):
    """Random inputs, lane writes and reads on a fresh simulator of ``sim_class``; each
    observed value is checked against the model here."""
    m, p, wp, rp = _design()
    rng = random.Random(1)
    rows = [0] * DEPTH
    observed = []

    async def bench(ctx):
        for _ in range(STEPS):
            v = dict(en=rng.getrandbits(5), b=rng.getrandbits(1), s=rng.getrandbits(1),
                     x=rng.getrandbits(4), y=rng.getrandbits(8))
            for name, value in v.items():
                ctx.set(p[name], -value if name == "s" else value)
            for name, want in _expected_comb(v).items():
                got = ctx.get(p[name])
                assert got == want, (name, v, got, want)
                observed.append(got)
            addr, en, data = rng.randrange(DEPTH), rng.getrandbits(TN), rng.getrandbits(LANE * TN)
            ctx.set(wp.addr, addr)
            ctx.set(wp.en, en)
            ctx.set(wp.data.as_value(), data)
            await ctx.tick()
            for lane in range(TN):
                if en >> lane & 1:
                    mask = ((1 << LANE) - 1) << (lane * LANE)
                    rows[addr] = rows[addr] & ~mask | data & mask
            ctx.set(wp.en, 0)
            for a in range(DEPTH):
                ctx.set(rp.addr, a)
                got = ctx.get(rp.data.as_value())
                assert got == rows[a], (a, got, rows[a])
                observed.append(got)

    sim = sim_class(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return observed


def _generated_code(monkeypatch, tmp_path, run):
    """Run ``run()`` with Amaranth's code dump on; the simulator's generated Python."""
    tmp_path.mkdir(exist_ok=True)
    monkeypatch.setenv("AMARANTH_pysim_dump", "1")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = run()
    return result, "\n".join(f.read_text() for f in tmp_path.glob("amaranth_pysim_*"))


MASK = "& -(1 & "   # the trick's expression in generated code

#: The tests that install the trick run only on the Amaranth it was written for.
written_for = pytest.mark.skipif(simulator.amaranth_version() != simulator.WRITTEN_FOR,
                                 reason=f"the trick is for Amaranth {simulator.WRITTEN_FOR}")


@written_for
def test_trick_gives_the_plain_values(monkeypatch, tmp_path):
    simulator.uninstall()
    plain, plain_code = _generated_code(monkeypatch, tmp_path / "plain",
                                        lambda: _run(amaranth_sim.Simulator))
    assert MASK not in plain_code
    assert simulator.install() and simulator.SPEEDUP_ACTIVE
    fast, fast_code = _generated_code(monkeypatch, tmp_path / "fast",
                                      lambda: _run(simulator.Simulator))
    assert MASK in fast_code and len(fast_code) < len(plain_code)
    assert fast == plain


@written_for
def test_simulator_installs():
    simulator.uninstall()
    _run(simulator.Simulator)
    assert simulator.SPEEDUP_ACTIVE
    assert _pyrtl._RHSValueCompiler.on_Concat is not ORIGINAL


@pytest.mark.parametrize("version", ["0.5.9", "0.5.11", "0.6.0"])
def test_other_version_uses_the_plain_simulator(monkeypatch, tmp_path, version):
    simulator.uninstall()
    monkeypatch.setattr(simulator, "amaranth_version", lambda: version)
    assert simulator.install() is False
    assert not simulator.SPEEDUP_ACTIVE and version in simulator.SPEEDUP_REASON
    assert _pyrtl._RHSValueCompiler.__dict__["on_Concat"] is ORIGINAL
    observed, code = _generated_code(monkeypatch, tmp_path, lambda: _run(simulator.Simulator))
    assert observed and MASK not in code
    assert _pyrtl._RHSValueCompiler.__dict__["on_Concat"] is ORIGINAL


def test_missing_internal_uses_the_plain_simulator(monkeypatch):
    simulator.uninstall()
    monkeypatch.delattr(_pyrtl, "_RHSValueCompiler")
    assert simulator.install() is False
    assert not simulator.SPEEDUP_ACTIVE and "_RHSValueCompiler" in simulator.SPEEDUP_REASON


@written_for
def test_install_is_idempotent_and_uninstall_restores():
    simulator.uninstall()
    assert _pyrtl._RHSValueCompiler.__dict__["on_Concat"] is ORIGINAL
    assert simulator.install()
    installed = _pyrtl._RHSValueCompiler.on_Concat
    assert installed is not ORIGINAL
    assert simulator.install()
    assert _pyrtl._RHSValueCompiler.on_Concat is installed    # not wrapped twice
    simulator.uninstall()
    simulator.uninstall()
    assert _pyrtl._RHSValueCompiler.__dict__["on_Concat"] is ORIGINAL
    assert not simulator.SPEEDUP_ACTIVE


def test_importing_installs_nothing():
    code = ("import amaranth.sim._pyrtl as p; before = p._RHSValueCompiler.on_Concat\n"
            "import diannao.sim.engines.simulator as s, diannao.sim.engines.vcd\n"
            "assert p._RHSValueCompiler.on_Concat is before and not s.SPEEDUP_ACTIVE\n")
    subprocess.run([sys.executable, "-c", code], check=True)
