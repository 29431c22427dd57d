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
from numba import njit

from simulator.nest import Mapping, Problem, SPACE_DIMS

SIMPLE_AXES = {"W": ("G", "M", "C", "R", "S"), "O": ("N", "G", "M", "P", "Q"), "I": ("N", "G", "C")}
WINDOW_AXES = {"I": (("P", "R", 0), ("Q", "S", 1))}  # (output dim, filter dim, stride/dilation index)


def loop_strides(mapping: Mapping) -> list[tuple[int, str, int, bool, int]]:
    """All loops outer -> inner as (level, dim, bound, spatial, stride): stride = product of the bounds
    of the loops inner to it on the same dim (the step of that loop's index in iteration points)."""
    loops = mapping.loops()
    out = [None] * len(loops)
    inner: dict[str, int] = {}   # dim -> product of the bounds met so far walking inner -> outer
    for j in range(len(loops) - 1, -1, -1):
        lv, d, b, sp = loops[j]
        stride = inner.get(d, 1)
        out[j] = (lv, d, b, sp, stride)
        inner[d] = stride * b
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
                   n_levels: int, latch: bool = False) -> int:
    """Points moved into ONE instance of the `parent` level (parent=None: into one child instance)
    for tensor index space `space`, to serve the children at level `child` (child = n_levels: the
    MACs, which keep nothing between steps unless `latch`: operand registers), over the whole nest
    (initial tile + every delta). Pure Python reference of the kernel `transfer_count_fast`."""
    is_mac = child == n_levels and not latch
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
    """Distinct points one instance of `level` holds over the whole nest (its tiles' union); the input
    space's windows are counted by the Numba kernel simulator.nest_kernel._k_footprint."""
    if space != "I":
        ext = tile_extents(loops, level)
        n = 1
        for d in SIMPLE_AXES[space]:
            n *= ext[d]
        for lv, d, b, sp, _ in loops:
            if lv < level and not sp and d in SIMPLE_AXES[space]:
                n *= b
        return n
    from simulator.nest_kernel import footprint_fast

    return footprint_fast(problem, loop_array(loops), level, space)


def footprint_py(problem: Problem, loops, level: int, space: str) -> int:
    """Reference of `footprint` by point sets."""
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


# --- the same count as a Numba kernel (the mapper's hot path); transfer_count is its reference ------
DIM_INDEX = {d: i for i, d in enumerate(("N", "G", "M", "C", "P", "Q", "R", "S"))}
SPACE_CODE = {"W": 0, "I": 1, "O": 2}
_SIMPLE = np.array([[1, 2, 3, 6, 7], [0, 1, 3, -1, -1], [0, 1, 2, 4, 5]], dtype=np.int64)


def loop_array(loops) -> np.ndarray:
    """loop_strides() rows as an int64 array (level, dim index, bound, spatial, stride)."""
    return np.array([(lv, DIM_INDEX[d], b, int(sp), st) for lv, d, b, sp, st in loops],
                    dtype=np.int64).reshape(-1, 5)


@njit(cache=True, nogil=True)
def _k_offsets(la, lo, child, dim, spatial):
    """All index offsets sum(i_j * stride_j) of the loops on `dim` at mapping levels lo <= level < child
    that are spatial (spatial = 1: the children a parent serves) or temporal (spatial = 0: the steps
    above a level, for its footprint)."""
    n = 1
    for j in range(la.shape[0]):
        if la[j, 3] == spatial and lo <= la[j, 0] < child and la[j, 1] == dim:
            n *= la[j, 2]
    out = np.zeros(n, dtype=np.int64)
    cur = 1
    for j in range(la.shape[0]):
        if la[j, 3] == spatial and lo <= la[j, 0] < child and la[j, 1] == dim and la[j, 2] > 1:
            b, st = la[j, 2], la[j, 4]
            for i in range(cur - 1, -1, -1):
                for k in range(b - 1, -1, -1):
                    out[i * b + k] = out[i] + k * st
            cur *= b
    return out


@njit(cache=True, nogil=True)
def _k_window(tp, tr, s, dl, bases, shift, full):
    """(|U|, |F|) of `window_union_cover` (see there)."""
    lo = bases.min() + min(0, shift)
    hi = bases.max() + (tp - 1) * s + (tr - 1) * dl + 1 + max(0, shift)
    need = np.zeros(hi - lo, dtype=np.bool_)
    bad = np.zeros(hi - lo, dtype=np.bool_)
    old = np.zeros(hi - lo, dtype=np.bool_)
    sb = np.sort(bases)
    for bi in range(sb.shape[0]):
        if bi > 0 and sb[bi] == sb[bi - 1]:
            continue
        b = sb[bi]
        for p in range(tp):
            for r in range(tr):
                old[b + p * s + r * dl - lo] = True
        for p in range(tp):
            for r in range(tr):
                x = b + shift + p * s + r * dl - lo
                need[x] = True
                if not old[x]:
                    bad[x] = True
        for p in range(tp):
            for r in range(tr):
                old[b + p * s + r * dl - lo] = False
    u = 0
    f = 0
    for i in range(hi - lo):
        if need[i]:
            u += 1
            if not bad[i]:
                f += 1
    return u, (0 if full else f)


@njit(cache=True, nogil=True)
def _k_transfer(la, space, child, parent, n_levels, st_p, st_q, dl_p, dl_q, latch, simple):
    nl = la.shape[0]
    ext = np.ones(8, dtype=np.int64)
    for j in range(nl):
        if la[j, 0] >= child:
            ext[la[j, 1]] *= la[j, 2]
    lo = child if parent < 0 else parent
    full = child == n_levels and not latch
    u_total = 1
    ks = np.ones(8, dtype=np.int64)
    for j in range(nl):
        if la[j, 3] == 1 and lo <= la[j, 0] < child:
            ks[la[j, 1]] *= la[j, 2]
    for a in range(5):
        d = simple[space, a]
        if d >= 0:
            u_total *= ks[d] * ext[d]
    bases_h = np.zeros(1, dtype=np.int64)
    bases_w = np.zeros(1, dtype=np.int64)
    if space == 1:
        op = _k_offsets(la, lo, child, 4, 1)
        orr = _k_offsets(la, lo, child, 6, 1)
        bases_h = np.empty(op.shape[0] * orr.shape[0], dtype=np.int64)
        for i in range(op.shape[0]):
            for k in range(orr.shape[0]):
                bases_h[i * orr.shape[0] + k] = op[i] * st_p + orr[k] * dl_p
        oq = _k_offsets(la, lo, child, 5, 1)
        osr = _k_offsets(la, lo, child, 7, 1)
        bases_w = np.empty(oq.shape[0] * osr.shape[0], dtype=np.int64)
        for i in range(oq.shape[0]):
            for k in range(osr.shape[0]):
                bases_w[i * osr.shape[0] + k] = oq[i] * st_q + osr[k] * dl_q
        u_total *= _k_window(ext[4], ext[6], st_p, dl_p, bases_h, 0, True)[0]
        u_total *= _k_window(ext[5], ext[7], st_q, dl_q, bases_w, 0, True)[0]
    total = u_total
    outer = 1
    shift = np.zeros(8, dtype=np.int64)
    for k in range(nl):
        if la[k, 0] >= child or la[k, 3] == 1 or la[k, 2] <= 1:
            continue
        count = outer * (la[k, 2] - 1)
        outer *= la[k, 2]
        if full:
            total += count * u_total
            continue
        shift[:] = 0
        shift[la[k, 1]] = la[k, 4]
        for j in range(k + 1, nl):
            if la[j, 0] < child and la[j, 3] == 0 and la[j, 2] > 1:
                shift[la[j, 1]] -= (la[j, 2] - 1) * la[j, 4]
        f_total = 1
        for a in range(5):
            d = simple[space, a]
            if d >= 0:
                f_total *= ks[d] * max(0, ext[d] - abs(shift[d]))
        if space == 1 and f_total > 0:
            f_total *= _k_window(ext[4], ext[6], st_p, dl_p, bases_h, shift[4] * st_p + shift[6] * dl_p, False)[1]
            if f_total > 0:
                f_total *= _k_window(ext[5], ext[7], st_q, dl_q, bases_w, shift[5] * st_q + shift[7] * dl_q, False)[1]
        total += count * (u_total - f_total)
    return total


def transfer_count_fast(problem: Problem, la: np.ndarray, space: str, child: int, parent: int | None,
                        n_levels: int, latch: bool = False) -> int:
    """Numba version of `transfer_count` on a `loop_array` (latch: the MACs keep their operands)."""
    return int(_k_transfer(la, SPACE_CODE[space], child, -1 if parent is None else parent, n_levels,
                           problem.stride[0], problem.stride[1], problem.dilation[0], problem.dilation[1],
                           latch, _SIMPLE))
