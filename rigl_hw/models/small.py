"""Tiny models for tests and quick experiments on sklearn's 8x8 digits."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ._common import check_width, scale_channels


class MLP(nn.Module):
    """Three-layer perceptron ``fc1 -> ReLU -> fc2 -> ReLU -> fc3`` on flat input."""

    def __init__(self, in_features: int = 64, hidden: Sequence[int] = (128, 64), num_classes: int = 10) -> None:
        super().__init__()
        if len(hidden) != 2:
            raise ValueError(f"hidden must have two sizes, got {tuple(hidden)}")
        self.fc1 = nn.Linear(in_features, int(hidden[0]))
        self.fc2 = nn.Linear(int(hidden[0]), int(hidden[1]))
        self.fc3 = nn.Linear(int(hidden[1]), num_classes)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class SmallCNN(nn.Module):
    """conv1 3x3 (16, pad 1) -> ReLU -> conv2 3x3 (32, stride 2) -> ReLU -> global pool -> fc."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> None:
        super().__init__()
        width = check_width(width)
        c1, c2 = scale_channels(16, width), scale_channels(32, width)
        self.conv1 = nn.Conv2d(in_channels, c1, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, kernel_size=3, stride=2, padding=1)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.conv2(self.relu(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def mlp(in_features: int = 64, hidden: Sequence[int] = (128, 64), num_classes: int = 10) -> MLP:
    """MLP for 64-dim (8x8 digits) input."""
    return MLP(in_features, hidden, num_classes)


def mlp_scaled(num_classes: int = 10, width: float = 1.0) -> MLP:
    """``mlp`` with hidden sizes scaled by ``width``."""
    width = check_width(width)
    return MLP(64, (scale_channels(128, width), scale_channels(64, width)), num_classes)


def small_cnn(num_classes: int = 10, in_channels: int = 1, width: float = 1.0) -> SmallCNN:
    """Small CNN for 1x8x8 digits images."""
    return SmallCNN(num_classes, in_channels, width)
