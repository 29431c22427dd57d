"""MobileNet v2 (Sandler et al. 2018): inverted residual blocks with linear bottlenecks.

Channels are rounded with the usual divisible-by-8 rule; the last 1x1 conv has
``1280 * max(1, width)`` channels (also rounded).  Depthwise convs are grouped
convs; activations are ReLU6; the classifier is a single Linear layer.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_width, init_conv_bn

# (expansion t, output channels c, repeats n, first stride s)
SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round ``v`` to a multiple of ``divisor`` (>= divisor), never more than 10% below ``v``."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


class ConvBNReLU6(nn.Sequential):
    """Conv (no bias) -> BN -> ReLU6; ``conv``/``bn``/``act`` children."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU6()


class InvertedResidual(nn.Module):
    """[1x1 expand -> BN -> ReLU6] -> dw 3x3 -> BN -> ReLU6 -> 1x1 project -> BN (+ identity)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand_ratio: int) -> None:
        super().__init__()
        hidden = int(round(in_ch * expand_ratio))
        self.use_residual = stride == 1 and in_ch == out_ch
        self.expand = ConvBNReLU6(in_ch, hidden, kernel=1) if expand_ratio != 1 else None
        self.dw = ConvBNReLU6(hidden, hidden, kernel=3, stride=stride, groups=hidden)
        self.project = nn.Conv2d(hidden, out_ch, kernel_size=1, bias=False)
        self.project_bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.project_bn(self.project(self.dw(out)))
        return x + out if self.use_residual else out


class MobileNetV2(nn.Module):
    """MobileNet v2 classifier for 224x224 input (global average pool makes size flexible)."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width)
        in_ch = make_divisible(32 * width)
        self.last_channels = make_divisible(1280 * max(1.0, width))
        self.stem = ConvBNReLU6(3, in_ch, kernel=3, stride=2)
        blocks = []
        for t, c, n, s in SETTINGS:
            out_ch = make_divisible(c * width)
            for i in range(n):
                blocks.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t))
                in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        self.head = ConvBNReLU6(in_ch, self.last_channels, kernel=1)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(self.last_channels, num_classes)
        init_conv_bn(self)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def mobilenet_v2(num_classes: int = 1000, width: float = 1.0) -> MobileNetV2:
    """MobileNet v2; 3,504,872 parameters at 1000 classes and width 1.0."""
    return MobileNetV2(num_classes=num_classes, width=width)
