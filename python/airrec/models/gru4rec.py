"""GRU4Rec (Hidasi et al., 2016) as a next-item baseline: embedding -> GRU -> state · item.

One GRU layer over item embeddings (with dropout on the inputs); the state after the last event
is dotted with the candidate's item embedding (tied with the input embedding, which keeps the
parameter count at SASRec's and trains faster on sparse items). Trained by the same trainer,
on the same every-prefix examples and sampled in-domain negatives, as SASRec — the original
session-parallel mini-batches and TOP1/BPR losses are not reproduced.
"""

from __future__ import annotations

from torch import Tensor, nn

from airrec.models._seq import OFFSET, PAD
from airrec.models.base import SequenceModel

__all__ = ["GRU4Rec"]


class GRU4Rec(SequenceModel):
    """A one-layer GRU over ``n_items`` items."""

    def __init__(self, n_items: int, *, dim: int = 64, dropout: float = 0.2) -> None:
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.item_emb = nn.Embedding(n_items + OFFSET, dim, padding_idx=PAD)
        nn.init.normal_(self.item_emb.weight, std=dim**-0.5)
        self.item_emb.weight.data[PAD].zero_()
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(dim, dim, batch_first=True)

    def states(self, tokens: Tensor) -> Tensor:
        # Right padding: the GRU reaches the pads only after every valid position.
        out: Tensor = self.gru(self.dropout(self.item_emb(tokens)))[0]
        return out

    def item_vectors(self, items: Tensor) -> Tensor:
        out: Tensor = self.item_emb(items + OFFSET)
        return out
