"""``diannao verilog``: Verilog for a tile or a node of any configuration."""

from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Instance, Module, ResetSignal, Shape, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from diannao.hw.config import PRESETS, preset
from diannao.hw.node import Node
from diannao.hw.tile import Tile, COUNTERS


__all__ = ["generate", "add_subcommand", "TileInstance", "BlankMemories", "port_signals"]


#: The simulated node's buffers (:class:`BlankMemories`): a memory with one write port
#: (``GRANULES`` write enables of ``WIDTH / GRANULES`` bits) and one read port whose data
#: follows ``ren`` with its address by ``LATENCY`` cycles (1 or 2), not transparent (a row
#: written in the cycle it is read reads as it was), and no initial contents.
_RAM = """
module {name} #(parameter WIDTH = 1, DEPTH = 1, ABITS = 1, GRANULES = 1, LATENCY = 1) (
    input clk,
    input [ABITS-1:0] waddr,
    input [WIDTH-1:0] wdata,
    input [GRANULES-1:0] wen,
    input [ABITS-1:0] raddr,
    input ren,
    output [WIDTH-1:0] rdata
);
    localparam GRANULE = WIDTH / GRANULES;
    reg [WIDTH-1:0] mem [0:DEPTH-1];
    reg [WIDTH-1:0] q, q2;
    integer g;
    always @(posedge clk) begin
        for (g = 0; g < GRANULES; g = g + 1)
            if (wen[g])
                mem[waddr][g*GRANULE +: GRANULE] <= wdata[g*GRANULE +: GRANULE];
        if (ren)
            q <= mem[raddr];
        q2 <= q;
    end
    assign rdata = LATENCY == 1 ? q : q2;
endmodule
"""


class BlankMemories:
    """The platform :func:`generate` elaborates for: every :class:`hw.buffer.Buffer` (NBin,
    NBout, SB, the partial sums, NM, the instruction memory, NFU-3's coefficients) becomes
    an instance of the Verilog module ``{name}_ram`` (:meth:`verilog`), whose memory has no
    initial contents. Amaranth writes a memory's initial contents into the Verilog text
    (zeros for ours), which for the ``dadiannao`` node's 2 MB SB and 4 MB NM would be
    megabytes of text and minutes of conversion; the engines fill the memories through the
    host port anyway. Reading a row never written gives what the simulator starts memories
    with (Verilator: zeros with ``--x-initial fast``; Icarus: ``x``); no program does.

    Parameters
    ----------
    name : str
        Prefix of the RAM module's name.
    """

    def __init__(self, name):
        self.module = f"{name}_ram"

    def verilog(self):
        """The RAM module's Verilog text."""
        return _RAM.format(name=self.module)

    def get_buffer(self, buffer):
        """The storage of ``buffer``: an instance of the RAM module."""
        m = Module()
        write, read = buffer.write, buffer.read
        m.submodules.ram = Instance(
            self.module,
            p_WIDTH=Shape.cast(buffer.data.shape).width, p_DEPTH=buffer.depth,
            p_ABITS=len(read.addr), p_GRANULES=len(write.en), p_LATENCY=buffer.read_latency,
            i_clk=ClockSignal("sync"), i_waddr=write.addr, i_wdata=Value.cast(write.data),
            i_wen=write.en, i_raddr=read.addr, i_ren=read.en, o_rdata=Value.cast(read.data))
        return m


def generate(config, *, top="node", name=None):
    """Verilog text of a :class:`hw.node.Node` (``top="node"``) or :class:`hw.tile.Tile`.

    The node's tiles are identical hardware (a tile's number is an input port), so the text
    holds one tile module, ``<name>_tile``, instantiated ``config.tiles`` times: Amaranth
    elaborates and Verilator compiles one tile instead of one per instance. The node is
    built with :class:`TileInstance` s in place of its tiles (``Node(config, tile=...)``);
    only the one :class:`Tile` converted to the tile module is ever made.
    """
    if top == "node":
        name = name or "diannao_node"
        tile_module = f"{name}_tile"
        made = []

        def tile(config, latch_instr):
            if not made:
                made.append(Tile(config, latch_instr=latch_instr))
            return TileInstance(made[0], tile_module)

        node = Node(config, tile=tile)
        module = made[0]
        memories = BlankMemories(name)
        return (verilog.convert(module, name=tile_module, emit_src=False, platform=memories,
                                ports=[signal for _, _, signal in port_signals(module)])
                + verilog.convert(node, name=name, emit_src=False, platform=memories)
                + memories.verilog())
    elif top == "tile":
        name = name or "diannao_tile"
        memories = BlankMemories(name)
        return (verilog.convert(Tile(config), name=name, emit_src=False, platform=memories)
                + memories.verilog())
    raise ValueError(f"unknown top {top!r}; choose 'node' or 'tile'")


def port_signals(component):
    """``(path, member, signal)`` of each port member of ``component``'s signature, in
    signature order, without the zero-width ones (a one-tile node's tile ``index``): the
    ports of its Verilog module when converted with ``ports=`` these signals. A port takes
    its signal's name, which :meth:`amaranth.lib.wiring.SignatureMembers.create` makes the
    member's path joined with ``__``."""
    ports = []
    for path, member, value in component.signature.flatten(component):
        signal = Value.cast(value)
        if len(signal):
            ports.append((path, member, signal))
    return ports


class TileInstance(wiring.Component):
    """A stand-in for a node's tile: the signature of ``tile``, elaborating to an instance
    of the Verilog module ``module`` that :func:`generate` converts from ``tile`` with
    ``ports=`` :func:`port_signals` ``(tile)``. Each port is connected by its name there,
    the name of ``tile``'s signal for that member, so both sides name ports alike by
    construction; the clock and reset take the names of a ``sync`` :class:`ClockDomain`'s
    signals, the domain Amaranth creates for the module.

    Parameters
    ----------
    tile : Tile
        The tile converted to ``module``.
    module : str
    """

    def __init__(self, tile, module):
        self._module = module
        self._names = {path: signal.name for path, _, signal in port_signals(tile)}
        super().__init__(tile.signature)

    @property
    def counters(self):
        """As :attr:`hw.tile.Tile.counters`."""
        return [getattr(self, name) for name in COUNTERS]

    def elaborate(self, platform):
        sync = ClockDomain("sync")
        ports = {f"i_{sync.clk.name}": ClockSignal("sync"),
                 f"i_{sync.rst.name}": ResetSignal("sync")}
        for path, member, signal in port_signals(self):
            ports[("i_" if member.flow == In else "o_") + self._names[path]] = signal
        return Instance(self._module, **ports)


def add_subcommand(sub):
    p = sub.add_parser("verilog", help="emit Verilog for a tile or a node")
    p.add_argument("--config", default="small", choices=sorted(PRESETS))
    p.add_argument("--top", default="node", choices=["node", "tile"])
    p.add_argument("-o", "--output", required=True, help="output .v file")
    p.set_defaults(func=_cmd_verilog)


def _cmd_verilog(args):
    text = generate(preset(args.config), top=args.top)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"{args.top} ({args.config}) -> {out} ({len(text.splitlines()):,} lines)")
    return 0
