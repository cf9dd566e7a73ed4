"""A one-write-port, one-read-port buffer: the common shape of NBin, NBout and SB."""

from amaranth import *
from amaranth.hdl import MemoryData
from amaranth.lib import wiring, memory
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2


__all__ = ["Buffer"]


class Buffer(wiring.Component):
    """A synchronous buffer with one write port and one read port.

    The storage is described by :attr:`data` (a :class:`MemoryData`, so that simulations
    can preload it directly); the :class:`amaranth.lib.memory.Memory` itself is created in
    :meth:`elaborate`.

    The read port is *not* transparent: the programs never read a row in the cycle it is
    written (a layer's input is loaded before it is read, and outputs are read after they
    are written), so the cheaper non-transparent BRAM mode is correct.

    Latency: a read returns the row one cycle after ``read.addr`` is presented with
    ``read.en``. Throughput: one read and one write per cycle.

    Members
    -------
    write : ``Out(WritePort.Signature)``
        Row write port; with ``granularity``, ``write.en`` has one bit per element group.
    read : ``Out(ReadPort.Signature)``
        Row read port.
    """

    def __init__(self, shape, depth, *, granularity=None):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"{type(self).__name__} depth must be a positive int, not {depth!r}")
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
        m = Module()
        m.submodules.memory = mem = memory.Memory(data=self.data)
        wiring.connect(m, wiring.flipped(self.write),
                       mem.write_port(granularity=self.granularity))
        wiring.connect(m, wiring.flipped(self.read), mem.read_port(transparent_for=()))
        return m
