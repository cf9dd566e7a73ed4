"""Shared test set-up: Hypothesis profiles, the ``rng`` fixture and the fuzzing summary
(the helpers tests share are in ``helpers.py``).

Profiles (``pytest --hypothesis-profile NAME``):

``ci`` (the default, ``make test``)
    Derandomized: every run draws the same examples. The fuzz tests run at least 500 random
    networks on the RTL (:mod:`diannao.sim.tools.fuzz`).
``dev``
    Random draws, 10 examples per property and 64 fuzz networks: a quick check while editing.
``fuzz`` (``make fuzz N=5000``)
    Random draws; ``DIANNAO_FUZZ_NETWORKS`` (default 2000) fuzz networks, on configurations
    of every size.
"""

import os

import pytest
from hypothesis import settings

from helpers import seeded_rng

settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("dev", max_examples=10, deadline=None)
settings.register_profile("fuzz", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def rng(request):
    """A generator seeded from the test's name (reproducible, different per test)."""
    return seeded_rng(request.node.nodeid)


def pytest_collection_modifyitems(config, items):
    """The long tests (``slow``: board builds, fuzzing, large nodes) first, so that the
    workers of ``pytest -n auto --maxschedchunk 1`` (``make test``: one test at a time to
    whichever worker is free) share the rest and finish together."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_terminal_summary(terminalreporter):
    """One line: how many random networks, layers and cycles the fuzz tests checked."""
    builds = [value for reports in terminalreporter.stats.values() for report in reports
              for name, value in getattr(report, "user_properties", ())
              if name == "board" and getattr(report, "when", "call") == "call"]
    if builds:
        terminalreporter.section("board builds")
        for text in builds:
            terminalreporter.write_line(text)
    totals, seen = {}, {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, value in getattr(report, "user_properties", ()):
                if name != "fuzz" or getattr(report, "when", "call") != "call":
                    continue
                engine = value["engine"]
                totals.setdefault(engine, {})
                for key in ("networks", "distinct", "layers", "samples", "cycles", "configs"):
                    totals[engine][key] = totals[engine].get(key, 0) + value[key]
                for k, v in value["seen"].items():
                    seen[k] = seen.get(k, 0) + v
    if not totals:
        return
    terminalreporter.section("fuzz")
    for engine, t in sorted(totals.items()):
        terminalreporter.write_line(
            f"{engine}: {t['networks']:,} random networks ({t['distinct']:,} distinct), "
            f"{t['layers']:,} layers, "
            f"{t['samples']:,} samples, {t['cycles']:,} cycles on {t['configs']} "
            f"configurations, equal to golden and the cycle model")
    terminalreporter.write_line(
        f"total: {sum(t['networks'] for t in totals.values()):,} random networks on the RTL")
    terminalreporter.write_line("coverage: " + ", ".join(f"{k} {v}" for k, v in sorted(seen.items())))
