"""Numba kernel that replays one random drop/grow update of a synthetic trace's mask in O(k).

Imported only when a synthetic trace is replayed (rigl_hw.trace), so `import rigl_hw` and the
numpy-only modules stay free of Numba's import cost. Positions come from a small seeded generator
(SplitMix64), so the same (seed, update, layer) always gives the same positions on every machine.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64


@njit(inline="always")
def _next(state: np.ndarray) -> np.uint64:
    """SplitMix64 (Steele, Lea & Flood 2014): advance state[0] and return 64 random bits."""
    state[0] += uint64(0x9E3779B97F4A7C15)
    z = state[0]
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    return z ^ (z >> uint64(31))


@njit(inline="always")
def _below(state: np.ndarray, n: int) -> int:
    """A uniform integer in [0, n) (multiply-shift on the top 32 bits; n < 2**32)."""
    return int(((_next(state) >> uint64(32)) * uint64(n)) >> uint64(32))


@njit(cache=True, nogil=True)
def drop_grow(mask: np.ndarray, active: np.ndarray, k: int, seed: int) -> None:
    """In place: turn off k random active positions, then turn on k random positions that are off
    after the drop (a just-dropped position may come back, as in RigL).

    mask: bool (N,); active: int64 (nnz,) the active positions in any order (kept up to date).
    """
    state = np.empty(1, dtype=np.uint64)
    state[0] = uint64(seed)
    nnz = active.size
    n = mask.size
    # drop: partial Fisher-Yates moves k random entries of `active` to its tail
    for j in range(k):
        r = _below(state, nnz - j)
        t = nnz - 1 - j
        tmp = active[r]
        active[r] = active[t]
        active[t] = tmp
        mask[tmp] = False
    free = n - nnz + k
    if free >= 4 * k and 8 * free >= n:
        # grow by rejection: most positions are free, so about n / free draws per grown weight
        j = 0
        while j < k:
            pos = _below(state, n)
            if not mask[pos]:
                mask[pos] = True
                active[nnz - k + j] = pos
                j += 1
    else:
        # few free positions: list them and take k at random
        pool = np.empty(free, dtype=np.int64)
        c = 0
        for pos in range(n):
            if not mask[pos]:
                pool[c] = pos
                c += 1
        for j in range(k):
            r = _below(state, free - j)
            pos = pool[r]
            pool[r] = pool[free - 1 - j]
            mask[pos] = True
            active[nnz - k + j] = pos
