"""Cycles of one GEMM on an R x C PE array for weight-, output- and input-stationary mappings.

Every mapping is a list of folds; a fold costs `fill + L` cycles, where `fill` is the systolic fill and
drain (os: R + C - 2; ws, is: 2R + C - 2; 0 when `pe_array.fill_drain = false`) and `L` the length of
the streamed dimension; the total is sum(folds) - 1 (SCALE-Sim v3). A FoldTable stores distinct fold
kinds as (cycles per fold, multiplicity). Dense counts follow SCALE-Sim's closed form; skip mode
derives L or the fold count per tile from the real mask (lockstep: a tile waits for its busiest PE
row/column); the statistical mode puts in expectations for random masks. Rules: docs/simulator.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.kernels import _fold_sums, _mask_tile_counts, _popcount
from simulator.workload import Gemm


def _cdiv(a, b):
    return -(-a // b)


@dataclass(frozen=True)
class Geometry:
    """Array shape: rows R, cols C, MACs per PE P (reduction width), fill/drain on or off."""

    rows: int
    cols: int
    macs_per_pe: int = 1
    fill_drain: bool = True

    @classmethod
    def of(cls, hw) -> "Geometry":
        pe = hw.pe_array
        return cls(pe.rows, pe.cols, pe.macs_per_pe, pe.fill_drain)

    def fill(self, dataflow: str) -> int:
        """Fill + drain cycles per fold."""
        if not self.fill_drain:
            return 0
        return self.rows + self.cols - 2 if dataflow == "os" else 2 * self.rows + self.cols - 2


@dataclass
class FoldTable:
    """Folds of a GEMM: fold i costs cyc[i] cycles and occurs mult[i] times; `stream` = cyc - fill."""

    cyc: np.ndarray
    mult: np.ndarray
    fill: int
    fill_drain: bool

    def totals(self, traffic_cycles: float = 0.0) -> tuple[float, float, float]:
        """(cycles with a roofline floor of traffic_cycles spread evenly over folds, compute-only
        cycles, number of folds)."""
        folds = float(self.mult.sum())
        per_fold = traffic_cycles / folds if folds > 0 else 0.0
        return _fold_sums(self.cyc, self.mult, per_fold, self.fill_drain)

    @property
    def cycles(self) -> float:
        return self.totals()[1]

    @property
    def stream_sum(self) -> float:
        """sum over folds of the streamed length L (drives array <-> buffer traffic)."""
        return float((self.mult * (self.cyc - self.fill)).sum())


def _table(cyc, mult, fill, fd) -> FoldTable:
    return FoldTable(np.asarray(cyc, dtype=np.float64).ravel(), np.asarray(mult, dtype=np.float64).ravel(), fill, fd)


def dense_folds(dataflow: str, m: int, n: int, k: int, geom: Geometry, groups: int = 1,
                repeats: int = 1) -> FoldTable:
    """SCALE-Sim v3 dense folds: os ceil(M/R)ceil(N/C) x (R+C+K-2); ws ceil(K/R)ceil(N/C) x (2R+C+M-2);
    is ceil(K/R)ceil(M/C) x (2R+C+N-2); with P MACs per PE the reduction tile is R*P (K/P for os)."""
    R, C, P = geom.rows, geom.cols, geom.macs_per_pe
    f = geom.fill(dataflow)
    if dataflow == "os":
        count, L = _cdiv(m, R) * _cdiv(n, C), _cdiv(k, P)
    elif dataflow == "ws":
        count, L = _cdiv(k, R * P) * _cdiv(n, C), m
    elif dataflow == "is":
        count, L = _cdiv(k, R * P) * _cdiv(m, C), n
    else:
        raise ValueError(f"dataflow {dataflow!r} is not one of ws, os, is")
    return _table([f + L], [count * groups * repeats], f, geom.fill_drain)


def sparse_folds(dataflow: str, sparse: str, m: int, n: int, k: int, geom: Geometry, var: np.ndarray,
                 repeats: int = 1) -> FoldTable:
    """Folds when one per-tile quantity `var` (all groups concatenated) varies with the mask.

    sparse "weight"/"weight_t" (the N x K operand is sparse), var per tile:
      os: per N-tile of C rows, L = ceil(max row nnz / P);  mult = ceil(M/R)
      ws: per N-tile of C rows, mult = ceil(max row nnz / (R P));  L = M
      is: per K-tile of R P,    L = rows with any nonzero in the tile;  mult = ceil(M/C)
    sparse "output" (only masked outputs of an M x N product are computed), var per tile:
      os: per M-tile of R rows, mult = ceil(max row nnz / C);  L = ceil(K/P)
      ws: per N-tile of C cols, L = rows with any nonzero in the tile;  mult = ceil(K/(R P))
      is: per M-tile of C rows, L = cols with any nonzero in the tile;  mult = ceil(K/(R P))
    Tiles with no work (var == 0) are skipped.
    """
    R, C, P = geom.rows, geom.cols, geom.macs_per_pe
    f = geom.fill(dataflow)
    var = np.asarray(var, dtype=np.float64)
    live = (var > 0).astype(np.float64) * repeats
    fd = geom.fill_drain
    if sparse in ("weight", "weight_t"):
        if dataflow == "os":
            return _table(f + var, live * _cdiv(m, R), f, fd)
        if dataflow == "ws":
            return _table(np.full(var.shape, f + m), var * repeats, f, fd)
        return _table(f + var, live * _cdiv(m, C), f, fd)
    if sparse == "output":
        if dataflow == "os":
            return _table(np.full(var.shape, f + _cdiv(k, P)), var * repeats, f, fd)
        return _table(f + var, live * _cdiv(k, R * P), f, fd)
    raise ValueError(f"sparse operand {sparse!r} is not one of weight, weight_t, output")


# --- mask statistics from bit-packed masks ----------------------------------------------------------
@dataclass
class MaskCounts:
    """Per-tile nonzero counts of one layer's packed mask (stored shape n_rows x n_cols, `groups` row
    blocks), computed by the Numba kernel on demand and cached per (col_tile, row_tile)."""

    packed: np.ndarray
    n_rows: int
    n_cols: int
    groups: int = 1
    _cache: dict = field(default_factory=dict, repr=False)
    _nnz: int | None = field(default=None, repr=False)
    default_tiles: tuple[int, int] | None = None  # (col_tile, row_tile) used when any tiling will do

    def __post_init__(self) -> None:
        need = _cdiv(self.n_rows * self.n_cols, 8)
        p = self.packed
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 1:
            raise ValueError("mask must be a 1-d uint8 array from np.packbits")
        if p.size != need:
            raise ValueError(f"packed mask has {p.size} bytes; shape ({self.n_rows}, {self.n_cols}) needs {need}")
        if self.n_rows % self.groups:
            raise ValueError(f"{self.n_rows} rows do not split into {self.groups} groups")

    @property
    def rows_per_group(self) -> int:
        return self.n_rows // self.groups

    @property
    def nnz(self) -> int:
        if self._nnz is None:
            self._nnz = int(_popcount(self.packed, self.n_rows * self.n_cols))
        return self._nnz

    @property
    def density(self) -> float:
        return self.nnz / (self.n_rows * self.n_cols)

    def tiles(self, col_tile: int, row_tile: int) -> tuple[np.ndarray, np.ndarray]:
        """(row_tiles (n_rows, ceil(n_cols/col_tile)), col_tiles (groups*ceil(rows_per_group/row_tile),
        n_cols)); row tiles never straddle groups."""
        key = (col_tile, row_tile)
        if key not in self._cache:
            ng = self.rows_per_group
            nbt = _cdiv(ng, row_tile)
            r = np.arange(self.n_rows)
            ids = ((r // ng) * nbt + (r % ng) // row_tile).astype(np.int64)
            self._cache[key] = _mask_tile_counts(self.packed, self.n_rows, self.n_cols, col_tile, ids,
                                                 self.groups * nbt)
        return self._cache[key]


    def _any(self) -> tuple[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
        if not any(k[0] != "nm" for k in self._cache):
            key = self.default_tiles or (self.n_cols, self.rows_per_group)
            self.tiles(*key)
        key = next(k for k in self._cache if k[0] != "nm")
        return key, self._cache[key]

    def row_totals(self) -> np.ndarray:
        """Nonzeros per row, shape (groups, rows_per_group)."""
        _, (rt, _) = self._any()
        return rt.sum(axis=1).reshape(self.groups, self.rows_per_group)

    def col_totals(self) -> np.ndarray:
        """Nonzeros per column within each group, shape (groups, n_cols)."""
        _, (_, ct) = self._any()
        return ct.reshape(self.groups, -1, self.n_cols).sum(axis=1)


def _tile_max(x: np.ndarray, t: int) -> np.ndarray:
    """Max over consecutive tiles of t along the last axis of (G, L), flattened group-major."""
    g, L = x.shape
    pad = _cdiv(L, t) * t - L
    if pad:
        x = np.concatenate([x, np.zeros((g, pad), dtype=x.dtype)], axis=1)
    return x.reshape(g, -1, t).max(axis=2).ravel()


def real_tile_var(dataflow: str, sparse: str, counts: MaskCounts, geom: Geometry) -> np.ndarray:
    """The per-tile quantity `var` of `sparse_folds` computed from a real mask."""
    R, C, P = geom.rows, geom.cols, geom.macs_per_pe
    G, ng = counts.groups, counts.rows_per_group
    if sparse == "weight" and dataflow in ("os", "ws"):
        mx = _tile_max(counts.row_totals(), C)
        return _cdiv(mx, P) if dataflow == "os" else _cdiv(mx, R * P)
    if sparse == "weight_t" and dataflow in ("os", "ws"):
        mx = _tile_max(counts.col_totals(), C)
        return _cdiv(mx, P) if dataflow == "os" else _cdiv(mx, R * P)
    if sparse == "weight":  # is
        rt = counts.tiles(R * P, R * P)[0]
        return (rt > 0).reshape(G, ng, -1).sum(axis=1).ravel()
    if sparse == "weight_t":  # is
        return (counts.tiles(R * P, R * P)[1] > 0).sum(axis=1)
    if sparse == "output":
        if dataflow == "os":
            return _cdiv(_tile_max(counts.row_totals(), R), C)
        if dataflow == "ws":
            return (counts.tiles(C, ng)[0] > 0).reshape(G, ng, -1).sum(axis=1).ravel()
        return (counts.tiles(R * P, C)[1] > 0).sum(axis=1)
    raise ValueError(f"sparse operand {sparse!r} is not one of weight, weight_t, output")


def nm_conforms(counts: MaskCounts, nm: tuple[int, int], sparse: str) -> bool:
    """Whether every M consecutive reduction elements hold at most N nonzeros (forward: along the
    mask's rows; backward_data: along its columns, within a group)."""
    key = ("nm", nm, sparse)
    if key not in counts._cache:
        n, m = nm
        rt, ct = counts.tiles(m, m)
        counts._cache[key] = bool((rt.max() if sparse == "weight" else ct.max()) <= n)
    return counts._cache[key]


# --- statistical mode: expectations for random masks of density d ----------------------------------
def expected_ceil_max_binom(trials: int, d: float, group: int, slot: int) -> float:
    """E[ceil(max of `group` iid Binomial(trials, d) / slot)] = sum_{j>=0} (1 - F(j*slot)^group)."""
    from scipy.stats import binom  # heavy import, only the statistical mode needs it

    if group <= 0 or trials <= 0:
        return 0.0
    j = np.arange(_cdiv(trials, slot)) * slot
    return float((1.0 - binom.cdf(j, trials, d) ** group).sum())


def _tile_sizes(length: int, t: int) -> np.ndarray:
    sizes = np.full(_cdiv(length, t), t, dtype=np.int64)
    if length % t:
        sizes[-1] = length % t
    return sizes


def expected_tile_var(dataflow: str, sparse: str, gemm: Gemm, d: float, geom: Geometry) -> np.ndarray:
    """Expected `var` per tile (all groups) for a random mask of density d (Bernoulli per weight)."""
    R, C, P = geom.rows, geom.cols, geom.macs_per_pe
    m, n, k, G = gemm.m, gemm.n, gemm.k, gemm.groups
    if sparse in ("weight", "weight_t"):
        if dataflow in ("os", "ws"):
            slot = P if dataflow == "os" else R * P
            v = [expected_ceil_max_binom(k, d, int(s), slot) for s in _tile_sizes(n, C)]
        else:
            v = n * (1.0 - (1.0 - d) ** _tile_sizes(k, R * P))
    elif dataflow == "os":
        v = [expected_ceil_max_binom(n, d, int(s), C) for s in _tile_sizes(m, R)]
    elif dataflow == "ws":
        v = m * (1.0 - (1.0 - d) ** _tile_sizes(n, C))
    else:
        v = n * (1.0 - (1.0 - d) ** _tile_sizes(m, C))
    return np.tile(np.asarray(v, dtype=np.float64), G)


# --- two-sided skipping on one PE -----------------------------------------------------------------
def effectual_pairs(spec, counts: MaskCounts, act_mask: np.ndarray) -> int:
    """Nonzero-weight x nonzero-activation pairs of a layer's forward pass (cycles of a single PE that
    skips both zero operands): sum over input channel c and kernel offset (i, j) of
    nnz(W[:, c, i, j]) x (active input positions that offset reaches, over the batch, with padding).

    act_mask: bool/uint8 (B, C_in, H_in, W_in) for conv, (B, C_in) or (B, C_in, positions) otherwise.
    """
    a = np.asarray(act_mask)
    if spec.kind != "conv":
        a = a.reshape(a.shape[0], a.shape[1], -1, 1)
    if a.ndim != 4 or a.shape[1] != spec.in_channels:
        raise ValueError(f"layer {spec.name!r}: activation mask shape {np.shape(act_mask)} does not match "
                         f"{spec.in_channels} input channels")
    kh, kw = spec.kernel_hw
    (sh, sw), (ph, pw), (oh, ow) = spec.stride, spec.padding, spec.out_hw
    a = np.pad(a.astype(bool), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    G, cg = spec.groups, spec.in_channels // spec.groups
    wcols = counts.col_totals().reshape(G, cg, kh, kw)
    total = 0
    for i in range(kh):
        for j in range(kw):
            sl = a[:, :, i: i + sh * (oh - 1) + 1: sh, j: j + sw * (ow - 1) + 1: sw]
            act_per_c = sl.sum(axis=(0, 2, 3)).reshape(G, cg)
            total += int((act_per_c.astype(np.int64) * wcols[:, :, i, j]).sum())
    return total


def product_of_densities(dense_macs: int, weight_density: float, act_density: float) -> float:
    """The shortcut estimate of effectual pairs: dense MACs x weight density x activation density."""
    return dense_macs * weight_density * act_density
