"""The instruction as an Amaranth layout, for the RTL.

:mod:`hw.isa` holds the one field table (plain Python, so that the compiler and the tools
import no Amaranth); :data:`INSTR` is the same table as a :class:`data.StructLayout`, the
shape of the instruction ports and registers of :class:`hw.node_controller.NodeController`,
:class:`hw.tile_controller.TileController` and :class:`hw.tile.Tile`.
"""

from amaranth.lib import data

from diannao.hw.isa import INSTR_FIELDS, INSTR_WIDTH, SETTINGS_FIELDS


__all__ = ["INSTR", "SETTINGS"]

#: The instruction layout: the fields of :data:`hw.isa.INSTR_FIELDS`, at the same offsets.
INSTR = data.StructLayout({f.name: (data.signed(f.width) if f.signed else data.unsigned(f.width))
                           for f in INSTR_FIELDS})

assert INSTR.size == INSTR_WIDTH
assert all(INSTR[f.name].offset == f.offset for f in INSTR_FIELDS)

#: The fields of :data:`hw.isa.SETTINGS_FIELDS` alone: what a tile keeps for the rows it
#: drains and the node for the last compute instruction it started.
SETTINGS = data.StructLayout({n: INSTR[n].shape for n in SETTINGS_FIELDS})
