"""Numba kernels of the simulator (private; `dataflow.py` validates inputs and calls them).

Masks arrive bit-packed as `np.packbits(mask.reshape(-1), bitorder="big")` over the weight flattened
to (n_rows, n_cols) = (C_out, C_in/groups * kh * kw) in C order. The kernels read set bits straight
from the packed bytes; no dense copy of a mask is ever made.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# _BITS[v, i]: position (0 = most significant bit) of the i-th set bit of byte v; _POP[v]: set bits.
_POP = np.array([bin(v).count("1") for v in range(256)], dtype=np.int64)
_BITS = np.zeros((256, 8), dtype=np.int64)
for _v in range(256):
    _BITS[_v, : _POP[_v]] = [j for j in range(8) if (_v >> (7 - j)) & 1]
# _SPREAD[v]: the 8 bits of byte v spread into the 8 byte lanes of a uint64 (lane j = bit j from the
# MSB), so one 64-bit add updates 8 column counters at once (SWAR); lanes are flushed before 255 adds.
_SPREAD = np.array([sum(((v >> (7 - j)) & 1) << (8 * j) for j in range(8)) for v in range(256)],
                   dtype=np.uint64)


@njit(cache=True, nogil=True)
def _mask_tile_counts(packed, n_rows, n_cols, col_tile, row_tile_id, n_row_tiles):
    """Nonzeros of a packed (n_rows, n_cols) mask per tile, in one pass over its set bits.

    Returns row_tiles[r, j] = nnz(mask[r, j*col_tile:(j+1)*col_tile]) of shape
    (n_rows, ceil(n_cols/col_tile)), and col_tiles[t, c] = nnz over rows r with row_tile_id[r] == t of
    column c, shape (n_row_tiles, n_cols). Cost: one visit per byte plus one per set bit.
    """
    if n_cols % 8 == 0 and (col_tile % 8 == 0 or 8 % col_tile == 0):
        return _mask_tile_counts_aligned(packed, n_rows, n_cols, col_tile, row_tile_id, n_row_tiles)
    n_ct = (n_cols + col_tile - 1) // col_tile
    row_tiles = np.zeros((n_rows, n_ct), dtype=np.int32)
    col_tiles = np.zeros((n_row_tiles, n_cols), dtype=np.int32)
    tile_of = np.empty(n_cols, dtype=np.int64)
    for c in range(n_cols):
        tile_of[c] = c // col_tile
    for r in range(n_rows):
        start = r * n_cols
        last = start + n_cols - 1
        b0 = start >> 3
        b1 = last >> 3
        rt = row_tiles[r]
        ct = col_tiles[row_tile_id[r]]
        for b in range(b0, b1 + 1):
            v = np.int64(packed[b])
            if v == 0:
                continue
            if b == b0:
                v &= 0xFF >> (start & 7)
            if b == b1:
                v &= (0xFF << (7 - (last & 7))) & 0xFF
            base = b * 8 - start
            for i in range(_POP[v]):
                c = base + _BITS[v, i]
                rt[tile_of[c]] += 1
                ct[c] += 1
    return row_tiles, col_tiles


@njit(cache=True, nogil=True)
def _mask_tile_counts_aligned(packed, n_rows, n_cols, col_tile, row_tile_id, n_row_tiles):
    """`_mask_tile_counts` for byte-aligned rows and tiles: per byte one table add for the row tile
    and one 64-bit SWAR add for its 8 column counters."""
    nb = n_cols // 8
    n_ct = (n_cols + col_tile - 1) // col_tile
    row_tiles = np.zeros((n_rows, n_ct), dtype=np.int32)
    col_tiles = np.zeros((n_row_tiles, n_cols), dtype=np.int32)
    sub = 8 // col_tile if col_tile < 8 else 0  # tiles per byte when tiles are narrower than a byte
    sub_mask = (1 << col_tile) - 1 if sub else 0
    tile_of_byte = np.empty(nb, dtype=np.int64)
    for jb in range(nb):
        tile_of_byte[jb] = (8 * jb) // col_tile
    acc = np.zeros(nb, dtype=np.uint64)
    pending = 0
    cur = row_tile_id[0] if n_rows > 0 else 0
    for r in range(n_rows + 1):
        if r == n_rows or row_tile_id[r] != cur or pending == 255:
            ct = col_tiles[cur]
            for jb in range(nb):
                a = acc[jb]
                if a != 0:
                    for j in range(8):
                        ct[8 * jb + j] += np.int32((a >> np.uint64(8 * j)) & np.uint64(0xFF))
                    acc[jb] = 0
            pending = 0
            if r == n_rows:
                break
            cur = row_tile_id[r]
        off = r * nb
        rt = row_tiles[r]
        for jb in range(nb):
            v = packed[off + jb]
            acc[jb] += _SPREAD[v]
            if sub == 0:
                rt[tile_of_byte[jb]] += _POP[v]
            else:
                for q in range(sub):
                    rt[jb * sub + q] += _POP[(v >> (8 - (q + 1) * col_tile)) & sub_mask]
        pending += 1
    return row_tiles, col_tiles


@njit(cache=True, nogil=True)
def _popcount(packed, n_bits):
    """Set bits among the first n_bits of a packed array."""
    n_full = n_bits // 8
    s = 0
    for b in range(n_full):
        s += _POP[packed[b]]
    rem = n_bits - 8 * n_full
    if rem > 0:
        s += _POP[packed[n_full] & ((0xFF << (8 - rem)) & 0xFF)]
    return s


@njit(cache=True, nogil=True)
def _fold_sums(cyc, mult, per_fold_traffic_cycles, fill_drain):
    """Total cycles sum_i mult_i * max(cyc_i, t) for a per-fold traffic floor t (roofline), the
    compute-only total sum_i mult_i * cyc_i, and the fold count; minus 1 with fill/drain (SCALE-Sim)."""
    total = 0.0
    compute = 0.0
    folds = 0.0
    for i in range(cyc.shape[0]):
        if mult[i] == 0:
            continue
        c = cyc[i]
        compute += mult[i] * c
        total += mult[i] * max(c, per_fold_traffic_cycles)
        folds += mult[i]
    if fill_drain and folds > 0:
        total -= 1.0
        compute -= 1.0
    return total, compute, folds


@njit(cache=True, nogil=True)
def _lockstep_max_sum(row_tiles, groups, rows_per_group, tile_rows, pe_rows, pe_cols):
    """Sum over lockstep steps of the busiest PE's nonzeros (simulator/mapped.py lockstep_fraction).

    row_tiles (n_rows, n_col_tiles): nonzeros of each mask row in each column tile (_mask_tile_counts).
    Rows are summed in tiles of `tile_rows` within each group; a step is a block of pe_rows x pe_cols
    (row tile, column tile) cells, padded with empty cells at the edges. Returns (sum of the block
    maxima, blocks down, blocks across) per group."""
    n_ct = row_tiles.shape[1]
    nbt = (rows_per_group + tile_rows - 1) // tile_rows
    br = (nbt + pe_rows - 1) // pe_rows
    bc = (n_ct + pe_cols - 1) // pe_cols
    per = np.zeros((nbt, n_ct), dtype=np.int64)
    total = 0
    for gi in range(groups):
        per[:, :] = 0
        for r in range(rows_per_group):
            row = gi * rows_per_group + r
            t = r // tile_rows
            for j in range(n_ct):
                per[t, j] += row_tiles[row, j]
        for bi in range(br):
            a1 = min(nbt, (bi + 1) * pe_rows)
            for bj in range(bc):
                b1 = min(n_ct, (bj + 1) * pe_cols)
                m = 0
                for a in range(bi * pe_rows, a1):
                    for b in range(bj * pe_cols, b1):
                        if per[a, b] > m:
                            m = per[a, b]
                total += m
    return total, br, bc
