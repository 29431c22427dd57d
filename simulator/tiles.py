"""Tile geometry of a mapped loop nest (pure functions): tile extents, loop strides, the union of the
children's tiles under a parent and what changes between consecutive iterations.

Counting rule (Timeloop's nest analysis, re-derived): a level's tile is the box of iteration points
spanned by the loops at that level and inside it; it is refreshed whenever a temporal loop above it
steps. Between consecutive iterations only the points not already held are moved (the delta), so
sliding windows along P/R and Q/S fetch only their new rows. A parent serves the children under it
(the spatial loops between them) with ONE access per distinct point of the union of their deltas
(multicast; for the written tensor, spatial reduction).

For a step of temporal loop k (with every inner temporal loop above the child resetting) each child
tile shifts by the same vector delta; along one tensor axis a the children's new sets A_c and old sets
B_c give U_a = union_c A_c and F_a = {x in U_a: every child that needs x already had it}. The union
of the children's deltas then has exactly prod_a |U_a| - prod_a |F_a| points (a point is moved iff
some axis is not "fully covered"), which needs only one-dimensional work per axis.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from simulator.nest import Mapping, Problem, SPACE_DIMS

SIMPLE_AXES = {"W": ("G", "M", "C", "R", "S"), "O": ("N", "G", "M", "P", "Q"), "I": ("N", "G", "C")}
WINDOW_AXES = {"I": (("P", "R", 0), ("Q", "S", 1))}  # (output dim, filter dim, stride/dilation index)


def loop_strides(mapping: Mapping) -> list[tuple[int, str, int, bool, int]]:
    """All loops outer -> inner as (level, dim, bound, spatial, stride): stride = product of the bounds
    of the loops inner to it on the same dim (the step of that loop's index in iteration points)."""
    loops = mapping.loops()
    out = []
    for j, (lv, d, b, sp) in enumerate(loops):
        stride = math.prod(bb for (_, dd, bb, _) in loops[j + 1:] if dd == d)
        out.append((lv, d, b, sp, stride))
    return out


def tile_extents(loops, level: int) -> dict[str, int]:
    """Extent per dim of the tile of mapping level `level` (loops at that level and inside it);
    level = number of levels gives the single point a MAC works on."""
    ext = {d: 1 for d in ("N", "G", "M", "C", "P", "Q", "R", "S")}
    for lv, d, b, _, _ in loops:
        if lv >= level:
            ext[d] *= b
    return ext


@lru_cache(maxsize=200_000)
def window_points(tp: int, tr: int, s: int, dl: int) -> int:
    """Distinct input coordinates {p*s + r*dl : p < tp, r < tr} (exact; a bounding box would
    overcount strided 1x1 windows)."""
    if tp == 1 or tr == 1:
        return tp * tr
    if dl == 1:
        return (tp - 1) * s + tr if tr >= s else tp * tr
    return int(_window_mask(tp, tr, s, dl, 0).sum())


def _window_mask(tp: int, tr: int, s: int, dl: int, shift: int) -> np.ndarray:
    n = (tp - 1) * s + (tr - 1) * dl + 1 + shift
    m = np.zeros(n, dtype=bool)
    idx = (np.arange(tp)[:, None] * s + np.arange(tr)[None, :] * dl).ravel() + shift
    m[idx] = True
    return m


@lru_cache(maxsize=200_000)
def window_union_cover(tp: int, tr: int, s: int, dl: int, bases: tuple[int, ...], shift: int,
                       full_delta: bool) -> tuple[int, int]:
    """(|U|, |F|) on one windowed axis: children at base offsets `bases` (input coordinates, sorted,
    may repeat), each holding {b + p*s + r*dl}; all move by `shift`. full_delta: nothing is kept
    between steps (a MAC's operand), so F is empty."""
    lo = min(bases) + min(0, shift)
    hi = max(bases) + (tp - 1) * s + (tr - 1) * dl + 1 + max(0, shift)
    off = (np.arange(tp)[:, None] * s + np.arange(tr)[None, :] * dl).ravel()
    need = np.zeros(hi - lo, dtype=bool)
    bad = np.zeros(hi - lo, dtype=bool)
    for b in set(bases):
        new = np.zeros(hi - lo, dtype=bool)
        new[b + shift + off - lo] = True
        old = np.zeros(hi - lo, dtype=bool)
        old[b + off - lo] = True
        need |= new
        bad |= new & ~old
    u = int(need.sum())
    return (u, 0) if full_delta else (u, int((need & ~bad).sum()))


def _offsets(loops_on_dim: list[tuple[int, int]]) -> list[int]:
    """All index offsets sum(i_j * stride_j) of loops [(bound, stride)]."""
    offs = [0]
    for b, st in loops_on_dim:
        offs = [o + i * st for o in offs for i in range(b)]
    return offs


def transfer_count(problem: Problem, loops, space: str, child: int, parent: int | None,
                   n_levels: int) -> int:
    """Points moved into ONE instance of the `parent` level (parent=None: into one child instance)
    for tensor index space `space`, to serve the children at level `child` (child = n_levels: the
    MACs, which keep nothing between steps), over the whole nest (initial tile + every delta)."""
    is_mac = child == n_levels
    ext = tile_extents(loops, child)
    above_t = [(j, l) for j, l in enumerate(loops) if l[0] < child and not l[3] and l[2] > 1]
    lo = child if parent is None else parent
    spat = [l for l in loops if l[3] and lo <= l[0] < child and l[2] > 1]
    st, dl = problem.stride, problem.dilation
    # steps: (count, shift per dim)
    steps: list[tuple[int, dict[str, int]]] = []
    outer = 1
    for idx, (j, (_, dk, bk, _, sk)) in enumerate(above_t):
        shift = {dk: sk}
        for _, (_, dj, bj, _, sj) in above_t[idx + 1:]:
            shift[dj] = shift.get(dj, 0) - (bj - 1) * sj
        steps.append((outer * (bk - 1), shift))
        outer *= bk
    # per axis: |U| and a function shift -> |F|
    u_total = 1
    axes = []
    for d in SIMPLE_AXES[space]:
        k = math.prod(b for (_, dd, b, _, _) in spat if dd == d)
        u_total *= k * ext[d]
        axes.append(("s", d, k, ext[d]))
    for dp, dr, i in WINDOW_AXES.get(space, ()):
        bases_p = _offsets([(b, s_) for (_, dd, b, _, s_) in spat if dd == dp])
        bases_r = _offsets([(b, s_) for (_, dd, b, _, s_) in spat if dd == dr])
        bases = tuple(sorted(p * st[i] + r * dl[i] for p in bases_p for r in bases_r))
        u, _ = window_union_cover(ext[dp], ext[dr], st[i], dl[i], bases, 0, True)
        u_total *= u
        axes.append(("w", (dp, dr, i), bases, None))
    total = u_total
    if is_mac:
        return total * (1 + sum(c for c, _ in steps))
    for count, shift in steps:
        f_total = 1
        for kind, d, k, t in axes:
            if kind == "s":
                f_total *= k * max(0, t - abs(shift.get(d, 0)))
            else:
                dp, dr, i = d
                h = shift.get(dp, 0) * st[i] + shift.get(dr, 0) * dl[i]
                f_total *= window_union_cover(ext[dp], ext[dr], st[i], dl[i], k, h, False)[1]
            if f_total == 0:
                break
        total += count * (u_total - f_total)
    return total


def tile_points(problem: Problem, ext: dict[str, int], space: str) -> int:
    """Points of a tile of extents `ext` in tensor space `space` (words of a dense tile)."""
    n = math.prod(ext[d] for d in SIMPLE_AXES[space])
    for dp, dr, i in WINDOW_AXES.get(space, ()):
        n *= window_points(ext[dp], ext[dr], problem.stride[i], problem.dilation[i])
    return n


def footprint(problem: Problem, loops, level: int, space: str) -> int:
    """Distinct points one instance of `level` holds over the whole nest (its tiles' union)."""
    ext = tile_extents(loops, level)
    above = [l for l in loops if l[0] < level and not l[3] and l[2] > 1]
    n = 1
    for d in SIMPLE_AXES[space]:
        n *= ext[d] * math.prod(b for (_, dd, b, _, _) in above if dd == d)
    for dp, dr, i in WINDOW_AXES.get(space, ()):
        ps = _offsets([(b, s_) for (_, dd, b, _, s_) in above if dd == dp])
        rs = _offsets([(b, s_) for (_, dd, b, _, s_) in above if dd == dr])
        s, dl = problem.stride[i], problem.dilation[i]
        pts = {(p + a) * s + (r + c) * dl for p in ps for r in rs for a in range(ext[dp]) for c in range(ext[dr])}
        n *= len(pts)
    return n


def tensor_size(problem: Problem, space: str) -> int:
    """Points of the whole tensor in index space `space`."""
    return tile_points(problem, problem.dims, space)


__all__ = ["loop_strides", "tile_extents", "transfer_count", "tile_points", "footprint", "tensor_size",
           "window_points", "SPACE_DIMS"]
