"""``diannao verilog``: Verilog for a tile or a node of any configuration."""

from pathlib import Path

from amaranth.back import verilog


__all__ = ["generate", "add_subcommand"]


def generate(config, *, top="node", name=None):
    """Verilog text of a :class:`hw.node.Node` (``top="node"``) or :class:`hw.tile.Tile`."""
    from hw.node import Node
    from hw.tile import Tile
    if top == "node":
        dut, name = Node(config), name or "diannao_node"
    elif top == "tile":
        dut, name = Tile(config), name or "diannao_tile"
    else:
        raise ValueError(f"unknown top {top!r}; choose 'node' or 'tile'")
    return verilog.convert(dut, name=name, emit_src=False)


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
