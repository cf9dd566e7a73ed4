"""NBin: a tile's input-neuron buffer."""

from amaranth.lib import data

from diannao.hw.buffer import Buffer


__all__ = ["NBin", "row_layout"]


def row_layout(tn):
    """One row of ``tn`` signed 16-bit neurons (NBin, NM)."""
    return data.ArrayLayout(data.signed(16), tn)


class NBin(Buffer):
    """Input neurons, rows of ``tn`` signed 16-bit values (paper: DianNao's NBin).

    Written by the fat tree (LOAD) or a testbench; read by the tile controller, one row a
    cycle. See :class:`hw.buffer.Buffer` for ports, latency (``read_latency`` cycles) and
    throughput.

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
