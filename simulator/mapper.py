"""Search the mappings of a layer pass on a hardware spec for an objective (latency | energy | edp).

The mapping space (docs/simulator.md, "Mapping-driven model"): every spatial unrolling of up to two
dimensions per mesh axis and level whose factors divide the dimensions (within the fanout and the
spec's `[mapspace]` spatial_x / spatial_y), every temporal factorisation of the rest over the on-chip
levels whose tiles fit their capacities (partitions, double buffering, compressed sparse tiles), and a
loop order per level. `exhaustive=True` walks all of it (small problems, tests); the default search:

1. spatial candidates ranked by PEs used; a candidate whose compute bound (MACs / PEs, the latency
   lower bound) cannot beat the best mapping found so far is pruned (latency and edp objectives);
2. the on-chip levels are filled from the innermost out (beam search): a level's candidate tiles are
   the capacity-maximal divisor vectors (no factor can grow and still fit), ranked by MACs per word
   held; candidate loop orders put the dims irrelevant to one tensor innermost ("X-stationary") or
   one dim innermost; each partial mapping is completed (the rest at DRAM) and evaluated exactly;
3. the DRAM loop order is chosen last among the same order candidates.
Results are cached in memory by (problem shape, densities, hardware content, objective).
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from functools import lru_cache

from simulator.access import (Evaluation, _sparse, accumulator_bits, evaluate, fanout_limits, stored_words,
                              SPACE_NAME)
from simulator.sparse_features import Joint
from simulator.nest import DIMS, ROLES, LevelMapping, Mapping, MappingError, Problem, SPACE_DIMS
from simulator.tiles import tile_points

OBJECTIVES = ("latency", "energy", "edp")


@dataclass(frozen=True)
class MapResult:
    mapping: Mapping
    evaluation: Evaluation
    evaluated: int        # mappings evaluated by the search
    seconds: float
    cached: bool = False


_CACHE: dict = {}


def clear_cache() -> None:
    _CACHE.clear()


_HW_KEYS: dict = {}


def _hw_key(hw) -> str:
    """The spec's content (not its file path) as a cache key; memoised per spec object."""
    hit = _HW_KEYS.get(id(hw))
    if hit is None or hit[0] is not hw:
        if len(_HW_KEYS) > 64:
            _HW_KEYS.clear()
        hit = (hw, repr(hw.__class__(**{f: getattr(hw, f) for f in hw.__dataclass_fields__ if f != "source_path"})))
        _HW_KEYS[id(hw)] = hit
    return hit[1]


def objective_value(ev: Evaluation, objective: str) -> float:
    if objective == "latency":
        return ev.cycles + ev.energy_pj * 1e-12   # ties broken by energy
    if objective == "energy":
        return ev.energy_pj + ev.cycles * 1e-9
    return ev.cycles * ev.energy_pj


@lru_cache(maxsize=4096)
def _divisors(n: int) -> tuple[int, ...]:
    small = [d for d in range(1, math.isqrt(n) + 1) if n % d == 0]
    return tuple(sorted(set(small + [n // d for d in small])))


class _Space:
    """Legal choices for one (problem, hw): levels outermost first (mapping order)."""

    def __init__(self, problem: Problem, hw, densities: dict):
        self.p, self.hw, self.dens = problem, hw, densities
        self.joint = Joint(densities)
        self.n = len(hw.memory)
        self.hwl = [hw.memory[self.n - 1 - i] for i in range(self.n)]
        self.names = [lv.name for lv in self.hwl]
        self.keep = [tuple(r for r in ROLES if r in lv.tensors) for lv in self.hwl]
        self.keep[0] = ROLES
        self.fan = [fanout_limits(hw, self.n - 1 - i) for i in range(self.n)]
        self.ms = [hw.mapspace.get(nm) for nm in self.names]
        self._fit_memo: dict = {}   # (level, tile extents, keep) -> fits: the searches ask again and again

    def allowed_spatial(self, i: int, axis: str) -> tuple[str, ...]:
        ms = self.ms[i]
        got = None if ms is None else (ms.spatial_x if axis == "X" else ms.spatial_y)
        return DIMS if got is None else got

    def allowed_temporal(self, i: int) -> tuple[str, ...]:
        ms = self.ms[i]
        return DIMS if ms is None or ms.temporal is None or i == 0 else ms.temporal

    def full(self, i: int) -> tuple[str, ...]:
        ms = self.ms[i]
        return () if ms is None else ms.full

    # --- capacity ---------------------------------------------------------------------------
    def keep_candidates(self, i: int, exhaustive: bool) -> list[tuple[str, ...]]:
        """Tensor sets level i may keep: the [mapspace] keep, else every subset of its tensors."""
        ms = self.ms[i]
        if i == 0:
            return [ROLES]
        if ms is not None and ms.keep is not None:
            return [tuple(r for r in ROLES if r in ms.keep)]
        tensors = self.keep[i]
        subsets = [tuple(c) for k in range(len(tensors), -1, -1) for c in itertools.combinations(tensors, k)]
        return subsets

    def fits(self, i: int, ext: dict, keep: tuple[str, ...] | None = None) -> bool:
        if i == 0:
            return True
        keep = self.keep[i] if keep is None else keep
        key = (i, tuple([ext[d] for d in DIMS]), keep)
        hit = self._fit_memo.get(key)
        if hit is None:
            hit = self._fit_memo[key] = self._fits(i, ext, keep)
        return hit

    def _fits(self, i: int, ext: dict, keep: tuple[str, ...]) -> bool:
        h = self.n - 1 - i
        lv, hw, p = self.hwl[i], self.hw, self.p
        cap = lv.size_bytes * 8 / (2 if lv.double_buffer else 1)
        used = 0.0
        for role in keep:
            words = stored_words(p, hw, i, role, ext, self.joint)
            bits = words * (accumulator_bits(hw) if role == "outputs" else hw.word_bits(h))
            part = (lv.partition_bytes or {}).get(role)
            if part is not None:
                pb = part * 8 / (2 if lv.double_buffer else 1)
                if bits > pb:
                    return False
                used += pb
            else:
                used += bits
            if used > cap:
                return False
        return True

    # --- spatial ----------------------------------------------------------------------------
    def spatial_candidates(self) -> list[dict]:
        """All spatial assignments: {level: ((dim, bound, axis), ...)}, with their PE count."""
        slots = [(i, ax) for i in range(self.n) for ax in ("X", "Y") if self.fan[i][0 if ax == "X" else 1] > 1]
        out = []

        def rec(k, remaining, chosen):
            if k == len(slots):
                ok = all(self._full_spatial_ok(i, chosen, remaining) for i in range(self.n))
                if ok:
                    out.append(dict(chosen))
                return
            i, ax = slots[k]
            limit = self.fan[i][0 if ax == "X" else 1]
            dims = [d for d in self.allowed_spatial(i, ax) if remaining[d] > 1]
            for assign in self._axis_assignments(dims, remaining, limit, self.full(i)):
                rem = dict(remaining)
                for d, b in assign:
                    rem[d] //= b
                chosen[(i, ax)] = assign
                rec(k + 1, rem, chosen)
                del chosen[(i, ax)]

        rec(0, self.p.dims, {})
        return out

    def spatial_top(self, spatial_k: int, per_count: int = 2) -> list[tuple[int, dict]]:
        """What the default search keeps of `spatial_candidates()` ranked by PEs used (descending,
        enumeration order within a count): the first `per_count` candidates of each PE count, up to
        `spatial_k` in all, as (PEs, assignment). The same walk, pruned: once the candidates found
        fill `spatial_k` with counts >= T, a subtree whose PE bound (the fanouts left) is below T
        cannot contribute, and candidates are only built for the counts that can."""
        slots = [(i, ax) for i in range(self.n) for ax in ("X", "Y") if self.fan[i][0 if ax == "X" else 1] > 1]
        limits = [self.fan[i][0 if ax == "X" else 1] for i, ax in slots]
        cap = [math.prod(limits[k:]) for k in range(len(slots) + 1)]   # PE bound of the slots left
        first: dict[int, list[dict]] = {}
        has_full = any(self.full(i) for i in range(self.n))
        floor = [0]   # T: counts below it cannot be kept

        def leaf(chosen, pes):
            if pes < floor[0]:
                return
            got = first.get(pes)
            if got is None:
                got = first[pes] = []
            elif len(got) >= per_count:
                return
            if has_full and not all(self._full_spatial_ok(i, chosen, None) for i in range(self.n)):
                return
            got.append(dict(chosen))
            if spatial_k > 0:
                acc = 0
                for c in sorted(first, reverse=True):
                    acc += min(per_count, len(first[c]))
                    if acc >= spatial_k:
                        floor[0] = c
                        break

        def rec(k, remaining, chosen, pes):
            if k == len(slots):
                leaf(chosen, pes)
                return
            i, ax = slots[k]
            dims = [d for d in self.allowed_spatial(i, ax) if remaining[d] > 1]
            last = k == len(slots) - 1
            for assign in self._axis_assignments(dims, remaining, limits[k], self.full(i)):
                f = 1
                for _, b in assign:
                    f *= b
                if pes * f * cap[k + 1] < floor[0]:
                    continue
                chosen[(i, ax)] = assign
                if last:
                    leaf(chosen, pes * f)
                else:
                    rem = dict(remaining)
                    for d, b in assign:
                        rem[d] //= b
                    rec(k + 1, rem, chosen, pes * f)
                del chosen[(i, ax)]

        rec(0, self.p.dims, {}, 1)
        kept = []
        for pes in sorted(first, reverse=True):
            for s in first[pes]:
                kept.append((pes, s))
                if len(kept) == spatial_k:
                    return kept
        return kept

    def _full_spatial_ok(self, i, chosen, remaining) -> bool:
        for d in self.full(i):
            if d not in self.allowed_temporal(i) or (self.ms[i] and self.ms[i].temporal == ()):
                sp = 1
                for ax in ("X", "Y"):
                    sp *= math.prod(b for dd, b in chosen.get((i, ax), ()) if dd == d)
                if sp != self.p.dim(d) and self.p.dim(d) > 1:
                    return False
        return True

    @staticmethod
    def _axis_assignments(dims, remaining, limit, full):
        yield ()
        for d in dims:
            for f in _divisors(remaining[d])[1:]:
                if f <= limit and (d not in full or f == remaining[d]):
                    yield ((d, f),)
        for a, b in itertools.combinations(dims, 2):
            for fa in _divisors(remaining[a])[1:]:
                if fa > limit or (a in full and fa != remaining[a]):
                    continue
                for fb in _divisors(remaining[b])[1:]:
                    if fa * fb <= limit and (b not in full or fb == remaining[b]):
                        yield ((a, fa), (b, fb))

    # --- temporal ---------------------------------------------------------------------------
    def tile_candidates(self, i: int, inner_ext: dict, remaining: dict, exhaustive: bool, k: int,
                        keep: tuple[str, ...]) -> list[dict]:
        """Temporal factor vectors at level i (dims -> bound) whose tile fits when keeping `keep`."""
        allowed = [d for d in DIMS if d in self.allowed_temporal(i) and remaining[d] > 1]
        forced = {d: remaining[d] for d in self.full(i) if d in allowed}
        fits = lambda e: self.fits(i, e, keep)  # noqa: E731
        if not keep and not exhaustive:
            return [forced] if fits(inner_ext) else []
        if not fits(inner_ext):
            return []
        if exhaustive:
            found = []

            def rec(j, ext, f):
                if j == len(allowed):
                    found.append({d: b for d, b in f.items() if b > 1})
                    return
                d = allowed[j]
                opts = [forced[d]] if d in forced else _divisors(remaining[d])
                for b in opts:
                    e = dict(ext)
                    e[d] *= b
                    if not fits(e):
                        break
                    f[d] = b
                    rec(j + 1, e, f)
                    del f[d]

            rec(0, dict(inner_ext), {})
            return found
        # greedy fills (ZigZag LOMA-style): grow dims to the largest fitting divisor in priority orders
        priorities = []
        for role in ROLES:
            rel = SPACE_DIMS[self.p.space_of(role)]
            priorities.append([d for d in allowed if d not in rel] + [d for d in allowed if d in rel])
            priorities.append([d for d in allowed if d in rel] + [d for d in allowed if d not in rel])
        for d in allowed:
            priorities.append([d] + [x for x in allowed if x != d])
        out = []
        for pri in priorities:
            e, f = dict(inner_ext), {}
            for d in pri:
                if d in forced:
                    e[d] *= forced[d]
                    f[d] = forced[d]
            if not fits(e):
                continue
            for d in pri:
                if d in forced:
                    continue
                best = 1
                for b in _divisors(remaining[d])[1:]:
                    e2 = dict(e)
                    e2[d] *= b
                    if not fits(e2):
                        break
                    best = b
                if best > 1:
                    e[d] *= best
                    f[d] = best
            if f not in out:
                out.append(f)
        base = dict(forced)
        if base not in out and fits({d: inner_ext[d] * base.get(d, 1) for d in inner_ext}):
            out.append(base)   # the smallest tile: leaves room to the levels outside

        def intensity(f):
            e = dict(inner_ext)
            for d, b in f.items():
                e[d] *= b
            words = sum(tile_points(self.p, e, self.p.space_of(r)) for r in keep) or 1
            return -math.prod(e.values()) / words

        smallest = out[-1] if out and out[-1] == base else None
        out.sort(key=intensity)
        out = out[:k]
        if smallest is not None and smallest not in out:
            out[-1] = smallest
        return out

    def orders(self, i: int, dims: list[str], exhaustive: bool) -> list[tuple[str, ...]]:
        """Candidate temporal orders (outer -> inner) of `dims` at level i."""
        ms = self.ms[i]
        if ms is not None and ms.order is not None:
            fixed = [d for d in ms.order if d in dims]
            return [tuple(fixed + [d for d in dims if d not in fixed])]
        if len(dims) <= 1:
            return [tuple(dims)]
        if exhaustive or len(dims) <= 3:
            return list(itertools.permutations(dims))
        out = []
        for role in ROLES:
            rel = set(SPACE_DIMS[self.p.space_of(role)])
            out.append(tuple([d for d in dims if d in rel] + [d for d in dims if d not in rel]))
        for d in dims:
            out.append(tuple([x for x in dims if x != d] + [d]))
        return list(dict.fromkeys(out))


def _build(space: _Space, spatial: dict, temporal: dict, orders: dict, keeps: dict) -> Mapping:
    levels = []
    for i in range(space.n):
        t = temporal.get(i, {})
        order = orders.get(i, tuple(d for d in DIMS if t.get(d, 1) > 1))
        tl = tuple((d, t[d]) for d in order if t.get(d, 1) > 1)
        sl = tuple((d, b, ax) for ax in ("X", "Y") for d, b in spatial.get((i, ax), ()))
        levels.append(LevelMapping(space.names[i], tl, sl, keeps.get(i, space.keep[i]) if i else ROLES))
    return Mapping(tuple(levels))


def map_layer(problem: Problem, hw, objective: str = "latency", *, densities: dict | None = None,
              exhaustive: bool = False, beam: int = 3, tile_k: int = 6, spatial_k: int = 4,
              use_cache: bool = True) -> MapResult:
    """Best mapping of `problem` on `hw` for `objective`; raises MappingError when none is legal."""
    if objective not in OBJECTIVES:
        raise MappingError(f"objective {objective!r} is not one of {list(OBJECTIVES)}")
    densities = dict(densities or {})
    key = _cache_key(problem, hw, objective, densities,
                     {"exhaustive": exhaustive, "beam": beam, "tile_k": tile_k, "spatial_k": spatial_k})
    if use_cache and key in _CACHE:
        r = _CACHE[key]
        return MapResult(r.mapping, r.evaluation, 0, 0.0, True)
    t0 = time.perf_counter()
    space = _Space(problem, hw, densities)
    if exhaustive:
        cands = space.spatial_candidates()
        ranked = sorted(((math.prod(b for a in s.values() for _, b in a), i, s) for i, s in enumerate(cands)),
                        key=lambda x: (-x[0], x[1]))
        spatials = [(n_pe, s) for n_pe, _, s in ranked]
    else:   # the first two of each PE count, most PEs first (spatial_top walks what this used to rank)
        spatials = space.spatial_top(spatial_k)
    if not spatials:
        raise MappingError(f"hardware {hw.name}: its [mapspace] constraints leave no legal spatial unrolling "
                           f"for {problem.name or 'this layer'}")
    best: tuple[float, Evaluation] | None = None
    evaluated = 0
    macs = problem.macs
    cyc_frac = _sparse(problem, hw, densities)[1]
    for pes, sp in spatials:
        if best is not None and objective == "latency" and not exhaustive:
            # the compute lower bound of this unrolling (as access.evaluate computes compute cycles)
            lb = macs / pes * cyc_frac
            if hw.pe_array.fill_drain and pes > 1:
                sx = math.prod(b for (i, ax), a in sp.items() if ax == "X" for _, b in a)
                sy = math.prod(b for (i, ax), a in sp.items() if ax == "Y" for _, b in a)
                lb += (sx + sy - 2) * problem.repeats
            if lb >= best[1].cycles:   # cannot beat the best mapping found so far
                continue
        found = _search_temporal(space, sp, objective, exhaustive, beam, tile_k)
        evaluated += found[1]
        for val, ev in found[0]:
            if best is None or val < best[0]:
                best = (val, ev)
    if best is None:
        raise MappingError(f"hardware {hw.name}: no mapping of {problem.name or 'this layer'} fits its buffers "
                           "under its [mapspace] constraints")
    res = MapResult(best[1].mapping, best[1], evaluated, time.perf_counter() - t0)
    if use_cache:
        _CACHE[key] = res
    return res


def _search_key(problem: Problem, densities: dict | None, objective: str, search: dict) -> tuple:
    return (problem.shape_key(), tuple(sorted(dict(densities or {}).items())), objective,
            tuple(sorted(search.items())))


_POOL_JOBS: list = []   # (problem, densities) of one map_layers call, read by forked workers


def _pool_search(args) -> MapResult:
    j, hw, objective, search = args
    problem, dens = _POOL_JOBS[j]
    return map_layer(problem, hw, objective, densities=dens, use_cache=False, **search)


def map_layers(jobs: list[tuple[Problem, dict | None]], hw, objective: str = "latency", *, workers: int = 1,
               use_cache: bool = True, **search) -> list[MapResult]:
    """map_layer for each (problem, densities) in `jobs`, in order. Each distinct (shape, densities) is
    searched once (later ones are shape-cache hits, `cached=True`, even with use_cache=False: they
    would repeat the same search); with workers > 1 the distinct searches are spread over that many
    forked processes (results are identical: each search is deterministic and self-contained)."""
    first: dict = {}
    for j, (prob, dens) in enumerate(jobs):
        first.setdefault(_search_key(prob, dens, objective, search), j)
    todo = sorted(first.values())
    if use_cache:
        todo = [j for j in todo if not _cached(jobs[j][0], hw, objective, jobs[j][1], search)]
    found: dict[int, MapResult] = {}
    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        _POOL_JOBS[:] = jobs
        try:
            with mp.get_context("fork").Pool(min(workers, len(todo))) as pool:
                # longest first would need a cost model; chunks of one keep both workers busy
                for j, r in zip(todo, pool.imap(_pool_search, [(j, hw, objective, search) for j in todo],
                                                chunksize=1)):
                    found[j] = r
        finally:
            _POOL_JOBS.clear()
    else:
        for j in todo:
            found[j] = map_layer(jobs[j][0], hw, objective, densities=jobs[j][1], use_cache=False, **search)
    out = []
    for j, (prob, dens) in enumerate(jobs):
        k = first[_search_key(prob, dens, objective, search)]
        if j in found:
            r = found[j]
            if use_cache:
                _CACHE[_cache_key(prob, hw, objective, dens, search)] = r
        else:
            r = found.get(k) or map_layer(prob, hw, objective, densities=dens, use_cache=use_cache, **search)
            r = MapResult(r.mapping, r.evaluation, 0, 0.0, True) if not r.cached else r
        out.append(r)
    return out


def _cache_key(problem: Problem, hw, objective: str, densities: dict | None, search: dict) -> tuple:
    s = {"exhaustive": False, "beam": 3, "tile_k": 6, "spatial_k": 4, **search}
    return (problem.shape_key(), tuple(sorted(dict(densities or {}).items())), _hw_key(hw), objective,
            s["exhaustive"], s["beam"], s["tile_k"], s["spatial_k"])


def _cached(problem: Problem, hw, objective: str, densities: dict | None, search: dict) -> bool:
    return _cache_key(problem, hw, objective, densities, search) in _CACHE


def _search_temporal(space: _Space, sp: dict, objective: str, exhaustive: bool, beam: int, tile_k: int):
    p = space.p
    rem0 = dict(p.dims)
    for a in sp.values():
        for d, b in a:
            rem0[d] //= b
    n = space.n
    results, count = [], 0

    def ext_at(i, temporal):
        e = {d: 1 for d in DIMS}
        for j in range(i, n):
            for d, b in temporal.get(j, {}).items():
                e[d] *= b
            for ax in ("X", "Y"):
                for d, b in sp.get((j, ax), ()):
                    e[d] *= b
        return e

    def remaining(temporal):
        r = dict(rem0)
        for t in temporal.values():
            for d, b in t.items():
                r[d] //= b
        return r

    def complete(temporal, orders):
        t = dict(temporal)
        r = remaining(temporal)
        t[0] = {d: b for d, b in r.items() if b > 1}
        if any(b > 1 and d not in space.allowed_temporal(0) for d, b in t[0].items()):
            return None
        o = dict(orders)
        if 0 not in o:
            o[0] = space.orders(0, [d for d in DIMS if t[0].get(d, 1) > 1], False)[0]
        return t, o

    def run(temporal, orders, keeps):
        nonlocal count
        c = complete(temporal, orders)
        if c is None:
            return None
        m = _build(space, sp, c[0], c[1], keeps)
        try:
            ev = evaluate(p, space.hw, m, densities=space.dens, check=False)
        except MappingError:
            return None
        count += 1
        return objective_value(ev, objective), ev

    if exhaustive:
        def rec(i, temporal, orders, keeps):
            if i == 0:
                r = remaining(temporal)
                t0 = {d: b for d, b in r.items() if b > 1}
                for o in space.orders(0, list(t0), True):
                    out = run(temporal, {**orders, 0: o}, keeps)
                    if out:
                        results.append(out)
                return
            inner = ext_at(i + 1, temporal)
            for sp_ax in ("X", "Y"):
                for d, b in sp.get((i, sp_ax), ()):
                    inner[d] *= b
            for keep in space.keep_candidates(i, True):
                for f in space.tile_candidates(i, inner, remaining(temporal), True, 0, keep):
                    for o in space.orders(i, list(f), True):
                        rec(i - 1, {**temporal, i: f}, {**orders, i: o}, {**keeps, i: keep})
        rec(n - 1, {}, {}, {})
        return results, count

    def base_of(i, rem):
        allowed = [d for d in DIMS if d in space.allowed_temporal(i) and rem[d] > 1]
        return {d: rem[d] for d in space.full(i) if d in allowed}

    def outer_can_hold(i, ext):
        """Every outer on-chip level whose keeps are fixed ([mapspace] keep) can hold this tile."""
        for j in range(1, i):
            ms = space.ms[j]
            if ms is not None and ms.keep is not None and not space.fits(j, ext, tuple(ms.keep)):
                return False
        return True

    states = [({}, {}, {})]
    for i in range(n - 1, 0, -1):
        nxt = []
        for temporal, orders, keeps in states:
            inner = ext_at(i + 1, temporal)
            for ax in ("X", "Y"):
                for d, b in sp.get((i, ax), ()):
                    inner[d] *= b
            for keep in space.keep_candidates(i, False):
                for f in space.tile_candidates(i, inner, remaining(temporal), False, tile_k, keep):
                    if not outer_can_hold(i, ext_at(i, {**temporal, i: f})):
                        continue
                    for o in space.orders(i, list(f), False):
                        t2, o2, k2 = {**temporal, i: f}, {**orders, i: o}, {**keeps, i: keep}
                        out = run(t2, o2, k2)
                        if out:
                            nxt.append((out[0], t2, o2, k2, f == base_of(i, remaining(temporal))))
        nxt.sort(key=lambda x: x[0])
        chosen = nxt[:beam]
        if not any(x[4] for x in chosen):   # keep the most permissive (smallest-tile) state alive too
            chosen += [x for x in nxt if x[4]][:1]
        states = [(t, o, k) for _, t, o, k, _ in chosen]
        if not states:
            return [], count
    for temporal, orders, keeps in states:
        r = remaining(temporal)
        t0 = [d for d in DIMS if r[d] > 1]
        for o in space.orders(0, t0, False):
            out = run(temporal, {**orders, 0: o}, keeps)
            if out:
                results.append(out)
    return results, count
