"""Link faults: the board driver over a line that drops, flips, cuts, repeats and holds bytes.

:class:`FaultInjector` is a transport (:mod:`diannao.sim.engines.board`) that wraps a
simulated board (:class:`diannao.sim.engines.uart_sim.SimBytes` or ``SimUART``) and, with a
seeded generator, gives each request frame the driver writes and each response frame the
board sends at most one fault, of kind ``k`` with probability ``rates[k]``:

``drop``
    one or two bytes of the frame never arrive;
``flip``
    1 to ``flip_bits`` bits of one byte are inverted;
``truncate``
    the frame is cut after a random number of its bytes (the rest never arrives);
``duplicate``
    the frame arrives twice, the copy after 0 to ``dup_gap`` byte times (a request sent
    twice, a response delivered twice);
``pause``
    the line stops inside the frame for longer than the board's abandon time
    (``pause`` byte times, by default 41 to 80) and then delivers the rest.

The line stays a FIFO: a held byte holds back every byte behind it. The injector counts
each fault it injects and, through the driver's ``trace`` hook, whether the attempt that met
it failed (detected: the driver sends it again) or succeeded anyway (tolerated: a repeated
request the board ignored, a repeated response skipped for its tag).

:func:`run_campaign` runs whole networks (the digits MLP and CNN, compiled for the
``icebreaker`` preset, program, weights, tables, inputs and every layer's output over the
link) through the injector until the driver has sent a given number of request frames,
and checks every run the driver reports as a success:

* every layer's output equals the golden model's and every counter the cycle model's
  (:func:`diannao.sim.tools.fuzz.differences`);
* every host-port write the board executed is one the driver sent (region, address and
  data), and the last one executed at each instruction, weight and table address is the
  last the driver sent there (no garbage executed, no word left stale);
* the board started the node exactly once per sample, with that sample's input rows, as
  the driver wrote them, in NM.

A run that fails any check is a silent corruption. A run the driver gives up is reported
(the error names the command, region and address); it is counted, not checked. What is
simulated: the node and the host link RTL (:class:`diannao.boards.host_link.HostLink`) in
Amaranth's simulator; with ``line="bytes"`` (the default) an ideal byte line of
``byte_cycles`` clocks per byte replaces the UART (:class:`~diannao.sim.engines.uart_sim.ByteNode`),
with ``line="uart"`` the iCEBreaker top with its UART, bit by bit (8N1, 2 clocks per bit:
about 7 times slower per frame).

``diannao faults`` (``make faults``) runs the campaign and prints :meth:`CampaignResult.format`.
"""

import random
import sys
import time
from collections import Counter, deque
from dataclasses import dataclass, field

from diannao.boards.icebreaker import ICEBreakerTop
from diannao.boards.protocol import (ABANDON_BYTES, RESP_SYNC, ADDR_BYTES, Cmd, ProtocolError,
                                     request_len, response_len, word_bytes)
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.hw.node import Region
from diannao.sim.compiler.program import compile_network
from diannao.sim.engines.board import FAILURES, BoardEngine, Link
from diannao.sim.engines.uart_sim import ByteNode, SimBytes, SimUART, preload_weights
from diannao.sim.runtime.host import RunBudgetError, pack_row
from diannao.sim.runtime.run import run_network
from diannao.sim.tools.digits import load_network, load_test_set
from diannao.sim.tools.fuzz import differences


__all__ = ["KINDS", "DIRECTIONS", "DEFAULT_RATES", "FaultInjector", "CampaignResult",
           "run_campaign", "check_run", "add_subcommand"]

#: The kinds of fault, in the order of the tables.
KINDS = ("drop", "flip", "truncate", "duplicate", "pause")
#: Request frames (host -> board) and response frames (board -> host).
DIRECTIONS = ("request", "response")
#: Per-frame probability of each kind in each direction (about 12% of the frames faulted).
DEFAULT_RATES = {"drop": 0.012, "flip": 0.012, "truncate": 0.012, "duplicate": 0.012,
                 "pause": 0.012}


@dataclass
class _Attempt:
    """One request frame the driver wrote: its command, the faults it and its responses met,
    and how the driver's attempt ended (``"pending"`` until the driver says)."""
    cmd: int
    faults: list = field(default_factory=list)
    outcome: str = "pending"


class FaultInjector:
    """A transport that puts faults on both directions of a simulated board's line.

    Parameters
    ----------
    inner : SimBytes or SimUART
        The simulated board (needs ``write``, ``pause``, ``advance``, ``take``, ``clock``,
        ``byte_time``).
    tn : int
        The node's NFU width (the response length).
    rates : dict or None
        ``{kind: probability per frame}`` for kinds of :data:`KINDS` (default
        :data:`DEFAULT_RATES`); each direction draws separately; the sum is at most 1.
    seed : int
    flip_bits : int
        Most bits a flip inverts (1-8, in one byte).
    dup_gap : int
        Most byte times between a frame and its copy.
    pause : (int, int)
        Shortest and longest pause in byte times; the shortest must exceed the board's
        abandon time (:data:`diannao.boards.protocol.ABANDON_BYTES`), the longest should not
        exceed the driver's ``max_delay`` (:class:`diannao.sim.engines.board.Link`).

    Attributes
    ----------
    counts : collections.Counter
        ``(direction, kind)`` -> faults injected.
    frames : collections.Counter
        ``request`` and ``response`` frames that passed.
    sent : list of bytes
        Every request frame the driver wrote, as written (before any fault).
    """

    def __init__(self, inner, tn, rates=None, *, seed=0, flip_bits=4, dup_gap=16,
                 pause=(ABANDON_BYTES + 1, 2 * ABANDON_BYTES)):
        rates = dict(DEFAULT_RATES if rates is None else rates)
        unknown = set(rates) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; choose from {KINDS}")
        if any(not 0 <= p <= 1 for p in rates.values()) or sum(rates.values()) > 1:
            raise ValueError(f"fault rates must be probabilities summing to at most 1, not "
                             f"{rates}")
        if not 1 <= flip_bits <= 8:
            raise ValueError(f"flip_bits must be 1 to 8, not {flip_bits!r}")
        if not ABANDON_BYTES < pause[0] <= pause[1]:
            raise ValueError(f"pause must be (shortest, longest) byte times, the shortest over "
                             f"the board's abandon time ({ABANDON_BYTES}), not {pause!r}")
        self.inner = inner
        self.tn = tn
        self.rates = rates
        self.flip_bits, self.dup_gap, self.pause_range = flip_bits, dup_gap, tuple(pause)
        self.rng = random.Random(seed)
        self.counts = Counter()
        self.frames = Counter()
        self.sent = []
        self.attempts = []
        self._by_tag = {}
        self._frame = []                # the board's response frame being received
        self._line = deque()            # (deliver at, byte) on the way to the driver
        self._last = 0.0                # deliver time of the last byte put on the line

    # The transport interface (diannao.sim.engines.board).

    @property
    def byte_time(self):
        """Seconds (simulated) of one byte on the line."""
        return self.inner.byte_time

    def clock(self):
        """Simulated seconds so far."""
        return self.inner.clock()

    def write(self, data):
        """Send one request frame (the driver writes whole frames) with its fault, if it
        draws one."""
        frame = bytes(data)
        self.sent.append(frame)
        self.frames["request"] += 1
        attempt = _Attempt(frame[1] if len(frame) > 1 else -1)
        self.attempts.append(attempt)
        if len(frame) >= 3:
            self._by_tag[frame[2]] = attempt
        kind = self._draw()
        inner, bt = self.inner, self.byte_time
        if kind:
            self.counts["request", kind] += 1
            attempt.faults.append(("request", kind))
        if kind == "duplicate":
            inner.write(frame)
            gap = self.rng.randint(0, self.dup_gap)
            if gap:
                inner.pause(gap * bt)
            inner.write(frame)
        elif kind == "pause":
            k = self.rng.randint(1, len(frame) - 1)
            inner.write(frame[:k])
            inner.pause(self.rng.randint(*self.pause_range) * bt)
            inner.write(frame[k:])
        else:
            inner.write(self._mangle(kind, list(frame)) if kind else frame)
        return len(data)

    def flush(self):
        pass

    def read(self, n, timeout):
        """Up to ``n`` bytes from the board, each with its frame's fault: as soon as ``n``
        have arrived, else what arrived within ``timeout`` simulated seconds (at least one
        cycle runs when ``timeout`` is positive)."""
        end = self.clock() + timeout
        waited = timeout <= 0           # a positive timeout runs at least one cycle
        while True:
            self._pull()
            now = self.clock()
            ready = self._ready(now)
            if ready >= n or (now >= end and waited):
                break
            self.inner.advance(min(self.byte_time, max(end - now, 0.0)))
            waited = True
        return bytes(self._line.popleft()[1] for _ in range(min(n, ready)))

    def discard(self):
        """Drop the bytes that have arrived and were not read (not those still held back on
        the line)."""
        self._pull()
        for _ in range(self._ready(self.clock())):
            self._line.popleft()

    def trace(self, tag, reason):
        """The driver's attempt with ``tag`` ended: ``reason`` None (a good response) or why
        it failed (:class:`diannao.sim.engines.board.Link`'s ``trace`` hook)."""
        attempt = self._by_tag.get(tag)
        if attempt is not None:
            attempt.outcome = "tolerated" if reason is None else "detected"

    def drain(self, seconds):
        """Let the line run for ``seconds`` and drop whatever it delivers (between runs)."""
        end = self.clock() + seconds
        while self.clock() < end:
            self.inner.advance(min(16 * self.byte_time, end - self.clock()))
            self._pull()
        self._line.clear()

    # Faults.

    def _draw(self):
        u = self.rng.random()
        for kind in KINDS:
            u -= self.rates.get(kind, 0.0)
            if u < 0:
                return kind
        return None

    def _mangle(self, kind, items):
        """``items`` (bytes or ``(time, byte)`` pairs) with a drop, flip or truncation."""
        rng = self.rng
        if kind == "drop":
            for i in sorted(rng.sample(range(len(items)), min(len(items), rng.randint(1, 2))),
                            reverse=True):
                del items[i]
        elif kind == "flip":
            i = rng.randrange(len(items))
            mask = sum(1 << b for b in rng.sample(range(8), rng.randint(1, self.flip_bits)))
            if isinstance(items[i], tuple):
                items[i] = (items[i][0], items[i][1] ^ mask)
            else:
                items[i] ^= mask
        elif kind == "truncate":
            del items[rng.randint(1, len(items) - 1):]
        return bytes(items) if items and not isinstance(items[0], tuple) else items

    def _pull(self):
        """Move the board's bytes onto the line, a whole response frame at a time, each frame
        with its fault."""
        n = response_len(self.tn)
        for item in self.inner.take():
            self._frame.append(item)
            if len(self._frame) < n:
                continue
            frame, self._frame = self._frame, []
            if frame[0][1] != RESP_SYNC:
                raise RuntimeError(f"the board sent {bytes(b for _, b in frame).hex()}, not a "
                                   f"response frame")
            self.frames["response"] += 1
            kind = self._draw()
            if kind:
                self.counts["response", kind] += 1
                attempt = self._by_tag.get(frame[2][1])
                if attempt is not None:
                    attempt.faults.append(("response", kind))
            bt = self.byte_time
            items = list(frame)
            if kind == "duplicate":
                gap = self.rng.randint(0, self.dup_gap)
                t_end = frame[-1][0]
                items += [(t_end + (gap + 1 + i) * bt, b) for i, (_, b) in enumerate(frame)]
            elif kind == "pause":
                k = self.rng.randint(1, n - 1)
                hold = self.rng.randint(*self.pause_range) * bt
                items = items[:k] + [(t + hold, b) for t, b in items[k:]]
            elif kind:
                items = self._mangle(kind, items)
            for t, b in items:
                self._last = max(t, self._last)        # FIFO: nothing overtakes
                self._line.append((self._last, b))

    def _ready(self, now):
        """How many bytes at the head of the line have arrived by ``now``."""
        k = 0
        for t, _ in self._line:
            if t > now:
                break
            k += 1
        return k

    def by_command(self):
        """``command name`` -> ``(attempts, attempts that met a fault)``."""
        out = {}
        for attempt in self.attempts:
            try:
                name = Cmd(attempt.cmd).name
            except ValueError:
                name = f"0x{attempt.cmd:02X}"
            n, faulted = out.get(name, (0, 0))
            out[name] = (n + 1, faulted + bool(attempt.faults))
        return out

    def outcomes(self):
        """``(direction, kind, outcome)`` -> faults, ``outcome`` "detected" (the driver's
        attempt failed: it is sent again, or given up after the last attempt), "tolerated"
        (the attempt succeeded anyway) or "pending" (the run ended first);
        ``("none", "none", outcome)`` counts the attempts that met no fault of their own
        (one "detected" there failed for a fault of the attempt before it: a repeated
        request the board was still answering)."""
        out = Counter()
        for attempt in self.attempts:
            for direction, kind in attempt.faults:
                out[direction, kind, attempt.outcome] += 1
            if not attempt.faults:
                out["none", "none", attempt.outcome] += 1
        return out


def _decode_write(frame, tn):
    """``(region, addr, data)`` of a WRITE request frame as the driver wrote it, else None."""
    if len(frame) != request_len(tn) or frame[1] != Cmd.WRITE:
        return None
    w = word_bytes(tn)
    return (frame[3], int.from_bytes(frame[4:4 + ADDR_BYTES], "little"),
            int.from_bytes(frame[4 + ADDR_BYTES:4 + ADDR_BYTES + w], "little"))


def check_run(program, batch, runs, qnet, executed, sent):
    """What is wrong with a run the driver reported as a success: a list of strings, empty
    when nothing is.

    Parameters
    ----------
    program : diannao.sim.compiler.program.Program
        As run (compiled with ``intermediates``).
    batch : numpy.ndarray
        The int16 inputs, one per sample.
    runs : list of dict
        The driver's per-sample results (:func:`diannao.sim.runtime.host.run_sample`).
    qnet : diannao.golden.quant.QNetwork
    executed : list of tuple
        What the board's host link executed during the run
        (:attr:`diannao.sim.engines.uart_sim.SimBytes.executed`).
    sent : list of bytes
        The request frames the driver wrote during the run (:attr:`FaultInjector.sent`).
    """
    cfg = program.config
    problems = list(differences(qnet, program, batch, runs))
    issued = [w for w in (_decode_write(f, cfg.tn) for f in sent) if w is not None]
    issued_set = set(issued)
    want = {}
    for region, addr, data in issued:
        want[region, addr] = data
    got = {}
    since_start = {}
    starts = 0
    inputs = [[pack_row(row) for row in program.input_image(x)] for x in batch]
    for entry in executed:
        if entry[0] == "start":
            if starts < len(inputs):
                for r, row in enumerate(inputs[starts]):
                    have = since_start.get(program.input_base + r)
                    if have != row:
                        problems.append(f"sample {starts} started with NM row "
                                        f"{program.input_base + r} = {have!r}, not its input "
                                        f"{row:#x}")
            starts += 1
            since_start = {}
            continue
        _, region, addr, data = entry
        if (region, addr, data) not in issued_set:
            problems.append(f"the board executed a write the driver did not send: "
                            f"{Region(region).name} address {addr} <- {data:#x}")
        got[region, addr] = data
        if region == Region.NM:
            since_start[addr] = data
    if starts != len(batch):
        problems.append(f"the node was started {starts} times for {len(batch)} samples")
    for (region, addr), data in want.items():
        if region != Region.NM and got.get((region, addr)) != data:
            problems.append(f"{Region(region).name} address {addr} holds "
                            f"{got.get((region, addr))!r}, the driver wrote {data:#x}")
    return problems


@dataclass
class CampaignResult:
    """What :func:`run_campaign` counted.

    Attributes
    ----------
    frames : int
        Request frames the driver sent (retries included).
    responses : int
        Response frames the board sent.
    faults : collections.Counter
        ``(direction, kind)`` -> faults injected.
    outcomes : collections.Counter
        ``(direction, kind, outcome)`` -> faults (:meth:`FaultInjector.outcomes`).
    link : collections.Counter
        The driver's counts (:attr:`diannao.sim.engines.board.Link.stats`).
    commands : dict
        Command name -> ``(attempts, attempts that met a fault)``
        (:meth:`FaultInjector.by_command`).
    runs, samples : int
        Network runs (a load and its samples) the driver completed, and their samples.
    reported : list of str
        The errors of the runs the driver gave up.
    problems : list of str
        What the checks found in runs the driver reported as successes.
    silent : int
        Runs with problems: silent corruptions (must be 0).
    seconds : float
        Wall time.
    setup : str
        What was simulated.
    """
    frames: int = 0
    responses: int = 0
    faults: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    link: Counter = field(default_factory=Counter)
    commands: dict = field(default_factory=dict)
    runs: int = 0
    samples: int = 0
    reported: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    silent: int = 0
    seconds: float = 0.0
    setup: str = ""

    def format(self):
        """The counts as a table (text)."""
        lines = [f"link-fault campaign: {self.setup}",
                 f"frames: {self.frames:,} requests sent ({self.link['requests']:,} answered, "
                 f"{self.link['retries']:,} retried), {self.responses:,} responses",
                 f"runs: {self.runs} completed ({self.samples} samples), "
                 f"{len(self.reported)} given up by the driver (reported)",
                 "",
                 f"{'fault':<10} {'request':>8} {'response':>9} {'detected':>8} "
                 f"{'tolerated':>10} {'pending':>8}"]
        total = Counter()
        for kind in KINDS:
            row = [self.faults["request", kind], self.faults["response", kind]]
            row += [sum(self.outcomes[d, kind, o] for d in DIRECTIONS)
                    for o in ("detected", "tolerated", "pending")]
            for i, v in enumerate(row):
                total[i] += v
            lines.append(f"{kind:<10} {row[0]:>8,} {row[1]:>9,} {row[2]:>8,} {row[3]:>10,} "
                         f"{row[4]:>8,}")
        lines.append(f"{'total':<10} {total[0]:>8,} {total[1]:>9,} {total[2]:>8,} "
                     f"{total[3]:>10,} {total[4]:>8,}")
        none = [self.outcomes["none", "none", o] for o in ("detected", "tolerated", "pending")]
        lines.append(f"{'no fault':<10} {'':>8} {'':>9} {none[0]:>8,} {none[1]:>10,} "
                     f"{none[2]:>8,}   (attempts without a fault of their own)")
        lines += ["", "attempts by command (with a fault): " + ", ".join(
            f"{name} {n:,} ({faulted:,})" for name, (n, faulted) in sorted(self.commands.items()))]
        lines += ["",
                  f"detected by the driver: {self.link['detected']:,} failed attempts ("
                  + ", ".join(f"{FAILURES[k]} {self.link[k]:,}" for k in FAILURES) + ")",
                  f"retried: {self.link['retries']:,}; stale responses skipped: "
                  f"{self.link['stale']:,}; STARTs confirmed by the run count: "
                  f"{self.link['start_confirmed']:,}; requests given up: "
                  f"{self.link['failed']:,}",
                  f"silent corruptions: {self.silent}"]
        lines += [f"  {p}" for p in self.problems[:10]]
        lines += [f"  reported: {r}" for r in self.reported[:5]]
        rate = self.frames / self.seconds if self.seconds else 0.0
        lines.append(f"time: {self.seconds:.1f} s, {rate:.1f} frames/s")
        return "\n".join(lines)


def run_campaign(frames=10_000, *, seed=0, rates=None, networks=("mlp", "cnn"), samples=16,
                 line="bytes", byte_cycles=2, preload=False, attempts=8, progress_every=None,
                 file=sys.stderr):
    """Run whole networks over a faulty link until the driver has sent ``frames`` request
    frames, and check every run it reports as a success (:func:`check_run`).

    Parameters
    ----------
    frames : int
        Request frames to send at least (whole runs: the last one is finished).
    seed : int
        Seeds the faults (and nothing else: the inputs are the digits test set in order).
    rates : dict or None
        Fault probabilities per frame (:class:`FaultInjector`).
    networks : sequence of str
        Digits networks, run in turn (``"mlp"``, ``"cnn"``).
    samples : int
        Samples per run (one load of program, weights and tables, then the samples).
    line : str
        ``"bytes"``: :class:`~diannao.sim.engines.uart_sim.ByteNode` at ``byte_cycles``
        clocks per byte; ``"uart"``: the iCEBreaker top, UART bit by bit (2 clocks per bit).
    byte_cycles : int
    preload : bool
        Put the weights in SB before the simulation starts and send the rest (program,
        tables, inputs, outputs, counters) over the link: runs of a few hundred frames. One
        network only.
    attempts : int
        The driver's attempts per request.
    progress_every : int or None
        A line on ``file`` every this many frames.
    file : file

    Returns
    -------
    CampaignResult
    """
    t0 = time.monotonic()
    cfg = preset("icebreaker")
    if preload and len(networks) != 1:
        raise ValueError(f"preloaded weights need one network, not {list(networks)}")
    if samples < 1:
        raise ValueError(f"samples must be positive, not {samples!r}")
    nets = {}
    for name in networks:
        qnet = quantize(load_network(name))
        x, _ = load_test_set(qnet.layers[0].in_shape)
        nets[name] = (qnet, qnet.quantize_input(x),
                      compile_network(qnet, cfg, intermediates=True))
    if line == "bytes":
        top = ByteNode(cfg, byte_cycles)
        setup = (f"node and host link RTL (ByteNode), ideal byte line of {byte_cycles} clocks "
                 f"per byte")
    elif line == "uart":
        top = ICEBreakerTop(divisor=2)
        setup = "iCEBreaker top (node, host link, UART 8N1 at 2 clocks per bit)"
    else:
        raise ValueError(f"line must be 'bytes' or 'uart', not {line!r}")
    if preload:
        preload_weights(top, nets[networks[0]][2])
        setup += ", weights preloaded"
    inner = SimBytes(top) if line == "bytes" else SimUART(top)
    injector = FaultInjector(inner, cfg.tn, rates, seed=seed)
    setup = (f"seed {seed}, digits {' and '.join(networks)} ({samples} samples a run) on the "
             f"icebreaker node; {setup}; Amaranth's simulator")
    stats = Counter()
    result = CampaignResult(setup=setup)
    marks = {"next": progress_every or 0}

    def trace(tag, reason):
        injector.trace(tag, reason)
        if progress_every and stats["frames"] >= marks["next"]:
            marks["next"] += progress_every
            dt = time.monotonic() - t0
            print(f"  faults: {stats['frames']:,} frames, {sum(injector.counts.values()):,} "
                  f"faults, {stats['retries']:,} retried, {result.runs} runs checked, "
                  f"{result.silent} silent, {stats['frames'] / dt:.0f} frames/s",
                  file=file, flush=True)

    quiet = Link(injector, cfg.tn).quiet
    k = 0
    while stats["frames"] < frames:
        name = networks[k % len(networks)]
        qnet, xs, program = nets[name]
        first = (k // len(networks)) * samples % (len(xs) - samples + 1)
        batch = xs[first:first + samples]
        k += 1
        injector.drain(quiet)
        executed_from, sent_from = len(inner.executed), len(injector.sent)
        engine = BoardEngine(injector, "icebreaker", attempts=attempts, stats=stats,
                             trace=trace, load_weights=not preload)
        try:
            out = run_network(qnet, batch, engine, intermediates=True)
        except (ProtocolError, RunBudgetError) as e:
            result.reported.append(f"{name}: {e}")
            continue
        result.runs += 1
        result.samples += len(batch)
        problems = check_run(program, batch, out.report.runs, qnet,
                             inner.executed[executed_from:], injector.sent[sent_from:])
        if problems:
            result.silent += 1
            result.problems += [f"{name} run {result.runs}: {p}" for p in problems]
    result.frames = stats["frames"]
    result.responses = injector.frames["response"]
    result.faults = Counter(injector.counts)
    result.outcomes = injector.outcomes()
    result.commands = injector.by_command()
    result.link = stats
    result.seconds = time.monotonic() - t0
    return result


def add_subcommand(sub):
    """``diannao faults``: the link-fault campaign."""
    p = sub.add_parser("faults", help="link-fault campaign: whole networks over a simulated "
                                      "board link that drops, flips, cuts, repeats and "
                                      "holds bytes")
    p.add_argument("--frames", type=int, default=10_000,
                   help="request frames to send at least (default 10,000)")
    p.add_argument("--seed", type=int, default=0, help="seeds the faults (default 0)")
    p.add_argument("--rate", type=float, default=DEFAULT_RATES["drop"],
                   help=f"probability per frame of each kind of fault in each direction "
                        f"(default {DEFAULT_RATES['drop']})")
    p.add_argument("--samples", type=int, default=16, help="samples per run (default 16)")
    p.add_argument("--line", choices=("bytes", "uart"), default="bytes",
                   help="bytes: node and host link RTL on an ideal byte line (default); "
                        "uart: the iCEBreaker top, UART bit by bit (slower)")
    p.add_argument("--progress-every", type=int, default=1000, metavar="N",
                   help="a progress line on stderr every N frames (default 1000)")
    p.set_defaults(func=_cmd_faults)


def _cmd_faults(args):
    """Run the campaign of ``args`` (``diannao faults``), print the table; 0 when nothing
    was silently corrupted, 1 otherwise."""
    if args.frames < 1 or args.samples < 1 or not 0 <= args.rate <= 0.2:
        raise ValueError("--frames and --samples must be positive and --rate in [0, 0.2]")
    result = run_campaign(args.frames, seed=args.seed, rates=dict.fromkeys(KINDS, args.rate),
                          samples=args.samples, line=args.line,
                          progress_every=args.progress_every)
    print(result.format())
    return 0 if result.silent == 0 else 1
