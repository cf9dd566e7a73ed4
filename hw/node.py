"""A DaDianNao node: tiles, fat tree, central neuron memory, controller, host port
(:class:`HostBus`)."""

from enum import IntEnum

from amaranth import *
from amaranth.hdl import MemoryData
from amaranth.lib import wiring, memory, data
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from diannao.hw.activation import TABLE_WORD_WIDTH
from diannao.hw.buffer import Buffer
from diannao.hw.config import Config, HOST_ADDR_WIDTH
from diannao.hw.dma import DMA
from diannao.hw.fat_tree import FatTree, tree_latency
from diannao.hw.isa import INSTR_WIDTH, PC_WIDTH
from diannao.hw.main_memory import MainMemory
from diannao.hw.neuron_memory import NeuronMemory
from diannao.hw.node_controller import NodeController, STATES
from diannao.hw.tile import Tile, COUNTERS as TILE_COUNTERS


__all__ = ["Node", "HostBus", "Region", "NODE_COUNTERS", "NODE_REGISTERS", "STATUS", "host_sb_addr", "host_imem_addr",
           "counter_index", "instr_chunks"]


class Region(IntEnum):
    """Host-port address regions."""
    NM = 0        # addr: NM row; read and write
    IMEM = 1      # addr: see host_imem_addr; write
    SB = 2        # addr: see host_sb_addr; write one lane (tn weights) of a row
    TABLE = 3     # addr: table * 32 + word (hw.activation.table_words); all tiles; write
    COUNTER = 4   # addr: counter_index(...); read
    MEM = 5       # addr: beat * Config.mem_lanes + lane of main memory; write (with a main memory)


#: Node-level counters, readable at COUNTER addresses 0.. in this order.
#: ``mem_reads`` counts the beats read from main memory, ``mem_stalls`` the cycles the
#: memory refused a request (both 0 without a main memory).
NODE_COUNTERS = ("cycles", "nm_reads", "nm_writes", "tree_down_rows", "tree_up_rows",
                 "mem_reads", "mem_stalls")
#: Registers readable in the COUNTER region before the tiles' counters: the node counters,
#: ``status`` (:data:`STATUS`) and ``tiles_busy`` (bit ``t``: tile ``t`` has not finished
#: the current compute instruction).
NODE_REGISTERS = NODE_COUNTERS + ("status", "tiles_busy")
#: The ``status`` register: ``busy``, ``error`` (an unknown opcode), the node controller's
#: ``state`` (an index into :data:`hw.node_controller.STATES`) and the program counter
#: ``pc`` (the instruction after the one being executed once it is decoded).
STATUS = data.StructLayout({"busy": 1, "error": 1, "state": range(len(STATES)),
                            "pc": PC_WIDTH})


class HostBus(wiring.Signature):
    """The node's host port, seen from the host: the node has ``In(HostBus(config))``
    (member ``host``), a host such as :class:`boards.host_link.HostLink`
    ``Out(HostBus(config))``; :func:`amaranth.lib.wiring.connect` joins them. In the
    generated Verilog the node's ports are ``host__region``, ``host__addr``, ... (the
    member's path joined with ``__``).

    Members (directions from the host)
    ----------------------------------
    region : ``Out(range(len(Region)))``
        The address region, :class:`Region`.
    addr : ``Out(HOST_ADDR_WIDTH)``
        The address within the region (:data:`hw.config.HOST_ADDR_WIDTH` bits; see
        :class:`Region`, :func:`host_sb_addr`, :func:`host_imem_addr`, :func:`counter_index`).
    wdata : ``Out(config.row_bits)``
        One host word (``tn`` 16-bit values; a TABLE write uses the low
        :data:`hw.activation.TABLE_WORD_WIDTH` bits).
    we, re : ``Out(1)``
        Write and read strobes, one cycle each.
    rdata : ``In(config.row_bits)``
        The word read.
    start : ``Out(1)``
        Run the program from instruction 0 (a one-cycle pulse).
    busy, done, error : ``In(1)``
        The node's status.

    Protocol (no handshake; one access a cycle):

    * A write (``we`` high for one cycle with ``region``, ``addr``, ``wdata``) to NM, IMEM,
      SB or TABLE takes effect at the end of that cycle (with ``config.deep_pipeline`` one
      cycle later, through registers). Writes are refused, silently, while ``busy`` is high;
      COUNTER is read-only.
    * A read (``re`` high for one cycle with ``region``, ``addr``) of NM or COUNTER returns
      the word on ``rdata`` ``config.node_read_latency`` cycles later (1, 3 with
      ``deep_pipeline``), valid in that cycle. COUNTER (counters, ``status``,
      ``tiles_busy``) can be read while ``busy``; NM only while idle (the controller owns
      its read port while busy; ``rdata`` is then meaningless).
    * ``start`` while idle zeroes the node's and the tiles' counters, clears ``error`` and
      runs the program; ``busy`` is high from the next cycle until the cycle after ``done``,
      which pulses for one cycle when the program ends (``HALT``, or an unknown opcode, which
      also sets ``error``; it stays set until the next ``start``). ``start`` while busy is
      ignored.

    Parameters
    ----------
    config : Config
    """

    def __init__(self, config):
        if not isinstance(config, Config):
            raise TypeError(f"HostBus config must be a Config, not {config!r}")
        self.config = config
        super().__init__({
            "region": Out(range(len(Region))),
            "addr": Out(HOST_ADDR_WIDTH),
            "wdata": Out(config.row_bits),
            "we": Out(1),
            "re": Out(1),
            "rdata": In(config.row_bits),
            "start": Out(1),
            "busy": In(1),
            "done": In(1),
            "error": In(1),
        })

    def __eq__(self, other):
        return type(other) is HostBus and self.members == other.members

    def __repr__(self):
        return f"HostBus({self.config!r})"


def instr_chunks(config):
    """Host words (``tn * 16`` bits each) per instruction."""
    return -(-INSTR_WIDTH // config.row_bits)


def _chunk_bits(config):
    return max(1, ceil_log2(instr_chunks(config)))


def host_imem_addr(config, pc, chunk):
    """Host address (region IMEM) of host word ``chunk`` (low bits first) of instruction ``pc``."""
    return (pc << _chunk_bits(config)) | chunk


def host_sb_addr(config, tile, row, lane):
    """Host address (region SB) of lane ``lane`` of SB row ``row`` in tile ``tile``."""
    rbits = max(1, ceil_log2(config.sb_depth))
    return (((tile << rbits) | row) << config.log2_tn) | lane


def counter_index(name, tile=None):
    """COUNTER-region address of a node register, or of tile ``tile``'s counter ``name``."""
    if tile is None:
        return NODE_REGISTERS.index(name)
    return len(NODE_REGISTERS) + tile * len(TILE_COUNTERS) + TILE_COUNTERS.index(name)


class Node(wiring.Component):
    """A DaDianNao node (paper: DaDianNao, MICRO 2014).

    ``config.tiles`` :class:`Tile` s, each with its SB holding its weights for the whole
    program; a :class:`NeuronMemory` holding the neurons; a :class:`FatTree` between them;
    a :class:`NodeController` running the program in the instruction memory. Cycle counts
    per instruction are documented on :class:`NodeController` and reproduced by
    :mod:`diannao.sim.compiler.cycle_model`.

    Rows move between NM and the tiles as streams without back-pressure (the
    :class:`FatTree`'s ``down``, ``leaf``, ``up``, ``root``); NM and the NBins and NBouts
    are memory ports, joined to them here (see :class:`NeuronMemory`).

    Host port: the member ``host``, ``In(HostBus(config))`` (:class:`HostBus`: regions,
    read latency, when writes are refused, ``start``, ``busy``, ``done``, ``error``).
    The node counters (:data:`NODE_COUNTERS`) are members of their own, read by the host
    through the COUNTER region.

    Parameters
    ----------
    config : Config
    tile : callable
        Makes each tile, as ``tile(config, latch_instr=...)``: :class:`Tile`, or a stand-in
        with its signature and ``counters`` (:mod:`diannao.sim.engines.verilog`).
    """

    def __init__(self, config, *, tile=Tile):
        if not isinstance(config, Config):
            raise TypeError(f"Node config must be a Config, not {config!r}")
        self.config = config
        # A narrow instruction memory holds the instruction stable from the decode cycle
        # (tile start) until the next fetch, after every tile is done: the tiles need no copy.
        self.tiles = [tile(config, latch_instr=not config.imem_narrow)
                      for _ in range(config.tiles)]
        self.nm = NeuronMemory(config.tn, config.nm_depth, read_latency=config.read_latency)
        # With a main memory: the model behind the node's memory port (its contents are
        # preloaded like NM's) and the DMA engine that fills SB from it.
        self.mem = MainMemory(config) if config.mem_bytes else None
        if config.imem_narrow:
            # One host word wide; instruction pc, word c at row host_imem_addr(pc, c).
            self.imem_data = MemoryData(shape=unsigned(config.row_bits),
                                        depth=config.imem_depth << _chunk_bits(config), init=[])
        else:
            # One instruction wide, written one host word at a time.
            self.imem_buf = Buffer(unsigned(instr_chunks(config) * config.row_bits),
                                   config.imem_depth, granularity=config.row_bits,
                                   read_latency=config.read_latency)
            self.imem_data = self.imem_buf.data
        super().__init__({
            "host": In(HostBus(config)),
            **{name: Out(config.counter_width) for name in NODE_COUNTERS},
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        tn = cfg.tn
        lat = tree_latency(cfg.tiles)
        m.submodules.nm = nm = self.nm
        m.submodules.tree = tree = FatTree(tn, cfg.tiles, len(self.tiles[0].nbin_w.addr))
        m.submodules.ctrl = ctrl = NodeController(cfg, lat)
        if self.mem is not None:
            m.submodules.mem = mem = self.mem
            m.submodules.dma = dma = DMA(cfg)
            wiring.connect(m, dma.bus, mem.bus)
            m.d.comb += [dma.start.eq(ctrl.dma_start), dma.instr.eq(ctrl.tile_instr),
                         ctrl.dma_ready.eq(dma.ready), ctrl.dma_running.eq(dma.running)]
        for t, tile in enumerate(self.tiles):
            m.submodules[f"tile{t}"] = tile
            m.d.comb += tile.index.eq(t)

        host = self.host
        m.d.comb += [ctrl.start.eq(host.start), host.busy.eq(ctrl.busy),
                     host.done.eq(ctrl.done), host.error.eq(ctrl.error)]

        # Instruction memory.
        if cfg.imem_narrow:
            m.submodules.imem = imem = memory.Memory(data=self.imem_data)
            imem_r, imem_w = imem.read_port(transparent_for=()), imem.write_port()
        else:
            m.submodules.imem = imem_buf = self.imem_buf
            imem_r, imem_w = imem_buf.read, imem_buf.write
        chunks = instr_chunks(cfg)
        cbits = _chunk_bits(cfg)
        if cfg.imem_narrow:
            # The controller reads the instruction's host words one a cycle (FETCH lasts
            # `chunks` cycles); all but the last are kept here and the last arrives in DECODE.
            m.d.comb += [imem_r.addr.eq(Cat(ctrl.fetch_chunk[:cbits], ctrl.pc)),
                         imem_r.en.eq(ctrl.imem_en)]
            # imem_en is high only in FETCH, so the last word stays on the read port and
            # imem_data is stable until the next fetch.
            chunk_d = Signal.like(ctrl.fetch_chunk)
            fetch_d = Signal()
            held = Array(Signal(cfg.row_bits, name=f"imem_word{c}") for c in range(chunks))
            m.d.sync += [chunk_d.eq(ctrl.fetch_chunk), fetch_d.eq(ctrl.imem_en)]
            with m.If(fetch_d):
                m.d.sync += held[chunk_d].eq(imem_r.data)
            m.d.comb += ctrl.imem_data.eq(
                Cat(*(held[c] for c in range(chunks - 1)), imem_r.data)[:INSTR_WIDTH])
        else:
            m.d.comb += [imem_r.addr.eq(ctrl.pc), imem_r.en.eq(ctrl.imem_en)]
            fetched = imem_r.data[:INSTR_WIDTH]
            if cfg.read_latency == 2:
                # With deep_pipeline the instruction is registered once more after the
                # registered read (it fans out to every tile): the fetch takes 3 cycles
                # (hw.node_controller.fetch_cycles).
                fetched_r = Signal(INSTR_WIDTH, name="imem_data_r", reset_less=True)
                m.d.sync += fetched_r.eq(fetched)
                fetched = fetched_r
            m.d.comb += ctrl.imem_data.eq(fetched)

        host_w = Signal()
        m.d.comb += host_w.eq(host.we & ~ctrl.busy)
        region = host.region
        # Host writes: decoded into each memory's write port, with deep_pipeline through
        # registers (the block RAMs lie across the chip; a host write lands a cycle later).
        # They have no reset, the enables neither: they follow the host port's registers,
        # which do (and the reset net, which reaches every register that has one, was the
        # ULX3S's critical path where it met an enable's own clear).
        def host_stage(value, name):
            if not cfg.deep_pipeline:
                return value
            r = Signal(len(value), name=name, reset_less=True)
            m.d.sync += r.eq(value)
            return r

        # Tiles: instruction broadcast, NBin writes from the tree, SB and table writes
        # from the host, NBout reads into the tree.
        rbits = max(1, ceil_log2(cfg.sb_depth))
        sb_lane = host.addr[:cfg.log2_tn]
        sb_row = host.addr[cfg.log2_tn:cfg.log2_tn + rbits]
        sb_tile = host.addr[cfg.log2_tn + rbits:]
        for t, tile in enumerate(self.tiles):
            m.d.comb += [
                tile.instr.eq(ctrl.tile_instr),
                tile.start.eq(ctrl.tile_start),
                ctrl.tile_draining[t].eq(tile.draining),
                ctrl.tile_done[t].eq(tile.done),
                ctrl.tile_flushing[t].eq(tile.flushing),
                ctrl.nbout_count[t].eq(tile.nbout_count),
                tile.nbin_w.en.eq(tree.leaf.valid),
                tile.nbin_w.addr.eq(tree.leaf.payload.addr),
                tile.nbin_w.data.eq(tree.leaf.payload.data),
                tile.nbout_clear.eq(ctrl.nbout_clear),
                tile.nbout_sel.eq(ctrl.nbout_sel),
                tile.clear_counters.eq(host.start & ~ctrl.busy),
                tree.up[t].valid.eq(ctrl.up_valid[t]),
                tree.up[t].payload.eq(tile.nbout_r.data),
            ]

        # SB writes: from the host while the node is idle, from the DMA engine while it runs
        # a program (a beat of mem_lanes lanes; the host's word fills every one of them).
        host_sb = Cat(host.wdata for _ in range(cfg.mem_lanes))
        if self.mem is None:
            sb_w_addr = host_stage(sb_row, "sb_w_addr")
            sb_w_data = host_stage(host_sb, "sb_w_data")
        else:
            sb_w_addr = host_stage(Mux(ctrl.busy, dma.sb_row, sb_row), "sb_w_addr")
            sb_w_data = host_stage(Mux(ctrl.busy, dma.sb_data.as_value(), host_sb),
                                   "sb_w_data")
        tbl_we = host_stage(host_w & (region == Region.TABLE), "tbl_we")
        tbl_addr = host_stage(host.addr[:len(self.tiles[0].tbl_addr)], "tbl_addr")
        tbl_data = host_stage(host.wdata[:TABLE_WORD_WIDTH], "tbl_data")
        for t, tile in enumerate(self.tiles):
            sb_en = Mux(host_w & (region == Region.SB) & (sb_tile == t), 1 << sb_lane, 0)
            if self.mem is not None:
                sb_en = sb_en | Mux(dma.sb_valid & (dma.sb_tile == t), dma.sb_lanes, 0)
            sb_en = host_stage(sb_en[:cfg.tn], f"sb_w_en{t}")
            m.d.comb += [
                tile.sb_w.addr.eq(sb_w_addr),
                tile.sb_w.data.eq(sb_w_data),
                tile.sb_w.en.eq(sb_en),
                tile.tbl_we.eq(tbl_we),
                tile.tbl_addr.eq(tbl_addr),
                tile.tbl_data.eq(tbl_data),
            ]

        # The NBout and NM read ports: with deep_pipeline through registers
        # (Config.node_read_latency).
        port = m.d.sync if cfg.deep_pipeline else m.d.comb
        # NBout reads (STORE).
        for t, tile in enumerate(self.tiles):
            port += [tile.nbout_r.addr.eq(ctrl.nbout_addr), tile.nbout_r.en.eq(ctrl.nbout_en[t])]

        # Fat tree down from NM.
        m.d.comb += [tree.down.valid.eq(ctrl.down_valid),
                     tree.down.payload.addr.eq(ctrl.down_addr),
                     tree.down.payload.data.eq(nm.read.data)]

        # NM ports: the controller while busy, the host otherwise.
        host_nm_r = host.re & ~ctrl.busy & (region == Region.NM)
        nm_raddr = Signal.like(nm.read.addr, name="nm_raddr")
        nm_ren = Signal(name="nm_ren")
        port += [nm_raddr.eq(Mux(ctrl.busy, ctrl.nm_raddr, host.addr)),
                 nm_ren.eq(ctrl.nm_ren | host_nm_r)]
        nm_waddr = host_stage(host.addr[:len(nm.write.addr)], "host_nm_waddr")
        nm_wdata = host_stage(host.wdata, "host_nm_wdata")
        nm_we = host_stage(host_w & (region == Region.NM), "host_nm_we")
        m.d.comb += [nm.read.addr.eq(nm_raddr), nm.read.en.eq(nm_ren)]
        # The NM write port, with deep_pipeline through registers too (a row from the tree
        # lands a cycle later, long before the next instruction can read it).
        nm_w = [("addr", Mux(ctrl.busy, tree.root.payload.addr, nm_waddr)),
                ("data", Mux(ctrl.busy, tree.root.payload.data, nm_wdata)),
                ("en", Mux(ctrl.busy, tree.root.valid, nm_we))]
        for name, value in nm_w:
            port_sig = Value.cast(getattr(nm.write, name))
            m.d.comb += port_sig.eq(host_stage(value[:len(port_sig)], f"nm_w_{name}"))

        # Host instruction writes.
        if cfg.imem_narrow:
            m.d.comb += [
                imem_w.addr.eq(host.addr),
                imem_w.data.eq(host.wdata),
                imem_w.en.eq(host_w & (region == Region.IMEM)),
            ]
        else:
            imem_wdata = host_stage(host.wdata, "imem_wdata")
            waddr = host_stage(host.addr[cbits:][:len(imem_w.addr)], "imem_waddr")
            wdata = Cat(imem_wdata for _ in range(chunks))
            wen = host_stage(Mux(host_w & (region == Region.IMEM),
                                 1 << host.addr[:cbits], 0)[:len(imem_w.en)],
                             "imem_we")
            if self.mem is not None:
                # While a program runs, the DMA engine writes whole instructions (IMLOAD).
                waddr = Mux(dma.imem_valid, dma.imem_addr, waddr)
                wdata = Mux(dma.imem_valid, dma.imem_data, wdata)
                wen = Mux(dma.imem_valid, (1 << chunks) - 1, wen)
            m.d.comb += [imem_w.addr.eq(waddr), imem_w.data.eq(wdata), imem_w.en.eq(wen)]

        # Main-memory writes from the host (lane by lane, while idle).
        if self.mem is not None:
            m.d.comb += [mem.write.en.eq(host_w & (region == Region.MEM)),
                         mem.write.addr.eq(host.addr), mem.write.data.eq(host.wdata)]

        # Counters.
        clear = host.start & ~ctrl.busy
        increments = [("cycles", ctrl.busy), ("nm_reads", ctrl.nm_ren),
                      ("nm_writes", tree.root.valid), ("tree_down_rows", tree.leaf.valid),
                      ("tree_up_rows", tree.root.valid)]
        if self.mem is not None:
            increments += [("mem_reads", dma.reads), ("mem_stalls", dma.stalls)]
        for name, inc in increments:
            counter = total = getattr(self, name)
            if name == "nm_reads":
                # The increment is registered first and the counter reads as the register
                # plus the pending increment (the same value every cycle): the controller's
                # read enable does not feed a carry chain across the chip in its cycle.
                pending = Signal(name="nm_reads_inc")
                m.d.sync += pending.eq(inc & ~clear)
                total, inc = Signal.like(counter, name="nm_reads_r"), pending
                m.d.comb += counter.eq(total + pending)
            with m.If(clear):
                m.d.sync += total.eq(0)
            with m.Else():
                m.d.sync += total.eq(total + inc)

        # Host reads: NM rows or counters, node_read_latency cycles after host_re.
        status = Signal(STATUS)
        m.d.comb += [status.busy.eq(ctrl.busy), status.error.eq(ctrl.error),
                     status.state.eq(ctrl.state), status.pc.eq(ctrl.pc)]
        counters = [getattr(self, n) for n in NODE_COUNTERS] + [status, ctrl.pending]
        for tile in self.tiles:
            counters += tile.counters
        read_region, read_index = region, host.addr
        stages = []
        for k in range(cfg.node_read_latency):
            rr, ri = Signal(len(region), name=f"read_region{k}"), Signal(range(len(counters)),
                                                                         name=f"read_index{k}")
            m.d.sync += [rr.eq(read_region), ri.eq(read_index)]
            read_region, read_index = rr, ri
            stages.append(ri)
        if cfg.deep_pipeline:
            # The counter multiplexer in two registered levels beside the NM read: groups
            # of four by the index's low bits, then the group (the node is idle while the
            # host reads, so the counters do not move).
            groups = []
            width = max(len(Value.cast(c)) for c in counters)
            for g in range(0, len(counters), 4):
                r = Signal(width, name=f"read_group{g // 4}", reset_less=True)
                m.d.sync += r.eq(Array(counters[g:g + 4])[stages[0][:2]])
                groups.append(r)
            counter = Signal(width, name="read_counter", reset_less=True)
            m.d.sync += counter.eq(Array(groups)[stages[1][2:]])
        else:
            counter = Array(counters)[read_index]
        with m.If(read_region == Region.COUNTER):
            m.d.comb += host.rdata.eq(counter)
        with m.Else():
            m.d.comb += host.rdata.eq(nm.read.data)
        return m
