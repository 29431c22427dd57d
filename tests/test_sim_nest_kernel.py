"""simulator/nest_kernel.py (one Numba call for all raw counts of a nest) and the mapper's cheap spatial
walk, against their pure-Python references on random mappings of every preset: strided, dilated,
grouped problems, every pass, sparse densities."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import simulator.access as access
from simulator.access import evaluate, fanout_limits, resolve_keeps
from simulator.hardware import list_presets, load_hardware
from simulator.mapper import _Space
from simulator.nest import PASSES, ROLES, LevelMapping, Mapping, Problem
from simulator.nest_kernel import footprint_fast, nest_counts
from simulator.tiles import footprint_py, loop_array, loop_strides, transfer_count

from sim_helpers import prime_factors

DIM8 = ("N", "G", "M", "C", "P", "Q", "R", "S")


def random_problem(rng: random.Random) -> Problem:
    return Problem(N=rng.choice([1, 2, 4]), G=rng.choice([1, 1, 2]), M=rng.choice([2, 4, 6]),
                   C=rng.choice([1, 2, 3, 4]), P=rng.choice([2, 3, 4, 6]), Q=rng.choice([1, 2, 3]),
                   R=rng.choice([1, 2, 3]), S=rng.choice([1, 2, 3]),
                   stride=(rng.choice([1, 2, 3]), rng.choice([1, 2])), dilation=(rng.choice([1, 1, 2]), rng.choice([1, 2])),
                   pass_name=rng.choice(PASSES))


def random_mapping(problem: Problem, hw, rng: random.Random) -> Mapping:
    """Each prime factor of each dim at a random level, temporal or spatial within the fanouts; random
    bypass sets. Capacities are not respected (the counts do not depend on them)."""
    n = len(hw.memory)
    names = [hw.memory[n - 1 - i].name for i in range(n)]
    limit = {}
    for i in range(n):
        fx, fy = fanout_limits(hw, n - 1 - i)
        limit[(i, "X")], limit[(i, "Y")] = fx, fy
    used = {k: 1 for k in limit}
    temporal = [dict() for _ in range(n)]
    spatial = [dict() for _ in range(n)]
    for d, size in problem.dims.items():
        for f in prime_factors(size):
            opts = [(i, "t") for i in range(n)] + [k for k in limit if used[k] * f <= limit[k]]
            lv, kind = rng.choice(opts)
            if kind == "t":
                temporal[lv][d] = temporal[lv].get(d, 1) * f
            else:
                used[(lv, kind)] *= f
                spatial[lv][(d, kind)] = spatial[lv].get((d, kind), 1) * f
    levels = []
    for i in range(n):
        t = list(temporal[i].items())
        rng.shuffle(t)
        sp = tuple((d, b, a) for (d, a), b in spatial[i].items())
        tensors = hw.memory[n - 1 - i].tensors
        keep = None if i == 0 else tuple(r for r in ROLES if r in tensors and rng.random() < 0.7)
        levels.append(LevelMapping(names[i], tuple(t), sp, keep))
    return Mapping(tuple(levels))


def nest_counts_py(problem: Problem, la: np.ndarray, keeps, n_levels: int, latch: bool) -> np.ndarray:
    """nest_counts from tiles.transfer_count and tiles.footprint_py (pure Python, point sets)."""
    loops = [(int(lv), DIM8[d], int(b), bool(sp), int(st)) for lv, d, b, sp, st in la]
    out = np.zeros((3, n_levels, 3), dtype=np.int64)
    for r, role in enumerate(ROLES):
        space = problem.space_of(role)
        chain = [i for i in range(n_levels) if role in keeps[i]] + [n_levels]
        for k, (a, b) in enumerate(zip(chain[:-1], chain[1:])):
            out[r, k, 0] = transfer_count(problem, loops, space, b, a, n_levels, latch)
            out[r, k, 1] = footprint_py(problem, loops, a, space)
            if b != n_levels:
                out[r, k, 2] = transfer_count(problem, loops, space, b, None, n_levels, latch)
    return out


def cases(n_per_preset: int, seed: int):
    rng = random.Random(seed)
    for name in list_presets():
        hw = load_hardware(name)
        for _ in range(n_per_preset):
            p = random_problem(rng)
            yield name, hw, p, random_mapping(p, hw, rng), rng


@pytest.mark.parametrize("seed", range(3))
def test_nest_kernel_equals_python_reference(seed):
    for name, hw, p, m, _ in cases(8, seed):
        keeps = resolve_keeps(hw, m)
        loops = loop_strides(m)
        la = loop_array(loops)
        n = len(hw.memory)
        for latch in (False, True):
            got = nest_counts(p, la, keeps, n, latch)
            want = nest_counts_py(p, la, keeps, n, latch)
            assert np.array_equal(got, want), (name, p, m.format_nest())
        for level in range(n + 1):
            for space in ("W", "I", "O"):
                assert footprint_fast(p, la, level, space) == footprint_py(p, loops, level, space), (name, level, space)


def test_loop_strides_are_the_products_of_inner_bounds():
    for _, _, _, m, _ in cases(3, 5):
        loops = m.loops()
        want = [(lv, d, b, sp, math.prod(bb for (_, dd, bb, _) in loops[j + 1:] if dd == d))
                for j, (lv, d, b, sp) in enumerate(loops)]
        assert loop_strides(m) == want


@pytest.mark.parametrize("seed", range(2))
def test_evaluate_fast_path_equals_python_reference(seed, monkeypatch):
    """The whole Evaluation (every count, byte, pJ, cycle) is identical with the counts from the pure-
    Python reference, on every preset, with sparse densities."""
    items = list(cases(6, 100 + seed))
    fast = []
    for name, hw, p, m, rng in items:
        dens = {k: rng.choice([1.0, 0.5, 0.137]) for k in ("weights", "inputs", "outputs") if rng.random() < 0.5}
        fast.append((dens, evaluate(p, hw, m, densities=dens, check=False)))
    monkeypatch.setattr(access, "nest_counts", nest_counts_py)
    for (name, hw, p, m, _), (dens, ev) in zip(items, fast):
        ref = evaluate(p, hw, m, densities=dens, check=False)
        assert ev == ref, (name, p, dens, m.format_nest())


def _ranked_reference(space: _Space, spatial_k: int):
    """The mapper's former selection: every spatial candidate, ranked by PEs (descending) then
    enumeration order, the first two of each PE count, up to spatial_k."""
    cands = space.spatial_candidates()
    ranked = sorted(((math.prod(b for a in s.values() for _, b in a), i, s) for i, s in enumerate(cands)),
                    key=lambda x: (-x[0], x[1]))
    per, kept = {}, []
    for n_pe, _, s in ranked:
        if per.get(n_pe, 0) < 2:
            kept.append((n_pe, s))
            per[n_pe] = per.get(n_pe, 0) + 1
            if len(kept) == spatial_k:
                break
    return kept


@pytest.mark.parametrize("name", list_presets())
def test_spatial_top_equals_ranking_every_candidate(name):
    hw = load_hardware(name)
    rng = random.Random(7)
    probs = [Problem(N=8, M=64, C=32, P=14, Q=14, R=3, S=3), Problem(N=4, M=96, C=3, P=55, Q=55, R=11, S=11,
                                                                     stride=(4, 4))]
    probs += [random_problem(rng) for _ in range(4)]
    for p in probs:
        space = _Space(p, hw, {})
        for k in (1, 4, 7):
            assert space.spatial_top(k) == _ranked_reference(space, k), (name, p, k)


def test_map_layers_in_two_workers_equals_serial_searches():
    from simulator.mapper import clear_cache, map_layer, map_layers

    hw = load_hardware("skip-bitmask-32x32")
    base = [Problem(N=4, M=64, C=32, P=14, Q=14, R=3, S=3, name="a"), Problem(N=4, M=128, C=64, P=7, Q=7, name="b")]
    jobs = [(Problem(**{**p.dims, "stride": p.stride}, pass_name=ps, name=p.name + ps), d)
            for p in base for ps in PASSES for d in (None, {"weights": 0.25})]
    jobs += jobs[:3]   # repeats: one search each
    want = [map_layer(p, hw, densities=d, use_cache=False) for p, d in jobs]
    clear_cache()
    got = map_layers(jobs, hw, workers=2)
    assert [r.evaluation for r in got] == [r.evaluation for r in want]
    assert [r.cached for r in got] == [False] * (len(jobs) - 3) + [True] * 3
    again = map_layers(jobs, hw, workers=2)     # all from the shape cache now
    assert all(r.cached for r in again) and [r.mapping for r in again] == [r.mapping for r in want]
    clear_cache()
    serial = map_layers(jobs, hw, workers=1, use_cache=False)
    assert [r.evaluation for r in serial] == [r.evaluation for r in want]


def _lockstep_fraction_numpy(counts, sl) -> float:
    """The former numpy formulation of mapped.lockstep_fraction (reshape, pad, block maxima)."""
    tr, tc = sl.tile_rows, sl.tile_cols
    rt, _ = counts.tiles(tc, tr)
    g, rpg = counts.groups, counts.rows_per_group
    nbt = -(-rpg // tr)
    x = rt.reshape(g, rpg, -1)
    if nbt * tr != rpg:
        x = np.concatenate([x, np.zeros((g, nbt * tr - rpg, x.shape[2]), dtype=x.dtype)], axis=1)
    per = x.reshape(g, nbt, tr, -1).sum(axis=2)
    br, bc = -(-nbt // sl.pe_rows), -(-per.shape[2] // sl.pe_cols)
    pad = np.zeros((g, br * sl.pe_rows, bc * sl.pe_cols), dtype=per.dtype)
    pad[:, :nbt, :per.shape[2]] = per
    mx = pad.reshape(g, br, sl.pe_rows, bc, sl.pe_cols).max(axis=(2, 4))
    return float(mx.sum()) / (g * br * bc * tr * tc)


def test_lockstep_kernel_equals_numpy_and_naive():
    from simulator.dataflow import MaskCounts
    from simulator.mapped import PeSlices, lockstep_fraction, lockstep_fraction_naive

    rng = np.random.default_rng(3)
    for _ in range(60):
        groups = int(rng.choice([1, 2, 3]))
        rpg, cols = int(rng.integers(1, 20)), int(rng.integers(1, 40))
        mask = rng.random((groups * rpg, cols)) < rng.random()
        counts = MaskCounts(np.packbits(mask.reshape(-1), bitorder="big"), groups * rpg, cols, groups)
        sl = PeSlices(int(rng.integers(1, 6)), int(rng.integers(1, 9)), int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        got = lockstep_fraction(counts, sl)
        assert got == _lockstep_fraction_numpy(counts, sl)
        assert got == pytest.approx(lockstep_fraction_naive(mask, groups, sl), rel=1e-12)
