"""A tiny two-domain dataset where the next item is predictable (imported as a module, like
``tests/evaluate/evaluate_fixtures.py``, because ``conftest`` names clash between folders)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from airrec.data import Dataset

# One builder of in-memory datasets for every test folder (see tests/evaluate).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evaluate_fixtures import make_dataset, make_split

N_A, N_B = 30, 30


def cyclic_sequence(start: int, length: int) -> list[int]:
    """Alternate domains, each cycling through its own items: a0, b0, a1, b1, ... (mod n).

    The next item is a deterministic function of the last in-domain item (and of the last
    item overall), so every baseline can learn it, while popularity is flat.
    """
    out = []
    for t in range(length):
        k = start + t // 2
        out.append(k % N_A if t % 2 == 0 else N_A + k % N_B)
    return out


def cyclic_dataset(n_train: int = 200, seed: int = 0) -> Dataset:
    """``n_train`` cyclic train sequences; valid/test lines are held-out cyclic prefixes whose
    target is the true next item (both domains)."""
    rng = np.random.default_rng(seed)
    train = [cyclic_sequence(int(rng.integers(0, 30)), int(rng.integers(4, 12))) for _ in range(n_train)]

    def lines(n: int) -> tuple[list[list[int]], list[int]]:
        hist, tgt = [], []
        for _ in range(n):
            seq = cyclic_sequence(int(rng.integers(0, 30)), int(rng.integers(3, 10)))
            hist.append(seq[:-1])
            tgt.append(seq[-1])
        return hist, tgt

    return make_dataset(N_A, N_B, train, lines(40), lines(40), name="cyclic")


def train_as_eval(dataset: Dataset, rng_seed: int = 1) -> Dataset:
    """The same dataset whose *test* lines are cut from its train sequences (history = all but
    the last event, target = the last): "HR@10 on its training users"."""
    s = dataset.train
    seqs = [s.items[s.offsets[u] : s.offsets[u + 1]].tolist() for u in range(len(s))]
    hist = [q[:-1] for q in seqs]
    tgt = [q[-1] for q in seqs]
    return Dataset(
        name=dataset.name + "-train-eval", items=dataset.items, domain_names=dataset.domain_names,
        behaviour_names=dataset.behaviour_names, train=dataset.train, valid=dataset.valid,
        test=make_split("test", hist, tgt),
    )
