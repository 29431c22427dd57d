"""SNIP (Lee et al. 2019): a one-shot mask at initialisation from connection sensitivity |θ · ∂L/∂θ|.

The scores come from one batch (`batch_loss_fn()`, a closure the trainer builds from its first
batch) on the dense, freshly initialised model. As the RigL paper compares methods at equal
per-layer sparsity, each layer keeps its top nonzeros_l scores (counts from the distribution; ties:
lower flat index) instead of SNIP's original global threshold. The gradient is taken with
torch.autograd.grad, so no `.grad` is left behind. A layer whose scores are not finite falls back
to a random mask with a warning. The mask never changes afterwards.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import torch
from torch import nn

from ..layers import LayerSpec
from ..masking import Masking, random_mask
from ..topk import topk_indices
from .base import BatchLossFn, MethodError, SparseMethod

__all__ = ["SNIPMethod", "snip_scores"]


def snip_scores(masking: Masking, names: Sequence[str], loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """|θ · ∂L/∂θ| per named layer (zeros for a weight the loss does not reach)."""
    weights = [masking.weight(n) for n in names]
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return {n: (w.detach() * g).abs() if g is not None else torch.zeros_like(w.detach())
            for n, w, g in zip(names, weights, grads)}


class SNIPMethod(SparseMethod):
    """One-shot per-layer top-|θ·g| masks at initialisation; static afterwards."""

    name = "snip"

    def init_masks(self, model: nn.Module, specs: Sequence[LayerSpec], generator: torch.Generator | None,
                   batch_loss_fn: BatchLossFn | None) -> Masking | None:
        self._check_specs(specs)
        if batch_loss_fn is None:
            raise MethodError("snip needs a batch_loss_fn (loss of one batch) to score connections at init")
        masking = Masking(model, specs, None, generator)        # all-True: the dense model is scored
        nonzeros = self.nonzeros()
        layers = self.sparse_layers()
        scores = snip_scores(masking, layers, batch_loss_fn())
        for name in layers:
            weight = masking.weight(name)
            score = scores[name]
            if bool(torch.isfinite(score).all()):
                keep = torch.zeros(weight.numel(), dtype=torch.bool, device=weight.device)
                keep[topk_indices(score, nonzeros[name])] = True
                new_mask = keep.reshape(weight.shape)
            else:
                warnings.warn(f"snip: non-finite scores in layer {name!r} at init; using a random mask",
                              RuntimeWarning, stacklevel=2)
                new_mask = random_mask(weight.shape, nonzeros[name], generator, weight.device)
            masking.set_mask_(name, new_mask, None)
        return masking
