"""NBout: a tile's output-neuron buffer."""

from amaranth.lib import data

from diannao.hw.buffer import Buffer
from diannao.hw.isa import field_width
from diannao.hw.nbin import row_layout as neuron_row
from diannao.hw.nfu2 import psum_layout


__all__ = ["NBout", "PartialSums", "row_layout", "ADDR_WIDTH"]

#: Width of the NM address that travels with every output row: an NM address as the
#: instruction's ``out_base`` field holds it.
ADDR_WIDTH = field_width("out_base")


def row_layout(tn):
    """One NBout row: ``tn`` output neurons and the NM row they belong to."""
    return data.StructLayout({"data": neuron_row(tn), "addr": data.unsigned(ADDR_WIDTH)})


class NBout(Buffer):
    """Output neurons, rows of ``tn`` signed 16-bit values tagged with their NM address.

    Written by NFU-3 as each output row completes; read by the fat tree (STORE), which
    sends every row to the central memory address it carries. Latency ``read_latency``
    cycles, throughput one row a cycle.

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


class PartialSums(Buffer):
    """NBout's partial sums (paper: NFU-2 reads and writes partial sums through NBout):
    rows of ``tn`` accumulators of ``acc_width`` bits, kept exact between the chunks of a
    reduction that does not fit NBin. Read and written by NFU-2 only
    (:class:`hw.nfu2.NFU2`). Latency ``read_latency`` cycles, one read and one write a cycle.

    Parameters
    ----------
    tn : int
        Accumulators per row.
    acc_width : int
        Bits of each.
    depth : int
        Rows: the most outputs a tile's share of one chunk may have.
    read_latency : int
        1 or 2 (:class:`hw.buffer.Buffer`).
    """

    def __init__(self, tn, acc_width, depth, read_latency=1):
        super().__init__(psum_layout(tn, acc_width), depth, read_latency=read_latency)
