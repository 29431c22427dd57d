"""Schedules: the mask-update fraction f_decay(t), which steps update masks, and learning rates.

Numpy-only, pure functions. Steps count from 0. RigL paper Sec. 3 (2): every ΔT steps until T_end,
drop/grow a fraction f_decay(t) of each layer's active connections:
    cosine          f(t) = α/2 · (1 + cos(π t / T_end))
    constant        f(t) = α
    inverse_power   f(t) = α · (1 − t / T_end)^k
An update happens at step t when t > 0, t % ΔT == 0 and t < T_end. The number of connections changed
in a layer with nnz active weights is k = floor(f(t) · nnz) (dropped, then the same number grown).
Training M× longer scales T_end and every learning-rate anchor by M (Sec. 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

DECAY_SCHEDULES = ("cosine", "constant", "inverse_power")


class ScheduleError(ValueError):
    """Impossible schedule hyper-parameters."""


@dataclass(frozen=True)
class UpdateSchedule:
    """When and how much the masks change. delta_t and t_end in steps; alpha in (0, 1]."""

    delta_t: int = 100
    t_end: int = 25_000
    alpha: float = 0.3
    decay: str = "cosine"
    power_k: float = 3.0   # exponent of the inverse_power decay

    def validate(self, total_steps: int | None = None) -> "UpdateSchedule":
        if int(self.delta_t) != self.delta_t or self.delta_t <= 0:
            raise ScheduleError(f"delta_t must be a positive integer number of steps, got {self.delta_t}")
        if not (0.0 < self.alpha <= 1.0):
            raise ScheduleError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.t_end <= 0:
            raise ScheduleError(f"t_end must be positive, got {self.t_end}")
        if total_steps is not None and self.t_end > total_steps:
            raise ScheduleError(f"t_end ({self.t_end}) is past the last step ({total_steps}); lower --t-end")
        if self.decay not in DECAY_SCHEDULES:
            raise ScheduleError(f"unknown decay {self.decay!r}; choose one of {', '.join(DECAY_SCHEDULES)}")
        if self.power_k <= 0:
            raise ScheduleError(f"power_k must be > 0, got {self.power_k}")
        return self

    def scaled(self, multiplier: float) -> "UpdateSchedule":
        """The schedule of an M× longer run: T_end scales, ΔT does not (paper Sec. 4)."""
        return replace(self, t_end=int(round(self.t_end * multiplier)))

    def fraction(self, step: int | np.ndarray) -> np.ndarray | float:
        return update_fraction(step, self.alpha, self.t_end, self.decay, self.power_k)

    def is_update_step(self, step: int) -> bool:
        return step > 0 and step % self.delta_t == 0 and step < self.t_end

    def update_steps(self, total_steps: int) -> np.ndarray:
        """All update steps of a run of total_steps steps (int64 array)."""
        last = min(self.t_end, total_steps)
        return np.arange(self.delta_t, last, self.delta_t, dtype=np.int64)


def update_fraction(step: int | np.ndarray, alpha: float, t_end: int, decay: str = "cosine",
                    power_k: float = 3.0) -> np.ndarray | float:
    """f_decay(t): fraction of each layer's active connections changed at step t (0 from T_end on)."""
    t = np.asarray(step, dtype=np.float64)
    if decay == "cosine":
        f = 0.5 * alpha * (1.0 + np.cos(np.pi * t / t_end))
    elif decay == "constant":
        f = np.full_like(t, alpha)
    elif decay == "inverse_power":
        f = alpha * np.clip(1.0 - t / t_end, 0.0, 1.0) ** power_k
    else:
        raise ScheduleError(f"unknown decay {decay!r}; choose one of {', '.join(DECAY_SCHEDULES)}")
    f = np.where(t >= t_end, 0.0, f)
    return float(f) if f.ndim == 0 else f


def n_changed(fraction: float, nonzeros: int) -> int:
    """Connections dropped (and grown) in a layer with `nonzeros` active weights: floor(f · nnz)."""
    return int(math.floor(fraction * nonzeros + 1e-9))


@dataclass(frozen=True)
class StepLR:
    """Piecewise-constant LR with linear warm-up: lr = base · gamma^(#milestones passed).

    Paper ImageNet: warm-up to 1.6 over 5 epochs, ÷10 at epochs 30, 70, 90 (anchors in steps here).
    """

    base_lr: float
    warmup_steps: int = 0
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        passed = sum(1 for m in self.milestones if step >= m)
        return self.base_lr * self.gamma ** passed

    def scaled(self, multiplier: float) -> "StepLR":
        """LR schedule of an M× longer run: every anchor step scales by M."""
        return replace(self, warmup_steps=int(round(self.warmup_steps * multiplier)),
                       milestones=tuple(int(round(m * multiplier)) for m in self.milestones))


@dataclass(frozen=True)
class CosineLR:
    """Cosine LR decay from base_lr to final_lr over total_steps, with linear warm-up."""

    base_lr: float
    total_steps: int
    warmup_steps: int = 0
    final_lr: float = 0.0

    def __call__(self, step: int) -> float:
        if self.warmup_steps > 0 and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        x = min(1.0, (step - self.warmup_steps) / span)
        return self.final_lr + 0.5 * (self.base_lr - self.final_lr) * (1.0 + math.cos(math.pi * x))

    def scaled(self, multiplier: float) -> "CosineLR":
        return replace(self, total_steps=int(round(self.total_steps * multiplier)),
                       warmup_steps=int(round(self.warmup_steps * multiplier)))


def changed_per_update(schedule: UpdateSchedule, nonzeros: Sequence[int], total_steps: int) -> np.ndarray:
    """k per (update, layer): floor(f(t) · nnz_l) for every update step of the run, int64 (U, L)."""
    steps = schedule.update_steps(total_steps)
    f = np.atleast_1d(schedule.fraction(steps))
    nnz = np.asarray(nonzeros, dtype=np.float64)
    return np.floor(f[:, None] * nnz[None, :] + 1e-9).astype(np.int64)
