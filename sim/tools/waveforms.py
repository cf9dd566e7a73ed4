"""``diannao wave``: a waveform inspector built on vcdvcd.

Works on VCDs from Amaranth's simulator (``diannao run --engine pysim --vcd``,
``DIANNAO_VCD=DIR``) and from Verilator. Names are matched robustly across both:

* a name is compared as a dotted path of components, after removing VCD escapes
  (Amaranth writes the struct field ``ins.op`` as ``\\ins.op``), a trailing bit range
  (Verilator writes ``ins [402:0]``) and turning ``__DOT__`` and ``__`` into ``.``
  (so ``ins__op`` and ``ins.op`` are the same name);
* a query matches every signal whose path *ends* with the query's components, so the top
  scopes (``bench.top`` from Amaranth, ``TOP.diannao_node`` from Verilator) never need to be
  typed; if nothing matches, leading components of the query are dropped one at a time
  (a query written against the other engine's top scopes still finds the signal);
* several matching names that are the same VCD variable (aliases) are one signal.

Cycles are counted on the rising edges of the clock (a 1-bit signal named ``clk`` or
``clock``, the shallowest one that toggles; ``--clock NAME`` chooses another; ``--period``
gives a fixed period when the VCD has no clock). Cycle ``k`` starts at the ``k``-th rising
edge (from 0) and a signal's value *in* cycle ``k`` is its value just before rising edge
``k + 1``, the value the registers sample: counting the cycles in which a signal is 1 gives
exactly what a counter incrementing on that signal counts.
"""

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from diannao.hw.isa import INSTR_FIELDS, Op, decode, disassemble


__all__ = ["Wave", "SignalInfo", "InstructionEvent", "Activity", "normalize", "STAGES",
           "add_subcommand"]

#: Per-tile pipeline stages of ``--activity``: (label, path tail of the stage's valid; the
#: NFUs' outputs are streams ``o``, ``o__valid`` in the VCD).
STAGES = (
    ("emit", ("ctrl", "valid")),       # the tile controller emits a row (nfu_busy counter)
    ("nfu1", ("nfu1", "o", "valid")),
    ("nfu2", ("nfu2", "o", "valid")),
    ("nfu3", ("nfu3", "o", "valid")),
)

_RANGE = re.compile(r"\[\d+:\d+\]$")
_CLOCK_NAMES = ("clk", "clock")


def normalize(name):
    """The comparison form of a VCD name: a tuple of path components (see module doc)."""
    s = _RANGE.sub("", name.replace("\\", ""))
    s = s.replace("__DOT__", ".").replace("__", ".")
    return tuple(c for c in s.split(".") if c)


def _natural_key(text):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text)]


@dataclass
class SignalInfo:
    """One declared VCD name."""
    name: str           # full hierarchical name, escapes and bit range removed
    reference: str      # the name as vcdvcd spells it (used to select it when parsing)
    code: str           # VCD identifier code; aliases share it
    width: int
    var_type: str
    path: tuple         # normalize(name)

    @property
    def leaf(self):
        return self.path[-1] if self.path else ""


@dataclass
class InstructionEvent:
    """An instruction register taking a new instruction."""
    cycle: int          # first cycle in which the register holds it
    register: str       # the register's name relative to the common top scope
    pc: object          # program counter of the instruction (int) or None
    word: int

    @property
    def fields(self):
        return decode(self.word)

    def text(self):
        """``OP  field=value ...`` as :func:`hw.isa.disassemble` prints it."""
        op = self.word & 0b111
        if op not in {int(o) for o in Op}:
            return f"???     op={op} (unknown opcode) word=0x{self.word:x}"
        return disassemble(self.word).split(":", 1)[1].strip()


@dataclass
class Activity:
    """Per-tile, per-stage activity (see :meth:`Wave.activity`)."""
    first: int                      # cycle range considered, inclusive
    last: int
    window: int
    gate: object                    # name of the busy signal gating the count, or None
    counted: int                    # cycles counted (busy cycles when gated)
    tiles: list                     # tile labels
    stages: list                    # stage labels present
    active: dict                    # (tile, stage) -> active cycles counted
    windows: list = field(default_factory=list)   # [(start, stop, counted, {(tile, stage): active})]
    signals: dict = field(default_factory=dict)   # (tile, stage) -> signal name

    def utilization(self, tile, stage):
        return self.active[tile, stage] / self.counted if self.counted else float("nan")


def _value_int(v):
    """An int from a vcdvcd value string, or None for x/z/unset/real."""
    if v is None:
        return None
    try:
        return int(v, 2)
    except ValueError:
        return None


def _sample(tv, times):
    """Values of a (sorted) time-value list at each of the sorted ``times``."""
    out, i, cur, n = [], 0, None, len(tv)
    for t in times:
        while i < n and tv[i][0] <= t:
            cur = tv[i][1]
            i += 1
        out.append(cur)
    return out


def _parse_duration(text, timescale, zero=False):
    """VCD time units from ``"20000"`` or ``"10ns"`` (``zero``: 0 allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(s|ms|us|ns|ps|fs)?\s*", str(text))
    if not m:
        raise ValueError(f"bad time {text!r}: expected a number of VCD time units or e.g. '10ns'")
    value, unit = Decimal(m.group(1)), m.group(2)
    if unit:
        if not timescale:
            raise ValueError(f"time {text!r} has a unit but the VCD declares no $timescale")
        factor = Decimal({"s": "1", "ms": "1e-3", "us": "1e-6", "ns": "1e-9", "ps": "1e-12",
                          "fs": "1e-15"}[unit])
        value = value * factor / timescale["timescale"]
    if value != int(value) or value < 0 or (value == 0 and not zero):
        raise ValueError(f"time {text!r} is not a {'' if zero else 'positive '}whole number "
                         f"of VCD time units")
    return int(value)


class Wave:
    """A VCD file: its signals, clock cycles and values per cycle.

    Parameters
    ----------
    path : str or Path
    clock : str, optional
        Name (or unambiguous suffix) of the clock; found automatically otherwise.
    period : int or str, optional
        Clock period (VCD time units, or with a unit such as ``"10ns"``) when the VCD has no
        clock signal; rising edges at ``offset + k * period``.
    offset : int or str, optional
        Time of the first rising edge with ``period`` (default: the first timestamp).
    """

    def __init__(self, path, *, clock=None, period=None, offset=None):
        self.path = str(path)
        self.signals, self.timescale = _read_header(self.path)
        if not self.signals:
            raise ValueError(f"{self.path} declares no signals; is it a VCD file?")
        paths = [s.path[:-1] for s in self.signals]
        common = paths[0]
        for p in paths[1:]:
            n = 0
            while n < min(len(common), len(p)) and common[n] == p[n]:
                n += 1
            common = common[:n]
        self.top = common           # scopes every signal lives in (e.g. bench.top)
        # Where the design's names start: the top scope and, when the top holds only one
        # scope (Verilator's TOP.diannao_node), that scope too.
        children = {s.path[len(common)] for s in self.signals if len(s.path) > len(common) + 1}
        self.roots = [common] + ([common + (children.pop(),)] if len(children) == 1 else [])
        key = _file_key(self.path)
        if key not in _VALUES:
            if len(_VALUES) > 8:
                _VALUES.clear()
            _VALUES[key] = {"tv": {}, "span": (None, None)}
        self._cache = _VALUES[key]
        self._tv = self._cache["tv"]
        self._begin, self._end = self._cache["span"]
        self._load_edges(clock, period, offset)

    # -- names ---------------------------------------------------------------------------

    def label(self, path):
        """A path relative to the common top scope, as text."""
        rel = tuple(path)[len(self.top):] if tuple(path)[:len(self.top)] == self.top else path
        return ".".join(rel or path[-1:])

    def list(self, pattern=None):
        """Signals whose name contains ``pattern`` or matches it as a regex (all without)."""
        if not pattern:
            return list(self.signals)
        try:
            rx = re.compile(pattern)
        except re.error:
            rx = None
        out = []
        for s in self.signals:
            norm = ".".join(s.path)
            if (pattern in s.name or pattern in norm or pattern in s.reference
                    or (rx and (rx.search(s.name) or rx.search(norm)))):
                out.append(s)
        return out

    def _suffix_matches(self, q):
        return [s for s in self.signals if len(s.path) >= len(q) and s.path[-len(q):] == q]

    def candidates(self, name):
        """Signals matching ``name`` (see module doc), one per VCD variable."""
        q = normalize(name)
        if not q:
            raise ValueError(f"empty signal name {name!r}")
        exact = [s for s in self.signals if s.name == name or s.reference == name]
        found = exact
        while not found:
            found = self._suffix_matches(q)
            if found or len(q) == 1:
                break
            q = q[1:]
        by_code = {}
        for s in sorted(found, key=lambda s: (len(s.path), s.name)):
            by_code.setdefault(s.code, s)
        found = list(by_code.values())
        # A name given from the design's top (``ctrl.pc``, not also ``tile0.ctrl.pc``) is exact.
        rooted = [s for s in found if any(s.path == r + q for r in self.roots)]
        return rooted if len(rooted) == 1 else found

    def find(self, name):
        """The one signal ``name`` designates; ``ValueError`` if none or ambiguous."""
        found = self.candidates(name)
        if len(found) == 1:
            return found[0]
        if not found:
            import difflib
            leaf = normalize(name)[-1] if normalize(name) else name
            near = difflib.get_close_matches(leaf, sorted({s.leaf for s in self.signals}), n=5)
            hint = f"; similar names: {', '.join(near)}" if near else ""
            raise ValueError(f"no signal {name!r} in {self.path}{hint} "
                             f"(use --list PATTERN to search)")
        shown = "\n  ".join(s.name for s in found[:30])
        more = f"\n  ... and {len(found) - 30} more" if len(found) > 30 else ""
        raise ValueError(f"signal name {name!r} is ambiguous in {self.path}; "
                         f"{len(found)} candidates:\n  {shown}{more}")

    # -- values --------------------------------------------------------------------------

    def load(self, signals):
        """Parse the value changes of ``signals`` (one pass over the file for all)."""
        import vcdvcd
        need = [s for s in signals if s.code not in self._tv]
        if not need:
            return
        v = vcdvcd.VCDVCD(self.path, signals=sorted({s.reference for s in need}))
        for s in need:
            code = v.references_to_ids.get(s.reference)
            self._tv[s.code] = v.data[code].tv if code in v.data else []
        self._begin, self._end = v.begintime, v.endtime
        self._cache["span"] = (self._begin, self._end)

    def tv(self, sig):
        self.load([sig])
        return self._tv[sig.code]

    def _load_edges(self, clock, period, offset):
        self.clock = None
        if clock is not None:
            sig = self.find(clock)
            self.load([sig])
            edges = self._rising(self.tv(sig))
            if not edges:
                raise ValueError(f"clock {sig.name} has no rising edge")
            self.clock = sig
        elif period is not None:
            p = _parse_duration(period, self.timescale)
            if not self._tv:
                self.load([self.signals[0]])
            t0 = self._begin if offset is None else _parse_duration(offset, self.timescale, True)
            edges = list(range(t0, self._end + 1, p))
            self.period = p
        else:
            cands = [s for s in self.signals if s.width == 1 and s.leaf.lower() in _CLOCK_NAMES]
            by_code = {}
            for s in sorted(cands, key=lambda s: (len(s.path), s.name)):
                by_code.setdefault(s.code, s)
            cands = list(by_code.values())
            self.load(cands)
            edges = None
            for s in cands:
                e = self._rising(self._tv[s.code])
                if len(e) >= 2:
                    edges, self.clock = e, s
                    break
            if edges is None:
                raise ValueError(f"no clock found in {self.path} (no toggling 1-bit signal named "
                                 f"{' or '.join(_CLOCK_NAMES)}); pass --clock NAME or "
                                 f"--period T (VCD time units, or e.g. 10ns)")
        if self._end is None:
            self.load([self.signals[0]])
        self.edges = edges
        # The value in cycle k is the value just before edge k + 1.
        self.sample_times = [t - 1 for t in edges[1:]] + [max(self._end, edges[-1])]

    @staticmethod
    def _rising(tv):
        edges, prev = [], None
        for t, v in tv:
            if v == "1" and prev == "0":
                edges.append(t)
            prev = v
        return edges

    @property
    def cycles(self):
        return len(self.edges)

    def values(self, sig):
        """Raw vcdvcd value strings (binary, ``x``..., None before the first) per cycle."""
        return _sample(self.tv(sig), self.sample_times)

    def ints(self, sig):
        """Unsigned int values per cycle (None for x/z/unset)."""
        return [_value_int(v) for v in self.values(sig)]

    def _window(self, start, stop):
        n = self.cycles
        start = 0 if start is None else start
        stop = n - 1 if stop is None else min(stop, n - 1)
        if start < 0 or start > n - 1:
            raise ValueError(f"--from {start} is outside the trace's cycles 0..{n - 1}")
        if stop < start:
            raise ValueError(f"--to {stop} is before --from {start}")
        return start, stop

    def changes(self, sig, start=None, stop=None):
        """``[(cycle, time, raw value)]``: the value at ``start`` and at every change."""
        start, stop = self._window(start, stop)
        vals = self.values(sig)
        out = []
        for k in range(start, stop + 1):
            if k == start or vals[k] != vals[k - 1]:
                out.append((k, self.edges[k], vals[k]))
        return out

    # -- instructions --------------------------------------------------------------------

    def instruction_registers(self, name="ins"):
        """``{path: (full signal or None, {field: signal})}`` of every register ``name``."""
        field_names = {f.name for f in INSTR_FIELDS}
        regs = {}
        for s in self.signals:
            if s.leaf == name:
                full, fields = regs.setdefault(s.path, [None, {}])
                if full is None or len(s.name) < len(full.name):
                    regs[s.path][0] = s
            elif len(s.path) >= 2 and s.path[-2] == name and s.leaf in field_names:
                regs.setdefault(s.path[:-1], [None, {}])[1].setdefault(s.leaf, s)
        return {p: tuple(v) for p, v in sorted(regs.items(), key=lambda kv: (
            len(kv[0]), _natural_key(".".join(kv[0]))))}

    def _sibling(self, path, leaf):
        want = tuple(path[:-1]) + (leaf,)
        for s in self.signals:
            if s.path == want and s.width >= 1:
                return s
        return None

    def instructions(self, name="ins"):
        """Every instruction latched by an instruction register, in cycle order.

        A register ``ins`` is read whole (decoded with :func:`hw.isa.decode`) or, if the
        VCD lacks the whole vector, reassembled from its field signals (``ins.op``,
        ``ins__op``...; missing fields read as 0). An instruction is reported in the first
        cycle it is held: when the value changes, when a sibling ``pc`` increments (the node
        controller latches on decode, so repeats of the same word are seen; ``pc`` is the
        incremented value minus one) or, for a register without a sibling ``pc``, after a
        cycle with sibling ``start`` high and ``busy`` low (a tile controller's latch; its
        ``pc`` is taken from the latest register with a ``pc`` that latched the same word).
        """
        regs = self.instruction_registers(name)
        if not regs:
            raise ValueError(f"no instruction register {name!r} (nor fields like "
                             f"{name}.op / {name}__op) in {self.path}")
        layout = {f.name: (f.offset, f.width) for f in INSTR_FIELDS}
        plans, needed = [], []
        for path, (full, fields) in regs.items():
            if full is None and "op" not in fields:
                continue
            pc = self._sibling(path, "pc")
            start = busy = None
            if pc is None:          # a tile controller: latches on start while idle
                start, busy = self._sibling(path, "start"), self._sibling(path, "busy")
            plans.append((path, full, fields, pc, start, busy))
            needed += [full] if full is not None else list(fields.values())
            needed += [s for s in (pc, start, busy) if s is not None]
        self.load(needed)
        events = []
        for path, full, fields, pc_sig, start_sig, busy_sig in plans:
            if full is not None:
                words = self.ints(full)
            else:
                cols = {n: self.ints(s) for n, s in fields.items()}
                words = []
                for k in range(self.cycles):
                    w = 0
                    for n, col in cols.items():
                        if col[k] is None:
                            w = None
                            break
                        off, width = layout[n]
                        w |= (col[k] & ((1 << width) - 1)) << off
                    words.append(w)
            pcs = self.ints(pc_sig) if pc_sig is not None else None
            starts = self.ints(start_sig) if start_sig is not None else None
            busys = self.ints(busy_sig) if busy_sig is not None else None
            label = self.label(path)
            prev = 0
            for k, w in enumerate(words):
                new = w is not None and w != prev
                if k and pcs is not None and pcs[k] is not None and pcs[k - 1] is not None \
                        and pcs[k] == pcs[k - 1] + 1:
                    new = True
                if k and starts is not None and busys is not None and starts[k - 1] == 1 \
                        and busys[k - 1] == 0:
                    new = True
                if new and w is not None:
                    pc = pcs[k] - 1 if pcs is not None and pcs[k] is not None else None
                    events.append(InstructionEvent(k, label, pc, w))
                if w is not None:
                    prev = w
        # Registers without a pc take it from the latest register with one holding the word.
        with_pc = [e for e in events if e.pc is not None]
        for e in events:
            if e.pc is None:
                for o in reversed(with_pc):
                    if o.cycle <= e.cycle and o.word == e.word:
                        e.pc = o.pc
                        break
        order = {p: i for i, p in enumerate(self.label(p[0]) for p in plans)}
        events.sort(key=lambda e: (e.cycle, order.get(e.register, 0)))
        return events

    # -- activity ------------------------------------------------------------------------

    def stage_signals(self):
        """``{(tile label, stage): signal}`` of the per-tile stage valids (:data:`STAGES`)."""
        found = {}
        for stage, tail in STAGES:
            n = len(tail)
            for s in self.signals:
                if s.width == 1 and len(s.path) > n and s.path[-n:] == tail:
                    key = s.path[:-n]
                    found.setdefault((key, stage), s)
        tiles = sorted({k for k, _ in found}, key=lambda k: _natural_key(".".join(k)))
        labels = {k: (self.label(k) if k != self.top else (k[-1] if k else "top")) for k in tiles}
        return {(labels[k], st): s for (k, st), s in found.items()}

    def find_busy(self):
        """The shallowest 1-bit ``busy`` (the node's, or the tile's in a tile simulation).

        The node's is its host port's ``host.busy`` (``host__busy``), one level deeper than
        its name suggests: it counts as a ``busy`` of the scope holding ``host`` and comes
        first among them (Amaranth's simulator also shows the controller's ``busy``, which
        drives it, in the node's scope).
        """
        def key(s):
            host = s.path[-2:-1] == ("host",)
            return len(s.path) - host, not host, s.name
        cands = sorted((s for s in self.signals if s.leaf == "busy" and s.width == 1), key=key)
        return cands[0] if cands else None

    def activity(self, window=None, start=None, stop=None, busy="auto"):
        """Fraction of cycles each tile's stages are valid, overall and per window.

        ``busy``: ``"auto"`` counts only the cycles in which :meth:`find_busy` is 1 (so the
        emit stage's utilization is the ``nfu_busy`` counter over the ``cycles`` counter);
        a signal name to gate on another signal; ``None`` to count every cycle. Without
        ``start``/``stop`` the range is from the first to the last counted cycle.
        """
        stages = self.stage_signals()
        if not stages:
            raise ValueError(f"no stage valid signals (ctrl.valid, nfu1/2/3.o.valid) in "
                             f"{self.path}")
        gate = self.find_busy() if busy == "auto" else (self.find(busy) if busy else None)
        self.load(list(stages.values()) + ([gate] if gate is not None else []))
        n = self.cycles
        counted = [v == 1 for v in self.ints(gate)] if gate is not None else [True] * n
        if start is None and stop is None and gate is not None:
            busy_cycles = [k for k, c in enumerate(counted) if c]
            if not busy_cycles:
                raise ValueError(f"{gate.name} is never 1; use --all-cycles")
            start, stop = busy_cycles[0], busy_cycles[-1]
        start, stop = self._window(start, stop)
        span = stop - start + 1
        if window is None:
            window = max(1, math.ceil(span / 16))
        if window < 1:
            raise ValueError(f"--window must be a positive number of cycles, not {window}")
        cols = {key: [v == 1 for v in self.ints(s)] for key, s in stages.items()}
        tiles = list(dict.fromkeys(t for t, _ in stages))
        stage_names = [st for st, _ in STAGES if any(s == st for _, s in stages)]
        act = Activity(start, stop, window, gate.name if gate is not None else None, 0,
                       tiles, stage_names, {k: 0 for k in stages},
                       signals={k: s.name for k, s in stages.items()})
        for w0 in range(start, stop + 1, window):
            w1 = min(w0 + window, stop + 1)
            cnt = sum(counted[w0:w1])
            per = {k: sum(1 for c in range(w0, w1) if counted[c] and col[c])
                   for k, col in cols.items()}
            act.windows.append((w0, w1 - 1, cnt, per))
            act.counted += cnt
            for k, a in per.items():
                act.active[k] += a
        return act


# -- command line --------------------------------------------------------------------------

def add_subcommand(sub):
    p = sub.add_parser(
        "wave", help="inspect a VCD: signals, histories, instructions, activity",
        description="Inspect a VCD from the Amaranth simulator or Verilator. Names may be "
                    "given as any unambiguous dotted suffix of the hierarchical name ('__' and "
                    "'.' are interchangeable). Cycles count rising edges of the clock from 0.")
    p.add_argument("vcd", help="VCD file (Amaranth simulator or Verilator)")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--list", nargs="?", const="", metavar="PATTERN",
                      help="list signals (names, widths), optionally only those containing "
                           "PATTERN or matching it as a regex")
    mode.add_argument("--signal", metavar="NAME", help="print one signal's changes per cycle")
    mode.add_argument("--instructions", action="store_true",
                      help="decode the instruction registers (node and tile controllers' ins)")
    mode.add_argument("--activity", action="store_true",
                      help="per-tile NFU stage utilization over time")
    p.add_argument("--from", dest="start", type=int, metavar="CYCLE", help="first cycle")
    p.add_argument("--to", dest="stop", type=int, metavar="CYCLE", help="last cycle (inclusive)")
    p.add_argument("--signed", action="store_true", help="--signal: also show two's complement")
    p.add_argument("--frac", type=int, metavar="N",
                   help="--signal: fixed point with N fraction bits (signed): show value/2**N")
    p.add_argument("--clock", metavar="NAME", help="clock signal (default: found automatically)")
    p.add_argument("--period", metavar="T",
                   help="clock period when the VCD has no clock (VCD time units, or e.g. 10ns)")
    p.add_argument("--offset", metavar="T", help="with --period: time of the first rising edge")
    p.add_argument("--register", default="ins", metavar="NAME",
                   help="--instructions: name of the instruction registers (default ins)")
    p.add_argument("--where", metavar="PATTERN",
                   help="--instructions: only the register named PATTERN, else those whose "
                        "name contains it")
    p.add_argument("--window", type=int, metavar="N",
                   help="--activity: window in cycles (default: about 16 windows)")
    p.add_argument("--plot", metavar="PNG", help="--activity: save a utilization plot")
    p.add_argument("--busy", metavar="NAME",
                   help="--activity: count only cycles where NAME is 1 (default: the top busy)")
    p.add_argument("--all-cycles", action="store_true",
                   help="--activity: count every cycle, not only busy ones")
    p.set_defaults(func=_cmd_wave)


def _cmd_wave(args):
    if args.frac is not None and not 0 <= args.frac <= 64:
        raise ValueError(f"--frac must be in [0, 64], not {args.frac}")
    if args.list is not None:
        return _cmd_list(args)
    wave = Wave(args.vcd, clock=args.clock, period=args.period, offset=args.offset)
    if args.signal is not None:
        return _cmd_signal(wave, args)
    if args.instructions:
        return _cmd_instructions(wave, args)
    return _cmd_activity(wave, args)


# Parsed headers and value changes, per (file, modification time, size): one process that
# inspects the same VCD several times (a notebook, the tests) parses each part once.
_HEADERS, _VALUES = {}, {}


def _file_key(path):
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"no such VCD file: {path}")
    st = p.stat()
    return (str(p.resolve()), st.st_mtime_ns, st.st_size)


def _read_header(path):
    """``(signals, timescale)`` of a VCD, without its value changes."""
    key = _file_key(path)
    if key not in _HEADERS:
        if len(_HEADERS) > 8:
            _HEADERS.clear()
        _HEADERS[key] = _parse_header(path)
    return _HEADERS[key]


def _parse_header(path):
    import vcdvcd
    try:
        head = vcdvcd.VCDVCD(path, only_sigs=True)
    except (UnicodeDecodeError, KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"{path} is not a readable VCD file ({exc})") from None
    signals = []
    for ref in head.signals:
        code = head.references_to_ids[ref]
        sig = head.data[code]
        try:
            width = int(sig.size)
        except ValueError:
            width = 1
        signals.append(SignalInfo(_RANGE.sub("", ref.replace("\\", "")), ref, code, width,
                                  sig.var_type, normalize(ref)))
    return signals, head.timescale


def _cmd_list(args):
    w = Wave.__new__(Wave)          # names only: no values, no clock needed
    w.path = args.vcd
    w.signals, w.timescale = _read_header(args.vcd)
    if not w.signals:
        raise ValueError(f"{args.vcd} declares no signals; is it a VCD file?")
    sigs = w.list(args.list)
    if not sigs:
        raise ValueError(f"no signal matches {args.list!r} in {args.vcd} ({len(w.signals)} signals)")
    width = max(len(s.name) for s in sigs)
    for s in sigs:
        kind = "" if s.var_type in ("wire", "reg") else f"  ({s.var_type})"
        print(f"{s.name:<{width}}  {s.width:>4}{kind}")
    what = f" matching {args.list!r}" if args.list else ""
    print(f"{len(sigs)} of {len(w.signals)} signals{what}")
    return 0


def _clock_text(wave):
    if wave.clock is not None:
        return f"clock {wave.clock.name}"
    return f"period {wave.period}"


def _cmd_signal(wave, args):
    sig = wave.find(args.signal)
    rows = wave.changes(sig, args.start, args.stop)
    signed = args.signed or args.frac is not None
    lo, hi = wave._window(args.start, args.stop)
    unit = ""
    if wave.timescale:
        unit = f" ({wave.timescale['magnitude']} {wave.timescale['unit']} units)"
    print(f"{sig.name}  {sig.width} bit{'s' if sig.width != 1 else ''}  "
          f"cycles {lo}..{hi} of {wave.cycles} ({_clock_text(wave)})")
    if sig.var_type not in ("wire", "reg", "integer", "parameter", "logic", "bit") and \
            not any(v is not None for _, _, v in rows):
        print(f"  ({sig.var_type} variables carry no values vcdvcd can read)")
    digits = max(1, -(-sig.width // 4))
    head = f"{'cycle':>8}  {'time' + unit:>14}  {'hex':<{digits + 2}}  {'unsigned':>10}"
    if signed:
        head += f"  {'signed':>10}"
    if args.frac is not None:
        head += f"  {'/2**' + str(args.frac):>14}"
    print(head)
    for cycle, time, raw in rows:
        v = _value_int(raw)
        if v is None:
            line = f"{cycle:>8}  {time:>14}  {raw if raw is not None else '-':<{digits + 2}}"
        else:
            line = f"{cycle:>8}  {time:>14}  {'0x' + format(v, f'0{digits}x'):<{digits + 2}}" \
                   f"  {v:>10}"
            s = v - (1 << sig.width) if sig.width and v >> (sig.width - 1) else v
            if signed:
                line += f"  {s:>10}"
            if args.frac is not None:
                line += f"  {s / 2 ** args.frac:>14.6g}"
        print(line)
    print(f"{len(rows) - 1} change{'s' if len(rows) != 2 else ''} after cycle {lo}")
    return 0


def _cmd_instructions(wave, args):
    events = wave.instructions(args.register)
    if args.where:
        exact = [e for e in events if e.register == args.where]
        events = exact or [e for e in events if args.where in e.register]
    lo, hi = wave._window(args.start, args.stop)
    events = [e for e in events if lo <= e.cycle <= hi]
    regs = list(dict.fromkeys(e.register for e in events))
    print(f"instruction registers: {', '.join(regs) or '(none in range)'}  "
          f"({_clock_text(wave)}, cycles {lo}..{hi})")
    width = max([len(r) for r in regs] + [8])
    print(f"{'cycle':>8}  {'register':<{width}}  {'pc':>4}  instruction")
    for e in events:
        pc = "-" if e.pc is None else e.pc
        print(f"{e.cycle:>8}  {e.register:<{width}}  {pc:>4}  {e.text()}")
    print(f"{len(events)} instruction{'s' if len(events) != 1 else ''}")
    return 0


def _pct(a, n):
    return f"{100 * a / n:.0f}%" if n else "-"


def _cmd_activity(wave, args):
    busy = None if args.all_cycles else (args.busy or "auto")
    act = wave.activity(args.window, args.start, args.stop, busy=busy)
    gate = f"counting cycles where {act.gate} = 1" if act.gate else "counting every cycle"
    print(f"activity: cycles {act.first}..{act.last} ({_clock_text(wave)}), {gate}, "
          f"window {act.window}")
    keys = [(t, s) for t in act.tiles for s in act.stages if (t, s) in act.active]
    tw = max(len(t) for t in act.tiles)
    cw = max(5, max(len(s) for s in act.stages))
    groups = [t for t in act.tiles]
    line1 = f"{'cycles':<19} {'n':>6}  " + "  ".join(
        f"{t:<{len([k for k in keys if k[0] == t]) * (cw + 1) - 1}}" for t in groups)
    line2 = f"{'':<19} {'':>6}  " + "  ".join(
        " ".join(f"{s:>{cw}}" for (tt, s) in keys if tt == t) for t in groups)
    print(line1.rstrip())
    print(line2)
    for w0, w1, cnt, per in act.windows:
        cells = "  ".join(" ".join(f"{_pct(per[k], cnt):>{cw}}" for k in keys if k[0] == t)
                          for t in groups)
        print(f"{f'{w0}-{w1}':<19} {cnt:>6}  {cells}")
    print(f"overall utilization ({act.counted} counted cycles):")
    print(f"  {'tile':<{tw}}  " + "  ".join(f"{s:>16}" for s in act.stages))
    for t in act.tiles:
        cells = []
        for s in act.stages:
            a = act.active.get((t, s))
            cells.append(f"{'-':>16}" if a is None else
                         f"{a:>7} {100 * a / act.counted if act.counted else 0:>7.2f}%")
        print(f"  {t:<{tw}}  " + "  ".join(cells))
    cells = []
    for s in act.stages:
        ks = [k for k in act.active if k[1] == s]
        a = sum(act.active[k] for k in ks)
        n = act.counted * len(ks)
        cells.append(f"{a:>7} {100 * a / n if n else 0:>7.2f}%")
    print(f"  {'all':<{tw}}  " + "  ".join(cells))
    if args.plot:
        _plot_activity(act, args.plot, wave.path)
        print(f"plot -> {args.plot}")
    return 0


def _plot_activity(act, out, title):
    """Utilization per window: one panel per stage; a line per tile (a tile x window heat
    map when there are more than 8 tiles)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    heat = len(act.tiles) > 8
    fig, axes = plt.subplots(len(act.stages), 1, sharex=True, squeeze=False,
                             figsize=(10, 1.8 + (0.12 * len(act.tiles) + 1 if heat else 1.6)
                                      * len(act.stages)))
    edges = [w0 for w0, _, _, _ in act.windows] + [act.windows[-1][1] + 1]
    n = len(act.tiles)
    for ax, stage in zip(axes[:, 0], act.stages):
        rows = [[100 * per.get((t, stage), 0) / cnt if cnt else float("nan")
                 for _, _, cnt, per in act.windows] for t in act.tiles]
        if heat:
            mesh = ax.pcolormesh(edges, range(n + 1), rows, vmin=0, vmax=100, cmap="viridis")
            ax.set_yticks([i + 0.5 for i in range(n)], act.tiles, fontsize="x-small")
            ax.invert_yaxis()
            fig.colorbar(mesh, ax=ax, label="%")
        else:
            for i, (t, ys) in enumerate(zip(act.tiles, rows)):
                # Earlier tiles drawn wider so that equal curves stay visible.
                ax.stairs(ys, edges, label=t, linewidth=1 + 2.5 * (n - 1 - i) / max(1, n - 1))
            ax.set_ylim(-5, 105)
            ax.grid(True, alpha=0.3)
        ax.set_ylabel(f"{stage} %")
    axes[0, 0].set_title(f"{Path(title).name}: stage utilization "
                         f"(window {act.window} cycles)")
    if not heat:
        axes[0, 0].legend(loc="upper right", fontsize="small", ncol=min(8, n))
    axes[-1, 0].set_xlabel("cycle")
    fig.tight_layout()
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
