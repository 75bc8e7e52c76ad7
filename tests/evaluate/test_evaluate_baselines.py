"""Popularity by hand on the tiny dataset; the engine wrapper on a small synthetic bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evaluate_fixtures import make_dataset

from airrec.data import Dataset
from airrec.engine import Engine, Histories
from airrec.errors import InputError
from airrec.evaluate.baselines import EngineScorer, PopularityScorer, RandomScorer
from airrec.evaluate.negatives import sample_negatives
from airrec.evaluate.protocol import evaluate
from airrec.synthetic import make_synthetic_bundle


def test_evaluate_popularity_counts(tiny: Dataset) -> None:
    # train: 0 x3, 1, 5 x2, 6, 7; valid histories: 0, 5, 6; test histories: 5, 6, 1, 0, 0, 1, 2, 5, 7
    pop = PopularityScorer(tiny)
    assert pop.counts.tolist() == [6, 3, 1, 0, 0, 5, 3, 2, 0, 0, 0, 0]
    train_only = PopularityScorer(tiny, include_eval_histories=False)
    assert train_only.counts.tolist() == [3, 1, 0, 0, 0, 2, 1, 1, 0, 0, 0, 0]
    assert train_only.name == "popularity (train only)"
    h = Histories.from_lists([[1], []])
    assert pop.score(h, np.array([[0, 2], [5, 11]])).tolist() == [[6.0, 1.0], [5.0, 0.0]]
    with pytest.raises(InputError):
        pop.score(h, np.array([[0, 12], [0, 0]]))


def test_evaluate_popularity_ranks_by_hand(tiny: Dataset) -> None:
    # targets 2 (count 1: below 0 and 1), 3 (count 0: ties with 4, loses to all), 8 and 9
    # (count 0 in Kitchen 5..11: six rivals >= 0 each)
    full = evaluate(PopularityScorer(tiny), tiny, "test", full_ranking=True)
    assert full.ranks.tolist() == [3, 5, 7, 7]
    assert full.tied.tolist() == [False, True, True, True]
    m = full.metrics()
    assert m["Food"]["MRR"] == pytest.approx((1 / 3 + 1 / 5) / 2)
    assert m["Food"]["HR@5"] == 1.0 and m["Kitchen"]["HR@5"] == 0.0
    train_only = evaluate(PopularityScorer(tiny, include_eval_histories=False), tiny, "test", full_ranking=True)
    assert train_only.ranks.tolist()[0] == 5  # item 2 never occurs in train
    sampled = evaluate(PopularityScorer(tiny), tiny, "test", sample_negatives(tiny, "test", 4, seed=0))
    assert sampled.ranks.tolist() == [3, 5, 5, 5]  # Food: the whole pool; Kitchen: all 4 rivals score >= 0


def test_evaluate_random_scorer_is_seeded() -> None:
    h = Histories.from_lists([[1]])
    a = RandomScorer(3).score(h, np.zeros((1, 5), np.int64))
    assert a.shape == (1, 5) and np.array_equal(a, RandomScorer(3).score(h, np.zeros((1, 5), np.int64)))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return make_synthetic_bundle(tmp_path / "b", n_nodes=300, n_items=120, dim=16, n_heads=2, depth=3,
                                 paths_per_item=2, seed=1)


def test_evaluate_engine_scorer(bundle: Path) -> None:
    engine = Engine.load(bundle)
    ds = make_dataset(60, 60, train=[[0, 70]], valid=([[1]], [2]),
                      test=([[1, 2, 65], [70, 71], [], [3]], [4, 80, 90, 5]))
    scorer = EngineScorer(engine, n_threads=1)
    scorer.check_dataset(ds)
    assert "zero-shot" in scorer.name
    h = Histories.from_lists([[1, 2, 65], []])
    got = scorer.score(h, np.array([[4, 7], [90, 91]]))
    assert np.allclose(got[0], engine.score([1, 2, 65], [4, 7]))
    assert np.allclose(got[1], engine.score([], [90, 91]))
    sampled = evaluate(scorer, ds, "test", sample_negatives(ds, "test", 20, seed=0))
    assert sampled.ranks.min() >= 1 and sampled.ranks.max() <= 21
    full = evaluate(scorer, ds, "test", full_ranking=True, max_scores=32)
    assert np.array_equal(full.ranks, evaluate(scorer, ds, "test", full_ranking=True).ranks)
    with pytest.raises(InputError, match="120 items"):
        EngineScorer(engine).check_dataset(make_dataset(60, 61, train=[[0]], valid=([[0]], [1]), test=([[0]], [1])))
