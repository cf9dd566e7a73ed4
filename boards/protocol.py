"""The UART host-link protocol, defined once for the gateware and the host driver.

See ``docs/host-protocol.md``. Every request is a fixed-length frame::

    0xA5  cmd  tag  region  addr[ADDR_BYTES = 4] (LE)  data[W] (LE)  crc

and every response a fixed-length frame::

    0x5A  status  tag  payload[W] (LE)  crc

with ``W = tn * 2`` bytes (one host word of the node, ``tn`` int16 values), ``tag`` the
request's tag echoed (the driver numbers its requests, so that a late or repeated response
is told from the answer it waits for) and ``crc`` the CRC-8 (polynomial 0x07, initial value
0, no reflection, no final XOR; "CRC-8/SMBUS") of the bytes between the sync byte and the
CRC.

Framing by silence: a sync byte starts a request only after :data:`GAP_BYTES` byte times in
which the board received nothing, and a request interrupted for :data:`ABANDON_BYTES` byte
times is abandoned. The bytes of a repeated or cut-off request that arrive back to back with
other bytes are thus never taken for the start of a frame.
"""

from enum import IntEnum

from diannao.hw.config import HOST_ADDR_WIDTH


__all__ = ["REQ_SYNC", "RESP_SYNC", "VERSION", "ADDR_BYTES", "GAP_BYTES", "ABANDON_BYTES",
           "Cmd", "Status", "FLAG_BUSY", "FLAG_DONE", "FLAG_ERROR", "crc8", "word_bytes",
           "request_len", "response_len", "encode_request", "decode_response",
           "status_fields", "ProtocolError"]

REQ_SYNC = 0xA5
RESP_SYNC = 0x5A
#: Protocol version, returned by INFO (2: tags, STALE, the run count, framing by silence).
VERSION = 2
#: Bytes of a request's address: the node's host-port address,
#: :data:`hw.config.HOST_ADDR_WIDTH` bits.
ADDR_BYTES = -(-HOST_ADDR_WIDTH // 8)
#: Byte times of silence on the board's receive line before a sync byte starts a request.
GAP_BYTES = 4
#: Byte times of silence after which the board abandons a partial request.
ABANDON_BYTES = 40


class Cmd(IntEnum):
    WRITE = 0x01    # host-port write of `data` to (region, addr); node idle
    READ = 0x02     # host-port read of (region, addr); the payload is the word read
    START = 0x03    # start the node if idle and data[7:0] == its run count; answered at once
    STATUS = 0x04   # payload byte 0: FLAG_* bits; byte 1: run count
    INFO = 0x05     # payload bytes 0..3: VERSION, tn, tiles, act_tables


class Status(IntEnum):
    OK = 0x00
    BAD_CRC = 0x01    # the frame's CRC did not match; nothing was executed
    BAD_CMD = 0x02    # unknown command, or region of a WRITE or READ; nothing was executed
    BUSY = 0x03       # WRITE / READ of NM / START while the node runs; nothing was executed
    STALE = 0x04      # START whose data[7:0] is not the run count; nothing was executed


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
    """Bytes of a request frame: sync, cmd, tag, region, address, data, CRC."""
    return 1 + 1 + 1 + 1 + ADDR_BYTES + word_bytes(tn) + 1


def response_len(tn):
    """Bytes of a response frame: sync, status, tag, payload, CRC."""
    return 1 + 1 + 1 + word_bytes(tn) + 1


def encode_request(tn, cmd, region=0, addr=0, data=0, tag=0):
    """The bytes of one request frame."""
    w = word_bytes(tn)
    body = (bytes([int(cmd) & 0xFF, int(tag) & 0xFF, int(region) & 0xFF])
            + int(addr).to_bytes(ADDR_BYTES, "little")
            + (int(data) & ((1 << (8 * w)) - 1)).to_bytes(w, "little"))
    return bytes([REQ_SYNC]) + body + bytes([crc8(body)])


def decode_response(tn, frame):
    """``(status, tag, payload_int)`` of a response frame; :class:`ProtocolError` if it is
    malformed (length, sync byte, CRC)."""
    if len(frame) != response_len(tn):
        raise ProtocolError(f"short response: {len(frame)} of {response_len(tn)} bytes "
                            f"({bytes(frame).hex()})")
    if frame[0] != RESP_SYNC:
        raise ProtocolError(f"response does not start with 0x{RESP_SYNC:02X}: "
                            f"{bytes(frame).hex()}")
    if crc8(frame[1:-1]) != frame[-1]:
        raise ProtocolError(f"response CRC mismatch: {bytes(frame).hex()}")
    return frame[1], frame[2], int.from_bytes(frame[3:-1], "little")


def status_fields(payload):
    """``(flags, runs)`` of a STATUS payload: the ``FLAG_*`` bits and the run count (the
    STARTs the node has executed since reset, modulo 256)."""
    return payload & 0xFF, (payload >> 8) & 0xFF
