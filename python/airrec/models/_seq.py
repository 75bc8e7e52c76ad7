"""Turning CSR histories into the padded token matrices the torch baselines read.

Token ids: ``0`` is padding, ``1`` is BOS (beginning of sequence), item ``i`` is ``i + 2``.
Every input starts with BOS so that an empty history (a cold user, or a target-only model
whose history has no event of the candidate's domain) still has a position to read a state
from; in training the BOS position predicts a sequence's first item, which is exactly that
cold case.

Sequences are **right**-padded. With causal attention (SASRec) or a recurrence (GRU4Rec) a
position never sees the positions after it, so padding on the right cannot leak into any valid
state and no key-padding mask is needed; the state of a sequence is read at ``length - 1``.
Inputs longer than ``max_len`` keep their last ``max_len`` tokens (BOS then falls off, as in
SASRec's training windows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["BOS", "OFFSET", "PAD", "TrainingWindows", "history_tokens", "training_windows"]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

PAD = 0
BOS = 1
#: Item ``i`` is token ``i + OFFSET``.
OFFSET = 2


def _sequences(offsets: IntArray, items: IntArray, keep: BoolArray | None) -> list[IntArray]:
    """Per line, its items (optionally only those where ``keep`` is true)."""
    out = []
    for u in range(offsets.size - 1):
        seq = items[offsets[u] : offsets[u + 1]]
        if keep is not None:
            seq = seq[keep[offsets[u] : offsets[u + 1]]]
        out.append(seq)
    return out


def history_tokens(
    offsets: IntArray, items: IntArray, max_len: int, keep: BoolArray | None = None
) -> tuple[IntArray, IntArray]:
    """Inputs for scoring: per line the last ``max_len`` tokens of ``[BOS] + history``.

    ``keep`` (per event) filters the history first, e.g. to the candidate domain's events.
    Returns right-padded tokens ``[U, L]`` (``L`` = the longest row, at most ``max_len``) and
    each row's length (always >= 1 thanks to BOS).
    """
    seqs = _sequences(np.asarray(offsets, np.int64), np.asarray(items, np.int64), keep)
    lengths = np.array([min(s.size + 1, max_len) for s in seqs], dtype=np.int64)
    tokens = np.zeros((len(seqs), int(lengths.max(initial=1))), dtype=np.int64)
    for u, seq in enumerate(seqs):
        row = np.concatenate([[BOS], seq + OFFSET])[-max_len:]
        tokens[u, : row.size] = row
    return tokens, lengths


@dataclass(frozen=True)
class TrainingWindows:
    """Every prefix of every training sequence, as SASRec trains: one row per sequence.

    ``inputs[n, t]`` (a token) predicts ``targets[n, t]`` (an item id, ``-1`` on padding), so a
    row of length ``k`` is ``k`` next-item examples sharing one forward pass.
    """

    inputs: IntArray  #: ``[N, max_len]`` tokens, right-padded with PAD
    targets: IntArray  #: ``[N, max_len]`` item ids, ``-1`` where padded
    lengths: IntArray  #: ``[N]`` valid positions per row

    def __len__(self) -> int:
        return int(self.lengths.size)


def training_windows(sequences: list[IntArray], max_len: int) -> TrainingWindows:
    """Windows of ``sequences`` (each of length >= 1): input ``[BOS] + s[:-1]``, target ``s``,
    both cut to their last ``max_len`` positions."""
    seqs = [s for s in sequences if s.size > 0]
    n = len(seqs)
    inputs = np.zeros((n, max_len), dtype=np.int64)
    targets = np.full((n, max_len), -1, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    for r, s in enumerate(seqs):
        inp = np.concatenate([[BOS], s[:-1] + OFFSET])[-max_len:]
        tgt = s[-max_len:]
        inputs[r, : inp.size] = inp
        targets[r, : tgt.size] = tgt
        lengths[r] = tgt.size
    return TrainingWindows(inputs, targets, lengths)
