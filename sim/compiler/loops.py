"""Folding a program's repeats into LOOPs (``hw.isa``, LOOP).

A run of instructions that repeats with only its addresses (:data:`hw.isa.LOOP_FIELDS`)
moving by the same step each time becomes a LOOP over one copy of it: ``r`` copies of a
body of ``b`` instructions take ``b + 1``. Loops nest (a repeat of loops becomes a loop of
loops; a loop's body holds loops), so that hundreds of thousands of instructions can take a
few thousand (DianNao's CONV1 flat: 504,656, folded: 10,658). The node runs exactly what it
ran before (:func:`hw.isa.expand` of the folded program is the program), a LOOP's fetch
and decode more: the cycle model counts them.

A layer too large to list flat (DianNao's CONV5: 30 million instructions) is not folded
but repeated (:func:`repeat`): flat samples of it with a few bands of output rows show the
period that a LOOP runs for all of them.
"""

from dataclasses import replace

from diannao.hw.isa import LOOP_FIELDS, Op, field_range, wrap


__all__ = ["fold", "fold_layers", "fold_program", "translate", "offset", "repeat", "MAX_BODY"]

#: The longest body :func:`fold` looks for, in items (an instruction, or a loop already
#: folded, is one).
MAX_BODY = 16


def _step(a, b, step):
    """Update ``step`` (a dict of LOOP_FIELDS) so that item ``b`` is item ``a`` stepped by
    it; False when no step does (a field holds another value, or a step it already has
    does not fit)."""
    if isinstance(a, tuple) != isinstance(b, tuple):
        return False
    if isinstance(a, tuple):
        # A loop: its LOOP never moves; its body moves with the enclosing step.
        return (a[0] == b[0] and len(a[1]) == len(b[1])
                and all(_step(x, y, step) for x, y in zip(a[1], b[1])))
    if a.keys() != b.keys() or a["op"] != b["op"] or a["op"] == Op.HALT:
        return False                        # (no body holds a HALT)
    for k, v in a.items():
        if k in step:
            d = wrap(k, b[k] - v)
            if step[k] is None:
                step[k] = d
            elif step[k] != d:
                return False
        elif b[k] != v:
            return False
    return True


def _moved(a, step, times):
    """Item ``a`` stepped ``times`` times by ``step``."""
    if isinstance(a, tuple):
        # A loop: its LOOP never moves; its body moves with the enclosing step.
        return (a[0], [_moved(x, step, times) for x in a[1]])
    return {k: wrap(k, v + times * (step[k] or 0)) if k in step else v for k, v in a.items()}


def _fold_once(items, max_body):
    out, p, n = [], 0, len(items)
    while p < n:
        best = None                                  # (instructions saved, body, count, step)
        for b in range(1, min(max_body, (n - p) // 2) + 1):
            body = items[p:p + b]
            step = dict.fromkeys(LOOP_FIELDS)
            if not all(_step(x, y, step) for x, y in zip(body, items[p + b:p + 2 * b])):
                continue
            r = 2
            while (p + (r + 1) * b <= n
                   and all(_moved(x, step, r) == y
                           for x, y in zip(body, items[p + r * b:p + (r + 1) * b]))):
                r += 1
            size = sum(_size(x) for x in body)
            saved = (r - 1) * size - 1
            if saved > 0 and (best is None or saved > best[0]):
                best = (saved, b, r, step)
        if best is None:
            out.append(items[p])
            p += 1
            continue
        _, b, r, step = best
        body = items[p:p + b]
        loop = dict(op=Op.LOOP, count=r, body=sum(_size(x) for x in body),
                    **{k: v or 0 for k, v in step.items()})
        out.append((loop, body))
        p += r * b
    return out


def _size(item):
    return 1 + sum(_size(x) for x in item[1]) if isinstance(item, tuple) else 1


def _flat(items):
    for x in items:
        if isinstance(x, tuple):
            yield x[0]
            yield from _flat(x[1])
        else:
            yield x


def _top_down(items, depth, max_body):
    """Loops found in flat items, then loops within their bodies."""
    if depth == 0:
        return items
    out = []
    for x in _fold_once(items, max_body):
        if isinstance(x, tuple):
            body = _top_down(x[1], depth - 1, max_body)
            x = (dict(x[0], body=sum(_size(y) for y in body)), body)
        out.append(x)
    return out


def _bottom_up(items, depth, max_body):
    """Loops found in flat items, then loops of them."""
    for _ in range(depth):
        folded = _fold_once(items, max_body)
        if len(folded) == len(items):
            break
        items = folded
    return items


def fold(instructions, depth, max_body=MAX_BODY):
    """``instructions`` (a program without LOOPs, or a part of one without HALT) with its
    repeats folded into LOOPs nested up to ``depth`` levels, bodies of at most ``max_body``
    items. Greedy, at each instruction the loop that saves the most instructions; two
    ways, the shorter kept: loops first and loops in their bodies after, or loops first
    and loops of them after.

    Raises
    ------
    ValueError
        If ``instructions`` holds a LOOP (it folds a program once).
    """
    if any(f["op"] == Op.LOOP for f in instructions):
        raise ValueError("fold() takes a program without LOOPs")
    items = list(instructions)
    return min((list(_flat(way(items, depth, max_body))) for way in (_top_down, _bottom_up)),
               key=len)


def fold_layers(instructions, layer_pcs, depth):
    """``(instructions, layer_pcs)``: a program (HALT last) with each layer's instructions
    (``layer_pcs``: for each layer, the indices of its instructions, which follow one
    another) folded by :func:`fold` (a layer that has LOOPs already, :func:`repeat`, as it
    is), and each layer's instructions in the folded program."""
    bounds = [min(pcs) for pcs in layer_pcs] + [len(instructions) - 1]
    out, where = [], []
    for lo, hi in zip(bounds, bounds[1:]):
        part = instructions[lo:hi]
        if all(f["op"] != Op.LOOP for f in part):      # (a layer made with loops: as it is)
            part = fold(part, depth)
        where.append(list(range(len(out), len(out) + len(part))))
        out += part
    return out + instructions[-1:], where


def fold_program(program):
    """A compiled program (:class:`diannao.sim.compiler.program.Program`) that does not
    page, with every layer folded (:func:`fold_layers`, ``program.config.loop_depth``
    levels) whatever the cycles: the compiler keeps a folded program only when it takes no
    longer; tests and the fuzz run the others on the RTL too.

    Raises
    ------
    ValueError
        If ``program`` pages (a loop may not cross a page) or already has LOOPs.
    """
    if len(program.instructions) > program.config.imem_depth:
        raise ValueError("fold_program() takes a program that does not page")
    instructions, where = fold_layers(program.instructions, [l.pcs for l in program.layers],
                                      program.config.loop_depth)
    return replace(program, instructions=instructions,
                   layers=[replace(l, pcs=pcs) for l, pcs in zip(program.layers, where)])


def translate(instructions, step, times=1):
    """``instructions`` with their addresses moved by ``times`` x ``step`` (a dict of
    :data:`hw.isa.LOOP_FIELDS`; only the fields an instruction holds; a LOOP's own fields
    are its steps and never move), as a LOOP moves its body."""
    step = {k: v * times for k, v in step.items() if v}
    out = []
    for f in instructions:
        if f["op"] != Op.LOOP and any(k in f for k in step):
            f = {k: wrap(k, v + step[k]) if k in step else v for k, v in f.items()}
        out.append(f)
    return out


def offset(a, b):
    """The step (a dict of :data:`hw.isa.LOOP_FIELDS`) that moves instructions ``a`` onto
    ``b`` (``translate(a, step) == b``), or None if none does."""
    step = dict.fromkeys(LOOP_FIELDS)
    if len(a) != len(b) or not all(_step(x, y, step) for x, y in zip(a, b)):
        return None
    return {k: v or 0 for k, v in step.items()}


def _moved_onto(a, b, step, times=1):
    """``translate(a, step, times) == b``, stopping at the first difference."""
    return len(a) == len(b) and all(translate([x], step, times)[0] == y
                                    for x, y in zip(a, b))


def repeat(sample, n, step, depth, least=2, periods=(1, 2, 4)):
    """A layer's instructions for ``n`` repeats of a part of it (a band of output rows),
    with the repeats that differ only by their addresses in a LOOP, from flat samples of
    the same layer with fewer repeats; None if the samples show no such period.

    ``sample(k)`` gives the flat instructions of the layer with ``k`` repeats (``least``
    <= ``k`` <= ``n``), each repeat's addresses ``step`` (a dict of
    :data:`hw.isa.LOOP_FIELDS`) on from the one before. With ``a`` and ``a + q`` repeats
    (``q`` of :data:`periods`), the longer must be the shorter with one period of
    ``q`` repeats inserted (``A[:i] + M + translate(A[i:])``, ``M`` the ``L``
    instructions before ``i`` moved by ``q`` repeats' step), and ``a + 2q`` must agree:
    then ``n`` repeats are ``A[:i - L]``, a LOOP of ``(n - a) / q + 1`` iterations over
    ``A[i - L:i]`` (folded, :func:`fold`, ``depth - 1`` levels deep) and the rest of
    ``A`` moved by the iterations added; the parts outside the LOOP are folded
    ``depth`` deep. With too few repeats to sample (``n <= least + 3 max(periods)``), all
    ``n`` are listed and folded.

    What runs is what the flat program of ``n`` repeats would be, as long as the layer's
    instructions depend on the repeat count only through the repeats listed (the
    compiler's tests compare the two on layers small enough to list flat).
    """
    for q in periods:
        # A period, with what comes before and after it (the repeats the ends of the
        # layer make different).
        a = least + q + (n - least - q) % q
        if a + 2 * q > n:
            continue
        A, B = sample(a), sample(a + q)
        L = len(B) - len(A)
        if not 0 < L <= len(A):
            continue
        d = {k: q * step.get(k, 0) for k in LOOP_FIELDS}
        prefix = next((j for j, (x, y) in enumerate(zip(A, B)) if x != y), len(A))
        suffix = 0              # B ends with the end of A moved by one period
        for x, y in zip(translate(A[::-1], d), B[::-1]):
            if x != y:
                break
            suffix += 1
        # The period ends where A and B first differ, or before (the last that fits).
        i = next((i for i in range(prefix, max(L, len(A) - suffix) - 1, -1)
                  if _moved_onto(A[i - L:i], B[i:i + L], d)), None)
        if i is None:
            continue
        C = sample(a + 2 * q)
        if (len(C) != len(B) + L or C[:i - L] != A[:i - L]
                or any(not _moved_onto(A[i - L:i], C[i - L + j * L:i + j * L], d, j)
                       for j in range(3))
                or not _moved_onto(A[i:], C[i + 2 * L:], d, 2)):
            continue
        body = fold(A[i - L:i], depth - 1)
        if len(body) > field_range("body")[1]:
            continue
        m = (n - a) // q + 1
        if m > field_range("count")[1]:
            continue
        loop = dict(op=Op.LOOP, count=m, body=len(body), **{k: wrap(k, v) for k, v in d.items()})
        return (fold(A[:i - L], depth) + [loop] + body
                + fold(translate(A[i:], d, m - 1), depth))
    if n <= least + 3 * max(periods):
        # Too few repeats for the samples to show a period: all of them, folded.
        return fold(sample(n), depth)
    return None

