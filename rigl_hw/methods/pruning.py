"""Gradual magnitude pruning (Zhu & Gupta 2018), dense -> S, as the RigL paper's Pruning baseline.

Target sparsity at step t (flops.pruning_sparsity, cubic):
    s_t = S · (1 − (1 − (t − t_0)/(t_end − t_0))^3)   between t_0 and t_end, updated every
    `pruning_frequency` steps; 0 before t_0.
Masks start all-True. At each pruning event every budget layer is cut to the nonzeros the
distribution assigns at s_t (same distribution and excluded layers as the sparse methods, so the
final masks have exactly the static allocation's counts), dropping its smallest-|θ| active weights.
Pruned connections never come back; excluded layers stay dense.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..distributions import allocate
from ..flops import pruning_sparsity
from ..layers import LayerSpec
from ..masking import Masking
from ..topk import bottomk_indices
from .base import BatchLossFn, SparseMethod

__all__ = ["PruningMethod"]


class PruningMethod(SparseMethod):
    """All-True masks; magnitude-prune budget layers at the cubic schedule's events; never regrow."""

    name = "pruning"

    def init_masks(self, model: nn.Module, specs: Sequence[LayerSpec], generator: torch.Generator | None,
                   batch_loss_fn: BatchLossFn | None) -> Masking | None:
        self._check_specs(specs)
        return Masking(model, specs, None, generator)

    def is_update_step(self, step: int) -> bool:
        """Pruning events: t_0 + j·frequency for j >= 1, up to the first one at or past t_end."""
        c = self.config
        return (step > c.pruning_begin and (step - c.pruning_begin) % c.pruning_frequency == 0
                and step - c.pruning_frequency < c.pruning_end)

    def target_sparsity(self, step: int) -> float:
        """s_t of the cubic schedule at `step`."""
        c = self.config
        return float(pruning_sparsity(step, c.sparsity, c.pruning_begin, c.pruning_end, c.pruning_frequency))

    def target_nonzeros(self, step: int) -> dict[str, int]:
        """Per-layer nonzeros of the distribution at s_t."""
        s_t = self.target_sparsity(step)
        shapes = {s.name: s.weight_shape for s in self.specs}
        return allocate(shapes, s_t, self.config.distribution, excluded=self.excluded,
                        power=self.config.power).as_dict()

    def update(self, step: int, masking: Masking, optimizer: torch.optim.Optimizer | None
               ) -> dict[str, tuple[int, int]]:
        """Prune each budget layer to its target nonzeros by |θ|; returns (dropped, 0) per pruned layer."""
        self.last_update = {}
        if not self.is_update_step(step):
            return {}
        targets = self.target_nonzeros(step)
        changes: dict[str, tuple[int, int]] = {}
        for name in self.budget_layers():
            mask = masking.mask(name)
            weight = masking.weight(name)
            k = int(mask.sum()) - targets[name]
            if k <= 0:
                continue
            if not self._all_finite(name, step, weight, weight.grad):
                continue
            new_mask = mask.reshape(-1).clone()
            new_mask[bottomk_indices(weight.detach().abs(), k, mask)] = False
            dropped, grown = masking.set_mask_(name, new_mask.reshape(mask.shape), optimizer)
            self.last_update[name] = (k, dropped, grown)
            changes[name] = (dropped, grown)
        return changes
