"""The UART host-link protocol, defined once for the gateware and the host driver.

See ``docs/host-protocol.md``. Every request is a fixed-length frame::

    0xA5  cmd  region  addr[ADDR_BYTES = 4] (LE)  data[W] (LE)  crc

and every response a fixed-length frame::

    0x5A  status  payload[W] (LE)  crc

with ``W = tn * 2`` bytes (one host word of the node, ``tn`` int16 values) and ``crc`` the
CRC-8 (polynomial 0x07, initial value 0, no reflection, no final XOR; "CRC-8/SMBUS") of
the bytes between the sync byte and the CRC.
"""

from enum import IntEnum

from diannao.hw.config import HOST_ADDR_WIDTH


__all__ = ["REQ_SYNC", "RESP_SYNC", "VERSION", "ADDR_BYTES", "Cmd", "Status", "FLAG_BUSY", "FLAG_DONE",
           "FLAG_ERROR", "crc8", "word_bytes", "request_len", "response_len",
           "encode_request", "decode_response", "ProtocolError"]

REQ_SYNC = 0xA5
RESP_SYNC = 0x5A
#: Protocol version, returned by INFO.
VERSION = 1
#: Bytes of a request's address: the node's host-port address,
#: :data:`hw.config.HOST_ADDR_WIDTH` bits.
ADDR_BYTES = -(-HOST_ADDR_WIDTH // 8)


class Cmd(IntEnum):
    WRITE = 0x01    # host-port write of `data` to (region, addr); node idle
    READ = 0x02     # host-port read of (region, addr); the payload is the word read
    START = 0x03    # pulse the node's start; answered at once (poll STATUS for done)
    STATUS = 0x04   # payload byte 0: FLAG_* bits
    INFO = 0x05     # payload bytes 0..3: VERSION, tn, tiles, act_tables


class Status(IntEnum):
    OK = 0x00
    BAD_CRC = 0x01    # the frame's CRC did not match; nothing was executed
    BAD_CMD = 0x02    # unknown command; nothing was executed
    BUSY = 0x03       # WRITE / READ / START while the node runs; nothing was executed


FLAG_BUSY = 1 << 0
FLAG_DONE = 1 << 1     # the node finished since the last START
FLAG_ERROR = 1 << 2    # the node's error flag (unknown opcode)


class ProtocolError(IOError):
    """A malformed, missing or negative response from the board."""


def crc8(data, crc=0):
    """CRC-8/SMBUS (polynomial 0x07, init 0) of ``data`` (bytes), continuing from ``crc``."""
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def word_bytes(tn):
    """Bytes of one host word (``tn`` int16 values)."""
    return 2 * tn


def request_len(tn):
    return 1 + 1 + 1 + ADDR_BYTES + word_bytes(tn) + 1


def response_len(tn):
    return 1 + 1 + word_bytes(tn) + 1


def encode_request(tn, cmd, region=0, addr=0, data=0):
    """The bytes of one request frame."""
    w = word_bytes(tn)
    body = (bytes([int(cmd) & 0xFF, int(region) & 0xFF]) + int(addr).to_bytes(ADDR_BYTES, "little")
            + (int(data) & ((1 << (8 * w)) - 1)).to_bytes(w, "little"))
    return bytes([REQ_SYNC]) + body + bytes([crc8(body)])


def decode_response(tn, frame):
    """``(status, payload_int)`` of a response frame; :class:`ProtocolError` if malformed."""
    if len(frame) != response_len(tn):
        raise ProtocolError(f"short response: {len(frame)} of {response_len(tn)} bytes "
                            f"({frame.hex()})")
    if frame[0] != RESP_SYNC:
        raise ProtocolError(f"response does not start with 0x{RESP_SYNC:02X}: {frame.hex()}")
    if crc8(frame[1:-1]) != frame[-1]:
        raise ProtocolError(f"response CRC mismatch: {frame.hex()}")
    return frame[1], int.from_bytes(frame[2:-1], "little")
