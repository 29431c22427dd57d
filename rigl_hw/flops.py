"""FLOP accounting for sparse inference and sparse training (RigL paper, Appendix H).

Numpy-only. Convention (the authors' counter, google-research/rigl via micronet_challenge): a conv,
linear or GRU-matrix layer with K = k_h k_w C_in/groups weights per output, E output elements per
sample and nnz_l active weights costs
    2 · nnz_l · P + E        FLOPs per sample      (P = output positions, so nnz_l·P = K(1−s)E)
i.e. one multiply and one add per surviving weight per output position, plus E for the bias add and
the activation. Batch-norm, pooling, residual adds, embeddings and the GRU gates' element-wise math
are not counted. Units: FLOPs per sample unless a name says per run.

Training cost per sample (backward ≈ 2x forward; Appendix H):
    dense                          3 f_D
    static, snip, set, small_dense 3 f_S           (small_dense: f_S is the narrow dense model's f)
    snfs                           2 f_S + f_D     (dense gradient every step)
    rigl                           (3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1) while updating (t < T_end),
                                   3 f_S after T_end
    pruning                        3 f(s_t), averaged over the steps (Zhu & Gupta cubic schedule)
A run M× longer costs M times more; normalised train FLOPs = run cost / (3 f_D × steps × batch).

ΔT convention: the paper's formula assumes ΔT sparse steps between two update steps (a period of
ΔT + 1 steps). The trainer, the schedules and the simulator update at every step t with t % ΔT == 0
(a period of ΔT steps, one of them an update). Over a ResNet-50 ERK-90% run at ΔT = 100 the two
differ by about 1e-4 of the run's FLOPs, far below the table's two decimals; this module keeps the
paper's formula so the published cells reproduce, and the simulator's step counts are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np

from .layers import LayerSpec

METHODS = ("dense", "static", "snip", "set", "small_dense", "rigl", "snfs", "pruning")
NEEDS_DELTA_T = ("rigl",)

# Paper's ImageNet ResNet-50 schedule (Sec. 4.1 and Appendix): 32k steps at batch 4096,
# mask updates every 100 steps until 25k; pruning from 10k to 25k every 1k steps.
IMAGENET_STEPS = 32_000
IMAGENET_BATCH = 4_096
IMAGENET_T_END = 25_000
PRUNING_BEGIN = 10_000
PRUNING_END = 25_000
PRUNING_FREQUENCY = 1_000


class FlopsError(ValueError):
    """Bad FLOP-accounting request (unknown method, missing ΔT, impossible schedule)."""


def layer_flops(spec: LayerSpec, nonzeros: int | None = None) -> int:
    """Inference FLOPs per sample of one layer: 2 · nnz · P + E (nnz defaults to dense)."""
    nnz = spec.n_params if nonzeros is None else int(nonzeros)
    if not 0 <= nnz <= spec.n_params:
        raise FlopsError(f"layer {spec.name!r}: {nnz} nonzeros outside [0, {spec.n_params}]")
    return 2 * nnz * spec.out_positions + spec.out_elements


def inference_flops(specs: Sequence[LayerSpec], nonzeros: Mapping[str, int] | None = None) -> np.ndarray:
    """Per-layer inference FLOPs per sample (int64 array, in spec order). Missing layers count dense."""
    nnz = nonzeros or {}
    return np.array([layer_flops(s, nnz.get(s.name)) for s in specs], dtype=np.int64)


def rigl_step_flops(f_sparse: float, f_dense: float, delta_t: int) -> float:
    """Paper's per-step RigL cost while updating: (3 f_S ΔT + 2 f_S + f_D) / (ΔT + 1), per sample."""
    if delta_t <= 0:
        raise FlopsError(f"delta_t must be a positive number of steps, got {delta_t}")
    return (3.0 * f_sparse * delta_t + 2.0 * f_sparse + f_dense) / (delta_t + 1.0)


def pruning_sparsity(step: int | np.ndarray, final_sparsity: float, begin: int, end: int,
                     frequency: int) -> np.ndarray:
    """Zhu & Gupta (2018) cubic schedule s_t = S (1 − (1 − (t − t0)/(t_end − t0))^3), updated every
    `frequency` steps between begin and end (piecewise constant), 0 before begin, S after end."""
    t = np.asarray(step, dtype=np.float64)
    if end <= begin or frequency <= 0:
        raise FlopsError(f"pruning schedule needs begin < end and frequency > 0, got {begin}, {end}, {frequency}")
    # last pruning event at or before t
    t_evt = np.clip(begin + np.floor((t - begin) / frequency) * frequency, begin, end)
    frac = (t_evt - begin) / (end - begin)
    s = final_sparsity * (1.0 - (1.0 - frac) ** 3)
    return np.where(t < begin, 0.0, s)


@dataclass(frozen=True)
class TrainingFlops:
    """Training FLOPs of a whole run (FLOPs per run) and normalised to a dense 1x run."""

    method: str
    steps: int               # steps of this run (already multiplied by M)
    batch: int
    per_sample_step: float   # average training FLOPs per sample per step
    total: float             # FLOPs per run
    dense_total: float       # FLOPs of the dense 1x run (3 f_D × base steps × batch)

    @property
    def ratio(self) -> float:
        return self.total / self.dense_total


def training_flops(method: str, f_sparse: float, f_dense: float, *, delta_t: int | None = None,
                   multiplier: float = 1.0, steps: int = IMAGENET_STEPS, batch: int = IMAGENET_BATCH,
                   t_end: int | None = None, f_at_sparsity: Callable[[float], float] | None = None,
                   final_sparsity: float | None = None, pruning_begin: int = PRUNING_BEGIN,
                   pruning_end: int = PRUNING_END, pruning_frequency: int = PRUNING_FREQUENCY) -> TrainingFlops:
    """Training FLOPs of one run of `method` (per run), with the run and its schedule anchors scaled M×.

    f_sparse / f_dense: inference FLOPs per sample of the sparse (for small_dense: the narrow dense)
    and the dense model. rigl: mask updates every ΔT steps until t_end (None: the whole run, the
    paper's formula). pruning: needs f_at_sparsity(s) (FLOPs per sample at overall sparsity s) and
    final_sparsity; begin/end/frequency are the 1x anchors.
    """
    if method not in METHODS:
        raise FlopsError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if not (multiplier > 0 and math.isfinite(multiplier)):
        raise FlopsError(f"multiplier must be > 0, got {multiplier}")
    if steps <= 0 or batch <= 0:
        raise FlopsError(f"steps and batch must be positive, got {steps}, {batch}")
    run_steps = int(round(steps * multiplier))
    if method == "dense":
        per = 3.0 * f_dense
    elif method in ("static", "snip", "set", "small_dense"):
        per = 3.0 * f_sparse
    elif method == "snfs":
        per = 2.0 * f_sparse + f_dense
    elif method == "rigl":
        if delta_t is None:
            raise FlopsError("method rigl needs --delta-t (steps between mask updates)")
        upd = rigl_step_flops(f_sparse, f_dense, delta_t)
        if t_end is None:
            per = upd
        else:
            if not 0 < t_end <= steps:
                raise FlopsError(f"t_end must be in (0, steps={steps}], got {t_end}")
            frac = t_end / steps  # T_end scales with M like the run, so the fraction is kept
            per = frac * upd + (1.0 - frac) * 3.0 * f_sparse
    else:  # pruning
        if f_at_sparsity is None or final_sparsity is None:
            raise FlopsError("method pruning needs the FLOPs-at-sparsity function and the final sparsity")
        t = np.arange(run_steps)
        s_t = pruning_sparsity(t, final_sparsity, int(pruning_begin * multiplier),
                               int(pruning_end * multiplier), max(1, int(pruning_frequency * multiplier)))
        levels, counts = np.unique(s_t, return_counts=True)
        per = float(sum(3.0 * f_at_sparsity(float(s)) * c for s, c in zip(levels, counts)) / run_steps)
    total = per * run_steps * batch
    dense_total = 3.0 * f_dense * steps * batch
    return TrainingFlops(method, run_steps, batch, per, total, dense_total)


def solve_width(params_at_width: Callable[[float], int], target_params: float, lo: float = 0.01,
                hi: float = 1.0, tol: float = 1e-4) -> float:
    """Largest width in [lo, hi] whose parameter count is <= target (bisection; the count is monotone
    in width up to rounding). Used for Small-Dense baselines."""
    if params_at_width(lo) > target_params:
        raise FlopsError(f"even width {lo} has more than {target_params:.0f} parameters")
    if params_at_width(hi) <= target_params:
        return hi
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if params_at_width(mid) <= target_params:
            lo = mid
        else:
            hi = mid
    return lo
