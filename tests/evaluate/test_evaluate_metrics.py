"""Metric functions against hand-computed cases, and the tie rule."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airrec.errors import InputError
from airrec.evaluate.metrics import (
    MeanStd,
    aggregate_seeds,
    bootstrap_ci,
    hit_rate,
    metric_values,
    metrics_from_ranks,
    mrr,
    ndcg,
    per_domain_metrics,
    ranks_from_scores,
)


def test_evaluate_rank_counts_ties_against_the_target() -> None:
    # target 0.5; rivals 0.9 (above), 0.5 (tie: counts above), 0.1 (below) -> rank 3
    assert ranks_from_scores([0.5], [[0.9, 0.5, 0.1]]).tolist() == [3]
    # a constant scorer ranks last, never first
    assert ranks_from_scores([1.0, 1.0], np.ones((2, 999))).tolist() == [1000, 1000]
    # strictly best -> 1; strictly worst -> C + 1
    assert ranks_from_scores([2.0, -2.0], [[1.0, 0.0], [1.0, 0.0]]).tolist() == [1, 3]


def test_evaluate_rank_mask_leaves_columns_out() -> None:
    ranks = ranks_from_scores([0.5], [[0.9, 0.5, 0.1]], mask=[[True, False, True]])
    assert ranks.tolist() == [2]


def test_evaluate_rank_infinities_compare_and_nan_is_refused() -> None:
    assert ranks_from_scores([np.inf], [[np.inf, 1.0]]).tolist() == [2]
    assert ranks_from_scores([-np.inf], [[0.0, -np.inf]]).tolist() == [3]
    with pytest.raises(InputError, match="NaN"):
        ranks_from_scores([np.nan], [[0.0]])
    with pytest.raises(InputError, match="NaN"):
        ranks_from_scores([0.0], [[np.nan]])
    with pytest.raises(InputError):
        ranks_from_scores([0.0, 1.0], [[0.0]])


def test_evaluate_float32_scores_compare_exactly() -> None:
    t = np.float32(0.1)
    assert ranks_from_scores(np.array([t]), np.array([[t]], dtype=np.float32)).tolist() == [2]


def test_evaluate_per_line_metrics_by_hand() -> None:
    ranks = np.array([1, 2, 3, 10, 11])
    assert hit_rate(ranks, 1).tolist() == [1, 0, 0, 0, 0]
    assert hit_rate(ranks, 10).tolist() == [1, 1, 1, 1, 0]
    assert ndcg(ranks, 5) == pytest.approx([1.0, 1 / math.log2(3), 0.5, 0.0, 0.0])
    assert ndcg(ranks, 10) == pytest.approx([1.0, 0.6309298, 0.5, 1 / math.log2(11), 0.0])
    assert mrr(ranks) == pytest.approx([1.0, 0.5, 1 / 3, 0.1, 1 / 11])
    assert metric_values(ranks, "NDCG@1").tolist() == hit_rate(ranks, 1).tolist()


def test_evaluate_mean_metrics_by_hand() -> None:
    m = metrics_from_ranks([1, 2, 3, 10, 11])
    assert list(m) == ["HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR"]
    assert m["HR@1"] == pytest.approx(0.2)
    assert m["HR@5"] == pytest.approx(0.6)
    assert m["HR@10"] == pytest.approx(0.8)
    assert m["NDCG@5"] == pytest.approx((1 + 1 / math.log2(3) + 0.5) / 5)
    assert m["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 0.5 + 1 / math.log2(11)) / 5)
    assert m["MRR"] == pytest.approx((1 + 0.5 + 1 / 3 + 0.1 + 1 / 11) / 5)
    assert all(math.isnan(v) for v in metrics_from_ranks(np.zeros(0, np.int64)).values())


def test_evaluate_bad_metric_inputs() -> None:
    with pytest.raises(InputError):
        metric_values([1], "recall@5")
    with pytest.raises(InputError):
        hit_rate([0, 1], 5)  # ranks start at 1
    with pytest.raises(InputError):
        ndcg([1], 0)


def test_evaluate_per_domain_grouping() -> None:
    table = per_domain_metrics([1, 20, 2, 4], [0, 0, 1, 1], ["Food", "Kitchen"], ["HR@1", "MRR"])
    assert table["Food"] == pytest.approx({"HR@1": 0.5, "MRR": (1 + 1 / 20) / 2})
    assert table["Kitchen"] == pytest.approx({"HR@1": 0.0, "MRR": (0.5 + 0.25) / 2})
    assert table["all"]["HR@1"] == pytest.approx(0.25)


def test_evaluate_seed_aggregation() -> None:
    agg = aggregate_seeds([{"HR@10": 0.1}, {"HR@10": 0.2}, {"HR@10": 0.3}])
    assert agg["HR@10"].mean == pytest.approx(0.2)
    assert agg["HR@10"].std == pytest.approx(0.1)  # sample std, ddof=1
    assert str(agg["HR@10"]) == "0.2000 ± 0.1000"
    one = aggregate_seeds([{"MRR": 0.5}])["MRR"]
    assert (one.std, str(one), one.n) == (0.0, "0.5000", 1)
    with pytest.raises(InputError):
        aggregate_seeds([{"MRR": 0.5}, {"HR@1": 0.5}])
    assert MeanStd(0.2, 0.1, (0.1, 0.3)).to_dict()["n"] == 2


def test_evaluate_bootstrap_interval() -> None:
    assert bootstrap_ci(np.full(50, 0.3), n_boot=20) == pytest.approx((0.3, 0.3))
    values = (np.arange(300) % 4 == 0).astype(float)  # mean 0.25
    lo, hi = bootstrap_ci(values, n_boot=300, seed=1)
    assert lo < 0.25 < hi and hi - lo < 0.15


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=30), st.integers(0, 5))
def test_evaluate_rank_is_pessimistic_sorted_position(others: list[int], target: int) -> None:
    """Rank = position of the target when sorted descending with ties placed before it;
    it never depends on the candidates' order."""
    rank = int(ranks_from_scores([target], [others])[0])
    order = sorted(others + [target], reverse=True)
    assert rank == len(order) - order[::-1].index(target)
    assert int(ranks_from_scores([target], [others[::-1]])[0]) == rank
