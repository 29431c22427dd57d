"""Masks for a torch model: create, apply after every optimizer step, change (with optimizer state).

A mask is a persistent bool buffer registered on the module that owns the weight, named
`<attr>_mask`, so it travels in the model's state_dict under `param_name + "_mask"`
('layer1.0.conv1.weight_mask', 'gru.weight_ih_l0_mask'). Weights are stored dense with exact zeros
outside the mask; no forward hook or parametrisation is used, so the gradient the autograd engine
leaves in `weight.grad` is the dense gradient of the loss w.r.t. the full weight (what RigL grows by).

Lifecycle of one training step (the trainer owns it):
    loss.backward()                 # dense gradient in weight.grad
    method.update(...)              # at update steps only: set_mask_ per changed layer
    masking.mask_grads_()           # sparse gradient (skipped by SNFS, which needs dense momentum)
    optimizer.step()
    masking.apply_masks_()          # masked weights exactly zero again

`set_mask_` zeroes the weight at dropped and grown positions and every optimizer state tensor
shaped like the weight (SGD momentum_buffer, Adam exp_avg / exp_avg_sq / max_exp_avg_sq, whatever
the optimizer names them) at those positions, before the next optimizer step. With the gradient
masked and the state zero, weight decay (L2 in the gradient, or AdamW's decoupled decay) cannot
revive a dropped weight: every term of its update is zero.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from .layers import LayerSpec

__all__ = ["Masking", "MASK_SUFFIX"]

MASK_SUFFIX = "_mask"


def _owner(model: nn.Module, param_name: str) -> tuple[nn.Module, str]:
    """The module holding parameter `param_name` and the attribute name there."""
    prefix, _, attr = param_name.rpartition(".")
    try:
        module = model.get_submodule(prefix) if prefix else model
    except AttributeError as e:
        raise ValueError(f"model has no module {prefix!r} for parameter {param_name!r}") from e
    param = getattr(module, attr, None)
    if not isinstance(param, nn.Parameter):
        raise ValueError(f"{param_name!r} is not a parameter of the model")
    return module, attr


def random_mask(shape: Sequence[int], nonzeros: int, generator: torch.Generator | None = None,
                device: torch.device | str | None = None) -> torch.Tensor:
    """Bool mask of `shape` with exactly `nonzeros` True entries at uniformly random positions."""
    n = int(np.prod(shape))
    if not 0 <= nonzeros <= n:
        raise ValueError(f"nonzeros {nonzeros} outside [0, {n}]")
    flat = torch.zeros(n, dtype=torch.bool)
    flat[torch.randperm(n, generator=generator)[:nonzeros]] = True
    return flat.reshape(tuple(shape)).to(device)


class Masking:
    """Masks as persistent bool buffers on the module owning each weight, named `<attr>_mask`
    (state_dict key = param_name + "_mask", e.g. 'layer1.0.conv1.weight_mask', 'gru.weight_ih_l0_mask').

    nonzeros: active weights per layer name; the mask is random with exactly that many ones
    (drawn from `generator`, in spec order). None, or a layer absent from it: all-True mask.
    Weights outside the masks are zeroed at construction. Pass the bare model (DDP's `.module`).
    """

    def __init__(self, model: nn.Module, specs: Sequence[LayerSpec], nonzeros: Mapping[str, int] | None = None,
                 generator: torch.Generator | None = None) -> None:
        self.model = model
        self.names: list[str] = [s.name for s in specs]
        if len(set(self.names)) != len(self.names):
            raise ValueError("layer specs have duplicate names")
        unknown = sorted(set(nonzeros or {}) - set(self.names))
        if unknown:
            raise ValueError(f"nonzeros names layers that are not in the specs: {unknown}")
        self._owners: dict[str, tuple[nn.Module, str]] = {}
        for spec in specs:
            module, attr = _owner(model, spec.param_name)
            weight = getattr(module, attr)
            if tuple(weight.shape) != tuple(spec.weight_shape):
                raise ValueError(f"layer {spec.name!r}: weight shape {tuple(weight.shape)} does not match "
                                 f"the spec's {tuple(spec.weight_shape)}")
            if nonzeros is not None and spec.name in nonzeros:
                mask = random_mask(weight.shape, int(nonzeros[spec.name]), generator, weight.device)
            else:
                mask = torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
            module.register_buffer(attr + MASK_SUFFIX, mask, persistent=True)
            self._owners[spec.name] = (module, attr)
        self.apply_masks_()

    # --- access ------------------------------------------------------------------------------
    def mask(self, name: str) -> torch.Tensor:
        """The bool mask buffer of layer `name` (weight shape). Change it only through set_mask_."""
        module, attr = self._owners[name]
        return getattr(module, attr + MASK_SUFFIX)

    def weight(self, name: str) -> nn.Parameter:
        module, attr = self._owners[name]
        return getattr(module, attr)

    def nonzeros(self) -> dict[str, int]:
        """Active weights per layer (ones in each mask)."""
        return {n: int(self.mask(n).sum()) for n in self.names}

    def masks_numpy(self) -> dict[str, np.ndarray]:
        """Copies of the masks as numpy bool arrays (weight shape), for the trace writer."""
        return {n: self.mask(n).detach().cpu().numpy().astype(bool, copy=True) for n in self.names}

    # --- per-step operations -------------------------------------------------------------------
    @torch.no_grad()
    def apply_masks_(self) -> None:
        """weight = weight · mask for every layer (after each optimizer step).

        Written as a fill of the inactive positions with +0.0 rather than a multiply, so that a
        NaN/Inf an optimizer step left at an inactive position cannot survive (NaN · 0 is NaN).
        """
        for n in self.names:
            self.weight(n).masked_fill_(~self.mask(n), 0.0)

    @torch.no_grad()
    def mask_grads_(self) -> None:
        """grad = grad · mask for every layer that has a gradient (normal steps train sparse gradients)."""
        for n in self.names:
            grad = self.weight(n).grad
            if grad is not None:
                grad.masked_fill_(~self.mask(n), 0.0)

    # --- mask changes ----------------------------------------------------------------------------
    @torch.no_grad()
    def set_mask_(self, name: str, new_mask: torch.Tensor,
                  optimizer: torch.optim.Optimizer | None) -> tuple[int, int]:
        """Replace layer `name`'s mask (in place, same buffer); return (dropped, grown) counts.

        The weight becomes exactly 0 at dropped positions (outside the new mask) and at grown ones
        (new connections start at zero). Every tensor in optimizer.state[weight] with the weight's
        shape is zeroed at dropped and grown positions now, whatever the optimizer calls it.
        Positions active in both masks keep their weight and optimizer state.
        """
        mask = self.mask(name)
        weight = self.weight(name)
        if not isinstance(new_mask, torch.Tensor) or new_mask.dtype != torch.bool:
            raise TypeError(f"layer {name!r}: new mask must be a bool tensor")
        if new_mask.numel() != mask.numel():
            raise ValueError(f"layer {name!r}: new mask has {new_mask.numel()} entries, weight {mask.numel()}")
        new = new_mask.reshape(mask.shape).to(mask.device)
        grown = new & ~mask
        dropped = mask & ~new
        changed = grown | dropped
        n_dropped, n_grown = int(dropped.sum()), int(grown.sum())
        mask.copy_(new)
        weight.masked_fill_(~new, 0.0)
        weight.masked_fill_(grown, 0.0)
        if optimizer is not None:
            self._zero_optimizer_state(weight, changed, optimizer)
        return n_dropped, n_grown

    @staticmethod
    def _zero_optimizer_state(weight: nn.Parameter, changed: torch.Tensor,
                              optimizer: torch.optim.Optimizer) -> None:
        """Zero every weight-shaped state tensor of `weight` at the `changed` positions."""
        state = optimizer.state.get(weight, {})
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.shape == weight.shape:
                value.masked_fill_(changed.to(value.device), 0)
