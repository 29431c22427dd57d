"""Models from outside the zoo: `package.module:factory` references and `FILE.onnx` workloads.

One place resolves every `--model` value that is not a zoo name:

  "pkg.mod:factory"  a callable returning an nn.Module, imported with importlib and called with no
                     arguments. It needs an input shape (`--input-shape C,H,W` for images or `F` for
                     feature vectors; float32 inputs). Layer specs come from the usual shape-tracing
                     forward pass (`layers.trace_layer_specs`) on one zero sample.
  "path/x.onnx"      a graph read by `rigl_hw.onnx_workload` (numpy + onnx, no torch).

Excluded-layer rule for user models (the zoo's conventions, stated without knowing the model's
family): under the uniform distribution the first sparsifiable layer stays dense when it is a
convolution (the paper keeps a CNN's first layer dense under uniform); nothing is excluded under ER
and ERK. Numpy-only at import; torch is imported inside the functions that build a model.
"""

from __future__ import annotations

import importlib
import re
from functools import lru_cache
from typing import Any, Sequence

from .layers import LayerSpec

_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class UserModelError(ValueError):
    """A `module:factory` reference or an input shape that cannot be used; one line with the fix."""

    user_error = True


def is_user_model(name: Any) -> bool:
    """True for a `package.module:factory` reference."""
    return isinstance(name, str) and ":" in name and not name.lower().endswith(".onnx")


def is_onnx_model(name: Any) -> bool:
    """True for a path ending in .onnx."""
    return isinstance(name, str) and name.lower().endswith(".onnx")


def parse_input_shape(text: str | Sequence[int] | None) -> tuple[int, ...] | None:
    """'3,32,32' or '64' (or a sequence of ints) -> a tuple of positive ints; None stays None."""
    if text is None:
        return None
    if isinstance(text, str):
        parts = [p.strip() for p in text.replace("x", ",").split(",") if p.strip()]
        try:
            dims = tuple(int(p) for p in parts)
        except ValueError:
            raise UserModelError(f"--input-shape {text!r} is not a list of integers; write C,H,W (e.g. 3,32,32) "
                                 "or F (e.g. 64)") from None
    else:
        dims = tuple(int(v) for v in text)
    if not dims or len(dims) > 3 or min(dims) <= 0:
        raise UserModelError(f"--input-shape {text!r} must be 1 to 3 positive integers per sample (C,H,W or F), "
                             "without the batch dimension")
    return dims


def resolve_factory(ref: str):
    """The callable named by 'pkg.mod:factory' (attributes may be dotted: 'pkg.mod:Class.build')."""
    if not _REF.match(ref):
        raise UserModelError(f"--model {ref!r} is neither a zoo name nor package.module:factory "
                             "(e.g. mypkg.nets:make_net)")
    mod_name, _, attr = ref.partition(":")
    try:
        obj: Any = importlib.import_module(mod_name)
    except ImportError as e:
        raise UserModelError(f"--model {ref}: cannot import module {mod_name!r} ({e}); put its folder on "
                             "PYTHONPATH") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserModelError(f"--model {ref}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UserModelError(f"--model {ref}: {attr!r} is not callable; name a function returning an nn.Module")
    return obj


def build_user_model(ref: str):
    """Call the factory (no arguments) and check that it returned an nn.Module."""
    from torch import nn

    factory = resolve_factory(ref)
    try:
        model = factory()
    except Exception as e:  # noqa: BLE001 - the user's code failed; report it in one line
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserModelError(f"--model {ref}: the factory raised {type(e).__name__}: {msg}") from None
    if not isinstance(model, nn.Module):
        raise UserModelError(f"--model {ref}: the factory returned a {type(model).__name__}, not an nn.Module")
    return model


def build_run_model(name: str, width: float = 1.0, num_classes: int | None = None):
    """The nn.Module of a run: a zoo model (models.build_model) or a `module:factory` model (as given)."""
    if is_user_model(name):
        return build_user_model(name)
    from .models import build_model

    return build_model(name, width, num_classes)


def need_input_shape(ref: str, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    shape = parse_input_shape(input_shape)
    if shape is None:
        raise UserModelError(f"--model {ref} needs --input-shape (per sample: C,H,W for images or F for features)")
    return shape


@lru_cache(maxsize=32)
def _specs_cached(ref: str, shape: tuple[int, ...]) -> tuple[LayerSpec, ...]:
    import torch

    from .layers import trace_layer_specs

    torch.manual_seed(0)
    model = build_user_model(ref)
    try:
        specs = trace_layer_specs(model, torch.zeros((1, *shape), dtype=torch.float32))
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise UserModelError(f"--model {ref}: a forward pass on input shape {list(shape)} failed ({msg}); "
                             "check --input-shape") from None
    if not specs:
        raise UserModelError(f"--model {ref} has no Conv2d, Linear or GRU weight to sparsify")
    return tuple(specs)


def user_model_specs(ref: str, input_shape: Sequence[int] | None) -> list[LayerSpec]:
    """LayerSpecs of a `module:factory` model at per-sample input shape `input_shape`."""
    return list(_specs_cached(ref, need_input_shape(ref, input_shape)))


def user_default_excluded(distribution: str, specs: Sequence[LayerSpec]) -> tuple[str, ...]:
    """The stated rule (module docstring): uniform keeps a first conv layer dense."""
    if distribution == "uniform" and specs and specs[0].kind == "conv":
        return (specs[0].name,)
    return ()
