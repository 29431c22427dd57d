"""Uniform / ER / ERK: hand-computed cases and budget/bounds/monotonicity properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rigl_hw.distributions import (DistributionError, allocate, erk_sparsities, er_sparsities, get_sparsities,
                                   nonzeros_per_layer, random_masks, uniform_sparsities)

# Three layers whose ERK scores are easy by hand: sum(dims)/prod(dims)
#   a: linear 10x10        -> 20/100 = 0.2,       N = 100
#   b: linear 20x10        -> 30/200 = 0.15,      N = 200
#   c: conv 4x2x3x3        -> 12/72  = 1/6,       N = 72
SHAPES = {"a": (10, 10), "b": (20, 10), "c": (4, 2, 3, 3)}


def test_erk_hand_computed_no_dense_fix():
    # eps * (0.2*100 + 0.15*200 + 72/6) = 0.5 * 372  ->  eps * 62 = 186  ->  eps = 3
    s = erk_sparsities(SHAPES, 0.5)
    assert s["a"] == pytest.approx(1 - 0.6)
    assert s["b"] == pytest.approx(1 - 0.45)
    assert s["c"] == pytest.approx(1 - 0.5)
    assert nonzeros_per_layer(SHAPES, s, 0.5) == {"a": 60, "b": 90, "c": 36}


def test_erk_dense_fix_hand_computed():
    # S = 0.1: eps = 334.8/62 = 5.4 would give layer a density 1.08 > 1, so a becomes dense and
    # eps = (334.8 - 100) / (0.15*200 + 12) = 234.8/42 over b and c.
    s = erk_sparsities(SHAPES, 0.1)
    eps = 234.8 / 42
    assert s["a"] == 0.0
    assert s["b"] == pytest.approx(1 - 0.15 * eps)
    assert s["c"] == pytest.approx(1 - eps / 6)
    # floors: b 32.29 -> 32, c 4.91 -> 4; budget floor(37.2) = 37 zeros, the missing one goes to c
    assert nonzeros_per_layer(SHAPES, s, 0.1) == {"a": 100, "b": 168, "c": 67}
    assert nonzeros_per_layer(SHAPES, s, 0.1, exact_budget=False) == {"a": 100, "b": 168, "c": 68}


def test_er_ignores_kernel_dims():
    # ER score of c uses only (4 + 2)/(4*2) = 0.75: much denser than ERK's 1/6 relative to a
    s_er = er_sparsities(SHAPES, 0.5)
    s_erk = erk_sparsities(SHAPES, 0.5)
    assert s_er["c"] < s_erk["c"]


def test_power_zero_is_uniform():
    s = erk_sparsities(SHAPES, 0.7, power=0.0)
    assert all(v == pytest.approx(0.7) for v in s.values())


def test_uniform_excluded_layer_outside_budget():
    s = uniform_sparsities(SHAPES, 0.8, excluded=("a",))
    assert s == {"a": 0.0, "b": 0.8, "c": 0.8}
    nnz = nonzeros_per_layer(SHAPES, s, 0.8, excluded=("a",))
    assert nnz["a"] == 100
    assert nnz["b"] + nnz["c"] == 272 - math.floor(0.8 * 272)


def test_overrides_stay_in_budget():
    s = erk_sparsities(SHAPES, 0.5, overrides={"b": 0.9})
    assert s["b"] == 0.9
    ones = sum((1 - s[n]) * math.prod(SHAPES[n]) for n in SHAPES)
    assert ones == pytest.approx(0.5 * 372)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_sparsity(bad):
    with pytest.raises(DistributionError, match="sparsity"):
        get_sparsities(SHAPES, bad, "erk")


def test_unknown_distribution_and_layers():
    with pytest.raises(DistributionError, match="unknown distribution"):
        get_sparsities(SHAPES, 0.5, "gaussian")
    with pytest.raises(DistributionError, match="unknown layers"):
        get_sparsities(SHAPES, 0.5, "erk", excluded=("zz",))
    with pytest.raises(DistributionError, match="cannot be met"):
        get_sparsities(SHAPES, 0.9, "erk", overrides={"a": 0.0, "b": 0.0})


def test_random_masks_exact_counts():
    al = allocate(SHAPES, 0.5, "erk")
    masks = random_masks(al, SHAPES, np.random.default_rng(0))
    assert {n: int(m.sum()) for n, m in masks.items()} == al.as_dict()
    assert masks["c"].shape == (4, 2, 3, 3)


shape_st = st.one_of(
    st.tuples(st.integers(1, 64), st.integers(1, 64)),
    st.tuples(st.integers(1, 32), st.integers(1, 32), st.sampled_from([1, 3, 5]), st.sampled_from([1, 3])),
)


@settings(max_examples=150, deadline=None)
@given(shapes=st.lists(shape_st, min_size=1, max_size=8), sparsity=st.floats(0.0, 0.99),
       dist=st.sampled_from(["uniform", "er", "erk"]), exclude_first=st.booleans())
def test_budget_bounds_monotonicity(shapes, sparsity, dist, exclude_first):
    named = {f"l{i}": s for i, s in enumerate(shapes)}
    excluded = ("l0",) if exclude_first and len(named) > 1 else ()
    al = allocate(named, sparsity, dist, excluded=excluded)
    budget_n = sum(n for n, b in zip(al.n_params, al.in_budget) if b)
    budget_nnz = sum(z for z, b in zip(al.nonzeros, al.in_budget) if b)
    # budget holds exactly: zeros = floor(S * N_budget)
    assert budget_n - budget_nnz == math.floor(sparsity * budget_n + 1e-9)
    for name, n, s, z, b in zip(al.names, al.n_params, al.sparsity, al.nonzeros, al.in_budget):
        assert 0.0 <= s <= 1.0
        assert 1 <= z <= n
        assert abs((n - z) - s * n) <= 1.0 + 1e-6   # integer zeros within one of s_l N_l
        if not b:
            assert z == n
    if dist in ("er", "erk"):
        # monotone: a higher score never gets a lower density (among non-excluded layers)
        from rigl_hw.distributions import erk_score
        pts = [(erk_score(named[nm], dist == "erk"), 1 - s) for nm, s, b in zip(al.names, al.sparsity, al.in_budget) if b]
        pts.sort()
        dens = [d for _, d in pts]
        assert all(dens[i] <= dens[i + 1] + 1e-9 for i in range(len(dens) - 1))


@settings(max_examples=60, deadline=None)
@given(shapes=st.lists(shape_st, min_size=1, max_size=6), s1=st.floats(0.0, 0.95), ds=st.floats(0.0, 0.04),
       dist=st.sampled_from(["uniform", "er", "erk"]))
def test_more_sparsity_never_densifies_a_layer(shapes, s1, ds, dist):
    named = {f"l{i}": s for i, s in enumerate(shapes)}
    a = get_sparsities(named, s1, dist)
    b = get_sparsities(named, s1 + ds, dist)
    assert all(b[n] >= a[n] - 1e-9 for n in named)
