"""Helpers for the evaluation tests: tiny datasets built in memory (imported as a module, like
``tests/kb/fk40.py``, because ``conftest`` names clash between test folders)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from airrec.data import Dataset, ItemTable, Split

REPO = Path(__file__).resolve().parents[2]


def make_split(name: str, histories: Sequence[Sequence[int]], targets: Sequence[int] | None) -> Split:
    """One split as CSR: sequence positions as timestamps, behaviour 0, targets for valid/test."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    offsets = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.array([i for h in histories for i in h], dtype=np.int64)
    positions = np.concatenate([np.arange(n) for n in lengths]) if len(histories) else np.zeros(0)
    has = targets is not None
    return Split(
        name=name, offsets=offsets, items=items, behaviours=np.zeros(items.size, np.int64),
        timestamps=positions.astype(np.float64), users=np.arange(len(histories)),
        sources=np.zeros(len(histories), np.uint8), source_names=(name,),
        targets=np.asarray(targets, dtype=np.int64) if has else None,
        target_behaviours=np.zeros(len(histories), dtype=np.int64) if has else None,
        target_timestamps=lengths.astype(np.float64) if has else None,
    )


def make_dataset(
    n_a: int,
    n_b: int,
    train: Sequence[Sequence[int]],
    valid: tuple[Sequence[Sequence[int]], Sequence[int]],
    test: tuple[Sequence[Sequence[int]], Sequence[int]],
    name: str = "tiny",
) -> Dataset:
    """Domain A = items ``0..n_a-1``, domain B = ``n_a..n_a+n_b-1`` (as LLMCDSR numbers them)."""
    n = n_a + n_b
    items = ItemTable(
        domains=np.array([0] * n_a + [1] * n_b, dtype=np.uint8),
        texts=tuple(f"item {i}" for i in range(n)),
        external_ids=tuple(f"x{i}" for i in range(n)),
    )
    return Dataset(
        name=name, items=items, domain_names=("Food", "Kitchen"), behaviour_names=("buy",),
        train=make_split("train", train, None), valid=make_split("valid", *valid), test=make_split("test", *test),
    )
