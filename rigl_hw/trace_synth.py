"""Synthetic traces for models too large to train here (numpy-only apart from the zoo's shape tracing).

Same structure as a recorded trace: exact nonzeros per layer from the distribution, drop/grow counts
per update following the update schedule (k = floor(f(t) · nnz_l)), random positions, marked
"synthetic". Positions are regenerated on read from `synthetic_seed` (rigl_hw.trace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .distributions import random_masks
from .schedules import UpdateSchedule, changed_per_update
from .trace import pack_mask, write_trace_files
from .zoo import model_allocation

SYNTH_METHODS = ("rigl", "set", "snfs", "static")


def write_synthetic_trace(out_dir: str | Path, model: str, distribution: str, sparsity: float, steps: int,
                          delta_t: int, alpha: float, t_end: int, batch: int, decay: str = "cosine",
                          seed: int = 0, width: float = 1.0, method: str = "rigl",
                          input_shape: Sequence[int] | None = None) -> Path:
    """Write a synthetic trace directory and return its path (see module docstring).

    model: a zoo name, `package.module:factory` (needs input_shape, per sample) or FILE.onnx."""
    if method not in SYNTH_METHODS:
        raise ValueError(f"synthetic traces support methods {SYNTH_METHODS}, got {method!r}")
    if steps <= 0 or batch <= 0:
        raise ValueError(f"--steps and --batch must be positive, got {steps} and {batch}")
    sched = UpdateSchedule(delta_t=delta_t, t_end=t_end, alpha=alpha, decay=decay).validate(total_steps=steps)
    specs, alloc = model_allocation(model, distribution, sparsity, width=width, input_shape=input_shape)
    shapes = {s.name: s.weight_shape for s in specs}
    rng = np.random.default_rng(seed)
    init = random_masks(alloc, shapes, rng)
    if method == "static":
        upd = np.zeros(0, dtype=np.int64)
        counts = np.zeros((0, len(specs)), dtype=np.int64)
    else:
        upd = sched.update_steps(steps)
        counts = changed_per_update(sched, alloc.nonzeros, steps)
        counts[:, [not b for b in alloc.in_budget]] = 0   # excluded layers stay dense
        # a layer can only move connections to free positions: a dense layer (ERK's dense fix) keeps its mask
        free = np.asarray(alloc.n_params, dtype=np.int64) - np.asarray(alloc.nonzeros, dtype=np.int64)
        counts = np.minimum(counts, free[None, :])
    arrays = {f"init_{i}": pack_mask(init[s.name]) for i, s in enumerate(specs)}
    arrays.update(update_steps=upd, dropped=counts, grown=counts.copy())
    is_upd = np.zeros(steps, dtype=np.int64)
    is_upd[upd] = 1
    log = [(t, float("nan"), float("nan"), int(is_upd[t])) for t in range(steps)]
    meta = {
        "model": model, "width": width, "batch_size": batch, "total_steps": steps, "method": method,
        "hparams": {"distribution": distribution, "sparsity": sparsity, "delta_t": delta_t, "alpha": alpha,
                    "t_end": t_end, "decay": decay},
        "dense_weight_grad_every_step": method == "snfs",
        "seed": seed, "masks": "synthetic", "synthetic_seed": seed,
    }
    if input_shape is not None:
        meta["input_shape"] = [int(v) for v in input_shape]
    out = Path(out_dir)
    write_trace_files(out, specs, meta, arrays, log)
    return out
