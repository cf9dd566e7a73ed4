"""SB: a tile's synapse buffer."""

from amaranth.lib import data

from diannao.hw.buffer import Buffer


__all__ = ["SB", "row_layout"]


def row_layout(tn):
    """One SB row: ``tn`` lanes (output neurons) of ``tn`` signed 16-bit weights."""
    return data.ArrayLayout(data.ArrayLayout(data.signed(16), tn), tn)


class SB(Buffer):
    """Synapses, rows of ``tn * tn`` signed 16-bit weights (paper: DianNao's SB).

    Row ``r`` lane ``j`` element ``i`` is the weight from input ``i`` of the current input
    row to output neuron ``j`` of the current output block. One row is consumed per compute
    cycle. ``write.en`` has one bit per lane, so a host with a ``tn``-value data path
    writes a row in ``tn`` steps. Latency ``read_latency`` cycles, throughput one row a cycle.

    Parameters
    ----------
    tn : int
        NFU width.
    depth : int
        Rows.
    read_latency : int
        1 or 2 (:class:`hw.buffer.Buffer`).
    """

    def __init__(self, tn, depth, read_latency=1):
        super().__init__(row_layout(tn), depth, granularity=1, read_latency=read_latency)
