"""The torch baselines learn a predictable sequence, reproducibly, and honour the Scorer contract."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from airrec.data import Dataset
from airrec.engine import Histories
from airrec.evaluate import PopularityScorer, Scorer, evaluate, get_negatives
from airrec.models import MODEL_KINDS, TrainConfig, train_model
from airrec.models._seq import training_windows
from airrec.models.train import batch_order, train_sequences

#: Small enough for a few seconds per model on one thread, enough to learn the cycles.
FAST = TrainConfig(dim=32, epochs=6, batch_size=16, lr=5e-3, dropout=0.0, n_negatives=20,
                   eval_negatives=20, patience=6, progress=False)
_TRAINED: dict[str, object] = {}


def _trained(kind: str, dataset: Dataset) -> object:
    if kind not in _TRAINED:
        _TRAINED[kind] = train_model(kind, dataset, FAST)
    return _TRAINED[kind]


def _hr10(scorer: Scorer, dataset: Dataset) -> float:
    neg = get_negatives(dataset, "test", 20, 0)
    return evaluate(scorer, dataset, "test", neg).metrics()["all"]["HR@10"]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_learns_cycles_and_beats_popularity(kind: str, cyclic: Dataset) -> None:
    result = _trained(kind, cyclic)
    pop = _hr10(PopularityScorer(cyclic), cyclic)
    model = _hr10(result.scorer, cyclic)  # type: ignore[attr-defined]
    assert model > pop + 0.2, (model, pop)
    assert model > 0.8
    assert result.best_epoch >= 1 and result.epochs  # type: ignore[attr-defined]
    assert all(e.train_seconds > 0 for e in result.epochs)  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["sasrec-mixed", "gru4rec"])
def test_same_seed_same_scores(kind: str, cyclic: Dataset) -> None:
    cfg = dataclasses.replace(FAST, epochs=2)
    a = train_model(kind, cyclic, cfg).scorer
    b = train_model(kind, cyclic, cfg).scorer
    c = train_model(kind, cyclic, dataclasses.replace(cfg, seed=1)).scorer
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items, cyclic.test.behaviours, cyclic.test.timestamps)
    cand = np.tile(np.arange(10, dtype=np.int64), (len(cyclic.test), 1))
    assert np.array_equal(a.score(hist, cand), b.score(hist, cand))
    assert not np.array_equal(a.score(hist, cand), c.score(hist, cand))


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_scorer_contract(kind: str, cyclic: Dataset) -> None:
    scorer = _trained(kind, cyclic).scorer  # type: ignore[attr-defined]
    assert isinstance(scorer, Scorer) and isinstance(scorer.name, str)
    hist = Histories.from_arrays(
        np.array([0, 0, 3, 4]), np.array([0, 30, 1, 31]), np.zeros(4, np.int64), np.arange(4.0)
    )  # an empty history, a mixed one, a single Kitchen event
    cand = np.array([[0, 1, 2, 3], [30, 31, 32, 33], [40, 41, 2, 3]], dtype=np.int64)  # last row mixes domains
    scores = scorer.score(hist, cand)
    assert scores.shape == cand.shape and scores.dtype == np.float32 and np.isfinite(scores).all()
    # A candidate's score depends only on the history and itself, not on its row-mates.
    for col in range(cand.shape[1]):
        alone = scorer.score(hist, cand[:, col : col + 1])
        np.testing.assert_allclose(alone[:, 0], scores[:, col], rtol=1e-5, atol=1e-6)
    assert scorer.score(hist, np.zeros((3, 0), dtype=np.int64)).shape == (3, 0)


def test_target_only_ignores_other_domain(cyclic: Dataset) -> None:
    scorer = _trained("sasrec-target", cyclic).scorer  # type: ignore[attr-defined]
    only_food = Histories.from_arrays(np.array([0, 2]), np.array([3, 4]), np.zeros(2, np.int64), np.arange(2.0))
    with_kitchen = Histories.from_arrays(
        np.array([0, 4]), np.array([3, 33, 4, 34]), np.zeros(4, np.int64), np.arange(4.0)
    )
    cand = np.arange(30, dtype=np.int64)[None, :]
    np.testing.assert_allclose(scorer.score(only_food, cand), scorer.score(with_kitchen, cand), rtol=1e-5, atol=1e-6)


def test_windows_and_batches(cyclic: Dataset) -> None:
    seqs = [np.arange(60, dtype=np.int64), np.array([5], dtype=np.int64)]
    w = training_windows(seqs, 50)
    assert w.lengths.tolist() == [50, 1]
    assert w.inputs[0, 0] == 9 + 2 and w.targets[0, -1] == 59  # last 50 positions, item i = token i+2
    assert w.inputs[1, 0] == 1 and w.targets[1, 0] == 5 and w.targets[1, 1] == -1  # BOS predicts the first
    target_seqs = train_sequences(cyclic, "target-only")
    assert all(len(set(cyclic.items.domains[s].tolist())) <= 1 for s in target_seqs)
    windows = training_windows(train_sequences(cyclic, "mixed"), 50)
    order = batch_order(windows, 16, np.random.default_rng(0))
    assert sorted(np.concatenate(order).tolist()) == list(range(len(windows)))


def test_checkpoint_file(cyclic: Dataset, tmp_path: Path) -> None:
    cfg = dataclasses.replace(FAST, epochs=1, checkpoint=tmp_path / "m.pt")
    result = train_model("gru4rec", cyclic, cfg)
    state = torch.load(tmp_path / "m.pt")
    for key, value in result.scorer.model.state_dict().items():
        assert torch.equal(state[key], value)
