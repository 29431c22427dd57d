"""Synthetic traces for models too large to train here (numpy-only apart from the zoo's shape tracing).

Same structure as a recorded trace: exact nonzeros per layer from the distribution, drop/grow counts
per update following the update schedule (k = floor(f(t) · nnz_l)), random positions, marked
"synthetic". Positions are regenerated on read from `synthetic_seed` (rigl_hw.trace).
Operand sparsity (format version 2): with `input_density` and/or `grad_density`, every step counts those
densities in every conv and linear layer, and every snapshot has synthetic bitmaps regenerated on read
(rigl_hw.trace_operands); without them the trace carries empty operand fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .distributions import random_masks
from .schedules import UpdateSchedule, changed_per_update
from .trace import TraceError, pack_mask, write_trace_dir
from .trace_operands import OperandFormatError, check_density, synthetic_operand_arrays
from .zoo import model_allocation

SYNTH_METHODS = ("rigl", "set", "snfs", "static")
MAX_SYNTH_PARAMS = 2**32      # weights of one synthetic trace (its bit-packed masks take 512 MiB)
MAX_SYNTH_STEPS = 10**7       # steps of one synthetic trace (steps.csv has one row per step)


def write_synthetic_trace(out_dir: str | Path, model: str, distribution: str, sparsity: float, steps: int,
                          delta_t: int, alpha: float, t_end: int, batch: int, decay: str = "cosine",
                          seed: int = 0, width: float = 1.0, method: str = "rigl",
                          input_density: float | None = None, grad_density: float | None = None,
                          operand_samples: int = 2, input_shape: Sequence[int] | None = None) -> Path:
    """Write a synthetic trace directory and return its path (see module docstring).

    model: a zoo name, `package.module:factory` (needs input_shape, per sample) or FILE.onnx.
    input_density / grad_density: density in [0, 1] of every conv and linear layer's input activations /
    output gradients (None: not recorded); operand_samples: samples per synthetic bitmap."""
    check_density("--input-density", input_density)
    check_density("--grad-density", grad_density)
    if operand_samples <= 0:
        raise OperandFormatError(f"--operand-samples must be positive, got {operand_samples}")
    if method not in SYNTH_METHODS:
        raise TraceError(f"--method {method!r}: synthetic traces support methods {', '.join(SYNTH_METHODS)}; "
                         "record other methods with `rigl-hw train`")
    if steps <= 0 or batch <= 0:
        raise TraceError(f"--steps and --batch must be positive, got {steps} and {batch}")
    if steps > MAX_SYNTH_STEPS:
        raise TraceError(f"--steps {steps} exceeds the limit {MAX_SYNTH_STEPS:g} of a synthetic trace")
    sched = UpdateSchedule(delta_t=delta_t, t_end=t_end, alpha=alpha, decay=decay).validate(total_steps=steps)
    specs, alloc = model_allocation(model, distribution, sparsity, width=width, input_shape=input_shape)
    if sum(s.n_params for s in specs) > MAX_SYNTH_PARAMS:
        raise TraceError(f"{model} at width {width:g} has {sum(s.n_params for s in specs):.3g} weights, over the "
                         f"limit {MAX_SYNTH_PARAMS:.3g} of a synthetic trace; use a smaller --width")
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
    op_arrays, op_meta = synthetic_operand_arrays(specs, steps, int(upd.size), upd, batch, input_density,
                                                  grad_density, operand_samples, seed)
    arrays.update(op_arrays)
    is_upd = np.zeros(steps, dtype=np.int64)
    is_upd[upd] = 1
    log = [(t, float("nan"), float("nan"), int(is_upd[t])) for t in range(steps)]
    meta = {
        "model": model, "width": width, "batch_size": batch, "total_steps": steps, "method": method,
        "hparams": {"distribution": distribution, "sparsity": sparsity, "delta_t": delta_t, "alpha": alpha,
                    "t_end": t_end, "decay": decay},
        "dense_weight_grad_every_step": method == "snfs",
        "seed": seed, "masks": "synthetic", "synthetic_seed": seed, "operands": op_meta,
    }
    if input_shape is not None:
        meta["input_shape"] = [int(v) for v in input_shape]
    return write_trace_dir(Path(out_dir), specs, meta, arrays, log)   # whole or not at all
