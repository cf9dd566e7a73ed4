# amaranth: UnusedElaboratable=no
"""Every component validates its parameters in ``__init__`` and names the bad value."""

import pytest

from diannao.hw.activation import Activation
from diannao.hw.adder_tree import AdderTree
from diannao.hw.config import preset
from diannao.hw.nfu1 import NFU1
from diannao.hw.nfu2 import NFU2
from diannao.hw.tile_controller import TileController


@pytest.mark.parametrize("make,message", [
    (lambda: NFU1(3), "3"),
    (lambda: NFU1(6), "6"),
    (lambda: AdderTree(6, 32), "6"),
    (lambda: AdderTree(3, 16, 1), "3"),
    (lambda: AdderTree(0, 16, 1), "0"),
    (lambda: AdderTree(4, 0, 1), "0"),
    (lambda: AdderTree(4, 16, 0), "lanes.*0"),
    (lambda: NFU2(12), "12"),
    (lambda: NFU2(4, 20), "20"),
    (lambda: NFU2(4, acc_width=30), "30"),
    (lambda: NFU2(4, psum_depth=-1), "psum_depth.*-1"),
    (lambda: NFU2(4, psum_depth=8, read_latency=3), "read_latency.*3"),
    (lambda: Activation(3, 4), "3"),
    (lambda: Activation(4, 0), "0"),
    (lambda: Activation(4, 9), "9"),
    (lambda: TileController(preset("small"), 0), "0"),
    (lambda: TileController(preset("small"), -1), "-1"),
], ids=lambda v: "" if callable(v) else v)
def test_bad_parameters_are_named(make, message):
    with pytest.raises(ValueError, match=message):
        make()
