"""The analytic cycle model: cycle counts predicted from the program alone.

Every figure here is derived from instruction fields and the configuration, never from a
simulation, and the latencies from the stage counts documented in ``docs/architecture.md``
(not from the RTL modules); tests check that the RTL's counters equal it exactly, and measure
the RTL's latencies against a table of their own.
"""

from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter

from diannao.hw.isa import (DMA_QUEUE, INSTR_WIDTH, SETTINGS_FIELDS, Op, expand, load_rows,
                            run_counts)


__all__ = ["tile_share", "tile_emissions", "tile_cycles", "tile_traffic", "compute_cycles",
           "compute_profile", "overlaps", "timeline", "profile", "Profile",
           "program_cycles", "program_counters", "pipeline_latency",
           "fetch_cycles", "tree_latency", "dma_beats"]


def pipeline_latency(config):
    """Cycles from a row's emission by a tile's controller to the NBout write of its
    output: the buffer read (``config.read_latency``), NFU-1 (1, 2 with ``deep_pipeline``),
    NFU-2 (``log2 tn`` adder-tree levels, accumulator, shifter, rounding and saturation:
    ``log2 tn + 3``, 5 more with ``deep_pipeline``) and NFU-3 (5, 10 with
    ``deep_pipeline``)."""
    deep = config.deep_pipeline
    return (config.read_latency + (1 + deep) + (config.log2_tn + 3 + 5 * deep)
            + (5 + 5 * deep))


def fetch_cycles(config):
    """Cycles of an instruction fetch: ``config.node_read_latency``, or with
    ``imem_narrow`` one per host word (``tn * 16`` bits) of the instruction."""
    if config.imem_narrow:
        return max(1, -(-INSTR_WIDTH // config.row_bits))
    return config.node_read_latency


def tree_latency(tiles):
    """Fat-tree levels, one register each: ``max(1, log2 tiles)`` cycles each way."""
    return max(1, tiles.bit_length() - 1)


def dma_beats(f, config):
    """Main-memory beats the DMA engine reads for instruction fields ``f``: for an
    ``SBLOAD``, ``count`` SB rows of every tile, ``tn * tn * 2 / mem_bytes`` beats a row;
    for an ``IMLOAD``, ``count`` instructions of ``config.instr_beats`` beats; else none."""
    if f["op"] == Op.SBLOAD:
        return f.get("count", 0) * config.tiles * (2 * config.tn * config.tn // config.mem_bytes)
    if f["op"] == Op.IMLOAD:
        return f.get("count", 0) * config.instr_beats
    return 0


def tile_share(f, index):
    """``(blocks, rows)``: output blocks and output rows tile ``index`` computes."""
    g = 1 << f["log2_gob"]
    ob_group, pos_group = index & (g - 1), index >> f["log2_gob"]
    nblocks = (f["ob"] - ob_group + g - 1) // g if f["ob"] > ob_group else 0
    oy0 = pos_group * f["oy_band"]
    rows = max(0, min(oy0 + f["oy_band"], f["oh"]) - oy0)
    return nblocks, rows


def tile_emissions(f, index):
    """Rows tile ``index`` feeds into its NFU for compute instruction fields ``f``."""
    nblocks, rows = tile_share(f, index)
    window = f["kh"] * f["kw"]
    if f["op"] == Op.CONV:
        # the bias row (none when resuming partial sums or for LRN)
        per_pos = window * f["cb"] + (0 if f.get("psum_in") or f.get("lrn") else 1)
    else:
        per_pos = window
    return nblocks * rows * f["ow"] * per_pos


def tile_cycles(f, index, config):
    """Cycles from ``start`` to ``done`` of tile ``index`` (inclusive of the done cycle)."""
    e = tile_emissions(f, index)
    return 3 + e + pipeline_latency(config) if e else 2


def overlaps(prev, f, config):
    """Whether compute instruction ``f`` may start while the tiles' pipelines drain the
    compute instruction ``prev`` (``None``: there was none): with a wide instruction memory,
    when the two agree on every field of :data:`hw.isa.SETTINGS_FIELDS` (what the NFU
    stages read while rows cross them). The node then starts ``f`` once it sees every tile
    draining ``prev`` or done with it: ``5 + e`` cycles after ``prev``'s start (three
    set-up cycles, ``e`` rows emitted by the busiest tile, its first drain cycle, and the
    node's register of it), ``3`` when no tile had work."""
    return (prev is not None and not config.imem_narrow
            and _fields(prev, _settings_of, SETTINGS_FIELDS)
            == _fields(f, _settings_of, SETTINGS_FIELDS))


def program_cycles(instructions, config):
    """Node cycles of every instruction of a program, from its fields alone: each the time
    from its fetch to the next instruction's (for HALT, to ``done``), summed over the times
    it runs (:func:`profile`), so that they sum to the program's cycles.

    The node follows a timeline (``hw.node_controller.NodeController``): every instruction
    is fetched (``F`` cycles, :func:`fetch_cycles`) and decoded (1 cycle), then

    * ``LOAD``: ``rows + 1 + (tree + R)`` cycles (R the node's read latency), after a SYNC
      cycle that waits until the tiles are free with ``sync``;
    * compute: an ISSUE cycle that waits until the tiles are free (the cycle after the last
      tile's ``done``; or, when :func:`overlaps` the previous compute instruction, until
      the node sees every tile draining it: they drain one instruction while they set up
      the next) and the store engine is not collecting the NBout half it writes,
      starts them, and moves on; the tiles are busy :func:`tile_cycles`. With
      ``imem_narrow`` the node waits for them (``WAIT``) before fetching on;
    * ``STORE``: a SYNC cycle that waits until the store engine is idle (with ``sync``
      also until the tiles are free; without, until the rows of the compute instruction
      before the running one have landed: the cycle after its ``done``) and hands it the
      STORE; the engine is busy
      ``rows + tiles + 1 + (tree + R)`` cycles after it for the rows of the NBout half.
      With ``sync`` (or ``imem_narrow``) the node waits for it; else it fetches on;
    * ``SBLOAD`` and ``IMLOAD``: a SYNC cycle that waits until the DMA engine has room
      (fewer than :data:`hw.isa.DMA_QUEUE` operations run; with ``sync`` also until the
      tiles are free) and hands it the instruction. The engine requests its ``B`` beats
      (:func:`dma_beats`) one a cycle from the cycle after, or after the last request of
      the operation before; each beat arrives ``mem_latency`` cycles after its request, and
      the operation runs until the cycle after its last. An operation of no rows waits
      until none runs and does nothing. A compute instruction starts only once at most its
      ``dma_ahead`` operations run (they finish in order);
    * ``HALT``: ``done`` in the decode cycle, or in the cycle the last tile's ``done`` comes
      or the store engine or the DMA engine finishes;
    * ``LOOP``: nothing after its decode cycle; its body follows as often as it runs
      (:func:`hw.isa.expand`), and each of its instructions' figure is the sum of its runs.
    """
    return _walk(instructions, config, None)[0]


def timeline(instructions, config):
    """``(cycles, starts)``: the cycles of every instruction the node runs
    (:func:`hw.isa.expand`: a program's instructions, unless it has LOOPs), as
    :func:`program_cycles` counts them, and the cycle each compute instruction starts the
    tiles in, counted from the program's start (``None`` for the others). It lists every
    run of a loop's body: :func:`profile` sums them without."""
    node, out, starts = _Node(config), [], []
    for _, f in expand(instructions):
        cycles, began = node.run(f)
        out.append(cycles)
        starts.append(began)
    return out, starts


@dataclass
class Profile:
    """What a program does on the node, by the cycle model (:func:`profile`).

    Attributes
    ----------
    cycles : list of int
        Per instruction of the program, its node cycles (:func:`program_cycles`) summed over
        the times it runs.
    runs : list of int
        Per instruction, the times it runs (:func:`hw.isa.run_counts`).
    busy : list of int
        Per compute instruction (0 for the others), the cycles the busiest tile is busy with
        it, summed over its runs: its :func:`tile_cycles`, up to the start of the next
        compute instruction when that one overlaps its drain.
    tile_busy : list of int
        Per tile, its busy cycles so counted (the ``cycles`` counter).
    """
    cycles: list
    runs: list
    busy: list
    tile_busy: list

    @property
    def total(self):
        """The program's cycles."""
        return sum(self.cycles)


def profile(instructions, config):
    """The :class:`Profile` of a program: its :func:`timeline`, summed per instruction.

    A loop's body runs as often as the LOOP says, with one shortcut that changes no figure:
    once an iteration starts with the node in the state the one before started in (every
    engine's times relative to the current cycle, the NBout rows each half holds, the last
    compute instruction's settings; a time already past counts as past, since the node only
    ever waits for times to come), every later iteration repeats it, so they are added at
    once. A loop's addresses do not change its timing, so a real-size layer's tens of
    millions of instructions take a few thousand iterations to count.
    """
    cycles, busy, tile_busy = _walk(instructions, config, [0] * len(instructions))
    return Profile(cycles, run_counts(instructions), busy, tile_busy)


def _walk(instructions, config, busy):
    """``(cycles, busy, tile_busy)`` of :func:`profile`; ``busy`` a list of zeros, one per
    instruction, to count them in, or None (not counted: ``tile_busy`` zeros)."""
    n = len(instructions)
    node = _Node(config)
    cycles = [0] * n
    if not any(f["op"] == Op.LOOP for f in instructions):
        for pc, f in enumerate(instructions):
            cycles[pc] = node.run(f, pc, busy)[0]
        node.finish(busy)
        return cycles, busy, node.tile_busy

    def walk(lo, hi):
        pc = lo
        while pc < hi:
            f = instructions[pc]
            spent, _ = node.run(f, pc, busy)
            cycles[pc] += spent
            if f["op"] != Op.LOOP:
                pc += 1
                continue
            first, end = pc + 1, pc + 1 + f["body"]
            seen = None             # (state, t, counts) at the start of the last iteration
            i = 0
            while i < f["count"]:
                state = node.state()
                counts = (cycles[first:end], busy[first:end] if busy else (),
                          tuple(node.tile_busy))
                if seen is not None and seen[0] == state:
                    # The last iteration from this very state: the rest repeat it.
                    left = f["count"] - i
                    _, t0, before = seen
                    for k in range(end - first):
                        cycles[first + k] += left * (counts[0][k] - before[0][k])
                    for k in range(len(counts[1])):
                        busy[first + k] += left * (counts[1][k] - before[1][k])
                    node.tile_busy = [b + left * (b - a)
                                      for a, b in zip(before[2], counts[2])]
                    node.shift(left * (node.t - t0))
                    break
                seen = (state, node.t, counts)
                walk(first, end)
                i += 1
            pc = end

    walk(0, n)
    node.finish(busy)
    return cycles, busy, node.tile_busy


class _Node:
    """The node's timeline (:func:`program_cycles`) one instruction at a time."""

    def __init__(self, config):
        self.config = config
        self.lat = tree_latency(config.tiles)
        self.fetch = fetch_cycles(config)
        self.rl = config.node_read_latency
        self.rows = [[0] * config.tiles, [0] * config.tiles]   # NBout rows held, by half, tile
        self.t = 0          # the cycle the current instruction's fetch starts
        self.free = 0       # the first cycle the tiles are idle again
        self.ready = 0      # the first cycle they may take a compute instruction that overlaps
        self.landed = 0     # the cycle after the done of the compute before the running one
        self.prev = None    # the last compute instruction
        self.stored, self.half_stored = 0, None     # the store engine: idle from `stored`
        self.asked = 0      # the DMA engine: the cycle of its last request so far
        # The cycle each DMA operation stops running, the last DMA_QUEUE in order (they
        # end in order; at first DMA_QUEUE that never ran): any dma_ahead indexes one.
        self.ends = deque([0] * DMA_QUEUE, maxlen=DMA_QUEUE)
        # The last compute instruction, whose busy cycles the next one's start bounds:
        # (pc, start, cycles per tile), or None.
        self.pending = None
        self.tile_busy = [0] * config.tiles
        # Per compute shape (_SHAPE): its _cycles, the busiest tile's cycles, and the
        # cycles from its start to the node seeing every tile draining it (overlaps).
        self.shapes = {}

    def run(self, f, pc=None, busy=None):
        """Run instruction ``f`` (at ``pc``): ``(cycles, start)``, its cycles and, for a
        compute instruction, the cycle it starts the tiles in (else None); the busy cycles
        of the compute instruction before it go to ``busy[its pc]``."""
        config, t = self.config, self.t
        op = f["op"]
        after = t + self.fetch + 1                      # the cycle after the decode
        began = None
        if op == Op.LOOP:
            end = after
        elif op == Op.LOAD:
            start = max(after, self.free) + 1 if f.get("sync") else after   # SYNC, then LOAD
            end = start + load_rows(f) + 1 + self.lat + self.rl
        elif op == Op.STORE:
            half = f.get("nbout_half", 0)
            blocking = f.get("sync") or config.imem_narrow
            start = max(after, self.stored, self.free if blocking else self.landed)  # SYNC
            self.stored = start + 1 + sum(self.rows[half]) + config.tiles + 1 + self.lat + self.rl
            self.half_stored = half
            end = self.stored if blocking else start + 1
            self.rows[half] = [0] * config.tiles
        elif op in (Op.SBLOAD, Op.IMLOAD):
            beats = dma_beats(f, config)
            # The SYNC cycle: with rows once the queue has room (the operation DMA_QUEUE
            # back has ended), without once every one has ended.
            start = max(after, self.free if f.get("sync") else 0,
                        self.ends[-DMA_QUEUE] if beats else self.ends[-1])
            if beats:
                self.asked = max(start + 1, self.asked + 1) + beats - 1   # its last request
                self.ends.append(self.asked + config.mem_latency + 1)
            end = start + 1
        elif op == Op.HALT:
            # done in the cycle before: the last counted (the DMA engine's first idle cycle)
            end = max(after, self.free, self.stored, self.ends[-1] + 1)
        else:
            shape = _fields(f, _shape_of, _SHAPE)
            known = self.shapes.get(shape)
            if known is None:
                cycles, writes, emitted = _cycles(shape, config)
                known = self.shapes[shape] = (cycles, writes, max(cycles),
                                              5 + max(emitted) if max(emitted) else 3)
            cycles, writes, top, drain = known
            half = f.get("nbout_half", 0)
            tiles_free = self.ready if overlaps(self.prev, f, config) else self.free
            ahead = f.get("dma_ahead", 0)
            start = began = max(after, tiles_free,
                                self.stored if half == self.half_stored else 0,
                                self.ends[-1 - ahead])
            if busy is not None:
                self._settle(start, busy)
                self.pending = (pc, start, cycles)
            self.landed = self.free
            self.free = start + top + 1
            self.ready = start + drain
            for tile, moved in enumerate(writes):
                self.rows[half][tile] += moved
            end = self.free if config.imem_narrow else start + 1
            self.prev = f
        self.t = end
        return end - t, began

    def _settle(self, nxt, busy):
        """Count the last compute instruction's busy cycles, up to cycle ``nxt`` (None:
        all of them)."""
        if self.pending is None:
            return
        pc, start, cycles = self.pending
        for tile, c in enumerate(cycles):
            self.tile_busy[tile] += c if nxt is None else min(c, nxt - start)
        top = max(cycles)
        busy[pc] += top if nxt is None else min(top, nxt - start)
        self.pending = None

    def finish(self, busy):
        """Count the last compute instruction's busy cycles (no instruction follows it)."""
        if busy is not None:
            self._settle(None, busy)

    def state(self):
        """The node's state relative to the current cycle (:func:`profile`)."""
        t = self.t

        def rel(x):
            return max(x - t, 0)

        pending = self.pending
        if pending is not None:
            pc, start, cycles = pending
            # Once every tile's busy cycles have passed, the next start no longer bounds them.
            pending = (pc, cycles, start - t if start + max(cycles) > t else None)
        return (rel(self.free), rel(self.ready), rel(self.landed), rel(self.stored),
                self.half_stored if self.stored > t else None, rel(self.asked),
                tuple(rel(e) for e in self.ends), tuple(map(tuple, self.rows)),
                None if self.prev is None else _fields(self.prev, _settings_of,
                                                       SETTINGS_FIELDS),
                pending)

    def shift(self, dt):
        """Move every time ``dt`` cycles on (a loop's iterations added at once)."""
        self.t += dt
        self.free += dt
        self.ready += dt
        self.landed += dt
        self.stored += dt
        self.asked += dt
        self.ends = deque((e + dt for e in self.ends), maxlen=DMA_QUEUE)
        if self.pending is not None:
            pc, start, cycles = self.pending
            self.pending = (pc, start + dt, cycles)


def _inside(o0, o1, stride, kernel, off, size):
    """Pairs ``(o, k)`` with ``o`` in ``[o0, o1)``, ``k`` in ``[0, kernel)`` whose input
    coordinate ``o * stride + k - off`` lies in ``[0, size)`` (not zero padding): for each
    ``k``, the ``o`` with ``off - k <= o * stride <= size - 1 + off - k``."""
    total = 0
    for k in range(kernel):
        lo = max(o0, -((k - off) // stride))           # ceil((off - k) / stride)
        hi = min(o1 - 1, (size - 1 + off - k) // stride)
        total += max(0, hi - lo + 1)
    return total


def tile_traffic(f, index):
    """Counter increments of tile ``index`` for compute instruction fields ``f``: a dict of
    ``nfu_busy`` and ``sb_reads`` (rows into NFU-1), ``nbin_reads`` (rows read from NBin: not
    the bias rows, not the zero rows of padding) and ``nbout_writes`` (output rows; none
    with ``psum_out``, whose sums go to the partial-sum buffer)."""
    nblocks, rows = tile_share(f, index)
    emissions = tile_emissions(f, index)
    oy0 = (index >> f["log2_gob"]) * f["oy_band"]
    inside = (_inside(oy0, oy0 + rows, f["stride"], f["kh"], f["y_off"], f["in_h"])
              * _inside(0, f["ow"], f["stride"], f["kw"], f["x_off"], f["in_w"]))
    per = f["cb"] if f["op"] == Op.CONV else 1
    return dict(nfu_busy=emissions, sb_reads=emissions, nbin_reads=nblocks * inside * per,
                nbout_writes=0 if f.get("psum_out") else nblocks * rows * f["ow"])


def program_counters(program):
    """The node's and every tile's performance counters after one run of ``program``, from
    the program alone: ``(node, tiles)``, a dict of ``hw.node.NODE_COUNTERS`` and a list of
    dicts of ``hw.tile.COUNTERS`` (the RTL's counters wrap modulo ``2**counter_width``).

    NM reads and fat-tree rows down are the LOAD rows; NM writes and rows up are the rows
    STORE collects (every output row); main-memory reads are the SBLOAD and IMLOAD beats (and stalls
    none: the model's memory never refuses a request); a tile counts the
    :func:`tile_cycles` of each compute instruction as busy, up to the cycle it takes the
    next one when that one overlaps (the busy cycles of two instructions are one)."""
    cfg = program.config
    prof = profile(program.instructions, cfg)
    pairs = list(zip(program.instructions, prof.runs))
    loads = sum(load_rows(f) * n for f, n in pairs if f["op"] == Op.LOAD)
    tiles = [dict(cycles=busy, nfu_busy=0, nbin_reads=0, sb_reads=0, nbout_writes=0)
             for busy in prof.tile_busy]
    for f, n in pairs:
        if f["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL):
            for counts, moved in zip(tiles, compute_profile(f, cfg)[1]):
                for name, k in moved.items():
                    counts[name] += k * n
    stored = sum(t["nbout_writes"] for t in tiles)
    beats = sum(dma_beats(f, cfg) * n for f, n in pairs)
    node = dict(cycles=prof.total, nm_reads=loads,
                nm_writes=stored, tree_down_rows=loads, tree_up_rows=stored,
                mem_reads=beats, mem_stalls=0)
    return node, tiles


#: The fields a compute instruction's cycles and traffic depend on (not its addresses).
_SHAPE = ("op", "log2_gob", "ob", "oh", "oy_band", "ow", "kh", "kw", "cb", "stride", "y_off",
          "x_off", "in_h", "in_w", "psum_in", "psum_out", "lrn")


_shape_of = itemgetter(*_SHAPE)
_settings_of = itemgetter(*SETTINGS_FIELDS)


def _fields(f, getter, names):
    """``f``'s values of ``names`` (``getter``: their itemgetter), 0 for those it lacks."""
    try:
        return getter(f)
    except KeyError:
        return tuple(f.get(k, 0) for k in names)


def compute_cycles(f, config):
    """``(cycles, nbout_writes)`` of compute instruction fields ``f``: per tile, its
    :func:`tile_cycles` and the output rows it writes to NBout (what the timeline needs, at
    a fraction of :func:`compute_profile`'s cost: the compiler weighs many plans)."""
    return _cycles(_fields(f, _shape_of, _SHAPE), config)[:2]


@lru_cache(maxsize=1 << 16)
def _cycles(key, config):
    """:func:`compute_cycles`, and the rows each tile emits."""
    f = dict(zip(_SHAPE, key))
    shares = [tile_share(f, t) for t in range(config.tiles)]
    return (tuple(tile_cycles(f, t, config) for t in range(config.tiles)),
            tuple(0 if f["psum_out"] else nb * nr * f["ow"] for nb, nr in shares),
            tuple(tile_emissions(f, t) for t in range(config.tiles)))


def compute_profile(f, config):
    """``(cycles, traffic)`` of compute instruction fields ``f``: per tile, its
    :func:`tile_cycles` and :func:`tile_traffic`. Instructions that differ only in their
    addresses share one computation (a real layer repeats a few shapes thousands of times)."""
    return _profile(_fields(f, _shape_of, _SHAPE), config)


@lru_cache(maxsize=1 << 14)
def _profile(key, config):
    f = dict(zip(_SHAPE, key))
    return (tuple(tile_cycles(f, t, config) for t in range(config.tiles)),
            tuple(tile_traffic(f, t) for t in range(config.tiles)))
