"""Per-layer performance reports: cycles, ideal cycles, utilization, traffic, throughput."""

from dataclasses import dataclass

from diannao.hw.isa import Op, load_rows
from diannao.sim.compiler import cycle_model


__all__ = ["LayerReport", "Report", "build_report"]


@dataclass
class LayerReport:
    index: int
    kind: str
    macs: int
    cycles: int          # LOAD + compute + STORE of this layer (cycle model)
    ideal: int           # ceil(MACs / (tiles * tn * tn))
    nm_reads: int
    nm_writes: int
    sb_reads: int
    tree_rows: int

    @property
    def utilization(self):
        return self.ideal / self.cycles if self.cycles else 0.0


#: Counters shown beside the model's: the node's, then the tiles' (summed over the tiles).
_SHOWN = (("cycles", "cycles"), ("nm_reads", "NM reads"), ("nm_writes", "NM writes"),
          ("tree_down_rows", "tree rows down"), ("tree_up_rows", "tree rows up"),
          ("tile_cycles", "tile busy cycles"), ("nfu_busy", "NFU rows"),
          ("nbin_reads", "NBin reads"), ("sb_reads", "SB reads"),
          ("nbout_writes", "NBout writes"))


def _flat(node, tiles, mask=-1):
    """Node counters and the tiles' counters summed (``tile_cycles`` for their cycles),
    each counter taken modulo ``mask + 1`` first (as the RTL's wrap) unless ``mask`` is -1."""
    out = {name: value & mask for name, value in node.items()}
    for t in tiles:
        for name, value in t.items():
            key = "tile_cycles" if name == "cycles" else name
            out[key] = out.get(key, 0) + (value & mask)
    return out


@dataclass
class Report:
    config_name: str
    layers: list
    model_cycles: int         # whole program, cycle model
    rtl_cycles: int | None    # whole program, RTL counter (None for the model alone)
    clock_mhz: float
    model_counters: dict = None   # every counter after one run, cycle model
    model_wrapped: dict = None    # the same as the RTL's counters hold them (modulo 2**width)
    rtl_counters: dict = None     # the RTL's (first sample), or None
    runs: list = None             # every sample's run (diannao.sim.runtime.host.run_sample)
    hdl: object = None            # what the engine said about itself (build times), or None

    def gops(self, layer):
        return 2 * layer.macs * self.clock_mhz * 1e6 / layer.cycles / 1e9 if layer.cycles else 0.0

    def format(self):
        head = (f"{'layer':>5} {'kind':8} {'MACs':>10} {'cycles':>9} {'ideal':>8} {'util':>6} "
                f"{'NM rd':>7} {'NM wr':>7} {'SB rd':>8} {'tree':>7} {'GOP/s':>7}")
        lines = [f"performance ({self.config_name}, {self.clock_mhz:g} MHz):", head]
        for l in self.layers:
            lines.append(f"{l.index:>5} {l.kind:8} {l.macs:>10,} {l.cycles:>9,} {l.ideal:>8,} "
                         f"{l.utilization:>6.1%} {l.nm_reads:>7,} {l.nm_writes:>7,} "
                         f"{l.sb_reads:>8,} {l.tree_rows:>7,} {self.gops(l):>7.2f}")
        macs = sum(l.macs for l in self.layers)
        ideal = sum(l.ideal for l in self.layers)
        lines.append(f"{'total':>5} {'':8} {macs:>10,} {self.model_cycles:>9,} {ideal:>8,} "
                     f"{ideal / self.model_cycles:>6.1%}")
        if self.rtl_cycles is not None:
            same = "equal" if self.rtl_cycles == self.model_cycles else "DIFFERENT"
            lines.append(f"RTL cycle counter: {self.rtl_cycles:,} per sample "
                         f"(cycle model: {self.model_cycles:,}, {same})")
        if self.rtl_counters is not None:
            lines.append(f"{'counters per sample':24} {'RTL':>10} {'model':>10}")
            for key, label in _SHOWN:
                rtl, model = self.rtl_counters[key], self.model_counters[key]
                same = "equal" if rtl == self.model_wrapped[key] else "DIFFERENT"
                lines.append(f"  {label:22} {rtl:>10,} {model:>10,}  {same}")
        return "\n".join(lines)


def build_report(program, config_name="", rtl_cycles=None, clock_mhz=1000.0, run=None):
    """A :class:`Report` for ``program`` from the cycle model, with the RTL's counters of
    ``run`` (one sample's, :func:`diannao.sim.runtime.host.run_sample`) beside the model's."""
    cfg = program.config
    per_instr = cycle_model.program_cycles(program.instructions, cfg)
    layers = []
    for info in program.layers:
        instrs = [program.instructions[pc] for pc in info.pcs]
        computes = [f for f in instrs if f["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL)]
        emitted = sum(cycle_model.tile_emissions(f, t) for f in computes
                      for t in range(cfg.tiles))
        outputs = sum(cycle_model.tile_traffic(f, t)["nbout_writes"] for f in computes
                      for t in range(cfg.tiles))
        loads = sum(load_rows(f) for f in instrs if f["op"] == Op.LOAD)
        layers.append(LayerReport(
            index=info.index, kind=info.kind, macs=info.macs,
            cycles=sum(per_instr[pc] for pc in info.pcs),
            ideal=-(-info.macs // (cfg.tiles * cfg.tn * cfg.tn)),
            nm_reads=loads, nm_writes=outputs, sb_reads=emitted,
            tree_rows=loads + outputs))
    node, tiles = cycle_model.program_counters(program)
    rtl = None if run is None else _flat({k: run[k] for k in node}, run["tiles"])
    return Report(config_name, layers, sum(per_instr), rtl_cycles, clock_mhz,
                  model_counters=_flat(node, tiles),
                  model_wrapped=_flat(node, tiles, (1 << cfg.counter_width) - 1),
                  rtl_counters=rtl)
