"""``diannao verilog``: Verilog for a tile or a node of any configuration."""

from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib.wiring import In


__all__ = ["generate", "add_subcommand"]


def generate(config, *, top="node", name=None):
    """Verilog text of a :class:`hw.node.Node` (``top="node"``) or :class:`hw.tile.Tile`.

    The node's tiles are identical hardware (a tile's number is an input port), so the text
    holds one tile module, ``<name>_tile``, instantiated ``config.tiles`` times: Amaranth
    elaborates and Verilator compiles one tile instead of one per instance.
    """
    from hw.node import Node
    from hw.tile import Tile
    if top == "node":
        node, name = Node(config), name or "diannao_node"
        tile_module = f"{name}_tile"
        for tile in node.tiles:
            _as_instance(tile, tile_module)
            for buffer in (tile.nbin, tile.sb, tile.nbout):   # elaborated in the shared module
                buffer._MustUse__silence = True
        return (verilog.convert(Tile(config, latch_instr=node.tiles[0].latch_instr),
                                name=tile_module, emit_src=False)
                + verilog.convert(node, name=name, emit_src=False))
    elif top == "tile":
        return verilog.convert(Tile(config), name=name or "diannao_tile", emit_src=False)
    raise ValueError(f"unknown top {top!r}; choose 'node' or 'tile'")


def _as_instance(component, module):
    """Make ``component`` elaborate as an instance of the Verilog module ``module``: the
    module :func:`amaranth.back.verilog.convert` emits for the same component at the top,
    whose ports are the component's signature members named by their paths joined with
    ``__``, plus ``clk`` and ``rst``."""
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in component.signature.flatten(component):
        value = Value.cast(value)
        if len(value):
            ports[("i_" if member.flow == In else "o_") + "__".join(map(str, path))] = value
    component.elaborate = lambda platform: Instance(module, **ports)


def add_subcommand(sub):
    from hw.config import PRESETS
    p = sub.add_parser("verilog", help="emit Verilog for a tile or a node")
    p.add_argument("--config", default="small", choices=sorted(PRESETS))
    p.add_argument("--top", default="node", choices=["node", "tile"])
    p.add_argument("-o", "--output", required=True, help="output .v file")
    p.set_defaults(func=_cmd_verilog)


def _cmd_verilog(args):
    from hw.config import preset
    text = generate(preset(args.config), top=args.top)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{args.top} ({args.config}) -> {out} ({len(text.splitlines()):,} lines)")
    return 0
