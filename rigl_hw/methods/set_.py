"""SET (Mocanu et al. 2018): drop by |θ|, grow uniformly at random.

(Module named `set_` so that importing it never shadows the builtin `set` in the package.)
Growth draws from the method's own torch.Generator (seeded by config.seed, saved in state_dict), so
runs are deterministic, resume exactly, and every DDP rank grows the same connections.
"""

from __future__ import annotations

import torch

from ..masking import Masking
from .drop_grow import DropGrowMethod

__all__ = ["SETMethod"]


class SETMethod(DropGrowMethod):
    """Random init masks; every ΔT steps until T_end drop by |θ| and grow k random inactive positions."""

    name = "set"

    def grow_indices(self, name: str, step: int, k: int, candidates: torch.Tensor, masking: Masking,
                     optimizer: torch.optim.Optimizer | None) -> torch.Tensor | None:
        positions = torch.nonzero(candidates.cpu()).squeeze(1)
        pick = torch.randperm(positions.numel(), generator=self.generator)[:k]
        return positions[pick].to(candidates.device)
