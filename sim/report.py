"""Per-layer performance reports: cycles, ideal cycles, utilization, traffic, throughput."""

from dataclasses import dataclass

from hw.isa import Op
from . import cycle_model


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


@dataclass
class Report:
    config_name: str
    layers: list
    model_cycles: int         # whole program, cycle model
    rtl_cycles: int | None    # whole program, RTL counter (None for the model alone)
    clock_mhz: float

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
        return "\n".join(lines)


def build_report(program, config_name="", rtl_cycles=None, clock_mhz=1000.0):
    """A :class:`Report` for ``program`` from the cycle model (and the RTL's total)."""
    cfg = program.config
    per_instr = cycle_model.program_cycles(program.instructions, cfg)
    layers = []
    for info in program.layers:
        instrs = [program.instructions[pc] for pc in info.pcs]
        computes = [f for f in instrs if f["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL)]
        emitted = sum(cycle_model.tile_emissions(f, t) for f in computes
                      for t in range(cfg.tiles))
        outputs = sum(cycle_model.tile_share(f, t)[0] * cycle_model.tile_share(f, t)[1]
                      * f["ow"] for f in computes for t in range(cfg.tiles))
        loads = sum(f["count"] for f in instrs if f["op"] == Op.LOAD)
        layers.append(LayerReport(
            index=info.index, kind=info.kind, macs=info.macs,
            cycles=sum(per_instr[pc] for pc in info.pcs),
            ideal=-(-info.macs // (cfg.tiles * cfg.tn * cfg.tn)),
            nm_reads=loads, nm_writes=outputs, sb_reads=emitted,
            tree_rows=loads + outputs))
    return Report(config_name, layers, sum(per_instr), rtl_cycles, clock_mhz)
