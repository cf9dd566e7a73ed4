"""The fat tree joining the central neuron memory to the tiles."""

from amaranth import *
from amaranth.lib import wiring, data, stream
from amaranth.lib.wiring import In, Out

from diannao.hw.nbin import row_layout as neuron_row
from diannao.hw.nbout import ADDR_WIDTH, row_layout as nbout_row


__all__ = ["FatTree", "tree_latency"]


def tree_latency(tiles):
    """Levels of the tree, each one register: ``max(1, log2(tiles))`` cycles each way."""
    return max(1, tiles.bit_length() - 1)


class FatTree(wiring.Component):
    """A binary fat tree between NM (the root) and ``tiles`` tiles (paper: DaDianNao).

    *Down* (broadcast): a row entering at the root (stream ``down``: the row and its
    destination NBin address) reaches every leaf (stream ``leaf``) ``tree_latency(tiles)``
    cycles later (one register per level; a real tree fans each register out to two
    children).

    *Up* (collect): leaf ``t`` offers a row on stream ``up[t]`` (an NBout row: its data and
    its NM address). Each level merges two children into one register, so a row reaches
    the root (stream ``root``) ``tree_latency(tiles)`` cycles later. The root takes one row
    a cycle: the node controller drains one tile at a time, so at most one leaf is valid in
    any cycle (contention is resolved by that schedule, and counted in the cycle model).

    Every port is a stream without back-pressure (``stream.Signature(...,
    always_ready=True)``): the tree never stalls, the schedule keeps it free.

    Latency ``tree_latency(tiles)`` cycles each way; throughput one row per cycle each way.

    Parameters
    ----------
    tn : int
        Values per row.
    tiles : int
        Leaves (power of two).
    nbin_addr_width : int
        Bits of the down-going destination address.

    Members
    -------
    down : ``In(stream.Signature(StructLayout({"addr": nbin_addr_width, "data": row})))``
    leaf : ``Out`` of the same
    up : ``In(stream.Signature(hw.nbout.row_layout(tn))).array(tiles)``
    root : ``Out(stream.Signature(hw.nbout.row_layout(tn)))``
    """

    def __init__(self, tn, tiles, nbin_addr_width):
        if not isinstance(tiles, int) or tiles < 1 or tiles & (tiles - 1):
            raise ValueError(f"FatTree tiles must be a power of two >= 1, not {tiles!r}")
        self.tn = tn
        self.tiles = tiles
        self.latency = tree_latency(tiles)
        down = stream.Signature(data.StructLayout({"addr": nbin_addr_width,
                                                   "data": neuron_row(tn)}),
                                always_ready=True)
        up = stream.Signature(nbout_row(tn), always_ready=True)
        super().__init__({
            "down": In(down),
            "leaf": Out(down),
            "up": In(up).array(tiles),
            "root": Out(up),
        })

    def elaborate(self, platform):
        m = Module()
        # Down: one register per level.
        v, a, d = self.down.valid, self.down.payload.addr, self.down.payload.data
        for level in range(self.latency):
            nv = Signal(name=f"down_valid_l{level}")
            na = Signal.like(a, name=f"down_addr_l{level}", reset_less=True)
            nd = Signal.like(d, name=f"down_data_l{level}", reset_less=True)
            m.d.sync += [nv.eq(v), na.eq(a), nd.eq(d)]
            v, a, d = nv, na, nd
        m.d.comb += [self.leaf.valid.eq(v), self.leaf.payload.addr.eq(a),
                     self.leaf.payload.data.eq(d)]

        # Up: each level merges pairs of children into one register.
        nodes = [(up.valid, up.payload.addr, up.payload.data) for up in self.up]
        for level in range(self.latency):
            merged = []
            pairs = [nodes[i:i + 2] for i in range(0, len(nodes), 2)]
            for n, pair in enumerate(pairs):
                nv = Signal(name=f"up_valid_l{level}_{n}")
                na = Signal(ADDR_WIDTH, name=f"up_addr_l{level}_{n}", reset_less=True)
                nd = Signal.like(self.down.payload.data, name=f"up_data_l{level}_{n}",
                                 reset_less=True)
                if len(pair) == 1:
                    (lv, la, ld), = pair
                    m.d.sync += [nv.eq(lv), na.eq(la), nd.eq(ld)]
                else:
                    (lv, la, ld), (rv, ra, rd) = pair
                    m.d.sync += [nv.eq(lv | rv), na.eq(Mux(lv, la, ra)), nd.eq(Mux(lv, ld, rd))]
                merged.append((nv, na, nd))
            nodes = merged
        (rv, ra, rd), = nodes
        m.d.comb += [self.root.valid.eq(rv), self.root.payload.addr.eq(ra),
                     self.root.payload.data.eq(rd)]
        return m
