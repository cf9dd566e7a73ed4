"""Fuzzing in volume (:mod:`diannao.sim.tools.fuzz`): random networks on random configurations, on the RTL,
bit-exact with golden on every layer and equal to the cycle model in cycles and every traffic
counter. The profile (``tests/conftest.py``) sets how many: at least 500 networks under
Verilator and a share under Amaranth's simulator per ``make test``."""

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings, strategies as st

from diannao.golden.formats import PWLTable
from diannao.golden.network import Conv, FC, MaxPool, Network
from diannao.golden.quant import quantize
from diannao.hw.config import preset
from diannao.sim.cli import main
from diannao.sim.compiler.program import compile_network
from diannao.sim.tools.fuzz import (PROFILE_NETWORKS, TN_CHOICES, VARIANTS, Case, Stats, cases,
                                    check_case, configs, run_cases, write_case)
from diannao.sim.engines.hdl import simulator_available

#: Networks drawn for each configuration (one build of the node runs them all); the ``fuzz``
#: profile draws more per build.
PER_CONFIG = {"verilator": 63, "pysim": 8, "fuzz": 128}
#: ``tn * tn * tiles`` at most, per tn, in the ``ci`` and ``dev`` profiles (the Verilator
#: build time); ``fuzz`` draws nodes of up to ``DIANNAO_FUZZ_MULTIPLIERS`` (default 1024:
#: 16 tiles of tn=8, 4 of tn=16; 4096 for every size).
CI_MULTIPLIERS = {2: 64, 4: 256, 8: 256, 16: 512}
#: Where a failing case is written (network, input, configuration, the command).
FAILURES = Path(os.environ.get("DIANNAO_FUZZ_FAILURES", "build/fuzz-failures"))


def _profile(config):
    return config.getoption("hypothesis_profile") or os.environ.get("HYPOTHESIS_PROFILE", "ci")


def _campaign(request, engine, tn, variant, networks, max_multipliers, per_config=None,
              tiles=None, small_nbin=None):
    per_config = min(per_config or PER_CONFIG[engine], networks)
    stats = Stats()

    @settings(max_examples=max(1, -(-networks // per_config)), database=None,
              phases=[Phase.explicit, Phase.generate],
              # Not data_too_large: a batch too large for one example must fail, not retry
              # for ever.
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(data=st.data())
    def campaign(data):
        # Hypothesis tries the all-minimal example first (every draw its simplest value):
        # one network, 63 times over. A random salt that is not its least value rejects it.
        assume(data.draw(st.integers(0, 2 ** 32 - 1), label="salt") != 0)
        config = data.draw(configs(tn=tn, variant=variant, max_multipliers=max_multipliers,
                                   tiles=tiles, small_nbin=small_nbin), label="config")
        batch = [data.draw(cases(config), label=f"case {i}") for i in range(per_config)]
        where = FAILURES / f"{engine}-tn{tn}-{variant}-{stats.configs}"
        try:
            all_runs = run_cases(config, batch, engine)
        except Exception as exc:
            for i, case in enumerate(batch):
                write_case(case, where / f"case{i}", [f"{type(exc).__name__}: {exc}"])
            raise AssertionError(f"{engine} failed on {config}: {exc}; the {len(batch)} cases "
                                 f"are in {where}/") from exc
        for i, (case, runs) in enumerate(zip(batch, all_runs)):
            problems = check_case(case, runs)
            if problems:
                out = write_case(case, where / f"case{i}", problems)
                raise AssertionError(f"{engine} on {config}: " + "; ".join(problems[:5])
                                     + f" (reproduce: {out}/README.txt)")
            stats.add(case, runs)
        stats.configs += 1

    campaign()
    request.node.user_properties.append(("fuzz", dict(stats.summary(), engine=engine)))
    assert stats.networks >= networks and stats.distinct == stats.networks
    return stats


#: The ``ci`` and ``dev`` profiles' shards, one Verilator build each: ``(tn, variant, tiles,
#: small_nbin)``. Every tn twice, every variant, every tile count, half with an NBin small
#: enough for bands and chunked reductions; ``fuzz`` runs every tn with every variant and draws the rest.
CI_SHARDS = [(2, "narrow", 16, True), (2, "deep", 8, False), (4, "plain", 1, True),
             (4, "narrow", 8, True), (8, "deep", 4, True), (8, "plain", 2, False),
             (16, "plain", 2, True), (16, "deep", 1, False)]
FUZZ_SHARDS = [(tn, v, None, None) for tn in TN_CHOICES for v in VARIANTS]


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_fuzz_verilator":
        shards = FUZZ_SHARDS if _profile(metafunc.config) == "fuzz" else CI_SHARDS
        metafunc.parametrize("tn,variant,tiles,small_nbin", shards)


@pytest.mark.slow
def test_fuzz_verilator(request, tn, variant, tiles, small_nbin):
    ok, why = simulator_available("verilator")
    if not ok:
        pytest.skip(why)
    profile = _profile(request.config)
    shards = FUZZ_SHARDS if profile == "fuzz" else CI_SHARDS
    total = int(os.environ.get("DIANNAO_FUZZ_NETWORKS", PROFILE_NETWORKS[profile]))
    networks = -(-total // len(shards))
    if profile == "fuzz":
        cap = int(os.environ.get("DIANNAO_FUZZ_MULTIPLIERS", 1024))
        _campaign(request, "verilator", tn, variant, networks, cap, PER_CONFIG["fuzz"])
        return
    stats = _campaign(request, "verilator", tn, variant, networks, CI_MULTIPLIERS[tn],
                      tiles=tiles, small_nbin=small_nbin)
    if profile == "ci":
        # Coverage the shard exists for: every split of its tiles, and with a small NBin
        # bands, reductions in chunks (exact partial sums), STOREs overlapping the
        # computation and LOOPs over the bands and chunks that repeat.
        log2_tiles = tiles.bit_length() - 1
        want = {f"split {g}/{log2_tiles}" for g in range(log2_tiles + 1)}
        want |= {"bands"} if small_nbin else set()
        # (A narrow instruction memory overlaps nothing and plans bands of whole rows.)
        want |= ({"partial sums", "overlap", "loops"} if small_nbin and variant != "narrow"
                 else set())
        assert want <= set(stats.seen), f"not covered: {sorted(want - set(stats.seen))}"


@pytest.mark.slow
@pytest.mark.parametrize("tn,variant", [(2, "narrow"), (4, "deep"), (2, "plain")])
def test_fuzz_pysim(request, tn, variant):
    _campaign(request, "pysim", tn, variant, 8, 16)


def _case(config):
    """A fixed case: a conv with a user table, max pooling and an fc (every layer's output
    kept in NM, so that every one is compared)."""
    rng = np.random.default_rng(3)
    table = PWLTable(-300, 5, 6, tuple(rng.integers(-500, 500, 16)),
                     tuple(rng.integers(-500, 500, 16)), name="user")
    network = Network((2, 6, 5), [
        Conv(rng.normal(0, .3, (5, 2, 3, 3)), rng.normal(0, .1, 5), pad=1, activation="tanh",
             table=table),
        MaxPool(2), FC(rng.normal(0, .3, (3, 30)), rng.normal(0, .1, 3))])
    qnet = quantize(network)
    x = rng.integers(-32768, 32768, (2, 2, 6, 5))
    return Case(config, network, x, qnet, compile_network(qnet, config, intermediates=True))


def test_differences_find_a_wrong_value_and_a_wrong_counter():
    case = _case(preset("small").replace(nbin_depth=40))
    runs = run_cases(case.config, [case], "pysim")[0]
    assert check_case(case, runs) == []
    runs[1]["layer_outputs"][1][0, 0, 1] += 1
    runs[0]["tiles"][2]["nbin_reads"] += 1
    runs[0]["nm_writes"] -= 1
    got = check_case(case, runs)
    assert got[0].startswith("sample 0: node counter nm_writes = ")
    assert got[1].startswith("sample 0: tile 2 counter nbin_reads = ")
    assert got[2].startswith("sample 1 layer 1 (maxpool) differs from golden at [0, 0, 1]")
    assert len(got) == 3


def test_a_written_case_reproduces_with_diannao_run(tmp_path, capsys):
    case = _case(preset("small").replace(nbin_depth=40, deep_pipeline=1, acc_width=40))
    out = write_case(case, tmp_path / "case", ["a problem"])
    readme = (out / "README.txt").read_text()
    assert "  a problem\n" in readme
    command = readme.split("Reproduce:\n  ")[1].split()
    assert command[:2] == ["diannao", "run"]
    argv = [a for a in command[1:]]
    argv[argv.index("--engine") + 1] = "pysim"
    assert main(argv) == 0
    assert "RTL cycle counter" in capsys.readouterr().out
    assert np.array_equal(np.load(out / "y.npy"), case.qnet.run(case.x))


@pytest.mark.parametrize("tn", [2, 16])
def test_the_largest_batch_fits_one_example(tn):
    # A batch that outgrows Hypothesis's choice buffer is an overrun: Hypothesis would retry
    # it for ever (the campaign only allows the data_too_large health check to stop it).
    drawn = []

    @settings(max_examples=1, database=None, phases=[Phase.generate],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(data=st.data())
    def batch(data):
        config = data.draw(configs(tn=tn, max_multipliers=4096))
        drawn.append([data.draw(cases(config)) for _ in range(max(PER_CONFIG.values()))])

    batch()
    assert len(drawn[-1]) == max(PER_CONFIG.values())
