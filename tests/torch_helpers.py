"""Small torch models shared by the masking and methods tests."""

import torch
from torch import nn


class TinyGRU(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(16, 8)
        self.gru = nn.GRU(8, 12, batch_first=True)
        self.fc = nn.Linear(12, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, _ = self.gru(self.emb(x))
        return self.fc(h)
