# amaranth: UnusedElaboratable=no
"""Board tops in Amaranth's simulator behind a simulated UART: the host driver runs the
digits MLP bit-exact with golden; bad frames are reported and not executed."""

import numpy as np
import pytest

from diannao.sim.engines.board import BOARD_CLOCK_MHZ, BoardEngine, Link
from diannao.sim.runtime.run import run_network
from diannao.boards.host_link import HostLink
from diannao.boards.icebreaker import ICEBreakerTop
from diannao.boards.protocol import Cmd, Status, FLAG_DONE, encode_request, crc8
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


def test_top_divisor_validated():
    with pytest.raises(ValueError, match="'x'"):
        ICEBreakerTop(divisor="x")


def test_bad_frames_are_reported_not_executed():
    top = ICEBreakerTop(divisor=2)
    link = Link(SimUART(top), 2)
    assert link.request(Cmd.WRITE, Region.NM, 5, 0x12345678) == 0
    assert link.request(Cmd.READ, Region.NM, 5) == 0x12345678
    # A frame with a wrong CRC: BAD_CRC, and NM keeps its value.
    bad = bytearray(encode_request(2, Cmd.WRITE, Region.NM, 5, 0x0BADF00D))
    bad[-1] ^= 0x01
    assert link.send_frame(bad) == (Status.BAD_CRC, 0)
    # A corrupted payload byte (CRC of the original): also rejected.
    bad = bytearray(encode_request(2, Cmd.WRITE, Region.NM, 5, 0x0BADF00D))
    bad[8] ^= 0x40
    assert link.send_frame(bad)[0] == Status.BAD_CRC
    assert link.request(Cmd.READ, Region.NM, 5) == 0x12345678
    # A START with a bad CRC does not start the node.
    bad = bytearray(encode_request(2, Cmd.START))
    bad[-1] ^= 0xFF
    assert link.send_frame(bad)[0] == Status.BAD_CRC
    assert not link.status() & FLAG_DONE
    # Unknown command.
    assert link.send_frame(encode_request(2, 0x7E))[0] == Status.BAD_CMD
    # Garbage before a frame is skipped; the link still answers.
    link.transport.write(b"\x00\x13\x37")
    assert link.request(Cmd.READ, Region.NM, 5) == 0x12345678


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
