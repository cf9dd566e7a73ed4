"""Programs longer than the instruction memory: pages loaded from main memory by IMLOAD.

With a main memory (``Config.mem_bytes``) and an instruction memory of a power-of-two depth
``D`` (at least 8), a program of more than ``D`` instructions runs in pages of ``H = D / 2``
instructions, page ``k`` at instruction-memory half ``k % 2`` (instruction ``i`` of the
paged program at address ``i mod D``: the program counter wraps around). The host loads
pages 0 and 1 with the program; main memory holds every page, from beat
:attr:`Paged.code_base` on, ``Config.instr_beats`` beats an instruction. Every page ``k >= 1``
followed by a page ``k + 1 >= 2`` starts with the ``IMLOAD`` of that page into the half page
``k - 1`` held, and ends with an ``SBLOAD`` of no rows, which waits until the DMA engine is
idle: the next page is then in place (``hw.isa``, ``IMLOAD``). The last page loads pages 0
and 1 back before its HALT, so the program runs again. Paging costs each page two
instructions and the DMA engine ``H * instr_beats + mem_latency`` cycles, during which an
``SBLOAD`` of the page waits.
"""

from dataclasses import dataclass

from diannao.hw.isa import Op


__all__ = ["can_page", "instruction_room", "Paged", "page"]


def can_page(config):
    """Whether a program for ``config`` may be longer than its instruction memory."""
    d = config.imem_depth
    return bool(config.mem_bytes) and d >= 8 and d & (d - 1) == 0


def instruction_room(config):
    """The most instructions a program for ``config`` can hold, HALT included: the
    instruction memory's depth, or when :func:`can_page`, as many as main memory holds (a
    paged program's every instruction is there; an upper bound: the weights that stream
    share main memory, and paging adds instructions)."""
    if not can_page(config):
        return config.imem_depth
    return max(config.imem_depth, config.mem_depth // config.instr_beats)


@dataclass
class Paged:
    """A paged program.

    Attributes
    ----------
    instructions : list of dict
        Every instruction in program order (instruction ``i`` at instruction-memory address
        ``i mod imem_depth``), the IMLOADs and the waits included.
    origin : list of int or None
        For each, its index in the program before paging (None: added by paging).
    code_base : int
        Main-memory beat of instruction 0: main memory holds every instruction of a paged
        program, ``Config.instr_beats`` beats each.
    code_beats : int
        Main-memory beats of the instructions it holds (0: not paged).
    """
    instructions: list
    origin: list
    code_base: int
    code_beats: int


def page(instructions, config, code_base):
    """Page ``instructions`` (a whole program, HALT last) for ``config`` with the pages
    held in main memory from beat ``code_base`` on; returns a :class:`Paged`, unchanged
    (``code_beats`` 0) when the program fits the instruction memory.

    Raises
    ------
    ValueError
        If the program is longer than the instruction memory and ``config`` cannot page
        (:func:`can_page`).
    """
    depth = config.imem_depth
    body = list(enumerate(instructions))
    if len(body) <= depth:
        return Paged(list(instructions), list(range(len(body))), code_base, 0)
    if not can_page(config):
        raise ValueError(f"the program has {len(body):,} instructions, more than the "
                         f"instruction memory's {depth:,} (imem_depth), and this "
                         f"configuration cannot page it (a main memory and a power-of-two "
                         f"imem_depth of 8 or more)")
    half = depth // 2
    # Page 0 as it comes; every page after it that has a successor starts with the
    # successor's IMLOAD (filled in below) and ends with the wait for it. The last page
    # ends by loading pages 0 and 1 back (the half it does not run from first, then its
    # own, right before HALT: the node has fetched HALT before the first beat arrives), so
    # that the program runs again as the host left it.
    pages, rest = [body[:half]], body[half:]
    while len(rest) + 2 > half:
        pages.append([None] + rest[:half - 2] + [(None, dict(op=Op.SBLOAD, count=0))])
        rest = rest[half - 2:]
    last = len(pages) % 2                   # the half the last page runs from
    pages.append(rest[:-1] + [(None, ("restore", 1 - last)), (None, ("restore", last)),
                              rest[-1]])
    beats = config.instr_beats
    flat, origin = [], []
    for k, p in enumerate(pages):
        if p[0] is None:
            # The IMLOAD of page k + 1 (it follows: a page with a wait has a successor).
            p[0] = (None, dict(op=Op.IMLOAD, mem=code_base + (k + 1) * half * beats,
                               dst=((k + 1) % 2) * half, count=len(pages[k + 1])))
        for i, f in p:
            if isinstance(f, tuple):        # page 0 or 1 (half h) back into half h
                h = f[1]
                f = dict(op=Op.IMLOAD, mem=code_base + h * half * beats, dst=h * half,
                         count=len(pages[h]))
            flat.append(f)
            origin.append(i)
    return Paged(flat, origin, code_base, len(flat) * beats)
