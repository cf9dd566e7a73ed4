"""Per-layer performance reports: cycles, ideal cycles, utilization, traffic, throughput."""

from dataclasses import dataclass

from diannao.hw.isa import Op, load_rows
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.program import layer_macs


__all__ = ["LayerReport", "Report", "build_report", "merge_reports", "plot_report",
           "plot_roofline", "peak_ops_per_cycle", "PAPER_PEAKS"]


def peak_ops_per_cycle(config):
    """The node's peak: ``2 * tiles * tn * tn`` operations a cycle (each of the
    ``tiles * tn * tn`` NFU-1 multipliers and its NFU-2 addition, one MAC, counted as two
    operations; pooling, NFU-3 and the shifter not counted)."""
    return 2 * config.tiles * config.tn * config.tn


#: The papers' peaks, as they state them: ``(machine, GOP/s, MHz, how it is counted)``.
PAPER_PEAKS = (
    ("DaDianNao node", 5580.0, 606.0, "16 tiles of 16x16 multipliers and adders (MICRO 2014)"),
    ("DianNao", 452.0, 980.0, "one NFU of 16x16 multipliers and their adder trees "
                              "(ASPLOS 2014)"),
)


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
    compute: int = 0     # cycles the busiest tile emits rows, over the layer's computes
    busy: int = 0        # cycles the tiles are busy (the busiest), over the layer's computes
    note: str = ""       # why the layer has no figures (it does not fit the node)
    caveat: str = ""     # what its figures assume (a larger NM)
    mem_bytes: int = 0   # bytes its SBLOADs and IMLOADs read from main memory
    mem_bandwidth: int = 0   # the configuration's main-memory bytes per cycle (0: none)

    @property
    def streamed(self):
        return self.mem_bytes > 0

    @property
    def intensity(self):
        """Operations (2 per MAC) per byte read from main memory; None without any."""
        return 2 * self.macs / self.mem_bytes if self.mem_bytes else None

    @property
    def memory_cycles(self):
        """Cycles its main-memory bytes take at the configured bandwidth: the layer's
        bandwidth bound."""
        return -(-self.mem_bytes // self.mem_bandwidth) if self.mem_bandwidth else 0

    @property
    def roof(self):
        """``"memory"`` if the main memory's bandwidth bounds the layer (its bytes take more
        cycles than its ideal compute), else ``"compute"``; ``""`` without main memory."""
        if not self.mem_bytes:
            return ""
        return "memory" if self.memory_cycles > self.ideal else "compute"

    @property
    def utilization(self):
        return self.ideal / self.cycles if self.cycles else 0.0

    def losses(self):
        """Where the layer's cycles go: ``{cause: cycles}``: ``compute`` (the ideal),
        ``padding`` (channels padded to tn, shares uneven over the tiles, bias rows, the
        products outside an LRN's window),
        ``fill/drain`` (the tiles' set-up and their pipeline filling and draining) and
        ``NM/fat tree`` (the tiles idle: waiting for a LOAD, a STORE or an SBLOAD from main
        memory that the computation does not hide, and for the instructions' fetch)."""
        return {"compute": self.ideal, "padding": self.compute - self.ideal,
                "fill/drain": self.busy - self.compute,
                "NM/fat tree": self.cycles - self.busy}

    @property
    def bound(self):
        """What bounds the layer: the largest of :meth:`losses` but ``compute`` when it
        takes a tenth of the cycles or more, else ``compute``."""
        if not self.cycles:
            return ""
        losses = dict(self.losses())
        del losses["compute"]
        worst = max(losses, key=losses.get)
        return worst if losses[worst] >= self.cycles / 10 else "compute"


#: Counters shown beside the model's: the node's, then the tiles' (summed over the tiles).
_SHOWN = (("cycles", "cycles"), ("nm_reads", "NM reads"), ("nm_writes", "NM writes"),
          ("tree_down_rows", "tree rows down"), ("tree_up_rows", "tree rows up"),
          ("mem_reads", "main-memory beats"), ("mem_stalls", "main-memory stalls"),
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
    """A performance report; :meth:`format` prints it."""
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
    source: str = "RTL"           # "RTL" (the counters come from a run) or "model"
    peak: int = 0                 # the node's peak operations per cycle
    tn: int = 16                  # values per NM row

    def gops(self, layer):
        return 2 * layer.macs * self.clock_mhz * 1e6 / layer.cycles / 1e9 if layer.cycles else 0.0

    def format(self):
        what = "cycle model: golden values, model cycles" if self.source == "model" else "cycle model"
        mem = any(l.mem_bandwidth for l in self.layers)
        head = (f"{'layer':>5} {'kind':8} {'MACs':>14} {'cycles':>11} {'ideal':>11} {'util':>6} "
                f"{'bound':>11} {'GOP/s':>8} {'NM rd':>9} {'NM wr':>9} {'SB rd':>11}")
        if mem:
            head += f" {'mem rd B':>13} {'ops/B':>7} {'roof':>7}"
        lines = [f"performance ({self.config_name}, {self.clock_mhz:g} MHz; {what}):"]
        if self.peak:
            peak = self.peak * self.clock_mhz / 1e3
            lines.append(f"node peak: {self.peak:,} ops/cycle (2 per MAC), {peak:,.1f} GOP/s at "
                         f"{self.clock_mhz:g} MHz; papers: " + "; ".join(
                             f"{m} {g:,.0f} GOP/s at {mhz:g} MHz" for m, g, mhz, _ in PAPER_PEAKS))
        lines.append(head)
        for l in self.layers:
            if l.note:
                lines.append(f"{l.index:>5} {l.kind:8} {l.macs:>14,}  not run: {l.note}")
                continue
            line = (f"{l.index:>5} {l.kind:8} {l.macs:>14,} {l.cycles:>11,} {l.ideal:>11,} "
                    f"{l.utilization:>6.1%} {l.bound:>11} {self.gops(l):>8.1f} "
                    f"{l.nm_reads:>9,} {l.nm_writes:>9,} {l.sb_reads:>11,}")
            if mem:
                line += (f" {l.mem_bytes:>13,} {l.intensity:>7.1f} {l.roof:>7}" if l.mem_bytes
                         else f" {'resident':>13} {'':>7} {'':>7}")
            lines.append(line)
        run = [l for l in self.layers if not l.note]
        macs = sum(l.macs for l in run)
        ideal = sum(l.ideal for l in run)
        util = ideal / self.model_cycles if self.model_cycles else 0.0
        gops = 2 * macs * self.clock_mhz / 1e3 / self.model_cycles if self.model_cycles else 0.0
        lines.append(f"{'total':>5} {'':8} {macs:>14,} {self.model_cycles:>11,} {ideal:>11,} "
                     f"{util:>6.1%} {'':>11} {gops:>8.1f}")
        if mem:
            streamed = [l for l in run if l.mem_bytes]
            bw = max(l.mem_bandwidth for l in self.layers)
            lines.append(f"main memory: {bw} bytes/cycle ({bw * self.clock_mhz / 1e3:,.1f} GB/s "
                         f"at {self.clock_mhz:g} MHz); weights streamed by "
                         f"{len(streamed)} of {len(run)} layers, "
                         f"{sum(l.mem_bytes for l in streamed):,} bytes read; NM rd/wr are "
                         f"neuron rows of {2 * self.tn} bytes; roof: what the layer's "
                         f"main-memory bytes at that bandwidth and its MACs at peak allow")
        for l in self.layers:
            if l.caveat:
                lines.append(f"  layer {l.index}: {l.caveat}")
        skipped = len(self.layers) - len(run)
        if skipped:
            lines.append(f"({skipped} layer{'s' * (skipped > 1)} not run: the total covers "
                         f"the others)")
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


def _layer_report(program, info, prof):
    """A layer's :class:`LayerReport` from the program's :func:`cycle_model.profile`
    ``prof``: its instructions' figures times the runs of each."""
    cfg = program.config
    pairs = [(program.instructions[pc], prof.runs[pc]) for pc in info.pcs]
    computes = [(cycle_model.compute_profile(f, cfg)[1], n) for f, n in pairs
                if f["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL)]
    emitted = sum(t["nfu_busy"] * n for traffic, n in computes for t in traffic)
    outputs = sum(t["nbout_writes"] * n for traffic, n in computes for t in traffic)
    loads = sum(load_rows(f) * n for f, n in pairs if f["op"] == Op.LOAD)
    beats = sum(cycle_model.dma_beats(f, cfg) * n for f, n in pairs)
    return LayerReport(
        index=info.index, kind=info.kind, macs=info.macs,
        cycles=sum(prof.cycles[pc] for pc in info.pcs),
        ideal=-(-info.macs // (cfg.tiles * cfg.tn * cfg.tn)),
        nm_reads=loads, nm_writes=outputs, sb_reads=emitted, tree_rows=loads + outputs,
        compute=sum(max(t["nfu_busy"] for t in traffic) * n for traffic, n in computes),
        busy=sum(prof.busy[pc] for pc in info.pcs),
        mem_bytes=beats * cfg.mem_bytes, mem_bandwidth=cfg.mem_bytes)


def build_report(program, config_name="", rtl_cycles=None, clock_mhz=1000.0, run=None):
    """A :class:`Report` for ``program`` from the cycle model, with the RTL's counters of
    ``run`` (one sample's, :func:`diannao.sim.runtime.host.run_sample`) beside the model's."""
    cfg = program.config
    prof = cycle_model.profile(program.instructions, cfg)
    layers = [_layer_report(program, info, prof) for info in program.layers]
    node, tiles = cycle_model.program_counters(program)
    rtl = None if run is None else _flat({k: run[k] for k in node}, run["tiles"])
    return Report(config_name, layers, prof.total, rtl_cycles, clock_mhz,
                  model_counters=_flat(node, tiles),
                  model_wrapped=_flat(node, tiles, (1 << cfg.counter_width) - 1),
                  rtl_counters=rtl, peak=peak_ops_per_cycle(cfg), tn=cfg.tn)


def merge_reports(programs, layers, config_name, clock_mhz, caveats=None):
    """The model's :class:`Report` of a network compiled one layer at a time: ``programs``
    holds, for each of ``layers`` (its quantized layers), the layer's one-layer program, or
    the text of the :class:`~diannao.sim.compiler.program.CompileError` that rejected it.
    The total is the layers' cycles plus one HALT; the counters are summed. ``caveats``
    (one text per layer, or empty) say what a layer's figures assume."""
    rows, total, counters, cfg, halt = [], 0, {}, None, 0
    for program, layer, caveat in zip(programs, layers, caveats or [""] * len(layers)):
        if isinstance(program, str):
            rows.append(LayerReport(layer.index, layer.kind, layer_macs(layer), 0, 0, 0, 0, 0,
                                    0, note=program))
            continue
        cfg = program.config
        prof = cycle_model.profile(program.instructions, cfg)
        [info] = program.layers
        rows.append(_layer_report(program, info, prof))
        rows[-1].caveat = caveat
        halt = prof.cycles[-1]
        total += prof.total - halt
        node, tiles = cycle_model.program_counters(program)
        for name, value in _flat(node, tiles).items():
            counters[name] = counters.get(name, 0) + value
    if counters:
        counters["cycles"] = total + halt       # one program: one HALT
    return Report(config_name, rows, total + halt, None, clock_mhz, model_counters=counters,
                  source="model", peak=peak_ops_per_cycle(cfg) if cfg else 0,
                  tn=cfg.tn if cfg else 16)


def plot_report(report, path):
    """Save a PNG of ``report``: per layer, its cycles split into what they went to
    (:meth:`LayerReport.losses`), with its utilization above each bar."""
    import matplotlib            # only for plots: it takes a second to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [l for l in report.layers if not l.note]
    if not rows:
        raise ValueError("--plot: no layer ran, nothing to plot")
    causes = list(rows[0].losses())
    colors = {"compute": "#2b8cbe", "padding": "#a6bddb", "fill/drain": "#e34a33",
              "NM/fat tree": "#fdae6b"}
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * len(rows) + 2), 4.5))
    x = list(range(len(rows)))
    bottom = [0.0] * len(rows)
    for cause in causes:
        share = [l.losses()[cause] / l.cycles for l in rows]
        ax.bar(x, share, bottom=bottom, color=colors[cause], label=cause)
        bottom = [b + s for b, s in zip(bottom, share)]
    for i, l in enumerate(rows):
        ax.text(i, 1.01, f"{l.utilization:.0%}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(x, [f"{l.index} {l.kind}" for l in rows], rotation=60, ha="right",
                  fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("share of the layer's cycles")
    ax.set_title(f"{report.config_name} at {report.clock_mhz:g} MHz ({report.source}): "
                 f"utilization above each layer", fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))   # beside the bars
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_roofline(report, path):
    """Save a PNG roofline of ``report``: the node's peak (operations a cycle) and the
    main memory's bandwidth line, and one point per layer that streamed its weights at
    (operations per byte read from main memory, achieved operations per cycle)."""
    import matplotlib            # only for plots: it takes a second to import
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [l for l in report.layers if not l.note and l.mem_bytes]
    if not rows:
        raise ValueError("--plot: no layer read main memory (no roofline to draw: the "
                         "configuration has no main memory or every weight is resident)")
    bw, peak = rows[0].mem_bandwidth, report.peak
    lo = min(min(l.intensity for l in rows) / 2, peak / bw / 4)
    hi = max(max(l.intensity for l in rows) * 2, peak / bw * 4)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = [lo * (hi / lo) ** (k / 100) for k in range(101)]
    ax.plot(xs, [min(peak, bw * x) for x in xs], color="black", lw=1.5,
            label=f"roof: {peak:,} ops/cycle, {bw} B/cycle")
    for l in rows:
        achieved = 2 * l.macs / l.cycles
        ax.plot(l.intensity, achieved, "o", ms=5)
        ax.annotate(f"{l.index} {l.kind}", (l.intensity, achieved), fontsize=7,
                    xytext=(4, -10), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("operations per byte read from main memory")
    ax.set_ylabel("operations per cycle (2 per MAC)")
    ax.set_title(f"{report.config_name} ({report.source}): roofline, one point per layer "
                 f"that streams its weights", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
