"""Character-level GRU language model (RigL paper, WikiText-103 bytes).

Bytes are embedded (256 x 128), run through one GRU layer (hidden 512), then a
readout MLP 512 -> 256 -> ReLU -> 128; logits are computed with the *tied*
embedding matrix: ``logits = h @ embedding.weight.T + output_bias``.
Input: LongTensor (batch, seq_len) of byte values; output (batch, seq_len, 256).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._common import check_width, scale_channels

#: Sequence length used for shape tracing / example inputs (the paper trains on 512).
DEFAULT_SEQ_LEN = 64
VOCAB_SIZE = 256


class CharGRU(nn.Module):
    """Embedding -> GRU -> readout1 -> ReLU -> readout2 -> tied output projection."""

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        embedding_dim: int = 128,
        hidden_size: int = 512,
        readout: Sequence[int] = (256, 128),
    ) -> None:
        super().__init__()
        readout = tuple(int(r) for r in readout)
        if len(readout) != 2:
            raise ValueError(f"readout must have two sizes, got {readout}")
        if readout[-1] != embedding_dim:
            raise ValueError(
                f"last readout size ({readout[-1]}) must equal embedding_dim ({embedding_dim}) "
                "because the output projection is tied to the embedding"
            )
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.gru = nn.GRU(embedding_dim, hidden_size, num_layers=1, batch_first=True)
        self.readout1 = nn.Linear(hidden_size, readout[0])
        self.readout2 = nn.Linear(readout[0], readout[1])
        self.output_bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, tokens: torch.Tensor, hidden: torch.Tensor | None = None) -> torch.Tensor:
        """Return logits (batch, seq_len, vocab_size) for int64 ``tokens`` (batch, seq_len)."""
        x = self.embedding(tokens.long())
        h, _ = self.gru(x, hidden)
        h = self.readout2(F.relu(self.readout1(h)))
        return F.linear(h, self.embedding.weight, self.output_bias)


def char_gru(
    vocab_size: int = VOCAB_SIZE,
    embedding_dim: int = 128,
    hidden_size: int = 512,
    readout: Sequence[int] = (256, 128),
) -> CharGRU:
    """RigL's character-level GRU LM with tied input/output embedding."""
    return CharGRU(vocab_size, embedding_dim, hidden_size, readout)


def char_gru_scaled(width: float = 1.0) -> CharGRU:
    """``char_gru`` with the GRU hidden size and first readout size scaled by ``width``.

    The embedding (and hence the last readout size, tied to it) stays at 128.
    """
    width = check_width(width)
    return CharGRU(
        hidden_size=scale_channels(512, width),
        readout=(scale_channels(256, width), 128),
    )
