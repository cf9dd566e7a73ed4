# amaranth: UnusedElaboratable=no
"""The link-fault campaign: the injector makes each kind of fault in each direction, the
checks find each kind of corruption, and a small campaign over the host link RTL (a few
hundred frames, every kind of fault) ends with no silent corruption."""

from collections import Counter

import numpy as np
import pytest

from diannao.boards.protocol import (ABANDON_BYTES, Cmd, Status, encode_request,
                                     response_len)
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.node import Region
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.board import BoardEngine
from diannao.sim.engines.uart_sim import ByteNode, SimBytes, preload_weights
from diannao.sim.runtime.run import run_network
from diannao.sim.tools.digits import load_network, load_test_set
from diannao.sim.tools.link_faults import (DIRECTIONS, KINDS, FaultInjector, check_run,
                                           run_campaign)
from diannao.sim.cli import main


class FakeLine:
    """A stand-in for a simulated board: records what is written, delivers ``incoming``
    ``(time, byte)`` pairs when the clock reaches them."""

    byte_time = 1.0

    def __init__(self, incoming=()):
        self.now = 0.0
        self.out = []
        self.incoming = list(incoming)

    def write(self, data):
        self.out.append(bytes(data))

    def pause(self, seconds):
        self.out.append(seconds)

    def advance(self, seconds):
        self.now += max(seconds, 1e-6)

    def clock(self):
        return self.now

    def take(self):
        came = [item for item in self.incoming if item[0] <= self.now]
        self.incoming = self.incoming[len(came):]
        return came


FRAME = encode_request(2, Cmd.WRITE, Region.SB, 0x0102, 0x0A0B0C0D, tag=0x44)


@pytest.mark.parametrize("rates,match", [
    ({"drip": 0.1}, "unknown fault kinds"),
    ({"drop": 0.6, "flip": 0.6}, "summing to at most 1"),
    ({"drop": -0.1}, "probabilities"),
])
def test_injector_checks_rates(rates, match):
    with pytest.raises(ValueError, match=match):
        FaultInjector(FakeLine(), 2, rates)


def test_injector_checks_pause_and_flip_bits():
    with pytest.raises(ValueError, match="over the board's abandon time"):
        FaultInjector(FakeLine(), 2, {}, pause=(ABANDON_BYTES, 50))
    with pytest.raises(ValueError, match="flip_bits"):
        FaultInjector(FakeLine(), 2, {}, flip_bits=9)


@pytest.mark.parametrize("seed", range(8))
def test_injector_spoils_requests(seed):
    got = {}
    for kind in KINDS:
        line = FakeLine()
        injector = FaultInjector(line, 2, {kind: 1.0}, seed=seed)
        injector.write(FRAME)
        assert injector.counts == Counter({("request", kind): 1})
        assert injector.sent == [FRAME]
        got[kind] = line.out
    n = len(FRAME)
    (dropped,) = got["drop"]
    assert n - 2 <= len(dropped) < n
    (flipped,) = got["flip"]
    diff = [a ^ b for a, b in zip(flipped, FRAME) if a != b]
    assert len(flipped) == n and len(diff) == 1 and 1 <= bin(diff[0]).count("1") <= 4
    (cut,) = got["truncate"]
    assert 1 <= len(cut) < n and FRAME.startswith(cut)
    assert got["duplicate"][0] == FRAME and got["duplicate"][-1] == FRAME
    assert len(got["duplicate"]) in (2, 3)             # with or without a gap between
    head, pause, tail = got["pause"]
    assert head + tail == FRAME and ABANDON_BYTES < pause <= 2 * ABANDON_BYTES


RESPONSE = bytes([0x5A, Status.OK, 0x44, 1, 2, 3, 4, 0x99])


@pytest.mark.parametrize("seed", range(8))
def test_injector_spoils_responses(seed):
    n = response_len(2)
    assert len(RESPONSE) == n
    for kind in KINDS:
        line = FakeLine([(float(i), b) for i, b in enumerate(RESPONSE)])
        injector = FaultInjector(line, 2, {kind: 1.0}, seed=seed)
        came = injector.read(100, timeout=30.0)
        later = injector.read(100, timeout=200.0)
        assert injector.counts == Counter({("response", kind): 1})
        if kind == "drop":
            assert n - 2 <= len(came) < n and later == b""
        elif kind == "flip":
            assert len(came) == n and came != RESPONSE and later == b""
        elif kind == "truncate":
            assert RESPONSE.startswith(came) and len(came) < n and later == b""
        elif kind == "duplicate":
            assert came + later == RESPONSE + RESPONSE
        else:                                   # held back past the abandon time
            assert RESPONSE.startswith(came) and len(came) < n and came + later == RESPONSE


def test_injector_keeps_the_line_in_order():
    """A response held back holds back the ones behind it (a FIFO: nothing overtakes)."""
    two = [(float(i), b) for i, b in enumerate(RESPONSE + RESPONSE)]
    line = FakeLine(two)
    injector = FaultInjector(line, 2, {"pause": 1.0}, seed=1)
    came = injector.read(100, timeout=500.0)
    assert came == RESPONSE + RESPONSE


@pytest.fixture(scope="module")
def clean_run():
    """One fault-free run of the digits MLP (weights preloaded): what check_run reads."""
    cfg = preset("icebreaker")
    qnet = quantize(load_network("mlp"))
    x, _ = load_test_set((64,))
    batch = qnet.quantize_input(x[:2])
    program = compile_network(qnet, cfg, intermediates=True)
    top = ByteNode(cfg, 2)
    preload_weights(top, program)
    sim = SimBytes(top)
    injector = FaultInjector(sim, cfg.tn, {})
    out = run_network(qnet, batch, BoardEngine(injector, "icebreaker", load_weights=False),
                      intermediates=True)
    return program, batch, out.report.runs, qnet, list(sim.executed), list(injector.sent)


def test_check_run_passes_a_clean_run(clean_run):
    assert check_run(*clean_run) == []


def _start_positions(executed):
    return [i for i, e in enumerate(executed) if e == ("start",)]


@pytest.mark.parametrize("spoil,match", [
    # a write the driver never sent (garbage executed)
    (lambda ex: ex.insert(3, ("write", Region.SB, 7, 0x5A5A)), "did not send: SB address 7"),
    # an instruction word written, then an older value executed again over it
    (lambda ex: ex.append(next(e for e in ex if e[0] == "write" and e[1] == Region.IMEM)[:3]
                          + (12345,)), "did not send: IMEM"),
    # a table word that never got written
    (lambda ex: ex.remove(next(e for e in ex if e[0] == "write" and e[1] == Region.TABLE)),
     "TABLE address 0 holds None"),
    # a second run of the program
    (lambda ex: ex.insert(_start_positions(ex)[0] + 1, ("start",)), "started 3 times"),
    # an input row missing before the second START
    (lambda ex: ex.remove(next(e for e in ex[_start_positions(ex)[0]:] if e[0] == "write"
                               and e[1] == Region.NM)), "sample 1 started with NM row"),
])
def test_check_run_finds_each_corruption(clean_run, spoil, match):
    program, batch, runs, qnet, executed, sent = clean_run
    executed = list(executed)
    spoil(executed)
    assert any(match in p for p in check_run(program, batch, runs, qnet, executed, sent))


def test_check_run_finds_a_wrong_output(clean_run):
    program, batch, runs, qnet, executed, sent = clean_run
    bad = [dict(r) for r in runs]
    bad[1]["layer_outputs"] = [None if a is None else np.array(a) for a in
                               bad[1]["layer_outputs"]]
    bad[1]["layer_outputs"][-1][3] += 1
    assert any("sample 1 layer 1" in p for p in check_run(program, batch, bad, qnet, executed,
                                                           sent))


def test_small_campaign_has_no_silent_corruption():
    """A few hundred frames with every kind of fault in both directions (3% of the frames
    each: about a quarter of the frames faulted): the driver detects and retries, and every
    run it completes equals golden with nothing executed that it did not send."""
    result = run_campaign(300, seed=7, rates=dict.fromkeys(KINDS, 0.03), networks=("mlp",),
                          samples=2, preload=True)
    text = result.format()
    assert result.silent == 0 and result.problems == [], text
    assert result.reported == [] and result.link["failed"] == 0, text
    assert result.frames >= 300 and result.runs >= 1, text
    for direction in DIRECTIONS:
        for kind in KINDS:
            assert result.faults[direction, kind] >= 1, (direction, kind, text)
    assert result.link["retries"] >= result.faults["request", "drop"], text
    assert result.link["detected"] == result.link["retries"]
    # Every fault that cuts or corrupts a frame fails its attempt: none is tolerated.
    for kind in ("drop", "flip", "truncate", "pause"):
        assert result.outcomes["request", kind, "tolerated"] == 0, (kind, text)
    assert "silent corruptions: 0" in text


def test_cli_checks_its_arguments(capsys):
    assert main(["faults", "--rate", "0.5"]) == 2
    assert "--rate in [0, 0.2]" in capsys.readouterr().err
