"""The configuration object: the single source of every size (``docs/architecture.md``,
"Parameters and presets")."""

import json
from dataclasses import dataclass, replace, fields
from pathlib import Path

from diannao.hw.isa import INSTR_WIDTH, PC_WIDTH, field_width


__all__ = ["Config", "PRESETS", "preset", "load_config", "HOST_ADDR_WIDTH", "MAX_ACT_TABLES",
           "min_acc_width"]

#: Bits of the node's host-port address (``addr`` of :class:`hw.node.HostBus`).
HOST_ADDR_WIDTH = 32
#: Activation tables an NFU-3 can hold: as many as the instruction's ``table`` field selects.
MAX_ACT_TABLES = 1 << field_width("table")


def _ceil_log2(n):
    """Bits to address ``n`` things: the smallest ``b`` with ``2**b >= n`` (``n >= 1``);
    :func:`amaranth.utils.ceil_log2` in plain Python (this module imports no Amaranth)."""
    return (n - 1).bit_length()


def min_acc_width(tn):
    """The narrowest NFU-2 accumulator :class:`Config` accepts at NFU width ``tn``: a
    32-bit product summed over one row of ``tn`` lanes, plus a sign bit."""
    return 33 + tn.bit_length()


def _is_pow2(n):
    return isinstance(n, int) and n > 0 and n & (n - 1) == 0


def _depth_limits():
    """``{depth field: (most rows, why)}``: how many rows the ISA can address in each memory."""
    def by_fields(memory, *names):
        bits = min(field_width(n) for n in names)
        return 1 << bits, (f"{memory} rows are addressed by the {bits}-bit instruction fields "
                           f"{' and '.join(names)}")

    nm_bits = field_width("out_base")
    return {
        "nm_depth": by_fields("NM", "src", "out_base"),
        "nbin_depth": by_fields("NBin", "dst", "count"),
        "sb_depth": by_fields("SB", "sb_base", "sb_step"),
        # The count of rows a tile holds, nbout_depth when full, must itself fit in those bits.
        "nbout_depth": ((1 << nm_bits) - 1,
                        f"a STORE counts a tile's NBout rows, up to nbout_depth, in {nm_bits} "
                        f"bits: the width of out_base, the NM address each row carries"),
        "imem_depth": (1 << PC_WIDTH, f"instructions are addressed by the {PC_WIDTH}-bit "
                                      f"program counter"),
    }


#: ``{depth field: (most rows, why)}``, from the instruction fields' widths.
_DEPTH_LIMITS = _depth_limits()


@dataclass(frozen=True)
class Config:
    """Sizes of a DianNao tile / DaDianNao node.

    Parameters
    ----------
    tn : int
        NFU width: output neurons and input synapses per cycle (paper: 16). Power of two >= 2.
    tiles : int
        Tiles in a node (paper: 16). Power of two >= 1.
    acc_width : int
        NFU-2 accumulator width in bits (ours: 48).
    nbin_depth, nbout_depth : int
        Rows of ``tn`` 16-bit values in each tile's NBin and NBout.
    sb_depth : int
        Rows of ``tn * tn`` 16-bit weights in each tile's SB.
    nm_depth : int
        Rows of ``tn`` 16-bit values in the node's central neuron memory.
    psum_depth : int
        Rows of ``tn`` exact partial sums (``acc_width`` bits each) in each tile, kept
        between the chunks of a reduction that does not fit NBin (NBout's partial sums in
        the paper): the most outputs a tile computes in one chunk. 0: no partial-sum buffer;
        every reduction must fit NBin.
    imem_depth : int
        Instructions in the node's instruction memory.
    act_tables : int
        Activation tables held by each NFU-3 (selected per instruction).
    imem_narrow : int
        0 (default): the instruction memory is one instruction wide and a fetch takes one
        cycle. 1: it is one host word (``tn * 16`` bits) wide and an instruction is fetched
        in :func:`hw.node.instr_chunks` cycles (saves block RAM on small FPGAs; the cycle
        model follows, see :func:`hw.node_controller.fetch_cycles`).
    counter_width : int
        Bits of each performance counter (node and tiles), 16..32; counters wrap modulo
        ``2**counter_width`` (the host reads them zero-extended).
    deep_pipeline : int
        0 (default) or 1: registers for a fast FPGA clock (the ULX3S at 125 MHz). Every
        block RAM read is registered (:attr:`read_latency` 2: a block RAM's clock-to-output
        time leaves no room for logic behind it; the node's read ports one more,
        :attr:`node_read_latency` 3), the multipliers of NFU-1 and NFU-3 have input and
        output registers (a DSP block's own registers), and NFU-2, NFU-3, the fetch and the
        host writes have further stages (NFU-1 latency 2, NFU-2 ``log2(tn) + 8``, NFU-3 10,
        fetch 3; ``docs/architecture.md``). Values are unchanged; every latency that grows is
        counted by the cycle model. Not with ``imem_narrow``.
    lrn : int
        1 (default): the tiles can run local response normalisation (a CONV with ``lrn``:
        NFU-1 squares the inputs under an SB mask, and each output is multiplied by its
        input at the centre of the window after NFU-3; :class:`hw.tile.Tile`). 0: they
        cannot (saves the multiplexers and multipliers on small FPGAs; the compiler rejects
        LRN layers).
    mem_bytes : int
        0 (default): no main memory; every weight lives in SB for the whole program. Else the
        width in bytes of the main-memory port (:class:`hw.main_memory.MemoryBus`): one beat
        a cycle, so also the bandwidth in bytes per cycle. A power of two from one SB lane
        (``2 * tn`` bytes) to one SB row (``2 * tn * tn``). The node then has a DMA engine
        (:class:`hw.dma.DMA`) that fills SB from main memory (``SBLOAD``), and the compiler
        streams the weights of layers that do not fit SB.
    mem_latency : int
        Cycles from a main-memory request to its data (1..1024).
    mem_depth : int
        Beats (``mem_bytes`` each) of the simulated main memory (:class:`hw.main_memory.MainMemory`).
    mem_stalls : int
        0 (default) .. 15: the simulated main memory refuses a request in a cycle with
        probability ``mem_stalls / 16``, by a pseudo-random sequence seeded with
        ``mem_seed`` (tests of back-pressure; the cycle model assumes 0).
    mem_seed : int
        1 .. 65535: the seed of the stall sequence.
    loop_depth : int
        0 (default) .. 4: LOOPs the node's controller nests (``hw.isa``, LOOP); 0: it runs
        none (a LOOP is then an unknown opcode). Not with ``imem_narrow``.

    Every depth is limited by the instruction fields that address it (:mod:`hw.isa`), and
    every host-port address (``hw.node.host_sb_addr``, ``hw.node.host_imem_addr``) must fit
    :data:`HOST_ADDR_WIDTH` bits; a configuration beyond them raises ``ValueError`` naming
    the field and the limit.
    """
    tn: int = 4
    tiles: int = 4
    acc_width: int = 48
    nbin_depth: int = 256
    nbout_depth: int = 256
    sb_depth: int = 256
    nm_depth: int = 1024
    psum_depth: int = 256
    imem_depth: int = 256
    act_tables: int = 4
    imem_narrow: int = 0
    counter_width: int = 32
    deep_pipeline: int = 0
    lrn: int = 1
    mem_bytes: int = 0
    mem_latency: int = 16
    mem_depth: int = 4096
    mem_stalls: int = 0
    mem_seed: int = 1
    loop_depth: int = 0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"Config.{f.name} must be an int, not {value!r}")
        if not _is_pow2(self.tn) or self.tn < 2:
            raise ValueError(f"Config.tn must be a power of two >= 2, not {self.tn!r}")
        if not _is_pow2(self.tiles):
            raise ValueError(f"Config.tiles must be a power of two >= 1, not {self.tiles!r}")
        if not min_acc_width(self.tn) <= self.acc_width <= 64:
            raise ValueError(f"Config.acc_width must be in [{min_acc_width(self.tn)}, 64] "
                             f"for tn={self.tn}, not {self.acc_width!r}")
        for name in ("nbin_depth", "nbout_depth", "sb_depth", "nm_depth", "imem_depth"):
            if getattr(self, name) < 2:
                raise ValueError(f"Config.{name} must be >= 2, not {getattr(self, name)!r}")
        if self.psum_depth == 1 or self.psum_depth < 0:
            raise ValueError(f"Config.psum_depth must be 0 (none) or >= 2, "
                             f"not {self.psum_depth!r}")
        for name, (most, why) in _DEPTH_LIMITS.items():
            if getattr(self, name) > most:
                raise ValueError(f"Config.{name} must be at most {most} ({why}), "
                                 f"not {getattr(self, name)!r}")
        if not 1 <= self.act_tables <= MAX_ACT_TABLES:
            raise ValueError(f"Config.act_tables must be in [1, {MAX_ACT_TABLES}], "
                             f"not {self.act_tables!r}")
        if self.imem_narrow not in (0, 1):
            raise ValueError(f"Config.imem_narrow must be 0 or 1, not {self.imem_narrow!r}")
        if self.deep_pipeline not in (0, 1):
            raise ValueError(f"Config.deep_pipeline must be 0 or 1, "
                             f"not {self.deep_pipeline!r}")
        if self.lrn not in (0, 1):
            raise ValueError(f"Config.lrn must be 0 or 1, not {self.lrn!r}")
        if self.mem_bytes:
            lane, row = 2 * self.tn, 2 * self.tn * self.tn
            if not _is_pow2(self.mem_bytes) or not lane <= self.mem_bytes <= row:
                raise ValueError(f"Config.mem_bytes must be 0 (no main memory) or a power of "
                                 f"two from one SB lane ({lane} bytes) to one SB row ({row} "
                                 f"bytes) at tn={self.tn}, not {self.mem_bytes!r}")
            if self.imem_narrow:
                raise ValueError("Config.mem_bytes needs imem_narrow=0 (a narrow instruction "
                                 "memory is for small FPGAs, which keep every weight in SB)")
            if not 1 <= self.mem_latency <= 1024:
                raise ValueError(f"Config.mem_latency must be in [1, 1024], "
                                 f"not {self.mem_latency!r}")
            if self.mem_depth < self.sb_row_beats * self.tiles:
                raise ValueError(f"Config.mem_depth must hold at least one SB row per tile "
                                 f"({self.sb_row_beats * self.tiles} beats of "
                                 f"{self.mem_bytes} bytes), not {self.mem_depth!r}")
            if not 0 <= self.mem_stalls <= 15:
                raise ValueError(f"Config.mem_stalls must be in [0, 15], "
                                 f"not {self.mem_stalls!r}")
            if not 1 <= self.mem_seed <= 0xFFFF:
                raise ValueError(f"Config.mem_seed must be in [1, 65535], "
                                 f"not {self.mem_seed!r}")
        if not 0 <= self.loop_depth <= 4:
            raise ValueError(f"Config.loop_depth must be in [0, 4], not {self.loop_depth!r}")
        if self.loop_depth and self.imem_narrow:
            raise ValueError("Config.loop_depth > 0 needs imem_narrow=0 (the controller steps "
                             "the fields of the instruction it copies)")
        if self.deep_pipeline and self.imem_narrow:
            raise ValueError("Config.deep_pipeline=1 needs imem_narrow=0 (a narrow "
                             "instruction memory is for small FPGAs, not fast clocks)")
        if not 16 <= self.counter_width <= 32:
            raise ValueError(f"Config.counter_width must be in [16, 32], "
                             f"not {self.counter_width!r}")
        if self.tiles > self.row_bits:
            raise ValueError(f"Config.tiles must be at most tn * 16 = {self.row_bits} (the "
                             f"host reads the tiles_busy register, one bit a tile, in one "
                             f"{self.row_bits}-bit word), not {self.tiles!r}")
        for region, top, layout in self._host_tops():
            if top >> HOST_ADDR_WIDTH:
                raise ValueError(f"Config: the host port's {region} addresses need "
                                 f"{top.bit_length()} bits ({layout}), but host.addr has "
                                 f"{HOST_ADDR_WIDTH}")

    def _host_tops(self):
        """``(region, largest host address, its layout)`` for the regions whose addresses
        grow with the configuration; the layouts of ``hw.node.host_sb_addr`` and
        ``hw.node.host_imem_addr``."""
        row_bits = max(1, _ceil_log2(self.sb_depth))
        sb_top = (((((self.tiles - 1) << row_bits) | (self.sb_depth - 1)) << self.log2_tn)
                  | (self.tn - 1))
        chunks = -(-INSTR_WIDTH // self.row_bits)
        chunk_bits = max(1, _ceil_log2(chunks))
        imem_top = ((self.imem_depth - 1) << chunk_bits) | (chunks - 1)
        mem_top = self.mem_depth * self.mem_lanes - 1 if self.mem_bytes else 0
        return [
            ("MEM", mem_top, f"beat, lane: mem_depth={self.mem_depth} beats of "
                             f"{self.mem_lanes} lanes"),
            ("SB", sb_top, f"tile, row, lane: log2(tiles={self.tiles}) + "
                           f"ceil(log2(sb_depth={self.sb_depth})) + log2(tn={self.tn}) bits"),
            ("IMEM", imem_top, f"instruction, host word: ceil(log2(imem_depth="
                               f"{self.imem_depth})) + {chunk_bits} bits"),
        ]

    @property
    def row_bits(self):
        """Bits in one NBin / NBout / NM row (``tn`` 16-bit values)."""
        return self.tn * 16

    @property
    def mem_lanes(self):
        """SB lanes (``tn`` 16-bit weights, one host word) per main-memory beat (1 without
        a main memory)."""
        return max(1, self.mem_bytes // (2 * self.tn))

    @property
    def sb_row_beats(self):
        """Main-memory beats per SB row (``tn`` lanes)."""
        return self.tn // self.mem_lanes

    @property
    def instr_beats(self):
        """Main-memory beats per instruction: its host words (``tn * 16`` bits each, low
        first) a lane each, ``mem_lanes`` to a beat."""
        chunks = -(-INSTR_WIDTH // self.row_bits)
        return -(-chunks // self.mem_lanes)

    @property
    def read_latency(self):
        """Cycles from a block RAM read's address to its data: 1, or 2 with
        ``deep_pipeline``."""
        return 1 + self.deep_pipeline

    @property
    def node_read_latency(self):
        """Cycles from a node-level read (NM, by LOAD or the host; NBout, by STORE) to its
        data: :attr:`read_latency`, one more with ``deep_pipeline`` (the address and enable
        are registered in front of the block RAMs, which lie across the chip)."""
        return self.read_latency + self.deep_pipeline

    @property
    def log2_tn(self):
        return self.tn.bit_length() - 1

    @property
    def log2_tiles(self):
        return self.tiles.bit_length() - 1

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def _kb_rows(kbytes, values_per_row):
    return kbytes * 1024 // (2 * values_per_row)


PRESETS = {
    # DianNao (ASPLOS 2014): one NFU, NBin 2 KB, NBout 2 KB, SB 32 KB.
    # Main memory: 256 bytes a cycle (DianNao's 250 GB/s at 0.98 GHz; docs/architecture.md,
    # "Main memory"), 100 cycles of latency, 128 MB (CONV1's flat program, 504,656
    # instructions of 256 bytes, needs that much to page: sim.compiler.paging; CONV5's
    # weights take 24 MB). NM (1 MB) stands for the part of main memory that holds the
    # neurons; the instruction memory (65,536 instructions) for the control processor's
    # instruction buffer, whose LOOPs nest four deep (a real-size layer's bands, output
    # tiles, kernel rows and channel blocks repeat with their addresses stepped: CONV5's
    # 30 million instructions take 20,077).
    "diannao": Config(tn=16, tiles=1, nbin_depth=_kb_rows(2, 16), nbout_depth=_kb_rows(2, 16),
                      psum_depth=_kb_rows(2, 16), sb_depth=_kb_rows(32, 256),
                      nm_depth=32768, imem_depth=65536,
                      mem_bytes=256, mem_latency=100, mem_depth=(128 << 20) // 256,
                      loop_depth=4),
    # DaDianNao (MICRO 2014): 16 tiles, each with SB 2 MB (eDRAM) and NBin and NBout 16 KB
    # (SRAM), central memory (NM) 4 MB; the partial sums of as many outputs as NBout holds;
    # room for the programs of real-size networks (65,536 instructions).
    "dadiannao": Config(tn=16, tiles=16, nbin_depth=_kb_rows(16, 16),
                        nbout_depth=_kb_rows(16, 16), psum_depth=_kb_rows(16, 16),
                        sb_depth=_kb_rows(2048, 256),
                        nm_depth=_kb_rows(4096, 16), imem_depth=65536),
    # Fast tests: 4 tiles of tn=4.
    "small": Config(tn=4, tiles=4, nbin_depth=256, nbout_depth=256, sb_depth=256, nm_depth=1024),
    # ULX3S (ECP5-85F, 156 18x18 multipliers, 208 18 Kb block RAMs) at 125 MHz: 2 tiles of
    # tn=4 (2 * (16 + 4) = 40 multipliers) with deep pipelining. The distance across the
    # chip decides the clock (docs/boards.md): the buffers take 54 block RAMs, the
    # instruction memory (32) and the coefficients of 2 activation tables are distributed RAM.
    "ulx3s": Config(tn=4, tiles=2, nbin_depth=512, nbout_depth=512, sb_depth=1024,
                    nm_depth=1024, psum_depth=0, imem_depth=32, act_tables=2, deep_pipeline=1,
                    lrn=0),
    # iCEBreaker (iCE40UP5K, 8 SB_MAC16, 30 4 Kb block RAMs): 1 tile of tn=2 uses
    # 2 * 2 + 2 = 6 multipliers; a narrow instruction memory (one 32-bit host word wide)
    # keeps the 533-bit instructions (17 words each, addressed in steps of 32) in 4 block
    # RAMs; SB 768 rows keeps the total within the 30 block RAMs (29 used); 16-bit counters (65,536 cycles, 2.2 ms at 30 MHz; the digits CNN
    # takes about 4,100) and a 40-bit accumulator (the digits layers need at most 35) save
    # logic cells, as does having no partial-sum buffer. Runs the digits MLP and CNN.
    "icebreaker": Config(tn=2, tiles=1, acc_width=40, nbin_depth=256, nbout_depth=256,
                         sb_depth=768, nm_depth=512, psum_depth=0, imem_depth=16,
                         act_tables=1, imem_narrow=1, counter_width=16, lrn=0),
}


def preset(name):
    """The configuration called ``name`` (one of :data:`PRESETS`)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; choose one of "
                         f"{', '.join(sorted(PRESETS))}") from None


def load_config(path):
    """A configuration from a JSON file: an object of :class:`Config` fields, optionally
    with ``"preset"`` naming the preset they change (default: the :class:`Config`
    defaults), e.g. ``{"preset": "small", "nbin_depth": 64}``. The fuzzer writes the
    configurations it draws this way.

    Raises
    ------
    ValueError
        Naming the file and the field: text that is not a JSON object, an unknown field or
        preset, a value :class:`Config` rejects.
    OSError
        If the file cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON at line {exc.lineno} column {exc.colno}: "
                         f"{exc.msg}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: a configuration must be a JSON object of Config fields")
    doc = dict(doc)
    names = {f.name for f in fields(Config)}
    unknown = sorted(set(doc) - names - {"preset"})
    if unknown:
        raise ValueError(f"{path}: unknown field {unknown[0]!r}; Config has "
                         f"{', '.join(sorted(names))} (and 'preset')")
    try:
        base = preset(doc.pop("preset")) if "preset" in doc else Config()
        return base.replace(**doc)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
