"""All raw transfer counts and footprints of one mapped nest in one Numba call (the mapper's hot path).

`nest_counts(problem, la, keeps, n_levels, latch)` returns, for each role (ROLES order) and each
consecutive pair (a, b) of that role's chain of keeping levels (outermost first, then the MACs at
index n_levels), the three integers access.evaluate needs:

    [role, k, 0]  points moved into ONE instance of a to serve its children at b
                  (tiles.transfer_count(problem, loops, space, b, a, n_levels, latch))
    [role, k, 1]  distinct points one instance of a holds over the nest (tiles.footprint(..., a, space))
    [role, k, 2]  fills of ONE instance of b from its parent (transfer_count(..., b, None, ...)); 0 when
                  b is the MACs

The per-instance counts are multiplied by instances and repeats, and scaled by densities, in Python
(access.py). The pure-Python references are tiles.transfer_count and tiles.footprint_py.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from simulator.nest import ROLES, Problem
from simulator.tiles import SPACE_CODE, _SIMPLE, _k_offsets, _k_transfer


@njit(cache=True, nogil=True)
def _k_window_footprint(ps, rs, tp, tr, s, dl):
    """|{(p + a) * s + (r + c) * dl : p in ps, r in rs, a < tp, c < tr}| (input coordinates)."""
    hi = (ps.max() + tp - 1) * s + (rs.max() + tr - 1) * dl + 1
    seen = np.zeros(hi, dtype=np.bool_)
    for p in ps:
        for a in range(tp):
            x = (p + a) * s
            for r in rs:
                for c in range(tr):
                    seen[x + (r + c) * dl] = True
    n = 0
    for i in range(hi):
        if seen[i]:
            n += 1
    return n


@njit(cache=True, nogil=True)
def _k_footprint(la, level, space, st_p, st_q, dl_p, dl_q, simple):
    """tiles.footprint: distinct points of `space` one instance of `level` holds over the whole nest."""
    ext = np.ones(8, dtype=np.int64)
    above = np.ones(8, dtype=np.int64)
    for j in range(la.shape[0]):
        if la[j, 0] >= level:
            ext[la[j, 1]] *= la[j, 2]
        elif la[j, 3] == 0:
            above[la[j, 1]] *= la[j, 2]
    n = 1
    for a in range(5):
        d = simple[space, a]
        if d >= 0:
            n *= ext[d] * above[d]
    if space == 1:
        n *= _k_window_footprint(_k_offsets(la, 0, level, 4, 0), _k_offsets(la, 0, level, 6, 0),
                                 ext[4], ext[6], st_p, dl_p)
        n *= _k_window_footprint(_k_offsets(la, 0, level, 5, 0), _k_offsets(la, 0, level, 7, 0),
                                 ext[5], ext[7], st_q, dl_q)
    return n


@njit(cache=True, nogil=True)
def _k_nest(la, space_w, space_i, space_o, keep_bits, n_levels, st_p, st_q, dl_p, dl_q, latch, simple):
    """keep_bits[i]: bit r set when mapping level i keeps role r (ROLES order)."""
    out = np.zeros((3, n_levels, 3), dtype=np.int64)
    chain = np.empty(n_levels + 1, dtype=np.int64)
    for r in range(3):
        space = space_w if r == 0 else (space_i if r == 1 else space_o)
        m = 0
        for i in range(n_levels):
            if (keep_bits[i] >> r) & 1:
                chain[m] = i
                m += 1
        chain[m] = n_levels
        for k in range(m):
            a = chain[k]
            b = chain[k + 1]
            out[r, k, 0] = _k_transfer(la, space, b, a, n_levels, st_p, st_q, dl_p, dl_q, latch, simple)
            out[r, k, 1] = _k_footprint(la, a, space, st_p, st_q, dl_p, dl_q, simple)
            if b != n_levels:
                out[r, k, 2] = _k_transfer(la, space, b, -1, n_levels, st_p, st_q, dl_p, dl_q, latch, simple)
    return out


_ROLE_BIT = {r: 1 << i for i, r in enumerate(ROLES)}


def footprint_fast(problem: Problem, la: np.ndarray, level: int, space: str) -> int:
    """Numba version of tiles.footprint on a `loop_array`."""
    return int(_k_footprint(la, level, SPACE_CODE[space], problem.stride[0], problem.stride[1],
                            problem.dilation[0], problem.dilation[1], _SIMPLE))


def nest_counts(problem: Problem, la: np.ndarray, keeps: list[tuple[str, ...]], n_levels: int,
                latch: bool) -> np.ndarray:
    """(3, n_levels, 3) int64 array of raw counts per role and chain pair (see module doc)."""
    bits = np.array([sum(_ROLE_BIT[r] for r in k) for k in keeps], dtype=np.int64)
    sw, si, so = (SPACE_CODE[problem.space_of(r)] for r in ROLES)
    return _k_nest(la, sw, si, so, bits, n_levels, problem.stride[0], problem.stride[1],
                   problem.dilation[0], problem.dilation[1], latch, _SIMPLE)
