"""What the torch baselines share: the model interface and the :class:`Scorer` wrapper.

A baseline is a :class:`SequenceModel`: tokens in (see :mod:`airrec.models._seq`), one state
per position out, and an item vector per item. The score of candidate ``c`` after a history is
``state(last position) · item_vector(c)``, so the trainer and the scorer are the same for
SASRec and GRU4Rec, and a candidate's score depends only on the history and that candidate (the
harness's contract) by construction.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from airrec.errors import InputError
from airrec.evaluate.protocol import HistoriesLike
from airrec.models._seq import OFFSET, history_tokens

__all__ = ["HistoryView", "SequenceModel", "SequentialScorer"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
#: ``mixed``: the whole cross-domain history; ``target-only``: only the events of the
#: candidate's domain (a single-domain model that never sees the other domain).
HistoryView = Literal["mixed", "target-only"]


class SequenceModel(nn.Module, ABC):
    """A next-item model over token sequences (``0`` pad, ``1`` BOS, item ``i`` = ``i + 2``)."""

    n_items: int
    dim: int

    @abstractmethod
    def states(self, tokens: Tensor) -> Tensor:
        """``[B, L]`` right-padded tokens -> ``[B, L, dim]``; position ``t`` sees only ``<= t``."""

    @abstractmethod
    def item_vectors(self, items: Tensor) -> Tensor:
        """Item ids (any shape) -> their output vectors (``[..., dim]``)."""

    def last_states(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        """The state at each row's last valid position: ``[B, dim]``."""
        out = self.states(tokens)
        rows = torch.arange(tokens.shape[0], device=tokens.device)
        last: Tensor = out[rows, lengths - 1]
        return last


class SequentialScorer:
    """A trained :class:`SequenceModel` behind the harness's ``score(histories, candidates)``.

    Scores in eval mode under ``torch.no_grad()``. With ``view="target-only"`` each candidate is
    scored from the history filtered to *its own* domain (one forward pass per domain present
    in the batch), so the per-candidate contract holds even if a row mixed domains.
    """

    def __init__(
        self,
        model: SequenceModel,
        item_domains: npt.ArrayLike,
        *,
        view: HistoryView = "mixed",
        max_len: int = 50,
        name: str | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        self.model = model
        self.item_domains = np.asarray(item_domains, dtype=np.int64)
        self.view: HistoryView = view
        self.max_len = max_len
        self.name = name or type(model).__name__
        self.device = torch.device(device)

    def _states(self, histories: HistoriesLike, keep: npt.NDArray[np.bool_] | None) -> Tensor:
        tokens, lengths = history_tokens(histories.offsets, histories.items, self.max_len, keep)
        return self.model.last_states(
            torch.from_numpy(tokens).to(self.device), torch.from_numpy(lengths).to(self.device)
        )

    def _dot(self, states: Tensor, cand: IntArray) -> Tensor:
        """``states[u] · item_vector(cand[u, c])`` for every ``(u, c)``."""
        vectors = self.model.item_vectors(torch.from_numpy(cand).to(self.device))
        return torch.einsum("ud,ucd->uc", states, vectors)

    def score(self, histories: HistoriesLike, candidates: IntArray) -> FloatArray:
        """Scores ``[U, C]`` (float32) of the candidates after each history."""
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[0] != np.asarray(histories.offsets).size - 1:
            raise InputError(f"candidates must be [users, C], got {cand.shape}")
        if cand.size and (int(cand.min()) < 0 or int(cand.max()) >= self.item_domains.size):
            raise InputError(f"candidate ids outside [0, {self.item_domains.size})")
        out = np.zeros(cand.shape, dtype=np.float32)
        if cand.size == 0:
            return out
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                if self.view == "mixed":
                    out[:] = self._dot(self._states(histories, None), cand).cpu().numpy()
                else:
                    cand_dom = self.item_domains[cand]
                    hist_dom = self.item_domains[np.asarray(histories.items, dtype=np.int64)]
                    for d in np.unique(cand_dom).tolist():
                        states = self._states(histories, hist_dom == d)
                        sel = cand_dom == d
                        scores = self._dot(states, np.where(sel, cand, 0)).cpu().numpy()
                        out[sel] = scores[sel]
        finally:
            self.model.train(was_training)
        return out


def token_domains(item_domains: npt.ArrayLike, n_domains: int) -> Tensor:
    """Per token, a domain index for a domain embedding: items their domain, PAD and BOS
    ``n_domains`` (a "no domain" row)."""
    dom = np.asarray(item_domains, dtype=np.int64)
    table = np.full(dom.size + OFFSET, n_domains, dtype=np.int64)
    table[OFFSET:] = dom
    return torch.from_numpy(table)
