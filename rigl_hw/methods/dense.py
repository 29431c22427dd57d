"""Dense training and the Small-Dense baseline: no masks at all.

Small-Dense (paper Sec. 4) is a dense model narrowed to the sparse model's parameter count (nonzeros plus
a 1-bit mask per weight, flops_report.small_dense_budget); the
trainer builds the narrow model itself, and `SmallDenseMethod.width()` gives the width multiplier
from the foundation's solver (flops_report.small_dense_width) for the config's distribution and S.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..distributions import allocate
from ..layers import LayerSpec
from ..masking import Masking
from ..zoo import default_excluded
from .base import BatchLossFn, SparseMethod

__all__ = ["DenseMethod", "SmallDenseMethod"]


class DenseMethod(SparseMethod):
    """Dense training: no masking (init_masks returns None), no updates."""

    name = "dense"

    def init_masks(self, model: nn.Module, specs: Sequence[LayerSpec], generator: torch.Generator | None,
                   batch_loss_fn: BatchLossFn | None) -> Masking | None:
        return None


class SmallDenseMethod(DenseMethod):
    """Dense training of a narrower model with about the sparse model's parameter count."""

    name = "small_dense"

    def target_params(self) -> int:
        """Parameter budget of the sparse model under the config's distribution and S: its nonzeros plus
        its bitmask in 32-bit words (flops_report.small_dense_budget, the one Small-Dense rule)."""
        excluded = (self.config.excluded if self.config.excluded is not None
                    else default_excluded(self.model_name, self.config.distribution, self.specs))
        shapes = {s.name: s.weight_shape for s in self.specs}
        from ..flops_report import small_dense_budget

        alloc = allocate(shapes, self.config.sparsity, self.config.distribution, excluded=excluded,
                         power=self.config.power)
        return small_dense_budget(alloc.total_nonzeros, alloc.total_params)   # nonzeros + 1-bit mask

    def width(self, num_classes: int | None = None) -> float:
        """Width multiplier of the zoo model whose dense parameter count is the largest <= target."""
        from ..flops_report import small_dense_width

        return small_dense_width(self.model_name, self.target_params(), num_classes)
