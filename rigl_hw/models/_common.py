"""Shared helpers for the model zoo: width validation, channel scaling, init."""

from __future__ import annotations

import math

from torch import nn


def check_width(width: float) -> float:
    """Return ``width`` as a float, raising ``ValueError`` unless it is finite and > 0."""
    try:
        w = float(width)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"width must be a positive number, got {width!r}") from exc
    if not math.isfinite(w) or w <= 0:
        raise ValueError(f"width must be a finite number > 0, got {width!r}")
    return w


def scale_channels(channels: int, width: float) -> int:
    """Scale a channel count by ``width``: round to nearest int, at least 1."""
    return max(1, int(round(channels * width)))


def init_conv_bn(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, relu) convs with zero bias, BN weight 1 / bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
