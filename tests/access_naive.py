"""Brute-force reference for simulator/access.py: enumerate every loop iteration and the point sets of
every tile, and count transfers as set differences and unions. Slow and obvious on purpose."""

from __future__ import annotations

import itertools
import math

from simulator.nest import Mapping, Problem, ROLES


def _loops(mapping: Mapping):
    loops = mapping.loops()
    out = []
    for j, (lv, d, b, sp) in enumerate(loops):
        out.append((lv, d, b, sp, math.prod(bb for (_, dd, bb, _) in loops[j + 1:] if dd == d)))
    return out


def _points(problem: Problem, space: str, base: dict, ext: dict) -> frozenset:
    """Tensor points of the box of iteration points [base, base + ext)."""
    sp, sq = problem.stride
    dp, dq = problem.dilation
    rng = {d: range(base[d], base[d] + ext[d]) for d in ext}
    pts = set()
    for n, g, m, c, p, q, r, s in itertools.product(*(rng[d] for d in ("N", "G", "M", "C", "P", "Q", "R", "S"))):
        if space == "W":
            pts.add((g, m, c, r, s))
        elif space == "O":
            pts.add((n, g, m, p, q))
        else:
            pts.add((n, g, c, p * sp + r * dp, q * sq + s * dq))
    return frozenset(pts)


def _tile_ext(loops, level):
    ext = {d: 1 for d in ("N", "G", "M", "C", "P", "Q", "R", "S")}
    for lv, d, b, _, _ in loops:
        if lv >= level:
            ext[d] *= b
    return ext


def _base(loops, idx: dict) -> dict:
    base = {d: 0 for d in ("N", "G", "M", "C", "P", "Q", "R", "S")}
    for j, i in idx.items():
        base[loops[j][1]] += i * loops[j][4]
    return base


def transfers(problem: Problem, mapping: Mapping, space: str, child: int, parent: int | None,
              latch: bool = False) -> tuple[int, int]:
    """(points moved, distinct points moved) into/out of all instances of `parent` for the children at
    `child` (len(levels) = the MACs, which keep nothing); parent None: each child from its own parent
    (its fills). Summed over all instances."""
    n = len(mapping.levels)
    loops = _loops(mapping)
    ext = _tile_ext(loops, child)
    temporal = [j for j, l in enumerate(loops) if not l[3] and l[0] < child]
    lo = child if parent is None else parent
    outer_sp = [j for j, l in enumerate(loops) if l[3] and l[0] < lo]
    kid_sp = [j for j, l in enumerate(loops) if l[3] and lo <= l[0] < child]
    moved = distinct = 0
    for oi in itertools.product(*(range(loops[j][2]) for j in outer_sp)):
        held = {}
        seen = set()
        for ti in itertools.product(*(range(loops[j][2]) for j in temporal)):
            union = set()
            for ki in itertools.product(*(range(loops[j][2]) for j in kid_sp)):
                idx = dict(zip(outer_sp, oi)) | dict(zip(temporal, ti)) | dict(zip(kid_sp, ki))
                pts = _points(problem, space, _base(loops, idx), ext)
                old = frozenset() if child == n and not latch else held.get(ki, frozenset())
                union |= pts - old
                held[ki] = pts
            moved += len(union)
            seen |= union
        distinct += len(seen)
    return moved, distinct


def naive_counts(problem: Problem, mapping: Mapping, keeps: list[tuple[str, ...]], latch: bool = False) -> dict:
    """{(level index, role): (reads, fills, updates)} by brute force (Timeloop's rules, see access.py)."""
    n = len(mapping.levels)
    out = {}
    for role in ROLES:
        space = problem.space_of(role)
        holders = [i for i in range(n) if role in keeps[i]]
        acc = {i: [0, 0, 0] for i in holders}
        for a, b in zip(holders, holders[1:] + [n]):
            moved, distinct = transfers(problem, mapping, space, b, a, latch)
            if role == "outputs":
                acc[a][2] += moved
                acc[a][0] += moved - distinct
            else:
                acc[a][0] += moved
            if b != n:
                acc[b][1] += transfers(problem, mapping, space, b, None, latch)[0]
        for i in holders:
            out[(i, role)] = tuple(acc[i])
    return out
