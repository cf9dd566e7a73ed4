"""NBout: a tile's output-neuron buffer."""

from amaranth.lib import data

from diannao.hw.buffer import Buffer
from diannao.hw.isa import field_width
from diannao.hw.nbin import row_layout as neuron_row


__all__ = ["NBout", "row_layout", "ADDR_WIDTH"]

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
