"""The node controller: fetches instructions and sequences LOAD, compute and STORE."""

from amaranth import *
from amaranth.lib import wiring, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.config import Config
from diannao.hw.instr import INSTR, SETTINGS
from diannao.hw.isa import DMA_QUEUE, INSTR_WIDTH, LOOP_FIELDS, SETTINGS_FIELDS, Op, field_width
from diannao.hw.pipe import delay


__all__ = ["NodeController", "fetch_cycles", "STATES"]

#: The controller's states; ``state`` reports the index of the current one (the host reads
#: it in the node's ``status`` register when a run overruns its budget).
STATES = ("IDLE", "FETCH", "DECODE", "LOAD", "ISSUE", "WAIT", "SYNC", "STORE", "DRAIN",
          "HALT")

#: Bits of the row counts and the STORE row index, derived: a LOAD's ``count``, or a tile's
#: NBout rows in a STORE (up to ``nbout_depth``, which :class:`Config` keeps below
#: ``2**field_width("out_base")``, the NM address each row carries).
ROWS_WIDTH = max(field_width("count"), field_width("out_base"))


def fetch_cycles(config):
    """Cycles of an instruction fetch: ``config.node_read_latency`` (1; 3 with
    ``deep_pipeline``: the registered read, then a register after it), or
    with ``config.imem_narrow`` one per host word of the instruction (the instruction memory
    is then ``tn * 16`` bits wide)."""
    if config.imem_narrow:
        return max(1, -(-INSTR_WIDTH // config.row_bits))
    return config.node_read_latency


class NodeController(wiring.Component):
    """Runs a program from instruction memory over the tiles (paper: the control processor).

    Every instruction costs :func:`fetch_cycles` fetch cycles (the read latency, unless
    ``config.imem_narrow``: then ``fetch_chunk`` counts the host words of the instruction
    being read, ``imem_en`` is high only while fetching, and the node keeps ``imem_data``
    stable until the next fetch, so the controller keeps no copy) and a decode cycle, then:

    * ``LOAD``: one NM read a cycle for each of its ``lines * runs * count`` rows (the
      steps between runs and lines cost no cycle); row ``i`` goes down the fat tree to
      NBin row ``dst + i`` of every tile; then ``read latency + tree latency`` cycles drain
      the tree (read latency: ``config.node_read_latency``, 1, or 3 with ``deep_pipeline``).
    * ``CONV``/``MAXPOOL``/``AVGPOOL``: an ISSUE cycle starts every tile on the
      instruction once all are done with the last one, or (without ``imem_narrow``) done or
      draining it (seen a cycle late: ``tile_draining`` registered) when the two agree on
      :data:`hw.isa.SETTINGS_FIELDS` (compared in DECODE, registered), and the engines
      allow it (below); with ``imem_narrow`` the controller then waits until the last tile is done (``max`` over
      tiles of :func:`diannao.sim.compiler.cycle_model.tile_cycles`).
    * ``STORE``: a SYNC cycle hands the NBout half to the *store engine* (once it is idle,
      and with ``sync`` once the tiles are done), which collects it while the controller
      goes on (paper: DaDianNao's central eDRAM keeps input and output neurons in separate
      banks; here NM's read port serves LOADs and its write port the STORE, and the fat
      tree moves rows down and up at once): tiles in order ``0 .. tiles-1``, one NBout read
      a cycle for each row the tile holds, plus one cycle to move to the next tile; then
      ``read latency + tree latency`` cycles drain the tree into NM, and the half is
      emptied. A STORE without ``sync`` first waits until no tile is ``flushing`` (the
      rows of an instruction drained under the next one have landed). A STORE with
      ``sync`` (the last of a layer, whose rows the next layer loads), or any STORE with ``imem_narrow``, waits in ``STORE`` until the engine is
      done; a compute instruction that writes the half being stored waits for it in ISSUE.
    * ``SBLOAD`` (with a main memory, ``config.mem_bytes``): a SYNC cycle hands it to the
      DMA engine (:class:`hw.dma.DMA`; once the engine is ``ready``: it runs fewer than
      :data:`hw.isa.DMA_QUEUE` operations, none for an SBLOAD of no rows; with ``sync``
      once the tiles are done: ``dma_start``), and the controller fetches on. A compute
      instruction waits in ISSUE until the engine runs at most its ``dma_ahead``
      operations (``dma_running``). ``IMLOAD`` likewise.
    * ``HALT``: ``done`` pulses in the decode cycle (or once the tiles, the store engine
      and the DMA engine are done) and the node goes idle.
    * ``LOOP`` (with ``config.loop_depth``): the decode cycle pushes a level (the body's
      first and last addresses, the iterations, the LOOP's steps of
      :data:`hw.isa.LOOP_FIELDS`, and the offset of the enclosing levels); then FETCH.
      Every instruction is decoded with its ``LOOP_FIELDS`` plus the offset of the
      innermost level; the decode cycle of a body's last instruction goes back to the
      body's first (one iteration fewer, the level's offset stepped) or, in the last
      iteration, pops the level (and the levels whose bodies end there too). A LOOP costs
      a fetch and a decode; an iteration costs nothing more.

    An unknown opcode (LOOP too without ``loop_depth``), or a LOOP of no iterations, of an
    empty body, or one level too deep, sets ``error`` and halts.

    ``state`` is the index in :data:`STATES` of the current state and ``pending`` the tiles
    that have not finished the current compute instruction (both for the host's ``status``
    and ``tiles_busy`` registers: where a run that overran its cycle budget stands).

    Parameters
    ----------
    config : Config
    tree_latency : int
        Fat-tree latency in cycles (each way).
    """

    def __init__(self, config, tree_latency):
        if not isinstance(config, Config):
            raise TypeError(f"NodeController config must be a Config, not {config!r}")
        self.config = config
        self.tree_latency = tree_latency
        tiles = config.tiles
        self.pc_width = max(1, ceil_log2(config.imem_depth))
        self.fetch_cycles = fetch_cycles(config)
        self.nbout_width = max(1, ceil_log2(config.nbout_depth))
        super().__init__({
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "error": Out(1),
            "pc": Out(self.pc_width),
            "state": Out(range(len(STATES))),
            "pending": Out(tiles),
            "imem_en": Out(1),
            "fetch_chunk": Out(range(max(2, self.fetch_cycles))),
            "imem_data": In(INSTR),
            "tile_start": Out(1),
            "tile_instr": Out(INSTR),
            "tile_draining": In(tiles),
            "tile_done": In(tiles),
            "tile_flushing": In(tiles),
            "nbout_count": In(data.ArrayLayout(range(config.nbout_depth + 1), tiles)),
            "nbout_addr": Out(self.nbout_width),
            "nbout_en": Out(tiles),
            "nbout_clear": Out(1),
            "nbout_sel": Out(1),
            "up_valid": Out(tiles),
            "nm_raddr": Out(field_width("src")),       # a LOAD's NM row
            "nm_ren": Out(1),
            "down_valid": Out(1),
            "down_addr": Out(field_width("dst")),      # a LOAD's NBin row
            "dma_start": Out(1),
            "dma_ready": In(1),
            "dma_running": In(range(DMA_QUEUE + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        # With a narrow instruction memory the node holds the fetched instruction stable
        # (imem_en is low outside FETCH), so it is used directly instead of a copy.
        narrow = bool(cfg.imem_narrow)
        ins = self.imem_data if narrow else Signal(INSTR, name="ins")
        # The instruction in hand as the controller decodes it: with loops, its LOOP_FIELDS
        # plus the offset of the innermost loop it runs in (`cur`).
        depth = cfg.loop_depth
        word = Signal(INSTR, name="word") if depth else self.imem_data
        i = Signal(ROWS_WIDTH)   # STORE row within the current tile
        tile = Signal(range(cfg.tiles + 1))
        pending = self.pending         # tiles not yet done with the compute instruction
        # The last compute instruction the tiles took (its SETTINGS_FIELDS), and whether
        # the instruction in hand agrees with it (worked out in DECODE).
        issued = Signal(SETTINGS, name="issued")
        agree = Signal()
        # The tiles draining, a cycle late (a register here: the tiles lie across the chip).
        draining = Signal(cfg.tiles)
        m.d.sync += draining.eq(self.tile_draining)
        # Tiles not done, with this cycle's done pulses: all idle when it is 0.
        left = Signal.like(pending)
        m.d.comb += left.eq(pending & ~self.tile_done)
        m.d.sync += pending.eq(left)         # (a start overrides this below)
        rl = cfg.node_read_latency
        drain = Signal(range(self.tree_latency + rl + 1))
        # LOAD and STORE keep their pointers and the rows left as registers, and whether a
        # row is left as a flag worked out one cycle ahead (`rows_left != 1` when stepping):
        # the loop tests and addresses start from registers, not from the instruction.
        src, dst = Signal(field_width("src")), Signal(field_width("dst"))
        rows_left = Signal(ROWS_WIDTH)
        more = Signal()
        # A LOAD's runs and lines left after the current one.
        runs_left, lines_left = Signal(field_width("runs_m1")), Signal(field_width("lines_m1"))
        counts = Array([*self.nbout_count, C(0, len(self.nbout_count[0]))])
        # The store engine: the NBout half it collects (selected for the tiles' row counts
        # from the cycle it is handed the STORE), its row count and flag, its drain. With a
        # narrow instruction memory every STORE waits for it, so it shares the LOAD's
        # registers (a small FPGA saves the logic cells).
        kick, s_done = Signal(), Signal()
        s_half = Signal()
        s_rows, s_more = (rows_left, more) if narrow else (Signal(ROWS_WIDTH), Signal())
        s_drain = drain if narrow else Signal.like(drain, name="s_drain")
        # The half starts at row 0 or nbout_depth // 2 (a narrow instruction memory overlaps
        # nothing: NBout is one).
        half_base = 0 if narrow else Mux(s_half, cfg.nbout_depth // 2, 0)
        blocking = C(1, 1) if narrow else ins.sync
        s_busy = Signal()
        # Engines beside the controller: the store engine, and the DMA engine.
        engines_busy = s_busy | (self.dma_running != 0)

        # The read addresses follow the pointers whether or not a row is read (the enables
        # say when): no decode of the controller's state on their wide paths to the block
        # RAMs across the chip.
        m.d.comb += [self.nm_raddr.eq(src), self.nbout_addr.eq(half_base + i)]
        # In LOAD: a register beside the state, so that the NM read enable (and the counter
        # it feeds) comes from two registers instead of a decode of the state.
        loading = Signal()
        m.d.comb += self.nm_ren.eq(loading & more)
        # Rows issued this cycle reach the tree node_read_latency cycles later.
        m.d.sync += [self.down_valid.eq(delay(m, self.nm_ren, rl - 1, "down_valid_d")),
                     self.up_valid.eq(delay(m, self.nbout_en, rl - 1, "up_valid_d")),
                     self.down_addr.eq(delay(m, dst, rl - 1, "down_addr_d"))]
        # The tiles latch the instruction when they start (in ISSUE, after DECODE has copied
        # it: the instruction memory has moved on); with a narrow instruction memory they
        # read it for the whole compute instruction, held until the next fetch.
        # The store engine's idle flag (a register beside its state).
        s_idle = Signal(init=1)
        m.d.comb += [self.tile_instr.eq(ins),
                     self.nbout_sel.eq(Mux(s_idle, ins.nbout_half, s_half))]
        if not narrow:
            m.d.comb += self.imem_en.eq(1)

        # DECODE loads the instruction's copy and the LOAD and STORE registers under
        # `decoding`, a register set with the state (not a decode of the state: the copy
        # is hundreds of bits across the chip; on the ULX3S the decode into their enables
        # was the critical path).
        decoding = Signal()
        m.d.sync += decoding.eq(0)
        if depth:
            # Per level: the body's first and last addresses, the iterations left (this one
            # included), the LOOP's steps and the offset (the enclosing levels' and its own
            # steps so far). `top`: the levels in use.
            offsets = data.StructLayout({n: unsigned(field_width(n)) for n in LOOP_FIELDS})
            top = Signal(range(depth + 1))
            first = [Signal(self.pc_width, name=f"loop{k}_first") for k in range(depth)]
            last = [Signal(self.pc_width, name=f"loop{k}_last") for k in range(depth)]
            iters = [Signal(field_width("count"), name=f"loop{k}_left") for k in range(depth)]
            step = [Signal(offsets, name=f"loop{k}_step") for k in range(depth)]
            offset = [Signal(offsets, name=f"loop{k}_offset") for k in range(depth)]
            cur = Signal(offsets)
            with m.Switch(top):
                for k in range(depth):
                    with m.Case(k + 1):
                        m.d.comb += cur.eq(offset[k])
            m.d.comb += word.eq(self.imem_data)
            for n in LOOP_FIELDS:
                m.d.comb += word[n].eq(self.imem_data[n] + cur[n])

        with m.If(decoding):
            new = word
            m.d.sync += [src.eq(new.src), dst.eq(new.dst),
                         rows_left.eq(new.count), more.eq(new.count != 0)]
            if not narrow:
                m.d.sync += [runs_left.eq(new.runs_m1), lines_left.eq(new.lines_m1),
                             ins.eq(new),
                             agree.eq(Cat(getattr(new, n) == getattr(issued, n)
                                          for n in SETTINGS_FIELDS).all())]
        # Whether the store engine collects the NBout half of the compute instruction in
        # hand, a register worked out a cycle ahead, so that ISSUE's test starts from
        # registers (the start it gives goes across the chip). Valid in ISSUE: the cycle
        # before is DECODE or ISSUE, which hand the engine no STORE; the half it collects
        # then stays, and it stops collecting when its last cycle comes (`s_done`).
        collecting = Signal()
        half_next = ins.nbout_half if narrow else Mux(decoding, self.imem_data.nbout_half,
                                                      ins.nbout_half)
        m.d.sync += collecting.eq(~s_idle & ~s_done & (s_half == half_next))
        # `busy` (every state but IDLE) is a register, set and cleared with the state.
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.pc.eq(0), self.error.eq(0), self.busy.eq(1)]
                    if depth:
                        m.d.sync += top.eq(0)
                    m.next = "FETCH"
            with m.State("FETCH"):
                if self.fetch_cycles == 1:
                    m.d.sync += decoding.eq(1)
                    m.next = "DECODE"
                else:
                    if narrow:
                        m.d.comb += self.imem_en.eq(1)
                    with m.If(self.fetch_chunk == self.fetch_cycles - 1):
                        m.d.sync += [self.fetch_chunk.eq(0), decoding.eq(1)]
                        m.next = "DECODE"
                    with m.Else():
                        m.d.sync += self.fetch_chunk.eq(self.fetch_chunk + 1)
            with m.State("DECODE"):
                # (The registers loaded from the instruction: under `decoding`, below.)
                m.d.sync += self.pc.eq(self.pc + 1)
                new = word
                op = word.op
                if depth:
                    def close(k):
                        # The last instruction of level k's body: go back to its first, or
                        # in the last iteration pop it (and check the level around it).
                        with m.If(last[k] == self.pc):
                            with m.If(iters[k] != 1):
                                m.d.sync += [self.pc.eq(first[k]), iters[k].eq(iters[k] - 1),
                                             top.eq(k + 1)]
                                m.d.sync += [offset[k][n].eq(offset[k][n] + step[k][n])
                                             for n in LOOP_FIELDS]
                            with m.Else():
                                m.d.sync += top.eq(k)
                                if k:
                                    close(k - 1)
                    with m.If(op != Op.LOOP):
                        with m.Switch(top):
                            for k in range(depth):
                                with m.Case(k + 1):
                                    close(k)
                with m.Switch(op):
                    with m.Case(Op.HALT):
                        # Done once the tiles and the store engine are (else in HALT).
                        with m.If((left == 0) & ~engines_busy):
                            m.d.comb += self.done.eq(1)
                            m.d.sync += self.busy.eq(0)
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "HALT"
                    with m.Case(Op.LOAD):
                        with m.If(new.sync):
                            m.next = "SYNC"
                        with m.Else():
                            m.d.sync += loading.eq(1)
                            m.next = "LOAD"
                    with m.Case(Op.CONV, Op.MAXPOOL, Op.AVGPOOL):
                        m.next = "ISSUE"
                    with m.Case(*((Op.STORE, Op.SBLOAD, Op.IMLOAD) if cfg.mem_bytes
                                  else (Op.STORE,))):
                        m.next = "SYNC"
                    if depth:
                        with m.Case(Op.LOOP):
                            raw = self.imem_data        # its own fields never move
                            with m.If((top == depth) | (raw.count == 0) | (raw.body == 0)):
                                m.d.sync += [self.error.eq(1), self.busy.eq(0)]
                                m.d.comb += self.done.eq(1)
                                m.next = "IDLE"
                            with m.Else():
                                with m.Switch(top):
                                    for k in range(depth):
                                        with m.Case(k):
                                            m.d.sync += [
                                                first[k].eq(self.pc + 1),
                                                last[k].eq(self.pc + raw.body),
                                                iters[k].eq(raw.count),
                                                offset[k].eq(cur),
                                                step[k].eq(Cat(raw[n] for n in LOOP_FIELDS))]
                                m.d.sync += top.eq(top + 1)
                                m.next = "FETCH"
                    # An unknown opcode.
                    with m.Default():
                        m.d.sync += [self.error.eq(1), self.busy.eq(0)]
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
            with m.State("LOAD"):
                with m.If(more):
                    m.d.sync += dst.eq(dst + 1)
                    end_of_run = rows_left == 1
                    if narrow:
                        # A small FPGA's node loads one run (its programs hold a few
                        # instructions, none of them a tiled layer's).
                        m.d.sync += [src.eq(src + 1), rows_left.eq(rows_left - 1),
                                     more.eq(~end_of_run)]
                    else:
                        with m.If(~end_of_run):
                            m.d.sync += [src.eq(src + 1), rows_left.eq(rows_left - 1)]
                        with m.Elif(runs_left != 0):
                            m.d.sync += [src.eq(src + ins.run_step), rows_left.eq(ins.count),
                                         runs_left.eq(runs_left - 1)]
                        with m.Elif(lines_left != 0):
                            m.d.sync += [src.eq(src + ins.line_step), rows_left.eq(ins.count),
                                         runs_left.eq(ins.runs_m1),
                                         lines_left.eq(lines_left - 1)]
                        m.d.sync += more.eq(~end_of_run | (runs_left != 0) | (lines_left != 0))
                with m.Else():
                    m.d.sync += [drain.eq(self.tree_latency + rl - 1), loading.eq(0)]
                    m.next = "DRAIN"
            with m.State("ISSUE"):
                # Start the tiles once every one is idle (or draining an instruction whose
                # settings this one shares: hw.tile_controller.TileController) and
                # the store engine is not collecting the NBout half they write; then fetch
                # on while they compute, or with a narrow instruction memory wait for them.
                ready = pending == 0
                if not narrow:
                    ready |= agree & (~pending | draining).all()
                with m.If(ready & ~collecting & (self.dma_running <= ins.dma_ahead)):
                    m.d.comb += self.tile_start.eq(1)
                    m.d.sync += pending.eq((1 << cfg.tiles) - 1)
                    if not narrow:
                        m.d.sync += [getattr(issued, n).eq(getattr(ins, n))
                                     for n in SETTINGS_FIELDS]
                    m.next = "WAIT" if narrow else "FETCH"
            with m.State("WAIT"):
                with m.If(left == 0):
                    m.next = "FETCH"
            with m.State("SYNC"):
                # A LOAD with `sync` (its NBin rows may be in use): once the tiles are done.
                # A STORE: once the store engine is idle, and with `sync` once the tiles are
                # done (its rows are the last compute instruction's); without, once no tile
                # is flushing (its rows are an earlier instruction's, which may still be
                # draining under the running one; that one writes the other NBout half).
                # Handed to the engine, it waits for it with `sync`.
                # An SBLOAD or IMLOAD: once the DMA engine is ready, with `sync` once the tiles
                # are done.
                with m.If(ins.op == Op.LOAD):
                    with m.If(pending == 0):
                        m.d.sync += loading.eq(1)
                        m.next = "LOAD"
                if cfg.mem_bytes:
                    with m.Elif((ins.op == Op.SBLOAD) | (ins.op == Op.IMLOAD)):
                        with m.If((~ins.sync | (pending == 0)) & self.dma_ready):
                            m.d.comb += self.dma_start.eq(1)
                            m.next = "FETCH"
                with m.Elif(Mux(blocking, pending == 0, ~self.tile_flushing.any()) & ~s_busy):
                    m.d.comb += kick.eq(1)
                    with m.If(blocking):
                        m.next = "STORE"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("HALT"):
                with m.If((left == 0) & ~engines_busy):
                    m.d.comb += self.done.eq(1)
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
            with m.State("STORE"):
                # A STORE with `sync`: until the store engine's last cycle.
                with m.If(s_done):
                    m.next = "FETCH"
            with m.State("DRAIN"):
                # The last row of a LOAD crosses the buffer read and the tree.
                m.d.sync += drain.eq(drain - 1)
                with m.If(drain == 0):
                    m.next = "FETCH"
        for code, name in enumerate(STATES):
            with m.If(fsm.ongoing(name)):
                m.d.comb += self.state.eq(code)

        # The store engine: from the cycle after it is handed a STORE, the rows of each
        # tile's NBout half in turn, then the drain; the half is emptied in its last cycle.
        # Idle, it loads its registers in every cycle (from the instruction in hand, whose
        # half `nbout_sel` selects while it is idle), so that they are set when it is handed
        # a STORE: `kick`, a decode of the controller's state, enables only the state
        # (which was the ULX3S's critical path). With a narrow instruction memory they are
        # the LOAD's: loaded under `kick`.
        with m.FSM(name="store"):
            with m.State("IDLE"):
                count = self.nbout_count[0]
                load = [s_half.eq(ins.nbout_half), i.eq(0), tile.eq(0),
                        s_rows.eq(count), s_more.eq(count != 0)]
                if narrow:
                    with m.If(kick):
                        m.d.sync += load
                else:
                    m.d.sync += load
                with m.If(kick):
                    m.d.sync += s_idle.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                with m.If(tile == cfg.tiles):
                    m.d.sync += s_drain.eq(self.tree_latency + rl - 1)
                    m.next = "DRAIN"
                with m.Elif(s_more):
                    m.d.comb += self.nbout_en.eq(1 << tile)
                    m.d.sync += [i.eq(i + 1),
                                 s_rows.eq(s_rows - 1), s_more.eq(s_rows != 1)]
                with m.Else():
                    count = counts[tile + 1]
                    m.d.sync += [i.eq(0), tile.eq(tile + 1),
                                 s_rows.eq(count), s_more.eq(count != 0)]
            with m.State("DRAIN"):
                m.d.sync += s_drain.eq(s_drain - 1)
                with m.If(s_drain == 0):
                    m.d.comb += [self.nbout_clear.eq(1), s_done.eq(1)]
                    m.d.sync += s_idle.eq(1)
                    m.next = "IDLE"
        m.d.comb += s_busy.eq(~s_idle)
        return m
