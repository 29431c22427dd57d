"""Layer tables of the model zoo, and the paper's per-model distribution conventions.

`model_specs` builds a zoo model on torch's meta device (no weights are allocated, no arithmetic is
done) and traces its LayerSpecs; torch is imported only inside it, and results are cached.
`default_excluded` says which layers stay dense and outside the budget for a model and distribution,
following the paper: Uniform keeps the first layer of a CNN dense; ERK includes it for ResNet-50 (the
authors' ERK runs sparsify conv1 and fc) but MobileNets keep their first layer dense under both
distributions (Sec. 4.2, "due to its low parameter count").
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from .distributions import LayerAllocation, allocate
from .layers import LayerSpec

MODEL_NAMES = ("resnet50", "mobilenet_v1", "mobilenet_v2", "wide_resnet_22_2", "char_gru", "mlp", "small_cnn")
_CNNS = ("resnet50", "mobilenet_v1", "mobilenet_v2", "wide_resnet_22_2", "small_cnn")
_FIRST_LAYER_ALWAYS_DENSE = ("mobilenet_v1", "mobilenet_v2")


MAX_WIDTH = 64.0          # width multipliers above this are refused (the paper goes up to ~2)
MAX_PARAMS = 2**36        # sparsifiable weights per model (~69e9; ResNet-50 has 25.5e6)


class ZooError(ValueError):
    """Unknown model name or bad width."""


def check_model_name(name: str) -> str:
    """A zoo name, a `package.module:factory` reference or a path ending in .onnx (rigl_hw.user_model)."""
    from .user_model import is_onnx_model, is_user_model

    if name not in MODEL_NAMES and not is_user_model(name) and not is_onnx_model(name):
        raise ZooError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}, "
                       "or pass package.module:factory or FILE.onnx")
    return name


@lru_cache(maxsize=64)
def _specs_cached(name: str, width: float, num_classes: int | None) -> tuple[LayerSpec, ...]:
    import torch

    from .layers import trace_layer_specs
    from .models import MODELS, build_model

    entry = MODELS[name]
    shape = (1, *entry.input_shape)
    with torch.device("meta"):
        model = build_model(name, width=width, num_classes=num_classes)
        if entry.input_dtype == "int64":
            x = torch.zeros(shape, dtype=torch.int64)
        else:
            x = torch.zeros(shape, dtype=torch.float32)
        return tuple(trace_layer_specs(model, x))


def model_specs(name: str, width: float = 1.0, num_classes: int | None = None,
                input_shape: Sequence[int] | None = None) -> list[LayerSpec]:
    """LayerSpecs of every sparsifiable weight of a model, in forward order.

    `name` is a zoo name, a `package.module:factory` reference (needs `input_shape`, per sample) or an
    ONNX file (`input_shape` fills the graph's symbolic non-batch dimensions); see rigl_hw.user_model.
    """
    from .user_model import is_onnx_model, is_user_model, user_model_specs

    check_model_name(name)
    if not width > 0:
        raise ZooError(f"width must be > 0, got {width}")
    if not width <= MAX_WIDTH:
        raise ZooError(f"width {width:g} exceeds the limit {MAX_WIDTH:g}; use a width multiplier of at most {MAX_WIDTH:g}")
    if num_classes is not None and not 0 < num_classes <= 10**6:
        raise ZooError(f"num_classes {num_classes} must be in [1, 1e6]")
    if is_user_model(name) or is_onnx_model(name):
        if width != 1.0:
            raise ZooError(f"--width scales zoo models only; {name} is used as given (drop --width)")
        if is_onnx_model(name):
            from .onnx_workload import onnx_workload

            specs = list(onnx_workload(name, input_shape).specs)
        else:
            specs = user_model_specs(name, input_shape)
    else:
        specs = list(_specs_cached(name, float(width), num_classes))
    total = sum(s.n_params for s in specs)
    if total > MAX_PARAMS:
        raise ZooError(f"{name} at width {width:g} has {total:.3g} weights, over the limit {MAX_PARAMS:.3g}; "
                       "use a smaller width")
    return specs


def default_excluded(model: str, distribution: str, specs: Sequence[LayerSpec]) -> tuple[str, ...]:
    """Layers kept dense and outside the budget by the paper's conventions (see module docstring);
    models outside the zoo follow `user_model.user_default_excluded`."""
    if model not in MODEL_NAMES:
        from .user_model import user_default_excluded

        return user_default_excluded(distribution, specs)
    if model not in _CNNS or not specs:
        return ()
    if distribution == "uniform" or model in _FIRST_LAYER_ALWAYS_DENSE:
        return (specs[0].name,)
    return ()


def model_allocation(model: str, distribution: str, sparsity: float, width: float = 1.0,
                     excluded: Sequence[str] | None = None, power: float = 1.0,
                     num_classes: int | None = None,
                     input_shape: Sequence[int] | None = None) -> tuple[list[LayerSpec], LayerAllocation]:
    """Specs and per-layer nonzeros of a model under a distribution (paper conventions by default)."""
    specs = model_specs(model, width, num_classes, input_shape)
    shapes = {s.name: s.weight_shape for s in specs}
    excl = default_excluded(model, distribution, specs) if excluded is None else tuple(excluded)
    return specs, allocate(shapes, sparsity, distribution, excluded=excl, power=power)
