"""SNFS, sparse momentum (Dettmers & Zettlemoyer 2019) as RigL's baseline: grow by |momentum|.

The momentum must see dense gradients, so the trainer keeps gradients dense every step
(`needs_dense_grad` is always True: no mask_grads_) and relies on apply_masks_ after the optimizer
step. Growth scores: the optimizer's 'momentum_buffer' (SGD) or 'exp_avg' (Adam, AdamW) of the
weight; without either (first step, SGD without momentum) the dense gradient is used instead.
As in the paper's comparison, per-layer nonzeros stay fixed (no cross-layer redistribution).
"""

from __future__ import annotations

import torch

from ..masking import Masking
from .drop_grow import DropGrowMethod

__all__ = ["SNFSMethod", "MOMENTUM_KEYS"]

MOMENTUM_KEYS = ("momentum_buffer", "exp_avg")


class SNFSMethod(DropGrowMethod):
    """Random init masks; every ΔT steps until T_end drop by |θ| and grow by |momentum|."""

    name = "snfs"
    masks_gradients = False      # the optimizer (its momentum) sees the dense gradient every step

    def needs_dense_grad(self, step: int) -> bool:
        return True

    @staticmethod
    def momentum(weight: torch.Tensor, optimizer: torch.optim.Optimizer | None) -> torch.Tensor | None:
        """The weight's momentum tensor in the optimizer state, or None."""
        if optimizer is None:
            return None
        state = optimizer.state.get(weight, {})
        for key in MOMENTUM_KEYS:
            value = state.get(key)
            if isinstance(value, torch.Tensor) and value.shape == weight.shape:
                return value
        return None

    def grow_indices(self, name: str, step: int, k: int, candidates: torch.Tensor, masking: Masking,
                     optimizer: torch.optim.Optimizer | None) -> torch.Tensor | None:
        weight = masking.weight(name)
        score = self.momentum(weight, optimizer)
        if score is None:
            score = weight.grad
        if score is None:
            return None
        if not self._all_finite(name, step, score):
            return None
        return self.top_abs(score, k, candidates)
