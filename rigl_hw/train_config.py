"""The settings of one training run (`TrainConfig`), their validation, and what they build.

Pure configuration: `TrainConfig` validates on construction (`TrainConfigError`, one line naming
the setting and the fix), derives the update schedule (ΔT, α, T_end scaled by the multiplier M)
and the learning-rate schedule, and maps to an optimizer and a methods.MethodConfig.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Mapping

import numpy as np
import torch

from .data import DATASETS, DEFAULT_CORPUS_BYTES
from .schedules import DECAY_SCHEDULES, CosineLR, StepLR, UpdateSchedule

OPTIMIZERS = ("sgd", "adam", "adamw")
LR_SCHEDULES = ("cosine", "step", "constant")


class TrainConfigError(ValueError):
    """Impossible training settings; one line naming the setting and the fix."""

    user_error = True


@dataclass(frozen=True)
class TrainConfig:
    """Everything one run depends on. Steps are those of the 1x run; the run trains steps x multiplier."""

    model: str = "mlp"                  # zoo model (rigl_hw.models.MODELS)
    dataset: str = "digits"             # digits | synthetic | bytes | cifar10
    method: str = "rigl"                # rigl_hw.methods.METHODS
    distribution: str = "erk"           # uniform | er | erk
    sparsity: float = 0.9               # S in [0, 1)
    steps: int = 1000                   # optimizer steps of the 1x run
    batch_size: int = 64                # global batch (split across DDP ranks)
    lr: float = 0.1                     # base learning rate
    optimizer: str = "sgd"              # sgd (momentum) | adam | adamw
    momentum: float = 0.9               # SGD momentum
    weight_decay: float = 5e-4          # L2 (sgd, adam) or decoupled (adamw); paper WRN: 5e-4
    grad_clip: float = 0.0              # max global gradient norm; 0 = off (paper char-GRU: 10)
    delta_t: int = 100                  # ΔT, steps between mask updates (paper: 100)
    alpha: float = 0.3                  # α, initial update fraction in (0, 1] (paper: 0.3)
    t_end: int | None = None            # T_end of the 1x run; None = 3/4 of steps (paper: 25k of 32k)
    decay: str = "cosine"               # f_decay: cosine | constant | inverse_power
    multiplier: float = 1.0             # M: train M x longer; scales steps, LR anchors and T_end (Sec. 4)
    lr_schedule: str = "cosine"         # cosine (to 0) | step (x0.1 at 50% and 75%) | constant
    eval_every: int = 0                 # evaluate every N steps (0: only at the end)
    checkpoint_every: int = 0           # checkpoint every N steps (0: only at the end / on Ctrl-C)
    seed: int = 0
    width: float = 1.0                  # width multiplier of the (sparse) model
    seq_len: int = 64                   # sequence length of byte-level data
    data_dir: str | None = None         # CIFAR-10 binary files
    out: str = "run"                    # run directory
    grow_chunk_elements: int | None = None  # chunked top-k chunk size M (None: exact top-k)
    progress: bool = True               # tqdm bar on stderr (only when it is a terminal)
    num_threads: int | None = None      # torch.set_num_threads for the run (None: leave as is)
    eval_max_samples: int = 0           # evaluate on the first N test samples (0: all)
    corpus_bytes: int = DEFAULT_CORPUS_BYTES  # cap of the byte-level corpus
    operand_every: int = 20             # log operand (activation, gradient) nonzeros every N steps; 0 = off
                                        # (one logged step costs ~1.1-1.2x a plain one on the CPU, so every
                                        # step would cost 10-20%: studies/bench/operand_recording.py)
    operand_samples: int = 2            # samples of the batch in each operand bitmap (one per mask snapshot)
    input_shape: tuple[int, ...] | None = None  # per-sample input of a package.module:factory model
    device: str = "auto"                # auto (cuda if available) | cpu | cuda (rigl_hw.device)
    bf16: bool = False                  # bfloat16 autocast of forward and loss (weights, masks stay fp32)

    def __post_init__(self) -> None:
        if self.input_shape is not None:
            from .user_model import parse_input_shape

            object.__setattr__(self, "input_shape", parse_input_shape(self.input_shape))
        self.validate()

    # --- derived ----------------------------------------------------------------------------
    @property
    def total_steps(self) -> int:
        return int(round(self.steps * self.multiplier))

    @property
    def t_end_1x(self) -> int:
        return int(self.t_end) if self.t_end is not None else max(1, (3 * self.steps) // 4)

    def update_schedule(self) -> UpdateSchedule:
        """ΔT, α, decay and T_end of this run (T_end scaled by M; ΔT is not)."""
        return UpdateSchedule(delta_t=self.delta_t, t_end=self.t_end_1x, alpha=self.alpha,
                              decay=self.decay).scaled(self.multiplier)

    def lr_at(self) -> Callable[[int], float]:
        if self.lr_schedule == "constant":
            return lambda step: self.lr
        if self.lr_schedule == "step":
            return StepLR(self.lr, milestones=(self.steps // 2, (3 * self.steps) // 4)).scaled(self.multiplier)
        return CosineLR(self.lr, total_steps=self.steps).scaled(self.multiplier)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["input_shape"] is not None:     # lists, as checkpoints and JSON store them
            d["input_shape"] = list(d["input_shape"])
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise TrainConfigError(f"unknown training settings {unknown}; known: {', '.join(sorted(known))}")
        return cls(**dict(d))

    def validate(self) -> None:
        from .methods import METHODS
        from .models import MODELS

        def bad(msg: str) -> None:
            raise TrainConfigError(msg)

        from .device import DEVICES
        from .user_model import is_user_model

        if is_user_model(self.model):
            if self.input_shape is None:
                bad(f"model {self.model} needs --input-shape (per sample: C,H,W or F)")
            if self.method == "small_dense" or self.width != 1.0:
                bad(f"model {self.model} is trained as given: small_dense and --width need a zoo model")
        elif self.model not in MODELS:
            bad(f"unknown model {self.model!r}; choose one of {', '.join(sorted(MODELS))} or pass "
                "package.module:factory with --input-shape")
        if self.device not in DEVICES:
            bad(f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if not isinstance(self.bf16, bool):
            bad(f"bf16 must be true or false, got {self.bf16!r}")
        choices = (("dataset", DATASETS), ("method", METHODS), ("optimizer", OPTIMIZERS),
                   ("lr_schedule", LR_SCHEDULES), ("decay", DECAY_SCHEDULES), ("distribution", ("uniform", "er", "erk")))
        for name, options in choices:
            if getattr(self, name) not in options:
                bad(f"unknown {name} {getattr(self, name)!r}; choose one of {', '.join(sorted(options))}")
        ints = ("steps", "batch_size", "delta_t", "eval_every", "checkpoint_every", "seed", "seq_len",
                "eval_max_samples", "corpus_bytes")
        for name in ints:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                bad(f"{name} must be an integer, got {v!r}")
        if not (math.isfinite(self.sparsity) and 0.0 <= self.sparsity < 1.0):
            bad(f"sparsity must be in [0, 1), got {self.sparsity}")
        if self.steps <= 0 or self.batch_size <= 0:
            bad(f"steps and batch size must be positive, got steps={self.steps}, batch_size={self.batch_size}")
        if self.delta_t <= 0:
            bad(f"delta_t (ΔT) must be a positive number of steps, got {self.delta_t}")
        if not (0.0 < self.alpha <= 1.0):
            bad(f"alpha (α) must be in (0, 1], got {self.alpha}")
        if self.t_end is not None and not (0 < self.t_end <= self.steps):
            bad(f"t_end (T_end) must be in (0, steps={self.steps}], got {self.t_end}; lower --t-end")
        if not (math.isfinite(self.multiplier) and self.multiplier > 0) or self.total_steps < 1:
            bad(f"multiplier must be > 0 and leave at least one step, got {self.multiplier}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            bad(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            bad(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0 or self.grad_clip < 0:
            bad(f"weight_decay and grad_clip must be >= 0, got {self.weight_decay}, {self.grad_clip}")
        if not self.width > 0:
            bad(f"width must be > 0, got {self.width}")
        from .zoo import MAX_WIDTH

        if not self.width <= MAX_WIDTH:
            bad(f"width {self.width:g} exceeds the limit {MAX_WIDTH:g}; use a width multiplier of at most {MAX_WIDTH:g}")
        if min(self.eval_every, self.checkpoint_every, self.eval_max_samples) < 0 or self.seq_len < 2:
            bad("eval_every, checkpoint_every, eval_max_samples must be >= 0 and seq_len >= 2")
        if self.grow_chunk_elements is not None and self.grow_chunk_elements <= 0:
            bad(f"grow_chunk_elements must be positive, got {self.grow_chunk_elements}")
        if self.num_threads is not None and self.num_threads <= 0:
            bad(f"num_threads must be positive, got {self.num_threads}")
        for name in ("operand_every", "operand_samples"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                bad(f"{name} must be an integer >= 0, got {v!r}")
        if self.operand_samples == 0:
            bad("operand_samples must be >= 1 (turn operand recording off with operand_every=0)")


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)


def method_config(config: TrainConfig):
    """The methods package's MethodConfig for this run (pruning: t_0 = 10/32 of the run, t_end = T_end)."""
    from .methods import MethodConfig

    sched = config.update_schedule()
    begin = int(config.total_steps * 10 / 32)
    return MethodConfig(config.method, distribution=config.distribution, sparsity=config.sparsity, schedule=sched,
                        grow_chunk_elements=config.grow_chunk_elements, seed=config.seed,
                        pruning_begin=begin if begin < sched.t_end else 0, pruning_end=sched.t_end,
                        pruning_frequency=config.delta_t)
