"""Shared drop-and-grow update of SET, RigL and SNFS (RigL paper Sec. 3 (3), (4)).

At an update step t, for every sparse layer with nnz_l active weights:
    k = floor(f_decay(t) · nnz_l)                                   (schedules.n_changed)
    drop: the k active connections with the smallest |θ|           (bottom-k among the mask)
    grow: k connections among those inactive AFTER the drop        (just-dropped ones may come back,
          by a method-specific score (top-k) or at random           as in the authors' code)
so nnz_l is unchanged. A connection dropped and grown again keeps its weight and optimizer state
(the authors' default); the (dropped, grown) counts returned are the net mask change, which is what
the trace records, and `last_update[name]` also keeps the scheduled k. A layer whose weight,
gradient or score holds NaN/Inf is left unchanged with a warning.
"""

from __future__ import annotations

from typing import Iterable

import torch

from ..masking import Masking
from ..schedules import n_changed
from ..topk import bottomk_indices, chunked_topk_indices, topk_indices
from .base import SparseMethod

__all__ = ["DropGrowMethod"]


class DropGrowMethod(SparseMethod):
    """Random initial masks; every ΔT steps until T_end, drop by magnitude and grow by `grow_indices`."""

    name = "drop_grow"

    def is_update_step(self, step: int) -> bool:
        return self.config.schedule.is_update_step(step)

    # --- selection helpers --------------------------------------------------------------------
    def _chunk_scores(self, tensor: torch.Tensor, m: int) -> Iterable[torch.Tensor]:
        """|tensor| computed chunk by chunk (the full score tensor never exists)."""
        flat = tensor.detach().reshape(-1)
        return (flat[i:i + m].abs() for i in range(0, flat.numel(), m))

    def top_abs(self, tensor: torch.Tensor, k: int, candidates: torch.Tensor) -> torch.Tensor:
        """Flat indices of the k largest |tensor| among candidates (chunked when configured)."""
        m = self.config.grow_chunk_elements
        if m is None:
            return topk_indices(tensor.detach().abs(), k, candidates)
        return chunked_topk_indices(self._chunk_scores(tensor, m), k, m, candidates)

    def bottom_abs(self, tensor: torch.Tensor, k: int, candidates: torch.Tensor) -> torch.Tensor:
        """Flat indices of the k smallest |tensor| among candidates (chunked when configured)."""
        m = self.config.grow_chunk_elements
        if m is None:
            return bottomk_indices(tensor.detach().abs(), k, candidates)
        return chunked_topk_indices(self._chunk_scores(tensor, m), k, m, candidates, largest=False)

    # --- the method-specific part -------------------------------------------------------------
    def grow_indices(self, name: str, step: int, k: int, candidates: torch.Tensor, masking: Masking,
                     optimizer: torch.optim.Optimizer | None) -> torch.Tensor | None:
        """Flat indices of k connections to grow among `candidates` (flat bool); None: leave the layer."""
        raise NotImplementedError

    # --- the update -----------------------------------------------------------------------------
    def update(self, step: int, masking: Masking, optimizer: torch.optim.Optimizer | None
               ) -> dict[str, tuple[int, int]]:
        """Drop k smallest-|θ| actives and grow k per sparse layer; returns the net (dropped, grown)."""
        self.last_update = {}
        if not self.is_update_step(step):
            return {}
        fraction = float(self.config.schedule.fraction(step))
        changes: dict[str, tuple[int, int]] = {}
        for name in self.sparse_layers():
            mask = masking.mask(name)
            weight = masking.weight(name)
            k = n_changed(fraction, int(mask.sum()))
            if k == 0:
                continue
            if not self._all_finite(name, step, weight, weight.grad):
                continue
            after_drop = mask.reshape(-1).clone()
            after_drop[self.bottom_abs(weight, k, mask)] = False
            grow = self.grow_indices(name, step, k, ~after_drop, masking, optimizer)
            if grow is None:
                continue
            new_mask = after_drop
            new_mask[grow] = True
            dropped, grown = masking.set_mask_(name, new_mask.reshape(mask.shape), optimizer)
            self.last_update[name] = (k, dropped, grown)
            if dropped or grown:
                changes[name] = (dropped, grown)
        return changes
