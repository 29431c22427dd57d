"""The sparse-training method interface, its typed config, and the shared per-layer helpers.

A method decides the initial masks (`init_masks`), which steps change them (`is_update_step`),
whether the trainer must leave the gradient dense (`needs_dense_grad`) and how masks change
(`update`). Step protocol (see masking.py): at step t the trainer runs forward and backward, so
every weight's `.grad` holds the DENSE gradient of the loss; if `is_update_step(t)` it calls
`update(t, masking, optimizer)` BEFORE `mask_grads_()` and `optimizer.step()`, so step t's optimizer
step already trains with the new mask and the optimizer state at changed positions is zero when it
runs; then `mask_grads_()` if `method.masks_gradients` (False only for SNFS, whose momentum needs
dense gradients every step), `optimizer.step()`, and `apply_masks_()`:

    loss.backward()
    if masking is not None and method.is_update_step(t): method.update(t, masking, optimizer)
    if masking is not None and method.masks_gradients: masking.mask_grads_()
    optimizer.step()
    if masking is not None: masking.apply_masks_()

Excluded layers (kept dense, outside the budget: `zoo.default_excluded` unless the config names
them) and layers the distribution makes fully dense never change.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from ..distributions import DISTRIBUTIONS, LayerAllocation, allocate
from ..layers import LayerSpec
from ..masking import Masking
from ..schedules import UpdateSchedule
from ..zoo import default_excluded

METHODS = ("dense", "static", "snip", "set", "rigl", "snfs", "pruning", "small_dense")
DENSE_METHODS = ("dense", "small_dense")

BatchLossFn = Callable[[], torch.Tensor]


class MethodError(ValueError):
    """Unknown method or impossible method hyper-parameters."""


@dataclass(frozen=True)
class MethodConfig:
    """Hyper-parameters of a sparse-training method (paper defaults where it gives them)."""

    name: str                                   # one of METHODS
    distribution: str = "erk"                   # uniform / er / erk (paper Sec. 3 (1))
    sparsity: float = 0.9                       # S, overall target sparsity of the budget layers
    schedule: UpdateSchedule = field(default_factory=UpdateSchedule)  # ΔT, T_end, α, decay
    excluded: tuple[str, ...] | None = None     # dense layers outside the budget; None: zoo convention
    power: float = 1.0                          # ERK score exponent (1: ERK, 0: uniform)
    grow_chunk_elements: int | None = None      # None: exact top-k; M: chunked top-k over M entries
    pruning_begin: int = 10_000                 # Zhu & Gupta t_0 (paper ImageNet: 10k of 32k steps)
    pruning_end: int = 25_000                   # t_end (paper ImageNet: 25k)
    pruning_frequency: int = 1_000              # steps between pruning events (paper: 1k)
    seed: int = 0                               # seeds the method's own generator (SET's growth)

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise MethodError(f"unknown method {self.name!r}; choose one of {', '.join(METHODS)}")
        if self.distribution not in DISTRIBUTIONS:
            raise MethodError(f"unknown distribution {self.distribution!r}; choose one of {', '.join(DISTRIBUTIONS)}")
        if not (math.isfinite(self.sparsity) and 0.0 <= self.sparsity < 1.0):
            raise MethodError(f"sparsity must be in [0, 1), got {self.sparsity}")
        if not (math.isfinite(self.power) and self.power >= 0):
            raise MethodError(f"power must be >= 0, got {self.power}")
        self.schedule.validate()
        if self.grow_chunk_elements is not None and (int(self.grow_chunk_elements) != self.grow_chunk_elements
                                                     or self.grow_chunk_elements <= 0):
            raise MethodError(f"grow_chunk_elements must be a positive integer or None, got {self.grow_chunk_elements}")
        if not (0 <= self.pruning_begin < self.pruning_end) or self.pruning_frequency <= 0:
            raise MethodError("pruning needs 0 <= pruning_begin < pruning_end and pruning_frequency > 0, got "
                              f"{self.pruning_begin}, {self.pruning_end}, {self.pruning_frequency}")
        if self.excluded is not None:
            object.__setattr__(self, "excluded", tuple(self.excluded))


class SparseMethod:
    """Base: static random masks from the distribution, never updated (subclasses override).

    After make_method: `allocation` (LayerAllocation of the config's distribution; None for dense
    methods), `excluded` (dense layers outside the budget), `generator` (the method's own RNG,
    saved by state_dict). After each update: `last_update[name] = (k scheduled, dropped, grown)`.
    """

    name: str = "static"
    masks_gradients: bool = True    # the trainer calls mask_grads_() before optimizer.step()

    def __init__(self, config: MethodConfig, model_name: str, specs: Sequence[LayerSpec]) -> None:
        self.config = config
        self.model_name = model_name
        self.specs = list(specs)
        self.generator = torch.Generator().manual_seed(int(config.seed))
        self.last_update: dict[str, tuple[int, int, int]] = {}   # name -> (k scheduled, dropped, grown)
        self.excluded: tuple[str, ...] = ()
        self.allocation: LayerAllocation | None = None
        if config.name not in DENSE_METHODS:
            shapes = {s.name: s.weight_shape for s in self.specs}
            self.excluded = (config.excluded if config.excluded is not None
                             else default_excluded(model_name, config.distribution, self.specs))
            self.allocation = allocate(shapes, config.sparsity, config.distribution, excluded=self.excluded,
                                       power=config.power)

    # --- layer sets ------------------------------------------------------------------------
    def nonzeros(self) -> dict[str, int]:
        """Per-layer active weights the distribution assigns (excluded layers: dense)."""
        return {} if self.allocation is None else self.allocation.as_dict()

    def budget_layers(self) -> list[str]:
        """Layers inside the sparsity budget (not excluded)."""
        if self.allocation is None:
            return []
        return [n for n, b in zip(self.allocation.names, self.allocation.in_budget) if b]

    def sparse_layers(self) -> list[str]:
        """Budget layers the distribution leaves sparse (the only ones drop/grow may touch)."""
        if self.allocation is None:
            return []
        return [n for n, b, z, N in zip(self.allocation.names, self.allocation.in_budget,
                                        self.allocation.nonzeros, self.allocation.n_params) if b and z < N]

    def _check_specs(self, specs: Sequence[LayerSpec]) -> None:
        if [s.name for s in specs] != [s.name for s in self.specs]:
            raise MethodError("init_masks got layer specs that differ from the ones the method was made with")

    # --- interface --------------------------------------------------------------------------
    def init_masks(self, model: nn.Module, specs: Sequence[LayerSpec], generator: torch.Generator | None,
                   batch_loss_fn: BatchLossFn | None) -> Masking | None:
        """Random masks with exactly the distribution's nonzeros per layer (weights zeroed outside)."""
        self._check_specs(specs)
        return Masking(model, specs, self.nonzeros(), generator)

    def needs_dense_grad(self, step: int) -> bool:
        """Whether the trainer must keep step `step`'s gradient dense (not call mask_grads_ first)."""
        return False

    def is_update_step(self, step: int) -> bool:
        return False

    def update(self, step: int, masking: Masking, optimizer: torch.optim.Optimizer | None
               ) -> dict[str, tuple[int, int]]:
        """Change masks at an update step; returns per-layer (dropped, grown) for layers that changed."""
        return {}

    def state_dict(self) -> dict:
        """Plain state (tensors, ints, str): loads with torch.load(weights_only=True)."""
        return {"method": self.name, "generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping) -> None:
        if state.get("method") != self.name:
            raise MethodError(f"method state is for {state.get('method')!r}, this method is {self.name!r}")
        self.generator.set_state(state["generator"])

    # --- helpers for subclasses -------------------------------------------------------------------
    def _all_finite(self, name: str, step: int, *tensors: torch.Tensor | None) -> bool:
        """True if every given tensor is finite; else warn naming the layer and step."""
        for t in tensors:
            if t is not None and not bool(torch.isfinite(t).all()):
                warnings.warn(f"{self.name}: non-finite gradient or score in layer {name!r} at step {step}; "
                              "its mask is left unchanged", RuntimeWarning, stacklevel=3)
                return False
        return True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"
