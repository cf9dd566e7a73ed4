"""Fuzzing in volume: random networks on random configurations, run on the node RTL and
checked against the golden model (every layer, bit for bit) and the cycle model (cycles and
every traffic counter).

The Hypothesis strategies draw a configuration (:func:`configs`: ``tn``, tiles, buffer depths
small enough to force bands and every tile split, ``deep_pipeline``, a narrow instruction
memory, accumulator and counter widths, activation-table slots, a main memory that the
weights stream from) and then networks for it
(:func:`cases`: input shapes, conv/local/fc/maxpool/avgpool/LRN layers with random kernels,
strides, padding and output formats, every activation, random user tables, random inputs). A case is
drawn until it compiles for the configuration; a configuration for which no draw compiles is
rejected as a whole (Hypothesis ``reject``, never a silent pass).

Every case of one configuration runs on one build of the node (:func:`run_cases`); a
mismatch is written out (:func:`write_case`) as a network file, an input and a configuration
file that ``diannao run`` reproduces.
"""

import hashlib
import json
from dataclasses import dataclass, field, asdict
from pathlib import Path

import numpy as np
from hypothesis import reject, strategies as st

from diannao.golden.formats import INT16_MAX, INT16_MIN, PWLTable, SEGMENTS, to_fixed
from diannao.golden.network import Network, Conv, Local, FC, LRN, MaxPool, AvgPool, ACTIVATIONS
from diannao.golden.quant import quantize
from diannao.hw.isa import Op, expand
from diannao.hw.config import Config, min_acc_width
from diannao.sim.compiler import cycle_model
from diannao.sim.compiler.loops import fold_program
from diannao.sim.compiler.program import CompileError, compile_network
from diannao.sim.engines import hdl, pysim


__all__ = ["Case", "configs", "cases", "run_cases", "check_case", "differences", "write_case",
           "refills_beside_reader", "Stats", "TILE_CHOICES", "TN_CHOICES", "VARIANTS", "PROFILE_NETWORKS"]

TN_CHOICES = (2, 4, 8, 16)
TILE_CHOICES = (1, 2, 4, 8, 16)
#: Random networks on the RTL per test run, by Hypothesis profile (``tests/conftest.py``;
#: ``DIANNAO_FUZZ_NETWORKS`` overrides).
PROFILE_NETWORKS = {"ci": 504, "dev": 64, "fuzz": 2000}
#: Draws of a network for a configuration before the configuration is rejected.
_ATTEMPTS = 12


#: Pipeline variants: the plain node, ``deep_pipeline``, a narrow instruction memory.
VARIANTS = ("plain", "deep", "narrow")


@st.composite
def configs(draw, tn=None, variant=None, max_multipliers=None, tiles=None, small_nbin=None):
    """A :class:`Config` with small buffers.

    Parameters
    ----------
    tn : int, optional
        Fixed NFU width (default: drawn from :data:`TN_CHOICES`).
    variant : str, optional
        Fixed pipeline variant, one of :data:`VARIANTS` (default: drawn).
    max_multipliers : int, optional
        Upper bound on ``tn * tn * tiles`` (the node's size, which sets the Verilator build
        time).
    tiles : int, optional
        Fixed number of tiles (default: drawn from :data:`TILE_CHOICES`).
    small_nbin : bool, optional
        True: an NBin of 12-60 rows, too small for most inputs (bands) and reductions
        (chunks); False: 97-256 rows
        (default: either).
    """
    tn = draw(st.sampled_from(TN_CHOICES)) if tn is None else tn
    variant = draw(st.sampled_from(VARIANTS)) if variant is None else variant
    if tiles is None:
        tiles = draw(st.sampled_from([t for t in TILE_CHOICES if max_multipliers is None
                                      or tn * tn * t <= max_multipliers]))
    if small_nbin is None:
        small_nbin = draw(st.booleans())
    min_acc = min_acc_width(tn)
    # Sometimes a main memory with an SB too small for most weights (they stream: SBLOAD),
    # any port width, a latency of 1 to 100 cycles (no stalls: every counter is compared;
    # a long one covers short instructions' reads, so that a slot is refilled right after
    # its last reader), and sometimes an instruction memory too small for the program.
    # (Not with a small NBin: those configurations are the ones that must show bands and
    # chunked reductions of resident weights.)
    memory = {}
    if variant != "narrow" and not small_nbin and draw(st.integers(0, 2)) == 0:
        lanes = draw(st.integers(0, tn.bit_length() - 1))
        latency = draw(st.one_of(st.integers(1, 40), st.integers(41, 100)))
        memory = dict(mem_bytes=2 * tn << lanes, mem_latency=latency, mem_depth=1 << 15)
    return Config(
        tn=tn, tiles=tiles, deep_pipeline=int(variant == "deep"),
        imem_narrow=int(variant == "narrow"),
        acc_width=draw(st.one_of(st.just(48), st.integers(min_acc, 64))),
        nbin_depth=draw(st.integers(12, 60) if small_nbin else st.integers(97, 256)),
        nbout_depth=draw(st.integers(24, 256)),
        # Mostly a partial-sum buffer (chunked reductions), sometimes none; always one with
        # a small NBin (unless narrow), whose configurations exist for chunked reductions.
        psum_depth=draw(st.integers(24, 256) if small_nbin and variant != "narrow"
                        else st.integers(0, 256).map(lambda d: 0 if d < 24 else d)),
        sb_depth=draw(st.integers(4, 64) if memory else st.integers(32, 512)),
        nm_depth=draw(st.integers(256, 2048)),
        # With a main memory sometimes an instruction memory of 8 to 32: the program runs
        # in pages (sim.compiler.paging).
        imem_depth=draw(st.one_of(st.integers(64, 256), st.sampled_from([8, 16, 32]))
                        if memory else st.integers(24, 128)),
        act_tables=draw(st.integers(1, 4)),
        counter_width=draw(st.sampled_from([16, 24, 32])),
        # Mostly a controller that runs LOOPs (the compiler folds each layer's repeats, and
        # makes a layer too long for the instruction memory with LOOPs from its plan),
        # nested one, two or four levels.
        loop_depth=0 if variant == "narrow" else draw(st.sampled_from([0, 1, 2, 4])),
        **memory)


@dataclass
class Case:
    """One random network on a configuration, with its input and what it must give.

    Attributes
    ----------
    config : Config
    network : golden.network.Network
        Float weights; :func:`golden.quant.quantize` of it is what runs.
    x : numpy.ndarray
        int16 inputs ``[batch, *input_shape]``.
    qnet, program :
        The quantized network and its program for ``config``.
    """
    config: Config
    network: Network
    x: np.ndarray
    qnet: object = field(repr=False)
    program: object = field(repr=False)


def _weights(rng, scale, shape, fan_in):
    return rng.normal(0.0, scale / np.sqrt(fan_in), shape)


def _table(rng):
    """A random NFU-3 table (any slopes and offsets, any segment width and slope format):
    coefficients all int16 or small, with the extremes mixed in."""
    span = int(rng.choice([INT16_MAX, 2048, 64]))
    coef = rng.integers(-span, span + 1, (2, SEGMENTS))
    coef[rng.random((2, SEGMENTS)) < 0.1] = INT16_MIN
    coef[rng.random((2, SEGMENTS)) < 0.1] = INT16_MAX
    x_lo = int(rng.choice([INT16_MIN, INT16_MAX, rng.integers(INT16_MIN, INT16_MAX + 1)]))
    return PWLTable(x_lo=x_lo, k=int(rng.integers(0, 16)), f=int(rng.integers(0, 16)),
                    a=tuple(int(v) for v in coef[0]), b=tuple(int(v) for v in coef[1]),
                    name="user")


@st.composite
def _network(draw, tn):
    """A random float network (the caller checks that it compiles).

    Everything comes from one drawn seed: one Hypothesis choice per network, so that a
    batch of 128 networks (several draws each, when some do not compile) fits one example.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))

    def ints(lo, hi):
        return int(rng.integers(lo, hi + 1))

    def pick(options):
        return options[ints(0, len(options) - 1)]

    if ints(0, 1):
        input_shape = (ints(1, 2 * tn + 1), ints(1, 9), ints(1, 9))
    else:
        input_shape = (ints(1, 6 * tn),)
    scale = pick([0.5, 1.0, 3.0])     # 3.0: outputs saturate
    layers, shape = [], input_shape
    for _ in range(ints(1, 4)):
        image = len(shape) == 3
        kind = pick(["fc", "conv", "conv", "local", "maxpool", "avgpool", "lrn"] if image
                    else ["fc"])
        if kind == "lrn":
            layer = LRN(ints(1, 7), pick([1e-4, 0.01, 0.5, 2.0]), pick([0.5, 0.75, 1.0]),
                        pick([1.0, 2.0]))
        elif kind in ("maxpool", "avgpool"):
            size = ints(1, min(3, shape[1], shape[2]))
            layer = (MaxPool if kind == "maxpool" else AvgPool)(size, ints(1, size + 1))
        else:
            act = pick(ACTIVATIONS)
            user_table = act != "identity" and ints(0, 3) == 0
            common = dict(activation=act, out_frac=pick([None, ints(0, 12)]),
                          table=_table(rng) if user_table else None)
            # A quarter of the layers are wide: enough output blocks for every tile split.
            o = ints(3 * tn + 2, 16 * tn + 1) if ints(0, 3) == 0 else ints(1, 3 * tn + 1)
            if kind == "fc":
                n = int(np.prod(shape))
                layer = FC(_weights(rng, scale, (o, n), n), rng.normal(0, 0.2, o), **common)
            else:
                c, h, w = shape
                pad = ints(0, 2)
                k = ints(1, min(4, min(h, w) + 2 * pad))
                stride = ints(1, 3)
                if kind == "conv":
                    layer = Conv(_weights(rng, scale, (o, c, k, k), c * k * k),
                                 rng.normal(0, 0.2, o), stride=stride, pad=pad, **common)
                else:
                    # A kernel per output position: a few output blocks, or SB overflows.
                    o = min(o, 2 * tn)
                    oh, ow = ((n + 2 * pad - k) // stride + 1 for n in (h, w))
                    layer = Local(_weights(rng, scale, (o, oh, ow, c, k, k), c * k * k),
                                  rng.normal(0, 0.2, o), stride=stride, pad=pad, **common)
        layers.append(layer)
        shape = Network(input_shape, layers).output_shape
    return Network(input_shape, layers, act_frac=ints(4, 12))


@st.composite
def cases(draw, config):
    """A :class:`Case` for ``config``: a random network that compiles for it and 1-2 inputs
    (reals in [-2, 2) quantized at the input format, or any int16 values)."""
    for _ in range(_ATTEMPTS):
        network = draw(_network(config.tn))
        try:
            qnet = quantize(network)
            # Half the programs keep every layer's output in NM (all compared with golden),
            # half reuse dead tensors' rows (the final output compared).
            program = compile_network(qnet, config, intermediates=draw(st.booleans()))
        except (CompileError, ValueError):
            continue      # too large for the buffers, or a format the quantizer cannot give
        # The compiler keeps LOOPs only where they cost no cycle, rarely on these small
        # nodes: fold the others too, mostly, so that the RTL runs random loops.
        if (config.loop_depth and len(program.instructions) <= config.imem_depth
                and not any(f["op"] == Op.LOOP for f in program.instructions)
                and draw(st.integers(0, 3))):
            program = fold_program(program)
        rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        shape = (draw(st.integers(1, 2)),) + tuple(network.input_shape)
        if draw(st.booleans()):
            x = to_fixed(rng.uniform(-2, 2, shape), qnet.input_frac)
        else:
            x = rng.integers(INT16_MIN, INT16_MAX + 1, shape)
        return Case(config, network, np.asarray(x, dtype=np.int64), qnet, program)
    reject()


@dataclass
class Stats:
    """What a campaign checked."""
    networks: int = 0
    layers: int = 0
    samples: int = 0
    cycles: int = 0
    configs: int = 0
    distinct: int = 0
    #: Coverage: how often each feature occurred.
    seen: dict = field(default_factory=dict)
    #: Fingerprints of the cases seen (:func:`fingerprint`).
    prints: set = field(default_factory=set, repr=False)

    def add(self, case, runs):
        key = fingerprint(case)
        self.distinct += key not in self.prints
        self.prints.add(key)
        self.networks += 1
        self.layers += len(case.network.layers)
        self.samples += len(runs)
        self.cycles += sum(cycle_model.program_cycles(case.program.instructions,
                                                      case.config)) * len(runs)
        for feature in _features(case):
            self.seen[feature] = self.seen.get(feature, 0) + 1

    def summary(self):
        """The counts and coverage as plain data (no fingerprints)."""
        return dict(networks=self.networks, distinct=self.distinct, layers=self.layers,
                    samples=self.samples, cycles=self.cycles, configs=self.configs,
                    seen=dict(self.seen))


def fingerprint(case):
    """A digest of everything a case runs: configuration, network, weights, input."""
    digest = hashlib.sha256(repr(case.config).encode())
    for layer in case.qnet.layers:
        digest.update(repr((layer.kind, layer.in_shape, layer.out_shape, layer.kernel,
                            layer.stride, layer.pad, layer.shift, layer.bias_exp,
                            layer.table)).encode())
        for a in (layer.w_q, layer.b_q):
            if a is not None:
                digest.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
    digest.update(np.ascontiguousarray(case.x, dtype=np.int64).tobytes())
    return digest.hexdigest()


def _features(case):
    cfg, out = case.config, set()
    out.add(f"tn={cfg.tn}")
    out.add(f"tiles={cfg.tiles}")
    if cfg.deep_pipeline:
        out.add("deep")
    if cfg.imem_narrow:
        out.add("narrow")
    if len(case.program.instructions) > cfg.imem_depth:
        out.add("paged program")
    if any(info.out_base < info.in_base for info in case.program.layers):
        out.add("NM reuse")         # an output written over a dead tensor's rows
    for layer in case.network.layers:
        out.add(layer.kind)
        if getattr(layer, "table", None) is not None:
            out.add("user table")
        if getattr(layer, "activation", None):
            out.add(layer.activation)
    run = list(expand(case.program.instructions))
    if len(run) > len(case.program.instructions):
        out.add("loops")
    for info in case.program.layers:
        if info.looped:
            # Made from its plan in passes of output blocks, with LOOPs where they repeat.
            out.add("layer in passes")
            if any(case.program.instructions[pc]["op"] == Op.LOOP for pc in info.pcs):
                out.add("layer made with loops")
    # A compute instruction that started while the tiles drained the one before.
    prev = None
    for (_, f), start in zip(run, cycle_model.timeline(case.program.instructions, cfg)[1]):
        if start is None:
            continue
        if prev is not None:
            done = prev[1] + max(cycle_model.compute_cycles(prev[0], cfg)[0])
            if start <= done:
                out.add("drained under the next")
        prev = f, start
    for info in case.program.layers:
        pcs = set(info.pcs)
        instrs = [f for pc, f in run if pc in pcs]
        if sum(f["op"] == Op.STORE for f in instrs) > 1:
            out.add("bands")
        if any(f.get("psum_out") for f in instrs):
            out.add("partial sums")
        if any(f["op"] == Op.LOAD and f["runs_m1"] for f in instrs):
            out.add("channel chunks")
        if info.streamed:
            out.add("streamed weights")
        if any(f.get("dma_ahead", 0) > 1 for f in instrs):      # more than two slots
            out.add("weights fetched ahead")
        if refills_beside_reader(instrs):
            out.add("SBLOAD beside its reader")
        if any(f["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL) and f["out_row_step"] != f["ocb"]
               for f in instrs):
            out.add("column tiles")
        if any(f["op"] == Op.STORE and not f["sync"] for f in instrs):
            out.add("overlap")
        out.add(f"split {info.fields['log2_gob']}/{cfg.log2_tiles}")
    return out


def refills_beside_reader(instructions):
    """Whether an ``SBLOAD`` follows the last reader of the slot it fills directly (main
    memory's latency covers that reader's reads: :mod:`diannao.sim.compiler.tiling`)."""
    return any(f["op"] == Op.SBLOAD and f["count"]
               and g["op"] in (Op.CONV, Op.MAXPOOL, Op.AVGPOOL) and g["sb_base"] == f["dst"]
               for g, f in zip(instructions, instructions[1:]))


def differences(qnet, program, x, runs):
    """How RTL ``runs`` (:func:`diannao.sim.runtime.host.run_sample`, one per sample of the int16 batch
    ``x``) of ``program`` differ from the golden model and the cycle model: a list of
    strings, empty when every layer's output, the error flag, the cycle count and every
    traffic counter of the node and of each tile agree (counters modulo
    ``2**counter_width``, as the RTL's wrap)."""
    problems = []
    cfg = program.config
    mask = (1 << cfg.counter_width) - 1
    want_node, want_tiles = cycle_model.program_counters(program)
    for i, (xi, run) in enumerate(zip(x, runs)):
        _, golden = qnet.run(xi, intermediates=True)
        for n, (got, want) in enumerate(zip(run["layer_outputs"], golden)):
            if got is None:
                continue            # overwritten by a later layer (not program.intermediates)
            if not np.array_equal(got, want):
                bad = tuple(int(k) for k in np.argwhere(np.asarray(got) != np.asarray(want))[0])
                problems.append(f"sample {i} layer {n} ({program.layers[n].kind}) differs "
                                f"from golden at {list(bad)}: RTL {got[bad]}, golden "
                                f"{want[bad]}")
        if run["error"]:
            problems.append(f"sample {i}: the node raised its error flag")
        for name, want in want_node.items():
            if run[name] != want & mask:
                problems.append(f"sample {i}: node counter {name} = {run[name]}, model {want}")
        for t, (got_t, want_t) in enumerate(zip(run["tiles"], want_tiles)):
            for name, want in want_t.items():
                if got_t[name] != want & mask:
                    problems.append(f"sample {i}: tile {t} counter {name} = {got_t[name]}, "
                                    f"model {want}")
    if len(runs) != len(x):
        problems.append(f"{len(runs)} runs for {len(x)} samples")
    return problems


def check_case(case, runs):
    """:func:`differences` of a :class:`Case`."""
    return differences(case.qnet, case.program, case.x, runs)


def run_cases(config, cases_, engine="verilator"):
    """Run ``cases_`` (all for ``config``) on one node of ``engine`` (``verilator``,
    ``icarus`` or ``pysim``); returns the runs of each case."""
    jobs = [(c.program, c.x) for c in cases_]
    if engine == "pysim":
        results = pysim.run_jobs(config, jobs)
    else:
        results, _ = hdl.run_jobs(config, jobs, simulator=engine)
    return [runs for _, runs in results]


def write_case(case, directory, problems=()):
    """Write ``case`` to ``directory`` as ``network.json`` (+ ``.npz``), ``input.npy``
    (int16), ``config.json`` and ``README.txt`` with the ``diannao run`` command that
    reproduces it; returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    case.network.save(directory / "network.json")
    np.save(directory / "input.npy", case.x.astype(np.int16))
    (directory / "config.json").write_text(json.dumps(asdict(case.config), indent=1) + "\n")
    command = (f"diannao run --network {directory}/network.json --input {directory}/input.npy "
               f"--config {directory}/config.json --engine verilator --out {directory}/y.npy")
    (directory / "README.txt").write_text(
        "A random network on which the RTL differed from golden or the cycle model.\n\n"
        + "".join(f"  {p}\n" for p in problems) + f"\nReproduce:\n  {command}\n")
    return directory
