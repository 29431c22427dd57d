"""MobileNet v1 (Howard et al. 2017): a strided 3x3 stem then 13 depthwise-separable blocks.

Channel counts are ``int(c * width)`` (at least 1), so ``width=1.98`` gives the
RigL paper's Big-Sparse model.  Depthwise convs are grouped convs with
``groups == in_channels``.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_width, init_conv_bn

# (output channels, stride) of the 13 depthwise-separable blocks.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
    (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
)


def _channels(c: int, width: float) -> int:
    return max(1, int(c * width))


class DepthwiseSeparable(nn.Module):
    """dw 3x3 -> BN -> ReLU -> pw 1x1 -> BN -> ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(
            in_channels, in_channels, kernel_size=3, stride=stride, padding=1,
            groups=in_channels, bias=False,
        )
        self.dw_bn = nn.BatchNorm2d(in_channels)
        self.pw = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pw_bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.dw_bn(self.dw(x)))
        return self.relu(self.pw_bn(self.pw(x)))


class MobileNetV1(nn.Module):
    """MobileNet v1 classifier for 224x224 input (global average pool makes size flexible)."""

    def __init__(self, num_classes: int = 1000, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width)
        stem = _channels(32, width)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU()
        blocks = []
        in_channels = stem
        for c, s in BLOCKS:
            out_channels = _channels(c, width)
            blocks.append(DepthwiseSeparable(in_channels, out_channels, s))
            in_channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        init_conv_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def mobilenet_v1(num_classes: int = 1000, width: float = 1.0) -> MobileNetV1:
    """MobileNet v1; 4,231,976 parameters at 1000 classes and width 1.0."""
    return MobileNetV1(num_classes=num_classes, width=width)
