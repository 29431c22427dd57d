"""Wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016) for 32x32 CIFAR input.

3x3 conv stem (16 channels), three groups of (d-4)/6 pre-activation basic
blocks with widths 16k, 32k, 64k (strides 1, 2, 2), a 1x1 conv shortcut when
the shape changes, final BN-ReLU, global average pool, linear classifier.
``width`` additionally scales every channel count.
"""

from __future__ import annotations

import torch
from torch import nn

from ._common import check_width, init_conv_bn, scale_channels


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3 with identity or 1x1-conv shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, stride=1, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        # With a projection shortcut the pre-activated input feeds both paths.
        identity = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity


class WideResNet(nn.Module):
    """WRN-depth-widen_factor; ``depth`` must satisfy (depth - 4) % 6 == 0."""

    def __init__(self, depth: int = 22, widen_factor: int = 2, num_classes: int = 10, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width)
        if depth < 10 or (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4 with n >= 1, got {depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
        n = (depth - 4) // 6
        stem = scale_channels(16, width)
        self.conv1 = nn.Conv2d(3, stem, kernel_size=3, stride=1, padding=1, bias=False)
        in_ch = stem
        groups = []
        for base, stride in ((16, 1), (32, 2), (64, 2)):
            out_ch = scale_channels(base * widen_factor, width)
            blocks = []
            for i in range(n):
                blocks.append(PreActBlock(in_ch, out_ch, stride if i == 0 else 1))
                in_ch = out_ch
            groups.append(nn.Sequential(*blocks))
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_ch, num_classes)
        init_conv_bn(self)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.group3(self.group2(self.group1(self.conv1(x))))
        x = self.relu(self.bn(x))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def wide_resnet(depth: int, widen_factor: int, num_classes: int = 10, width: float = 1.0) -> WideResNet:
    """General WRN-depth-widen_factor for CIFAR-sized input."""
    return WideResNet(depth=depth, widen_factor=widen_factor, num_classes=num_classes, width=width)


def wide_resnet_22_2(num_classes: int = 10, width: float = 1.0) -> WideResNet:
    """WRN-22-2 (the RigL paper's CIFAR-10 model)."""
    return WideResNet(22, 2, num_classes=num_classes, width=width)
