# amaranth: UnusedElaboratable=no
"""Board tops in Amaranth's simulator behind a simulated UART: the host driver runs the
digits MLP bit-exact with golden; bad frames are reported and not executed; responses echo
the request's tag; a sync byte starts a frame only after a silence; a START runs only with
the node's run count, so a repeated one never runs the program twice."""

import numpy as np
import pytest

from diannao.sim.engines.board import BOARD_CLOCK_MHZ, BoardEngine, Link
from diannao.sim.runtime.run import run_network
from diannao.boards.host_link import HostLink
from diannao.boards.icebreaker import ICEBreakerTop
from diannao.boards.protocol import (Cmd, Status, FLAG_DONE, VERSION, GAP_BYTES,
                                     encode_request, decode_response, crc8)
from diannao.sim.engines.uart_sim import SimUART, preload_weights
from diannao.boards.uart import UARTRx, UARTTx
from diannao.boards.ulx3s import ULX3STop
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.node import Region
from diannao.sim.compiler.program import compile_network
from diannao.sim.tools.fuzz import differences
from diannao.sim.tools.digits import load_network, load_test_set

TOPS = {"icebreaker": ICEBreakerTop, "ulx3s": ULX3STop}


@pytest.fixture(scope="module")
def mlp():
    qnet = quantize(load_network("mlp"))
    x, _ = load_test_set((64,))
    return qnet, qnet.quantize_input(x[:1])


def test_crc8_known_value():
    # CRC-8/SMBUS check value.
    assert crc8(b"123456789") == 0xF4


@pytest.mark.parametrize("cls", [UARTRx, UARTTx])
def test_uart_divisor_validated(cls):
    with pytest.raises(ValueError, match="1"):
        cls(1)


def test_host_link_timeout_validated():
    with pytest.raises(ValueError, match="0"):
        HostLink(preset("icebreaker"), timeout=0)


@pytest.mark.parametrize("gap", [0, 101, "4"])
def test_host_link_gap_validated(gap):
    with pytest.raises(ValueError, match="gap"):
        HostLink(preset("icebreaker"), timeout=100, gap=gap)


def test_top_divisor_validated():
    with pytest.raises(ValueError, match="'x'"):
        ICEBreakerTop(divisor="x")


def test_bad_frames_are_reported_not_executed():
    top = ICEBreakerTop(divisor=2)
    uart = SimUART(top)
    link = Link(uart, 2)
    assert link.info() == (VERSION, 2, 1, 1)
    assert link.request(Cmd.WRITE, Region.NM, 5, 0x12345678) == 0
    assert link.request(Cmd.READ, Region.NM, 5) == 0x12345678
    # A frame with a wrong CRC: BAD_CRC, and NM keeps its value.
    bad = bytearray(encode_request(2, Cmd.WRITE, Region.NM, 5, 0x0BADF00D, tag=0x31))
    bad[-1] ^= 0x01
    assert link.send_frame(bad) == (Status.BAD_CRC, 0)
    # A corrupted data byte (CRC of the original): also rejected.
    bad = bytearray(encode_request(2, Cmd.WRITE, Region.NM, 5, 0x0BADF00D, tag=0x32))
    bad[9] ^= 0x40
    assert link.send_frame(bad)[0] == Status.BAD_CRC
    assert link.request(Cmd.READ, Region.NM, 5) == 0x12345678
    # A START with a bad CRC does not start the node.
    bad = bytearray(encode_request(2, Cmd.START, tag=0x33))
    bad[-1] ^= 0xFF
    assert link.send_frame(bad)[0] == Status.BAD_CRC
    assert link.status() == (0, 0)
    # Unknown command.
    assert link.send_frame(encode_request(2, 0x7E, tag=0x34))[0] == Status.BAD_CMD
    # Only the two good WRITEs were executed.
    assert uart.executed == [("write", Region.NM, 5, 0x12345678)]


def test_response_echoes_the_tag():
    uart = SimUART(ICEBreakerTop(divisor=2))
    uart.write(encode_request(2, Cmd.READ, Region.NM, 3, tag=0xC7))
    status, tag, _ = decode_response(2, uart.read(8))
    assert (status, tag) == (Status.OK, 0xC7)
    # Also when the frame is refused: BAD_CRC echoes the tag byte it received.
    bad = bytearray(encode_request(2, Cmd.READ, Region.NM, 3, tag=0x5E))
    bad[5] ^= 0x10
    uart.write(bad)
    assert decode_response(2, uart.read(8))[:2] == (Status.BAD_CRC, 0x5E)


def test_sync_starts_a_frame_only_after_a_silence():
    """Bytes back to back before a sync byte (the tail of a repeated or cut-off request):
    the frame is ignored, nothing executed, no response. After GAP_BYTES byte times of
    silence the same frame is executed."""
    uart = SimUART(ICEBreakerTop(divisor=2))
    frame = encode_request(2, Cmd.WRITE, Region.NM, 7, 0x0A0B0C0D, tag=9)
    uart.write(b"\x00\x13\x37" + frame)
    assert uart.read(8, timeout=60 * uart.byte_time) == b""
    assert uart.executed == []
    uart.write(b"\x00\x13\x37")
    uart.pause((GAP_BYTES + 1) * uart.byte_time)
    uart.write(frame)
    assert decode_response(2, uart.read(8))[:2] == (Status.OK, 9)
    assert uart.executed == [("write", Region.NM, 7, 0x0A0B0C0D)]


def test_a_frame_interrupted_is_abandoned():
    """A request cut off, silence for the abandon time, then a whole request: only the
    whole one is executed (the bytes of the two never merge)."""
    uart = SimUART(ICEBreakerTop(divisor=2))
    first = encode_request(2, Cmd.WRITE, Region.NM, 1, 0x11111111, tag=1)
    uart.write(first[:6])
    assert uart.read(1, timeout=45 * uart.byte_time) == b""
    uart.write(encode_request(2, Cmd.WRITE, Region.NM, 2, 0x22222222, tag=2))
    assert decode_response(2, uart.read(8))[:2] == (Status.OK, 2)
    assert uart.executed == [("write", Region.NM, 2, 0x22222222)]


def test_start_runs_only_with_the_run_count():
    """START's data byte must equal the node's run count: a repeated START (its response
    lost, or the frame duplicated) is answered STALE or BUSY and never runs the program
    twice; STATUS reports the count."""
    uart = SimUART(ICEBreakerTop(divisor=2))
    link = Link(uart, 2)                     # the program: instruction memory's zeros, HALT
    assert link.status() == (0, 0)
    assert link.transact(Cmd.START, data=1)[0] == Status.STALE      # not the count
    assert uart.executed.count(("start",)) == 0
    assert link.transact(Cmd.START, data=0)[0] == Status.OK
    again = link.transact(Cmd.START, data=0)[0]           # the same START once more
    assert again in (Status.STALE, Status.BUSY)
    assert uart.executed.count(("start",)) == 1
    assert link.status() == (FLAG_DONE, 1)
    assert link.start() == 2                              # Link.start reads the count
    assert uart.executed.count(("start",)) == 2


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s"])
def test_digits_mlp_over_simulated_uart(board, mlp):
    qnet, x_q = mlp
    cfg = preset(board)
    program = compile_network(qnet, cfg)
    top = TOPS[board](divisor=2)
    assert top.config == cfg
    preload_weights(top, program)            # SB images; the rest goes over the UART
    uart = SimUART(top)
    result = run_network(qnet, x_q, BoardEngine(uart, board, load_weights=False),
                         intermediates=True)
    assert np.array_equal(result.outputs, qnet.run(x_q))
    for ours, ref in zip(result.layer_outputs, qnet.run(x_q, intermediates=True)[1]):
        assert np.array_equal(ours, ref)
    assert differences(qnet, program, x_q, result.report.runs) == []
    assert result.report.clock_mhz == BOARD_CLOCK_MHZ[board]     # the engine's own clock
