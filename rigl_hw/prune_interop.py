"""Masks across PyTorch's pruning conventions and rigl-hw's, and baking them for export.

Three conventions hold a weight mask on the module that owns weight `attr`:
  rigl-hw              parameter `attr` (dense, exact zeros) + bool buffer `attr_mask` (rigl_hw.masking)
  torch.nn.utils.prune parameter `attr_orig` + buffer `attr_mask` (0/1 float) + a forward pre-hook
                       that recomputes `attr = attr_orig * attr_mask` before every forward
  torch.nn.utils.parametrize (what torch.ao.pruning's sparsifiers use): `parametrizations[attr]`
                       holds `original` and a list of parametrizations; the ao FakeSparsity has a
                       bool/0-1 `mask` buffer and returns `mask * x`
All masks here are keyed by the logical parameter name ("fc1.weight") and are numpy bool arrays of
the weight's shape.

`bake_torch_pruning(model)` returns a copy with every prune hook and mask parametrization removed
and the weights multiplied by their masks (a plain nn.Module that exports without Mul nodes or mask
constants), plus the masks. A parametrization that is not a mask (no `mask` buffer) or a mask with
values other than 0 and 1 is refused with one line (PruneInteropError). The original is untouched.
"""

from __future__ import annotations

import copy
from typing import Mapping

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize, prune

MASK_SUFFIX = "_mask"
ORIG_SUFFIX = "_orig"


class PruneInteropError(ValueError):
    """A model whose pruning state cannot be read as masks; one line with the fix."""

    user_error = True


def _qual(mod_name: str, attr: str) -> str:
    return f"{mod_name}.{attr}" if mod_name else attr


def _as_mask(t: torch.Tensor, where: str) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype != torch.bool:
        if not bool(((t == 0) | (t == 1)).all()):
            raise PruneInteropError(f"{where}: the mask has values other than 0 and 1 (a scaling, not a mask); "
                                    "rigl-hw exports only 0/1 masks: bake it yourself before exporting")
        t = t.bool()
    return t.numpy().copy()


def _prune_hooks(module: nn.Module) -> list:
    return [h for h in module._forward_pre_hooks.values() if isinstance(h, prune.BasePruningMethod)]


def _pruned_attrs(module: nn.Module) -> list[str]:
    """Attributes carrying a torch.nn.utils.prune hook (PruningContainer: its own name)."""
    return [h._tensor_name for h in _prune_hooks(module)]


def _parametrized_attrs(module: nn.Module) -> list[str]:
    return list(module.parametrizations.keys()) if parametrize.is_parametrized(module) else []


def _parametrization_mask(module: nn.Module, attr: str, where: str) -> np.ndarray:
    """The product of the `mask` buffers of every parametrization on `attr` (refused if one has none)."""
    plist = module.parametrizations[attr]
    mask = np.ones(tuple(plist.original.shape), dtype=bool)
    for p in plist:
        m = getattr(p, "mask", None)
        if not isinstance(m, torch.Tensor):
            raise PruneInteropError(f"{where}: parametrization {type(p).__name__} is not a mask (it has no 'mask' "
                                    "buffer); remove it with parametrize.remove_parametrizations(..., "
                                    "leave_parametrized=True) before exporting")
        mask &= _as_mask(m, where).reshape(mask.shape)
    return mask


def masks_from_torch(model: nn.Module) -> dict[str, np.ndarray]:
    """Masks held by torch.nn.utils.prune hooks and by mask parametrizations (torch.ao.pruning)."""
    out: dict[str, np.ndarray] = {}
    for mod_name, module in model.named_modules():
        for attr in _pruned_attrs(module):
            where = _qual(mod_name, attr)
            out[where] = _as_mask(getattr(module, attr + MASK_SUFFIX), where)
        for attr in _parametrized_attrs(module):
            where = _qual(mod_name, attr)
            out[where] = _parametrization_mask(module, attr, where)
    return out


def masks_from_rigl(model: nn.Module) -> dict[str, np.ndarray]:
    """Masks of rigl-hw's convention (`attr_mask` bool buffers beside a parameter `attr`)."""
    out: dict[str, np.ndarray] = {}
    for mod_name, module in model.named_modules():
        hooked = set(_pruned_attrs(module))
        for buf, t in module._buffers.items():
            attr = buf[: -len(MASK_SUFFIX)] if buf.endswith(MASK_SUFFIX) else None
            if attr and attr not in hooked and isinstance(module._parameters.get(attr), nn.Parameter) and t is not None:
                out[_qual(mod_name, attr)] = _as_mask(t, _qual(mod_name, buf))
    return out


def has_torch_pruning(model: nn.Module) -> bool:
    return any(_pruned_attrs(m) or _parametrized_attrs(m) for m in model.modules())


def _unparametrize_copy(module: nn.Module) -> None:
    """Replace every parametrized tensor of a *copied* module by a plain Parameter holding its value.

    parametrize.remove_parametrizations would delete the property from the module's class, which a
    deepcopy shares with the caller's module (breaking it); this swaps the copy's class instead."""
    values = {attr: getattr(module, attr).detach().clone() for attr in _parametrized_attrs(module)}
    grads = {attr: module.parametrizations[attr].original.requires_grad for attr in values}
    base = type(module).__bases__[0]      # parametrize's per-module class derives from the original one
    del module._modules["parametrizations"]
    module.__class__ = base
    for attr, v in values.items():
        module.register_parameter(attr, nn.Parameter(v, requires_grad=grads[attr]))


def bake_torch_pruning(model: nn.Module) -> tuple[nn.Module, dict[str, np.ndarray]]:
    """(copy with masks multiplied in and hooks/parametrizations removed, masks); see module docstring."""
    masks = masks_from_torch(model)          # refuses unreadable state before copying anything
    # prune's `attr` is a non-leaf tensor (attr_orig * attr_mask) that deepcopy refuses: copy it detached
    memo: dict[int, object] = {}
    for module in model.modules():
        for attr in _pruned_attrs(module):
            t = getattr(module, attr)
            memo[id(t)] = t.detach().clone()
    baked = copy.deepcopy(model, memo)
    for mod_name, module in list(baked.named_modules()):
        for attr in _pruned_attrs(module):
            prune.remove(module, attr)       # attr becomes a Parameter holding attr_orig * attr_mask
        if _parametrized_attrs(module):
            _unparametrize_copy(module)
    params = dict(baked.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params.get(name)
            if p is None:
                raise PruneInteropError(f"{name}: after removing its pruning it is not a parameter of the model; "
                                        "bake this model yourself before exporting")
            p.masked_fill_(~torch.from_numpy(mask).to(p.device), 0.0)
    return baked, masks


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    mod_name, _, attr = name.rpartition(".")
    try:
        module = model.get_submodule(mod_name) if mod_name else model
    except AttributeError:
        raise PruneInteropError(f"mask {name!r}: the model has no module {mod_name!r}") from None
    if not isinstance(getattr(module, attr, None), torch.Tensor):
        raise PruneInteropError(f"mask {name!r}: module {mod_name or '<root>'} has no tensor {attr!r}")
    return module, attr


def _check_shape(name: str, module: nn.Module, attr: str, mask: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(mask, dtype=bool).copy())
    want = tuple(getattr(module, attr).shape)
    if tuple(t.shape) != want:
        raise PruneInteropError(f"mask {name!r} has shape {tuple(t.shape)}, the weight has {want}")
    return t


def apply_torch_prune(model: nn.Module, masks: Mapping[str, np.ndarray]) -> nn.Module:
    """Attach masks as torch.nn.utils.prune hooks (`prune.custom_from_mask`), in place; returns model."""
    for name, mask in masks.items():
        module, attr = _owner(model, name)
        t = _check_shape(name, module, attr, mask)
        prune.custom_from_mask(module, attr, t.to(getattr(module, attr).device))
    return model


def apply_parametrize_masks(model: nn.Module, masks: Mapping[str, np.ndarray]) -> nn.Module:
    """Attach masks as torch.ao.pruning FakeSparsity parametrizations, in place; returns model."""
    from torch.ao.pruning.sparsifier.utils import FakeSparsity

    for name, mask in masks.items():
        module, attr = _owner(model, name)
        t = _check_shape(name, module, attr, mask)
        parametrize.register_parametrization(module, attr, FakeSparsity(t.to(getattr(module, attr).device)))
    return model


def apply_rigl_masks(model: nn.Module, masks: Mapping[str, np.ndarray]) -> nn.Module:
    """Register masks as rigl-hw `attr_mask` bool buffers and zero the weights outside them, in place."""
    with torch.no_grad():
        for name, mask in masks.items():
            module, attr = _owner(model, name)
            t = _check_shape(name, module, attr, mask)
            w = getattr(module, attr)
            module.register_buffer(attr + MASK_SUFFIX, t.to(w.device), persistent=True)
            w.masked_fill_(~t.to(w.device), 0.0)
    return model
