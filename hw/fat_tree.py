"""The fat tree joining the central neuron memory to the tiles."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out

from .nbin import row_layout as neuron_row
from .nbout import ADDR_WIDTH


__all__ = ["FatTree", "tree_latency"]


def tree_latency(tiles):
    """Levels of the tree, each one register: ``max(1, log2(tiles))`` cycles each way."""
    return max(1, tiles.bit_length() - 1)


class FatTree(wiring.Component):
    """A binary fat tree between NM (the root) and ``tiles`` tiles (paper: DaDianNao).

    *Down* (broadcast): a row entering at the root with ``down_valid`` and a destination
    NBin address reaches every leaf ``tree_latency(tiles)`` cycles later (one register per
    level; a real tree fans each register out to two children).

    *Up* (collect): leaf ``t`` offers a row with ``up_valid[t]``, its data and its NM
    address. Each level merges two children into one register, so a row reaches the root
    ``tree_latency(tiles)`` cycles later. The root takes one row a cycle: the node
    controller drains one tile at a time, so at most one leaf is valid in any cycle
    (contention is resolved by that schedule, and counted in the cycle model).

    Latency ``tree_latency(tiles)`` cycles each way; throughput one row per cycle each way.

    Parameters
    ----------
    tn : int
        Values per row.
    tiles : int
        Leaves (power of two).
    nbin_addr_width : int
        Bits of the down-going destination address.
    """

    def __init__(self, tn, tiles, nbin_addr_width):
        if not isinstance(tiles, int) or tiles < 1 or tiles & (tiles - 1):
            raise ValueError(f"FatTree tiles must be a power of two >= 1, not {tiles!r}")
        self.tn = tn
        self.tiles = tiles
        self.latency = tree_latency(tiles)
        row = neuron_row(tn)
        super().__init__({
            "down_valid": In(1),
            "down_addr": In(nbin_addr_width),
            "down_data": In(row),
            "leaf_valid": Out(1),
            "leaf_addr": Out(nbin_addr_width),
            "leaf_data": Out(row),
            "up_valid": In(tiles),
            "up_addr": In(data.ArrayLayout(ADDR_WIDTH, tiles)),
            "up_data": In(data.ArrayLayout(row, tiles)),
            "root_valid": Out(1),
            "root_addr": Out(ADDR_WIDTH),
            "root_data": Out(row),
        })

    def elaborate(self, platform):
        m = Module()
        # Down: one register per level.
        v, a, d = self.down_valid, self.down_addr, self.down_data
        for level in range(self.latency):
            nv = Signal(name=f"down_valid_l{level}")
            na = Signal.like(self.down_addr, name=f"down_addr_l{level}", reset_less=True)
            nd = Signal.like(self.down_data, name=f"down_data_l{level}", reset_less=True)
            m.d.sync += [nv.eq(v), na.eq(a), nd.eq(d)]
            v, a, d = nv, na, nd
        m.d.comb += [self.leaf_valid.eq(v), self.leaf_addr.eq(a), self.leaf_data.eq(d)]

        # Up: each level merges pairs of children into one register.
        nodes = [(self.up_valid[t], self.up_addr[t], self.up_data[t]) for t in range(self.tiles)]
        for level in range(self.latency):
            merged = []
            pairs = [nodes[i:i + 2] for i in range(0, len(nodes), 2)]
            for n, pair in enumerate(pairs):
                nv = Signal(name=f"up_valid_l{level}_{n}")
                na = Signal(ADDR_WIDTH, name=f"up_addr_l{level}_{n}", reset_less=True)
                nd = Signal.like(self.down_data, name=f"up_data_l{level}_{n}", reset_less=True)
                if len(pair) == 1:
                    (lv, la, ld), = pair
                    m.d.sync += [nv.eq(lv), na.eq(la), nd.eq(ld)]
                else:
                    (lv, la, ld), (rv, ra, rd) = pair
                    m.d.sync += [nv.eq(lv | rv), na.eq(Mux(lv, la, ra)), nd.eq(Mux(lv, ld, rd))]
                merged.append((nv, na, nd))
            nodes = merged
        (rv, ra, rd), = nodes
        m.d.comb += [self.root_valid.eq(rv), self.root_addr.eq(ra), self.root_data.eq(rd)]
        return m
