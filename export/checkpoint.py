"""Read a rigl-hw training checkpoint for export (validate, rebuild the model, bake the masks).

Checkpoint contract (written by the trainer with `torch.save`, read with `weights_only=True`):

    {"format": "rigl-hw-checkpoint", "version": 1,
     "model": {"name": str, "width": float, "num_classes": int},
     "model_state": state_dict, "step": int, ...}            # other keys are ignored

`model.name` may be a `package.module:factory` reference (rigl_hw.user_model): the factory is
imported and called to rebuild the model, and `model.input_shape` gives its per-sample input. An
optional `preprocessing` entry ({mean, std, layout, input_shape, formula}) is passed on to the ONNX
metadata; checkpoints without it load as before.

The mask of parameter `a.b.weight` is the bool buffer `a.b.weight_mask` in `model_state` (registered
on the module that owns the weight). Layers kept dense may have an all-True mask or none at all.

`make_checkpoint` writes such a file from a zoo model with random masks; the tests and the benchmark
use it in place of a trained run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rigl_hw.atomic import atomic_path

from .errors import ExportError, one_line

CHECKPOINT_FORMAT = "rigl-hw-checkpoint"
CHECKPOINT_VERSION = 1
MASK_SUFFIX = "_mask"
RUN_DIR_CHECKPOINT = "checkpoint.pt"  # the trainer's file name inside a run directory


@dataclass
class LoadedCheckpoint:
    """A model ready to export: eval mode, masks multiplied into the weights, no mask buffers.

    masks: parameter name -> bool array of the parameter's shape (only parameters that had a mask).
    meta:  model name / width / num_classes, step, source path.
    """

    model: nn.Module
    masks: dict[str, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str | None:
        return self.meta.get("model_name")


def _fail(path: Path, problem: str, fix: str) -> ExportError:
    return ExportError(f"checkpoint {path}: {problem}; {fix}")


def _read_file(path: Path) -> tuple[Path, Any]:
    if not path.exists():
        raise ExportError(f"checkpoint {path} not found; pass the path of a checkpoint written by "
                          "`rigl-hw train`")
    if path.is_dir() and (path / RUN_DIR_CHECKPOINT).is_file():
        path = path / RUN_DIR_CHECKPOINT  # a run directory written by the trainer
    if path.is_dir():
        found = sorted(p.name for p in path.glob("*.pt"))
        hint = f" (it holds {', '.join(found)})" if found else ""
        raise _fail(path, "is a directory" + hint, "pass the checkpoint file itself")
    try:
        return path, torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated / foreign files
        raise _fail(path, f"is not a readable torch checkpoint ({one_line(exc, 120)})",
                    "it may be truncated or corrupt: re-save it, or point at another checkpoint") from None


def _model_meta(path: Path, obj: Any) -> tuple[str, float, int | None]:
    from rigl_hw.models import MODELS

    if not isinstance(obj, dict) or obj.get("format") != CHECKPOINT_FORMAT:
        got = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise _fail(path, f"format is {got!r}, expected {CHECKPOINT_FORMAT!r}",
                    "export only checkpoints written by `rigl-hw train`")
    if obj.get("version") != CHECKPOINT_VERSION:
        raise _fail(path, f"checkpoint version {obj.get('version')!r} is not supported "
                    f"(this exporter reads version {CHECKPOINT_VERSION})", "re-save it with this rigl-hw")
    spec = obj.get("model")
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise _fail(path, "has no 'model' entry with a 'name'", "re-save it with `rigl-hw train`")
    name = spec["name"]
    from rigl_hw.user_model import is_user_model

    if name not in MODELS and not is_user_model(name):
        raise _fail(path, f"unknown model name {name!r}",
                    f"it must be one of {', '.join(sorted(MODELS))} (was it written by another version?)")
    try:
        width = float(spec.get("width", 1.0))
        num_classes = spec.get("num_classes")
        num_classes = None if num_classes is None else int(num_classes)
    except (TypeError, ValueError):
        raise _fail(path, f"bad model width/num_classes {spec!r}", "re-save it with `rigl-hw train`") from None
    if not isinstance(obj.get("model_state"), dict):
        raise _fail(path, "has no 'model_state' dict", "re-save it with `rigl-hw train`")
    return name, width, num_classes


def _split_masks(path: Path, state: dict[str, Any], model: nn.Module) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    params = dict(model.named_parameters())
    masks: dict[str, np.ndarray] = {}
    rest: dict[str, Any] = {}
    for key, value in state.items():
        if key.endswith(MASK_SUFFIX) and key[: -len(MASK_SUFFIX)] in params:
            pname = key[: -len(MASK_SUFFIX)]
            t = torch.as_tensor(value)
            if t.dtype != torch.bool:
                if not bool(((t == 0) | (t == 1)).all()):
                    raise _fail(path, f"mask {key} has values other than 0/1", "masks must be bool buffers")
                t = t.bool()
            if tuple(t.shape) != tuple(params[pname].shape):
                raise _fail(path, f"model_state does not match the model (mask {key} has shape "
                            f"{tuple(t.shape)}, {pname} has {tuple(params[pname].shape)})",
                            "check the model width and num_classes recorded in it")
            masks[pname] = t.numpy().copy()
        else:
            rest[key] = value
    if not masks:
        raise _fail(path, f"has no masks (no '*{MASK_SUFFIX}' entries in model_state)",
                    "export a checkpoint of a sparse training run (masks are saved as <param>_mask buffers)")
    return rest, masks


def _load_state(path: Path, model: nn.Module, state: dict[str, Any]) -> None:
    want = model.state_dict()
    missing = [k for k in want if k not in state]
    extra = [k for k in state if k not in want]
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[0]!r}")
        if extra:
            parts.append(f"{len(extra)} unexpected key(s) e.g. {extra[0]!r}")
        raise _fail(path, "model_state does not match the model (" + ", ".join(parts) + ")",
                    "check the model name, width and num_classes recorded in it")
    for k, v in want.items():
        got = tuple(torch.as_tensor(state[k]).shape)
        if got != tuple(v.shape):
            raise _fail(path, f"model_state[{k!r}] has shape {got}, the model expects {tuple(v.shape)}",
                        "check the model width and num_classes recorded in it")
    model.load_state_dict(state, strict=True)


def bake_masks(model: nn.Module, masks: dict[str, np.ndarray]) -> None:
    """Multiply every masked parameter by its mask in place (weights outside the mask become exact 0)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            p = params[name]
            p.mul_(torch.from_numpy(np.asarray(mask, dtype=bool)).to(p.dtype))


def load_checkpoint(path: str | os.PathLike) -> LoadedCheckpoint:
    """Load and validate a checkpoint file (or a run directory holding `checkpoint.pt`).

    Raises ExportError (one line: problem; fix) when it is unusable.
    """
    from rigl_hw.checkpoint import CheckpointError, non_finite_tensors, verify_checksum

    path = Path(path)
    path, obj = _read_file(path)
    name, width, num_classes = _model_meta(path, obj)
    from rigl_hw.user_model import build_run_model

    try:
        verify_checksum(path, obj)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    bad = non_finite_tensors(obj["model_state"])
    if bad:
        raise _fail(path, f"holds non-finite weights (NaN/inf in {bad[0]}"
                    f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}): the run diverged",
                    "export a checkpoint of a run whose loss stayed finite")
    try:
        model = build_run_model(name, width=width, num_classes=num_classes)
    except ValueError as exc:
        raise _fail(path, f"cannot build model {name!r} ({one_line(exc)})", "fix the 'model' entry") from None
    state, masks = _split_masks(path, obj["model_state"], model)
    _load_state(path, model, state)
    bake_masks(model, masks)
    model.eval()
    meta = {"model_name": name, "width": width, "num_classes": num_classes,
            "step": obj.get("step"), "checkpoint": str(path)}
    shape = obj["model"].get("input_shape")
    if shape is not None:        # package.module:factory models record their per-sample input
        meta["input_shape"] = tuple(int(v) for v in shape)
    if isinstance(obj.get("preprocessing"), dict):   # absent in checkpoints written before it was recorded
        meta["preprocessing"] = obj["preprocessing"]
    return LoadedCheckpoint(model=model, masks=masks, meta=meta)


# --- test / benchmark helper ------------------------------------------------------------------

def _owner(model: nn.Module, param_name: str) -> tuple[nn.Module, str]:
    mod_path, _, attr = param_name.rpartition(".")
    return (model.get_submodule(mod_path) if mod_path else model), attr


def _randomise_batchnorm(model: nn.Module, name: str, gen: torch.Generator) -> None:
    """Random BN affine params, running stats calibrated on random data, then perturbed.

    Calibrating keeps activations near unit scale through deep nets (so the parity test is
    meaningful); the perturbation and random affine params make BN folding change weight values.
    """
    from rigl_hw.models import MODELS, example_input

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration batches
        shape = MODELS[name].input_shape
        if len(shape) == 3:  # images: calibrate at <= 64 x 64, statistics barely depend on size
            shape = (shape[0], min(shape[1], 64), min(shape[2], 64))
        model.train()
        for _ in range(2):
            model(torch.randn((8, *shape), generator=gen) if MODELS[name].input_dtype == "float32"
                  else example_input(name, 8, generator=gen))
        model.eval()
        for bn in bns:
            bn.momentum = 0.1
            bn.running_mean.add_(torch.randn(bn.running_mean.shape, generator=gen) * 0.05)
            bn.running_var.mul_(torch.rand(bn.running_var.shape, generator=gen) * 0.4 + 0.8)


def make_checkpoint(path: str | os.PathLike, model_name: str, sparsity: float, seed: int = 0,
                    width: float = 1.0, num_classes: int | None = None, with_masks: bool = True,
                    step: int = 0) -> Path:
    """Write a checkpoint of zoo model `model_name` with random masks (test and benchmark helper).

    Every sparsifiable weight (`trace_layer_specs`) gets a random mask with exactly
    round(sparsity * numel) zeros, registered as a `<attr>_mask` bool buffer on its module; masked
    weights are zeroed; BN stats are randomised. Written atomically (temp file + os.replace).
    """
    from rigl_hw.layers import trace_layer_specs
    from rigl_hw.models import build_model, example_input

    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = build_model(model_name, width=width, num_classes=num_classes)
    specs = trace_layer_specs(model, example_input(model_name, 1, generator=gen))
    params = dict(model.named_parameters())
    _randomise_batchnorm(model, model_name, gen)
    with torch.no_grad():
        for spec in specs:
            p = params[spec.param_name]
            n_zero = int(round(sparsity * p.numel()))
            flat = torch.ones(p.numel(), dtype=torch.bool)
            flat[torch.randperm(p.numel(), generator=gen)[:n_zero]] = False
            mask = flat.reshape(p.shape)
            # float32 normal init yields an exact 0 about once per 10^7 draws: keep kept weights nonzero
            # so that nnz(weights) == nnz(mask) holds exactly in tests
            p.copy_(torch.where(p == 0, torch.full_like(p, 1e-3), p))
            p.mul_(mask)
            if with_masks:
                owner, attr = _owner(model, spec.param_name)
                owner.register_buffer(attr + MASK_SUFFIX, mask, persistent=True)
    obj = {
        "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
        "model": {"name": model_name, "width": float(width),
                  "num_classes": num_classes if num_classes is not None else _default_classes(model_name)},
        "model_state": model.state_dict(), "step": int(step),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return path


def _default_classes(model_name: str) -> int:
    from rigl_hw.models import MODELS

    return MODELS[model_name].num_classes
