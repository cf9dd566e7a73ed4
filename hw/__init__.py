"""The hardware: Amaranth RTL of the DianNao tile and the DaDianNao node.

One paper block per module, each a :class:`amaranth.lib.wiring.Component` (NFU-1/2/3, NBin,
NBout, SB, tile and node controllers, fat tree, neuron memory, tile, node). Two modules are
plain Python, shared with the compiler: :mod:`.isa` (the instruction set) and :mod:`.config`
(every size); :mod:`.instr` is the instruction's Amaranth layout, built from :mod:`.isa`.
Imports only :mod:`diannao.golden`.
"""
