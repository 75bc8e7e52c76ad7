"""evaluate(): oracle and random scorers, ties, chunked full ranking, slices, bad scorers."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from evaluate_fixtures import make_dataset

from airrec.data import Dataset, SplitName
from airrec.errors import DataError, InputError
from airrec.evaluate.baselines import RandomScorer
from airrec.evaluate.negatives import sample_negatives
from airrec.evaluate.protocol import (
    HistoriesLike,
    Scorer,
    bin_labels,
    evaluate,
    histories_of,
    in_domain_counts,
)

IntArray = npt.NDArray[np.int64]


class OracleScorer:
    """Knows each history's target (histories must be distinct): 1 for it, 0 for the rest."""

    name = "oracle"

    def __init__(self, ds: Dataset, split: SplitName = "test") -> None:
        s = ds.split(split)
        assert s.targets is not None
        self.answer = {tuple(s.history(i).items.tolist()): int(s.targets[i]) for i in range(len(s))}
        assert len(self.answer) == len(s), "histories must be distinct"

    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[np.float32]:
        off = histories.offsets
        want = [self.answer[tuple(histories.items[off[u] : off[u + 1]].tolist())] for u in range(len(off) - 1)]
        scores: npt.NDArray[np.float32] = (candidates == np.asarray(want)[:, None]).astype(np.float32)
        return scores


class HashScorer:
    """Deterministic, history-dependent, with many ties (scores take 50 values)."""

    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[np.float64]:
        n = np.diff(histories.offsets)[:, None]
        scores: npt.NDArray[np.float64] = ((candidates * 2654435761 + n * 97) % 50).astype(np.float64)
        return scores


class ConstantScorer:
    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[np.float32]:
        return np.zeros(candidates.shape, np.float32)


class BadScorer:
    def __init__(self, result: Any) -> None:
        self.result = result

    def score(self, histories: HistoriesLike, candidates: IntArray) -> Any:
        return self.result(candidates)


@pytest.fixture
def distinct() -> Dataset:
    """1,200 Food + 1,500 Kitchen items, 400 test lines with distinct histories."""
    rng = np.random.default_rng(3)
    hist = [[i, 2699 - i, i % 7] for i in range(400)]
    targets = np.where(np.arange(400) % 3 == 0, rng.integers(0, 1200, 400), rng.integers(1200, 2700, 400))
    return make_dataset(1200, 1500, train=[[0]], valid=([[0]], [1]), test=(hist, targets.tolist()))


def test_evaluate_scorers_satisfy_the_protocol() -> None:
    assert isinstance(HashScorer(), Scorer) and isinstance(RandomScorer(), Scorer)


def test_evaluate_oracle_ranks_first(distinct: Dataset) -> None:
    neg = sample_negatives(distinct, "test", 999, seed=0)
    for result in (
        evaluate(OracleScorer(distinct), distinct, "test", neg, batch_users=64, seed=0),
        evaluate(OracleScorer(distinct), distinct, "test", full_ranking=True, batch_users=64, max_scores=5000),
    ):
        assert result.model == "oracle"
        for domain in ("Food", "Kitchen", "all"):
            assert result.metrics()[domain]["HR@1"] == 1.0
            assert result.metrics()[domain]["MRR"] == 1.0
        assert not result.tied.any()
    assert result.line_counts() == {"Food": 134, "Kitchen": 266, "all": 400}


def test_evaluate_random_is_chance(wide: Dataset) -> None:
    neg = sample_negatives(wide, "test", 999, seed=0)
    result = evaluate(RandomScorer(seed=1), wide, "test", neg)
    assert abs(result.metrics()["all"]["HR@10"] - 10 / 1000) < 0.012  # std of the mean ~0.003
    assert 100 < result.ranks.mean() < 900  # expected 500.5
    neg99 = sample_negatives(wide, "test", 99, seed=0)
    assert abs(evaluate(RandomScorer(seed=2), wide, "test", neg99).metrics()["all"]["HR@10"] - 0.1) < 0.04


def test_evaluate_constant_scorer_ranks_last(tiny: Dataset) -> None:
    neg = sample_negatives(tiny, "test", 3, seed=0)
    sampled = evaluate(ConstantScorer(), tiny, "test", neg)
    assert sampled.ranks.tolist() == [4, 4, 4, 4] and sampled.tied.all()
    full = evaluate(ConstantScorer(), tiny, "test", full_ranking=True)
    assert full.ranks.tolist() == [5, 5, 7, 7]  # pool sizes: Food 5, Kitchen 7
    assert full.metrics()["all"]["HR@1"] == 0.0


def test_evaluate_full_ranking_matches_brute_force_for_any_chunking(wide: Dataset) -> None:
    s = wide.test
    assert s.targets is not None
    scorer = HashScorer()
    expected = []
    for i in range(len(s)):
        pool = wide.items_of_domain(int(wide.items.domains[s.targets[i]]))
        n = len(s.history(i).items)
        sc = (pool * 2654435761 + n * 97) % 50
        t = (int(s.targets[i]) * 2654435761 + n * 97) % 50
        expected.append(int(((sc >= t) & (pool != s.targets[i])).sum()) + 1)
    for batch_users, max_scores in ((256, 1 << 22), (7, 50), (1, 2)):
        if max_scores == 2:  # one candidate per call: slow in Python, so a few lines only
            small = make_dataset(3, 4, train=[[0]], valid=([[0]], [1]), test=([[1], [2, 5]], [0, 6]))
            r = evaluate(scorer, small, "test", full_ranking=True, batch_users=batch_users, max_scores=max_scores)
            assert r.ranks.tolist() == evaluate(scorer, small, "test", full_ranking=True).ranks.tolist()
            continue
        r = evaluate(scorer, wide, "test", full_ranking=True, batch_users=batch_users, max_scores=max_scores)
        assert r.ranks.tolist() == expected


def test_evaluate_sampled_does_not_depend_on_batching(wide: Dataset) -> None:
    neg = sample_negatives(wide, "test", 50, seed=4)
    a = evaluate(HashScorer(), wide, "test", neg, batch_users=1000)
    b = evaluate(HashScorer(), wide, "test", neg, batch_users=13)
    assert np.array_equal(a.ranks, b.ranks) and np.array_equal(a.tied, b.tied)
    assert a.tied.any()  # 50 score values: ties happen, and are counted against the target


def test_evaluate_histories_of_gathers_lines(tiny: Dataset) -> None:
    h = histories_of(tiny.test, np.array([2, 0]))
    assert h.offsets.tolist() == [0, 4, 7]
    assert h.items.tolist() == [0, 1, 2, 5, 5, 6, 1]
    assert h.timestamps.tolist() == [0, 1, 2, 3, 0, 1, 2]


def test_evaluate_slices(wide: Dataset) -> None:
    s = wide.test
    assert s.targets is not None
    dom = wide.items.domains
    loop = [int((dom[s.history(i).items] == dom[s.targets[i]]).sum()) for i in range(len(s))]
    assert in_domain_counts(wide, "test").tolist() == loop
    index, labels = bin_labels([0, 1, 2, 3, 5, 6, 100], (0, 2, 5))
    assert labels == ("0", "1-2", "3-5", "6+")
    assert index.tolist() == [0, 1, 1, 2, 2, 3, 3]
    assert bin_labels([], (5, 10, 20))[1] == ("0-5", "6-10", "11-20", "21+")
    with pytest.raises(InputError):
        bin_labels([1], (5, 5))
    result = evaluate(RandomScorer(), wide, "test", sample_negatives(wide, "test", 20, seed=0))
    slices = result.slices()
    for name in ("in_domain_events", "history_length"):
        assert sum(b["all"]["n"] for b in slices[name].values()) == len(s)
        assert sum(b["Food"]["n"] for b in slices[name].values()) == result.line_counts()["Food"]
    assert result.to_dict()["protocol"] == "sampled" and result.to_dict()["n_negatives"] == 20


def test_evaluate_refuses_bad_input(tiny: Dataset) -> None:
    neg = sample_negatives(tiny, "test", 3, seed=0)
    with pytest.raises(InputError, match="shape"):
        evaluate(BadScorer(lambda c: np.zeros((c.shape[0], 1))), tiny, "test", neg)
    with pytest.raises(InputError, match="NaN"):
        evaluate(BadScorer(lambda c: np.full(c.shape, np.nan)), tiny, "test", neg)
    with pytest.raises(InputError, match="needs negatives"):
        evaluate(ConstantScorer(), tiny, "test")
    with pytest.raises(DataError):
        evaluate(ConstantScorer(), tiny, "valid", neg)  # negatives of another split
    with pytest.raises(InputError, match="no targets"):
        evaluate(ConstantScorer(), tiny, "train", full_ranking=True)
    ints = evaluate(BadScorer(lambda c: c * 0), tiny, "test", neg)  # integer scores are fine
    assert ints.ranks.tolist() == [4, 4, 4, 4]
