"""Running Amaranth simulations with optional VCD + GTKWave output.

Set ``DIANNAO_VCD=DIR`` and every simulation run through :func:`simulate` writes
``DIR/<name>.vcd`` and a GTKWave save file ``DIR/<name>.gtkw`` showing the signals that
matter (instruction, controller state, stage valids, buffer addresses, NFU values in
signed decimal).
"""

import os
import re

from pathlib import Path

from diannao.sim.engines.simulator import Simulator
from vcd.gtkw import GTKWSave, GTKWFlag


__all__ = ["simulate", "write_gtkw", "WAVE_GROUPS"]

#: (group, regex over VCD names, signed decimal?) in display order. Each regex is matched
#: against the dotted name without its ``[msb:0]`` width suffix; Amaranth writes the fields
#: of a layout as escaped names (``\\ins.op``, ``\\x[0]``), hence the optional backslash.
WAVE_GROUPS = [
    # (the node's start, busy, done are members of its host port: host__start...)
    ("control", r"(^|\.)(host__)?(start|busy|done|fsm_state|state|pc)$", False),
    ("instruction", r"(^|\.)\\?ins\.(op|kh|kw|stride|oh|ow|ob|cb|shift|act|table)$", False),
    ("tile controller", r"ctrl\.(valid|first|last|bias|zero|nbin_addr|sb_addr|out_addr)$", False),
    ("stage valids", r"\.(valid1|o__valid|acc_done)$", False),     # the NFUs' streams o
    ("NFU-1 inputs", r"nfu1\.\\?x\[\d+\]$", True),
    ("NFU-2 outputs", r"nfu2\.\\?o__payload\[\d+\]$", True),
    ("NFU-3 outputs", r"nfu3\.\\?o__payload\[\d+\]$", True),
    ("NBout", r"nbout_count$", False),
    ("fat tree / NM", r"(tree|nm)\w*\.(addr|en|valid)\w*$", False),
]


def _vcd_names(vcd_path):
    """Full dotted names (with ``[msb:0]`` suffix where wider than 1) declared in a VCD."""
    names, scope = [], []
    with open(vcd_path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                scope.append(tok[2])
            elif tok[0] == "$upscope":
                scope.pop()
            elif tok[0] == "$var":
                size, name = int(tok[2]), tok[4]
                full = ".".join(scope + [name])
                names.append(full + (f"[{size - 1}:0]" if size > 1 else ""))
            elif tok[0] == "$enddefinitions":
                break
    return names


def write_gtkw(vcd_path, gtkw_path):
    """Write a GTKWave save file for ``vcd_path`` with the signals of :data:`WAVE_GROUPS`."""
    names = _vcd_names(vcd_path)
    with open(gtkw_path, "w") as f:
        save = GTKWSave(f)
        save.dumpfile(str(Path(vcd_path).resolve()))
        save.treeopen("top")
        for group, pattern, signed in WAVE_GROUPS:
            rx = re.compile(pattern)
            chosen = [n for n in names if rx.search(re.sub(r"\[\d+:0\]$", "", n))]
            if not chosen:
                continue
            with save.group(group):
                for n in chosen:
                    if signed:
                        save.trace(n, datafmt="dec", extraflags=GTKWFlag.signed)
                    else:
                        save.trace(n, datafmt="dec" if n.endswith(":0]") else "hex")


def simulate(dut, testbench, *, name, clock=1e-8, processes=(), vcd=None):
    """Run ``testbench`` (an async function of ``ctx``) against ``dut`` with a clock.

    With ``vcd`` (a path) writes that VCD and a ``.gtkw`` beside it; otherwise, with
    ``DIANNAO_VCD=DIR`` set, writes ``DIR/name.vcd`` and ``DIR/name.gtkw``.
    """
    sim = Simulator(dut)
    sim.add_clock(clock)
    sim.add_testbench(testbench)
    for p in processes:
        sim.add_process(p)
    out_dir = os.environ.get("DIANNAO_VCD")
    if vcd is not None:
        vcd_path = Path(vcd)
    elif out_dir:
        vcd_path = Path(out_dir) / (re.sub(r"[^\w.-]+", "_", name) + ".vcd")
    else:
        sim.run()
        return
    vcd_path.parent.mkdir(parents=True, exist_ok=True)
    with sim.write_vcd(str(vcd_path)):
        sim.run()
    write_gtkw(vcd_path, vcd_path.with_suffix(".gtkw"))
