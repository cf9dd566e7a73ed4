"""PWL activation tables: formula, exactness and measured worst errors."""

import numpy as np
import pytest

from diannao.golden.formats import (BUILTIN_TABLES, EXACT_ACTIVATIONS, TABLE_ERROR_BOUNDS,
                                    PWLTable, build_table, make_table, table_error)

ALL = np.arange(-32768, 32768, dtype=np.int64)


def direct_eval(table, x):
    """The formula of docs/numbers.md, "Activation tables", one Python int at a time."""
    seg = min(max((x - table.x_lo) >> table.k, 0), 15)
    rnd = (1 << (table.f - 1)) if table.f > 0 else 0
    y = ((table.a[seg] * x + rnd) >> table.f) + table.b[seg]
    return min(max(y, -32768), 32767)


@pytest.mark.parametrize("name", sorted(BUILTIN_TABLES))
def test_eval_matches_direct_formula(name):
    table = build_table(name, 8)
    xs = list(range(-32768, 32768, 97)) + [-32768, 32767, table.x_lo, table.x_lo - 1,
                                            table.x_lo + (16 << table.k)]
    xs = [x for x in xs if -32768 <= x <= 32767]
    got = table.eval(np.array(xs))
    assert [int(v) for v in got] == [direct_eval(table, x) for x in xs]


def test_eval_matches_direct_formula_random_tables():
    rng = np.random.default_rng(1)
    for _ in range(20):
        table = PWLTable(x_lo=int(rng.integers(-32768, 32768)), k=int(rng.integers(0, 16)),
                         f=int(rng.integers(0, 16)),
                         a=tuple(int(v) for v in rng.integers(-32768, 32768, 16)),
                         b=tuple(int(v) for v in rng.integers(-32768, 32768, 16)))
        xs = rng.integers(-32768, 32768, 300)
        assert [int(v) for v in table.eval(xs)] == [direct_eval(table, int(x)) for x in xs]


@pytest.mark.parametrize("frac", [8, 6, 10, 12, 13, 15])
@pytest.mark.parametrize("name", ["sigmoid", "tanh"])
def test_smooth_table_error_bound(name, frac):
    table = build_table(name, frac)
    assert table.f == 15 and max(map(abs, table.a)) <= 32767
    err = table_error(table, EXACT_ACTIVATIONS[name], frac)
    assert err <= TABLE_ERROR_BOUNDS[name]
    if frac <= 12:  # flat ends where the covered range is smaller than int16
        assert table.a[0] == 0 and table.a[15] == 0


def test_measured_errors_at_default_frac():
    """The numbers quoted in docs/numbers.md (frac = 8)."""
    assert table_error(build_table("sigmoid", 8), EXACT_ACTIVATIONS["sigmoid"], 8) == \
        pytest.approx(0.00956, abs=5e-5)
    assert table_error(build_table("tanh", 8), EXACT_ACTIVATIONS["tanh"], 8) == \
        pytest.approx(0.01445, abs=5e-5)
    t = build_table("sigmoid", 8)
    assert (t.x_lo, t.k) == (-2048, 8)          # [-8, 8) in Q7.8
    t = build_table("tanh", 8)
    assert (t.x_lo, t.k) == (-1024, 7)          # [-4, 4) in Q7.8


@pytest.mark.parametrize("frac", [0, 8, 15, 30])
def test_relu_and_identity_exact(frac):
    assert np.array_equal(build_table("relu", frac).eval(ALL), np.maximum(ALL, 0))
    assert np.array_equal(build_table("identity", frac).eval(ALL), ALL)
    t = build_table("relu", frac)
    assert (t.x_lo, t.k, t.f) == (-32768, 12, 14)


def test_hardtanh_is_the_clamp():
    hardtanh = EXACT_ACTIVATIONS["hardtanh"]
    x = np.array([-40.0, -1.5, -1.0, -0.25, 0.0, 0.75, 1.0, 3.0])
    assert hardtanh(x).tolist() == [-1.0, -1.0, -1.0, -0.25, 0.0, 0.75, 1.0, 1.0]


@pytest.mark.parametrize("frac", [0, 1, 2, 3, 6, 8, 12, 13, 14, 15, 16, 30])
def test_hardtanh_table_is_exact(frac):
    """Every int16 input gives clamp(x, -1, 1) exactly: -1 and +1 are -2**frac and 2**frac;
    +1 saturates to 32767 at frac 15 (where no input reaches it) and beyond."""
    table = build_table("hardtanh", frac)
    one = 2 ** frac
    assert np.array_equal(table.eval(ALL), np.clip(ALL, -one, min(one, 32767)))
    assert table_error(table, EXACT_ACTIVATIONS["hardtanh"], frac) == 0.0
    assert TABLE_ERROR_BOUNDS["hardtanh"] == 0.0
    if frac <= 14:      # flat at -1 below the ramp, flat at +1 above it
        assert table.a[0] == table.a[15] == 0
        assert (table.b[0], table.b[15]) == (-one, one)


@pytest.mark.parametrize("name,frac", [("sigmoid", 5), ("tanh", 5), ("tanh", 0), ("sigmoid", 31)])
def test_unbuildable_fracs_raise(name, frac):
    with pytest.raises(ValueError, match="frac"):
        build_table(name, frac)


def test_unknown_table_name():
    with pytest.raises(ValueError, match="'swish'"):
        build_table("swish", 8)


def test_make_table_user_function():
    fn = lambda x: np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)  # softplus
    table = make_table(fn, 8, -8.0, 0, flat_ends=False, name="softplus")
    assert table.name == "softplus"
    assert table_error(table, fn, 8) < 0.06  # end lines extrapolate softplus well
    with pytest.raises(ValueError, match="k must be"):
        make_table(fn, 8, -8.0, 9)
    with pytest.raises(ValueError, match="outside int16"):
        make_table(fn, 8, -200.0, 0)


@pytest.mark.parametrize("kwargs,field", [
    (dict(x_lo=40000), "x_lo"), (dict(k=16), "k"), (dict(f=-1), "f"),
    (dict(a=(0,) * 15), "a"), (dict(b=(0,) * 15 + (40000,)), "b[15]"),
])
def test_pwltable_validation(kwargs, field):
    base = dict(x_lo=0, k=0, f=0, a=(0,) * 16, b=(0,) * 16)
    base.update(kwargs)
    with pytest.raises(ValueError, match=f"PWLTable.{field.replace('[', '.').replace(']', '.')}"):
        PWLTable(**base)
