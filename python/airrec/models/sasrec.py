"""SASRec (Kang & McAuley, 2018): self-attentive sequential recommendation.

Item embedding + learned positional embedding (+ optionally a learned domain embedding, for
the mixed-domain variant), ``n_blocks`` pre-norm transformer blocks with causal attention and
dropout, a final layer norm; the score is the last position's state dotted with the candidate's
item embedding (input and output embeddings are tied, as in the paper).

The two baselines of DESIGN.md §5 are this one network with two history views (see
:class:`~airrec.models.base.SequentialScorer`): ``target-only`` trains and scores on each
sequence's sub-sequence of one domain; ``mixed`` on the whole cross-domain sequence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from airrec.errors import InputError
from airrec.models._seq import OFFSET, PAD
from airrec.models.base import SequenceModel, token_domains

__all__ = ["SASRec"]


class SASRec(SequenceModel):
    """SASRec over ``n_items`` items; ``item_domains`` (per item) switches the domain embedding on."""

    def __init__(
        self,
        n_items: int,
        *,
        dim: int = 64,
        n_blocks: int = 2,
        n_heads: int = 1,
        max_len: int = 50,
        dropout: float = 0.2,
        item_domains: npt.ArrayLike | None = None,
        n_domains: int = 0,
        item_text: npt.ArrayLike | None = None,
        item_nodes: npt.ArrayLike | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.dim = dim
        self.max_len = max_len
        self.item_emb = nn.Embedding(n_items + OFFSET, dim, padding_idx=PAD)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.dom_emb: nn.Embedding | None = None
        if item_domains is not None:
            self.register_buffer("token_domain", token_domains(item_domains, n_domains))
            self.dom_emb = nn.Embedding(n_domains + 1, dim)
        layer = nn.TransformerEncoderLayer(
            dim, n_heads, dim_feedforward=dim, dropout=dropout, batch_first=True, norm_first=True
        )
        self.text_proj: nn.Linear | None = None
        if item_text is not None:
            # Frozen text vectors (e.g. the bundle's item vectors) through a learned projection,
            # added to the ID embedding: items that are rare in training still get a meaningful
            # representation. PAD and BOS have no text (zero rows).
            text = torch.as_tensor(np.array(item_text, dtype=np.float32))
            if text.ndim != 2 or text.shape[0] != n_items:
                raise InputError(f"item_text must be [{n_items}, d], got {tuple(text.shape)}")
            self.register_buffer("token_text", torch.cat([text.new_zeros(OFFSET, text.shape[1]), text]), persistent=False)
            self.text_proj = nn.Linear(text.shape[1], dim, bias=False)
        self.node_emb: nn.Embedding | None = None
        if item_nodes is not None:
            # Item-side intents: each item's intent-trie nodes (leaves and their ancestors,
            # ``-1`` padded, ``[n_items, K]``) get learned embeddings whose mean is added to the
            # ID embedding. Items that share intent nodes share parameters, across domains: a
            # Kitchen item and a Food item under ``baking`` move together, and an item rare in
            # training borrows from its intents.
            nodes = torch.as_tensor(np.array(item_nodes, dtype=np.int64))
            if nodes.ndim != 2 or nodes.shape[0] != n_items:
                raise InputError(f"item_nodes must be [{n_items}, K], got {tuple(nodes.shape)}")
            n_nodes = int(nodes.max()) + 1 if nodes.numel() else 0
            pad_row = torch.full((OFFSET, nodes.shape[1]), -1, dtype=torch.int64)
            table = torch.cat([pad_row, nodes])
            self.register_buffer("token_node_count", (table >= 0).sum(-1, keepdim=True).clamp_min(1), persistent=False)
            self.register_buffer("token_nodes", torch.where(table >= 0, table, n_nodes), persistent=False)
            self.node_emb = nn.Embedding(n_nodes + 1, dim, padding_idx=n_nodes)
        self.blocks = nn.TransformerEncoder(layer, n_blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        # Small embeddings: initial scores near 0, so sampled-softmax starts near uniform.
        for emb in (self.item_emb, self.pos_emb, self.dom_emb, self.node_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=dim**-0.5)
        with torch.no_grad():
            self.item_emb.weight[PAD].zero_()
            if self.node_emb is not None:
                self.node_emb.weight[-1].zero_()

    def _embed(self, tokens: Tensor) -> Tensor:
        e: Tensor = self.item_emb(tokens)
        if self.text_proj is not None:
            e = e + self.text_proj(self.get_buffer("token_text")[tokens])
        if self.node_emb is not None:
            nodes = self.get_buffer("token_nodes")[tokens]
            e = e + self.node_emb(nodes).sum(-2) / self.get_buffer("token_node_count")[tokens]
        return e

    def states(self, tokens: Tensor) -> Tensor:
        length = tokens.shape[1]
        positions = torch.arange(length, device=tokens.device)
        x = self._embed(tokens) + self.pos_emb(positions)[None]
        if self.dom_emb is not None:
            table = self.get_buffer("token_domain")
            x = x + self.dom_emb(table[tokens])
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=tokens.device)
        h = self.blocks(self.dropout(x), mask=causal, is_causal=True)
        out: Tensor = self.norm(h)
        return out

    def item_vectors(self, items: Tensor) -> Tensor:
        return self._embed(items + OFFSET)
