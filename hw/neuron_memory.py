"""NM: the node's central neuron memory."""

from diannao.hw.buffer import Buffer
from diannao.hw.nbin import row_layout


__all__ = ["NeuronMemory"]


class NeuronMemory(Buffer):
    """The central neuron memory (paper: DaDianNao's central eDRAM), rows of ``tn`` int16.

    Holds each layer's input and output neurons (layout: :mod:`diannao.sim.compiler.mapping`). The fat
    tree reads it (LOAD) and writes it (STORE); the host port reaches it while the node is
    idle. Latency ``read_latency`` cycles, throughput one read and one write per cycle.

    Its ports are memory ports, not streams: a read's data follows its address by a fixed
    latency, and the node joins it with the controller's valid and NBin address, delayed
    beside the read, into the fat tree's ``down`` stream (:class:`hw.node.Node`); the tree's
    ``root`` stream and the host share the write port.

    Parameters
    ----------
    tn : int
        Values per row.
    depth : int
        Rows.
    read_latency : int
        1 or 2 (:class:`hw.buffer.Buffer`).
    """

    def __init__(self, tn, depth, read_latency=1):
        super().__init__(row_layout(tn), depth, read_latency=read_latency)
