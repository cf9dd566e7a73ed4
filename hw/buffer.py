"""A one-write-port, one-read-port buffer: the common shape of NBin, NBout and SB."""

from amaranth import *
from amaranth.hdl import MemoryData
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2

from diannao.hw.ecp5 import is_ecp5, ecp5_block_ram


__all__ = ["Buffer", "DISTRIBUTED_DEPTH"]

#: The deepest registered buffer (``read_latency=2``) an ECP5 build keeps in distributed
#: RAM (LUTs) instead of block RAMs: the instruction memory and NFU-3's coefficients are a
#: few rows of many bits, which in block RAMs would be spread over many of them across
#: the chip.
DISTRIBUTED_DEPTH = 64


class Buffer(wiring.Component):
    """A synchronous buffer with one write port and one read port.

    The storage is described by :attr:`data` (a :class:`MemoryData`, so that simulations
    can preload it directly); the :class:`amaranth.lib.memory.Memory` itself is created in
    :meth:`elaborate`.

    The read port is *not* transparent: the programs never read a row in the cycle it is
    written (a layer's input is loaded before it is read, and outputs are read after they
    are written), so the cheaper non-transparent BRAM mode is correct.

    With ``read_latency=2`` the row read is registered once more (the block RAM's
    clock-to-output time then has a whole cycle of its own); that register follows the
    memory every cycle. On the ECP5 it is the block RAM's own output register
    (:func:`hw.ecp5.ecp5_block_ram`); up to :data:`DISTRIBUTED_DEPTH` rows the buffer is
    distributed RAM between an address register and a data register (there a row written
    in the cycle its read address is presented reads as written: never the case in the
    programs); elsewhere a fabric register.

    A platform may build the storage itself: if it has a method ``get_buffer``,
    :meth:`elaborate` returns ``platform.get_buffer(self)`` (as Amaranth platforms provide
    ``get_ff_sync`` and the like). The simulated Verilog does so
    (:class:`diannao.sim.engines.verilog.BlankMemories`): its memories have no initial
    contents, so that a memory of megabytes is not megabytes of Verilog text.

    Latency: a read returns the row ``read_latency`` cycles after ``read.addr`` is presented
    with ``read.en``. Throughput: one read and one write per cycle.

    Parameters
    ----------
    shape : shape-like
        A row.
    depth : int
        Rows.
    granularity : int or None
        Write-enable granularity (see :class:`amaranth.lib.memory.WritePort`).
    read_latency : int
        1 or 2 (:attr:`hw.config.Config.read_latency`).

    Members
    -------
    write : ``Out(WritePort.Signature)``
        Row write port; with ``granularity``, ``write.en`` has one bit per element group.
    read : ``Out(ReadPort.Signature)``
        Row read port.
    """

    def __init__(self, shape, depth, *, granularity=None, read_latency=1):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"{type(self).__name__} depth must be a positive int, not {depth!r}")
        if read_latency not in (1, 2):
            raise ValueError(f"{type(self).__name__} read_latency must be 1 or 2, "
                             f"not {read_latency!r}")
        self.read_latency = read_latency
        self.data = MemoryData(shape=shape, depth=depth, init=[])
        self.granularity = granularity
        addr_width = max(1, ceil_log2(depth))
        super().__init__({
            "write": Out(memory.WritePort.Signature(addr_width=addr_width, shape=shape,
                                                    granularity=granularity)),
            "read": Out(memory.ReadPort.Signature(addr_width=addr_width, shape=shape)),
        })

    @property
    def depth(self):
        return self.data.depth

    def elaborate(self, platform):
        if hasattr(platform, "get_buffer"):
            return platform.get_buffer(self)
        m = Module()
        ecp5 = self.read_latency == 2 and is_ecp5(platform)
        if ecp5 and DISTRIBUTED_DEPTH < self.depth <= 4096:
            groups = 1 if self.granularity is None else len(self.write.en)
            ecp5_block_ram(m, "bram", self.depth, Shape.cast(self.data.shape).width,
                           groups, self.write, self.read)
            return m
        distributed = ecp5 and self.depth <= DISTRIBUTED_DEPTH
        m.submodules.memory = mem = memory.Memory(
            data=self.data, attrs={"ram_style": "distributed"} if distributed else None)
        wiring.connect(m, wiring.flipped(self.write),
                       mem.write_port(granularity=self.granularity))
        if distributed:
            # Distributed RAM (asynchronous read) between an address register and a data
            # register: each has a cycle to itself to reach the RAM's LUTs or to leave them.
            rp = mem.read_port(domain="comb")
            addr_r = Signal.like(self.read.addr, name="read_addr_r", reset_less=True)
            en_r = Signal(name="read_en_r")
            m.d.sync += en_r.eq(self.read.en)
            with m.If(self.read.en):
                m.d.sync += addr_r.eq(self.read.addr)
            m.d.comb += rp.addr.eq(addr_r)
            data_en = en_r
        else:
            rp = mem.read_port(transparent_for=())
            m.d.comb += [rp.addr.eq(self.read.addr), rp.en.eq(self.read.en)]
            data_en = C(1)
        if self.read_latency == 1:
            m.d.comb += self.read.data.eq(rp.data)
        else:
            data_r = Signal.like(rp.data, name="read_data_r", reset_less=True)
            with m.If(data_en):
                m.d.sync += data_r.eq(rp.data)
            m.d.comb += self.read.data.eq(data_r)
        return m
