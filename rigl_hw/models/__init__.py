"""Model zoo for rigl-hw: ImageNet, CIFAR, character-LM and tiny test models.

``MODELS`` maps a name to a :class:`ModelEntry`; :func:`build_model` builds one
with a width multiplier (Small-Dense / Big-Sparse baselines) and
:func:`example_input` makes a random input batch of the right shape/dtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ._common import check_width, scale_channels
from .char_gru import DEFAULT_SEQ_LEN, VOCAB_SIZE, CharGRU, char_gru, char_gru_scaled
from .mobilenet_v1 import MobileNetV1, mobilenet_v1
from .mobilenet_v2 import MobileNetV2, make_divisible, mobilenet_v2
from .resnet import Bottleneck, ResNet, resnet50
from .small import MLP, SmallCNN, mlp, mlp_scaled, small_cnn
from .wide_resnet import PreActBlock, WideResNet, wide_resnet, wide_resnet_22_2


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: how to build it and what it eats."""

    name: str
    build: Callable[..., nn.Module]  # build(width=..., num_classes=...)
    input_shape: tuple[int, ...]  # per-sample, no batch dimension
    input_dtype: str  # "float32" or "int64"
    num_classes: int
    first_layer: str  # first sparsifiable layer (kept dense by "first layer dense")
    description: str


def _build_resnet50(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    return resnet50(num_classes=num_classes, width=width)


def _build_mobilenet_v1(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    return mobilenet_v1(num_classes=num_classes, width=width)


def _build_mobilenet_v2(width: float = 1.0, num_classes: int = 1000) -> nn.Module:
    return mobilenet_v2(num_classes=num_classes, width=width)


def _build_wrn_22_2(width: float = 1.0, num_classes: int = 10) -> nn.Module:
    return wide_resnet_22_2(num_classes=num_classes, width=width)


def _build_char_gru(width: float = 1.0, num_classes: int = VOCAB_SIZE) -> nn.Module:
    # num_classes is ignored: the byte vocabulary is fixed at 256.
    return char_gru_scaled(width=width)


def _build_mlp(width: float = 1.0, num_classes: int = 10) -> nn.Module:
    return mlp_scaled(num_classes=num_classes, width=width)


def _build_small_cnn(width: float = 1.0, num_classes: int = 10) -> nn.Module:
    return small_cnn(num_classes=num_classes, width=width)


MODELS: dict[str, ModelEntry] = {
    e.name: e
    for e in (
        ModelEntry("resnet50", _build_resnet50, (3, 224, 224), "float32", 1000, "conv1",
                   "ResNet-50 v1.5 for ImageNet (25.6M params)"),
        ModelEntry("mobilenet_v1", _build_mobilenet_v1, (3, 224, 224), "float32", 1000, "conv1",
                   "MobileNet v1 for ImageNet (4.2M params)"),
        ModelEntry("mobilenet_v2", _build_mobilenet_v2, (3, 224, 224), "float32", 1000, "stem.conv",
                   "MobileNet v2 for ImageNet (3.5M params)"),
        ModelEntry("wide_resnet_22_2", _build_wrn_22_2, (3, 32, 32), "float32", 10, "conv1",
                   "WRN-22-2 for CIFAR-10"),
        ModelEntry("char_gru", _build_char_gru, (DEFAULT_SEQ_LEN,), "int64", VOCAB_SIZE, "gru",
                   "Character-level GRU LM with tied embedding (bytes, vocab 256)"),
        ModelEntry("mlp", _build_mlp, (64,), "float32", 10, "fc1",
                   "64-128-64-10 MLP for 8x8 digits"),
        ModelEntry("small_cnn", _build_small_cnn, (1, 8, 8), "float32", 10, "conv1",
                   "Two-conv CNN for 1x8x8 digits"),
    )
}


def _entry(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(MODELS))
        raise ValueError(f"unknown model {name!r}; valid names: {valid}") from None


def build_model(name: str, width: float = 1.0, num_classes: int | None = None) -> nn.Module:
    """Build registered model ``name`` scaled by ``width`` (> 0)."""
    entry = _entry(name)
    width = check_width(width)
    if num_classes is None:
        num_classes = entry.num_classes
    elif int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return entry.build(width=width, num_classes=int(num_classes))


def example_input(name: str, batch: int = 2, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random input batch for model ``name`` (int64 bytes in [0, 256) for char_gru)."""
    entry = _entry(name)
    shape = (batch, *entry.input_shape)
    if entry.input_dtype == "int64":
        return torch.randint(0, VOCAB_SIZE, shape, generator=generator, dtype=torch.int64)
    return torch.randn(shape, generator=generator, dtype=torch.float32)


__all__ = [
    "MODELS", "ModelEntry", "build_model", "example_input",
    "resnet50", "ResNet", "Bottleneck",
    "mobilenet_v1", "MobileNetV1", "mobilenet_v2", "MobileNetV2", "make_divisible",
    "wide_resnet", "wide_resnet_22_2", "WideResNet", "PreActBlock",
    "char_gru", "char_gru_scaled", "CharGRU", "DEFAULT_SEQ_LEN", "VOCAB_SIZE",
    "mlp", "mlp_scaled", "MLP", "small_cnn", "SmallCNN",
    "scale_channels",
]
