"""The analytic cycle model: cycle counts predicted from the program alone.

Every figure here is derived from instruction fields and the configuration, never from a
simulation; tests check that the RTL's counters equal it exactly.
"""

from hw.isa import Op
from hw.tile import pipeline_latency


__all__ = ["tile_share", "tile_emissions", "tile_cycles"]


def tile_share(f, index):
    """``(blocks, rows)``: output blocks and output rows tile ``index`` computes."""
    g = 1 << f["log2_gob"]
    ob_group, pos_group = index & (g - 1), index >> f["log2_gob"]
    nblocks = (f["ob"] - ob_group + g - 1) // g if f["ob"] > ob_group else 0
    oy0 = pos_group * f["oy_band"]
    rows = max(0, min(oy0 + f["oy_band"], f["oh"]) - oy0)
    return nblocks, rows


def tile_emissions(f, index):
    """Rows tile ``index`` feeds into its NFU for compute instruction fields ``f``."""
    nblocks, rows = tile_share(f, index)
    window = f["kh"] * f["kw"]
    per_pos = window * f["cb"] + 1 if f["op"] == Op.CONV else window
    return nblocks * rows * f["ow"] * per_pos


def tile_cycles(f, index, config):
    """Cycles from ``start`` to ``done`` of tile ``index`` (inclusive of the done cycle)."""
    e = tile_emissions(f, index)
    return 3 + e + pipeline_latency(config) if e else 2


def instruction_cycles(f, config, nbout_counts):
    """Node cycles of one instruction (fetch and decode included).

    ``nbout_counts`` is the list of rows each tile's NBout holds; it is updated in place
    (compute instructions add rows, STORE empties them).
    """
    from hw.fat_tree import tree_latency
    from hw.node_controller import fetch_cycles
    lat = tree_latency(config.tiles)
    fd = fetch_cycles(config) + 1        # fetch and decode
    rl = config.node_read_latency        # NM and NBout reads
    op = f["op"]
    if op == Op.HALT:
        return fd
    if op == Op.LOAD:
        return fd + f["count"] + 1 + (lat + rl)
    if op == Op.STORE:
        total = sum(nbout_counts)
        nbout_counts[:] = [0] * config.tiles
        return fd + total + config.tiles + 1 + (lat + rl)
    for t in range(config.tiles):
        nblocks, rows = tile_share(f, t)
        nbout_counts[t] += nblocks * rows * f["ow"]
    return fd + max(tile_cycles(f, t, config) for t in range(config.tiles))


def program_cycles(instructions, config):
    """Cycles of every instruction of a program, from its fields alone."""
    counts = [0] * config.tiles
    return [instruction_cycles(f, config, counts) for f in instructions]
