"""NM: the node's central neuron memory."""

from .buffer import Buffer
from .nbin import row_layout


__all__ = ["NeuronMemory"]


class NeuronMemory(Buffer):
    """The central neuron memory (paper: DaDianNao's central eDRAM), rows of ``tn`` int16.

    Holds each layer's input and output neurons (layout: :mod:`sim.mapping`). The fat
    tree reads it (LOAD) and writes it (STORE); the host port reaches it while the node is
    idle. Latency ``read_latency`` cycles, throughput one read and one write per cycle.

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
