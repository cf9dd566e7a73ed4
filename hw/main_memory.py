"""Main memory: the port a node reads weights through, and a model of the memory behind it.

DianNao keeps its buffers small and streams what they do not hold from off-chip memory
(paper: DianNao, the DMAs of SB, NBin and NBout). :class:`MemoryBus` is the port, a request
stream and a response stream; :class:`MainMemory` is a behavioural model of the memory for
simulation: a configured width (``Config.mem_bytes``, one beat a cycle: the bandwidth),
latency (``Config.mem_latency``) and size (``Config.mem_depth``), with optional
pseudo-random stalls (``Config.mem_stalls``). A chip would put a memory controller (on the
ULX3S, its SDRAM) where the model is.
"""

from amaranth import *
from amaranth.lib import wiring, stream, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.buffer import Buffer
from diannao.hw.config import Config


__all__ = ["MemoryBus", "MainMemory", "mem_addr_width", "lfsr_next"]


def mem_addr_width(config):
    """Bits of a main-memory beat address."""
    return max(1, ceil_log2(config.mem_depth))


def _check(config, who):
    if not isinstance(config, Config):
        raise TypeError(f"{who} config must be a Config, not {config!r}")
    if not config.mem_bytes:
        raise ValueError(f"{who} needs a main memory: Config.mem_bytes is 0")


class MemoryBus(wiring.Signature):
    """A read port to main memory, seen from the reader (``Out(MemoryBus(config))``).

    Members
    -------
    req : ``Out(stream.Signature(mem_addr_width(config)))``
        Beat addresses. A request is taken in a cycle with ``valid`` and ``ready`` high;
        one a cycle at most.
    resp : ``In(stream.Signature(ArrayLayout(unsigned(tn * 16), mem_lanes), always_ready=True))``
        The beats, in the order of their requests, each ``Config.mem_latency`` cycles after
        its request was taken (the model's fixed latency; a reader must take any beat in
        any cycle, so it needs no ``ready``). A beat is ``mem_lanes`` host words, lane 0 in
        the low bits.

    Parameters
    ----------
    config : Config
        With ``mem_bytes`` > 0.
    """

    def __init__(self, config):
        _check(config, "MemoryBus")
        self.config = config
        beat = data.ArrayLayout(unsigned(config.row_bits), config.mem_lanes)
        super().__init__({
            "req": Out(stream.Signature(mem_addr_width(config))),
            "resp": In(stream.Signature(beat, always_ready=True)),
        })

    def __eq__(self, other):
        return type(other) is MemoryBus and self.members == other.members

    def __repr__(self):
        return f"MemoryBus({self.config!r})"


def lfsr_next(state):
    """The 16-bit Galois LFSR's next state (taps 16, 15, 13, 4; period 65,535): the stall
    sequence of :class:`MainMemory`, for a model to reproduce. ``state`` is a nonzero int
    or an Amaranth value."""
    if isinstance(state, int):
        return (state >> 1) ^ (0xB400 if state & 1 else 0)
    return Mux(state[0], (state >> 1) ^ 0xB400, state >> 1)


class MainMemory(wiring.Component):
    """A behavioural model of main memory, for simulation.

    ``config.mem_depth`` beats of ``config.mem_bytes`` bytes. A request taken in cycle
    ``a`` is answered in cycle ``a + config.mem_latency``: the address crosses
    ``mem_latency - 1`` registers, then a read of latency 1. With ``config.mem_stalls``
    ``= s`` the memory refuses requests (``ready`` low) in a cycle when the low 4 bits of a
    16-bit LFSR (:func:`lfsr_next`, seeded with ``config.mem_seed`` and stepped every cycle)
    are below ``s``: a stall one cycle in ``16 / s`` on average, a pattern a test can vary.

    Latency ``mem_latency`` cycles; throughput one beat a cycle (without stalls).

    The contents are :attr:`data` (a :class:`MemoryData`: simulations preload it directly),
    or written through ``write``, one lane (a host word) at a time: the host's path
    (region MEM of :class:`hw.node.HostBus`). The storage is a :class:`hw.buffer.Buffer`
    (its read port not transparent: a run never reads a beat the host writes, the host
    writes only while the node is idle), so that generated Verilog holds no initial
    contents for it.

    Parameters
    ----------
    config : Config
        With ``mem_bytes`` > 0.

    Members
    -------
    bus : ``In(MemoryBus(config))``
    write : ``In(Signature(en, addr, data))``
        Lane writes: ``data`` (one host word) to lane ``addr % mem_lanes`` of beat
        ``addr // mem_lanes`` when ``en``.
    """

    def __init__(self, config):
        _check(config, "MainMemory")
        self.config = config
        self.storage = Buffer(data.ArrayLayout(unsigned(config.row_bits), config.mem_lanes),
                              config.mem_depth, granularity=1)
        self.data = self.storage.data
        lane_bits = ceil_log2(config.mem_lanes)
        super().__init__({
            "bus": In(MemoryBus(config)),
            "write": In(wiring.Signature({
                "en": Out(1),
                "addr": Out(mem_addr_width(config) + lane_bits),
                "data": Out(config.row_bits),
            })),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        lanes = cfg.mem_lanes
        lane_bits = ceil_log2(lanes)
        m.submodules.storage = storage = self.storage
        rp, wp = storage.read, storage.write
        w = self.write
        m.d.comb += [wp.addr.eq(w.addr[lane_bits:]),
                     wp.data.eq(Cat(w.data for _ in range(lanes))),
                     wp.en.eq(Mux(w.en, 1 << w.addr[:lane_bits], 0) if lane_bits else w.en)]

        req, resp = self.bus.req, self.bus.resp
        if cfg.mem_stalls:
            state = Signal(16, init=cfg.mem_seed)
            m.d.sync += state.eq(lfsr_next(state))
            m.d.comb += req.ready.eq(state[:4] >= cfg.mem_stalls)
        else:
            m.d.comb += req.ready.eq(1)
        # The address's way to the read port: mem_latency - 1 registers.
        valid, addr = req.valid & req.ready, req.payload
        for k in range(cfg.mem_latency - 1):
            v, a = Signal(name=f"req_valid{k + 1}"), Signal.like(addr, name=f"req_addr{k + 1}")
            m.d.sync += [v.eq(valid), a.eq(addr)]
            valid, addr = v, a
        m.d.comb += [rp.addr.eq(addr), rp.en.eq(valid)]
        m.d.sync += resp.valid.eq(valid)
        m.d.comb += resp.payload.eq(rp.data)
        return m
