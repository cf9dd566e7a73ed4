"""``diannao verilog`` (diannao.sim.engines.verilog): the node's Verilog holds one tile module
instantiated once per tile, whose ports are the tile's signature members, made without
Amaranth's private API and without unused elaboratables."""

import gc
import re
import warnings

import pytest
from amaranth.hdl import UnusedElaboratable, Value
from amaranth.lib.wiring import In

from diannao.hw.config import preset
from diannao.hw.node import Node
from diannao.hw.tile import Tile
from diannao.sim.engines.verilog import generate


def _generate_recording(config):
    """``generate(config)`` and the warnings emitted meanwhile, including those of objects
    collected at the end."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = generate(config)
        gc.collect()
    return text, caught


@pytest.fixture(scope="module")
def small():
    config = preset("small")
    text, caught = _generate_recording(config)
    return config, text, caught


def _tile_ports(config):
    """``{port name: (direction, width)}`` of a tile's non-zero-width signature members
    (the tile made here is never elaborated: its warnings are ignored)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        tile = Tile(config, latch_instr=not config.imem_narrow)
        ports = {}
        for path, member, value in tile.signature.flatten(tile):
            width = len(Value.cast(value))
            if width:
                ports["__".join(map(str, path))] = ("input" if member.flow == In else "output",
                                                    width)
        del tile, value
        gc.collect()
    return ports


def _module(text, name):
    """Header port names and ``{port: (direction, width)}`` of module ``name`` in ``text``."""
    start = text.index(f"module {name}(")
    body = text[start:text.index("endmodule", start)]
    header = body[body.index("(") + 1:body.index(");")]
    names = [n.strip() for n in header.replace("\n", " ").split(",")]
    decls = {}
    for direction, msb, port in re.findall(r"^\s*(input|output)\s+(?:\[(\d+):0\]\s+)?(\S+)\s*;",
                                           body, re.M):
        decls[port] = (direction, int(msb) + 1 if msb else 1)
    return names, decls


def _instances(text, module):
    """``{instance name: [connected port names]}`` of ``module`` in ``text``."""
    found = {}
    for m in re.finditer(rf"^\s*{re.escape(module)} (\S+) \((.*?)\);", text, re.M | re.S):
        found[m.group(1)] = re.findall(r"\.(\w+)\(", m.group(2))
    return found


@pytest.mark.parametrize("name", ["small", "icebreaker"])
def test_one_tile_module_instantiated_per_tile(small, name):
    config, text = (small[0], small[1]) if name == "small" else (preset(name), None)
    if text is None:
        text, caught = _generate_recording(config)
        assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
    assert len(re.findall(r"^module diannao_node_tile\(", text, re.M)) == 1
    assert len(re.findall(r"^module diannao_node\(", text, re.M)) == 1
    instances = _instances(text, "diannao_node_tile")
    assert sorted(instances) == sorted(f"tile{t}" for t in range(config.tiles))

    # The tile module's ports: the tile's signature members (zero-width ones, as the tile
    # index of a one-tile node, left out), their directions and widths, and the clock and
    # reset; every instance connects each of them.
    names, decls = _module(text, "diannao_node_tile")
    members = _tile_ports(config)
    assert sorted(names) == sorted([*members, "clk", "rst"])
    assert {p: decls[p] for p in members} == members
    assert decls["clk"] == decls["rst"] == ("input", 1)
    for connected in instances.values():
        assert sorted(connected) == sorted(names)


def test_generating_twice_gives_the_same_text(small):
    config, text, _ = small
    assert generate(config) == text


def test_no_unused_elaboratable(small):
    _, _, caught = small
    assert [str(w.message) for w in caught if issubclass(w.category, UnusedElaboratable)] == []


def test_the_check_sees_unused_elaboratables():
    """The warnings checked above would be seen: a node made but never elaborated (its
    tiles, their buffers, ...) warns."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Node(preset("small"))
        gc.collect()
    assert [w for w in caught if issubclass(w.category, UnusedElaboratable)]
