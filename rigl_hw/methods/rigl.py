"""RigL (Evci et al. 2020): drop by |θ|, grow by the magnitude of the dense gradient.

Grow: the k connections, among those inactive after the drop, with the largest |∂L/∂θ| of the
current batch's dense gradient (weight.grad before mask_grads_; the trainer needs it dense only at
update steps). With `grow_chunk_elements = M` the selection streams |grad| in chunks of M entries
and keeps a running top-k (the paper's memory-bounded variant); the result is identical.
"""

from __future__ import annotations

import warnings

import torch

from ..masking import Masking
from .drop_grow import DropGrowMethod

__all__ = ["RigLMethod"]


class RigLMethod(DropGrowMethod):
    """Random init masks; every ΔT steps until T_end drop by |θ| and grow by |dense gradient|."""

    name = "rigl"

    def needs_dense_grad(self, step: int) -> bool:
        return self.is_update_step(step)

    def grow_indices(self, name: str, step: int, k: int, candidates: torch.Tensor, masking: Masking,
                     optimizer: torch.optim.Optimizer | None) -> torch.Tensor | None:
        grad = masking.weight(name).grad
        if grad is None:
            self._warn_missing(name, step, "gradient")
            return None
        return self.top_abs(grad, k, candidates)

    def _warn_missing(self, name: str, step: int, what: str) -> None:
        warnings.warn(f"{self.name}: layer {name!r} has no {what} at step {step}; its mask is left unchanged",
                      RuntimeWarning, stacklevel=3)
