"""Offline evaluation: the LLMCDSR/C2DSR sampled protocol and full ranking, in one harness.

* :mod:`~airrec.evaluate.negatives` — 999 negatives per line, sampled once, saved, fingerprinted.
* :mod:`~airrec.evaluate.metrics` — ranks (pessimistic ties), HR@k, NDCG@k, MRR, seed aggregation.
* :mod:`~airrec.evaluate.protocol` — the :class:`Scorer` protocol and :func:`evaluate`.
* :mod:`~airrec.evaluate.baselines` — popularity, random, the engine's score head.
* :mod:`~airrec.evaluate.report` — results JSON, markdown tables, PNG plots.
* :mod:`~airrec.evaluate.cli` — ``airrec evaluate``.
"""

from __future__ import annotations

from airrec.evaluate.baselines import EngineScorer, PopularityScorer, RandomScorer
from airrec.evaluate.metrics import (
    DEFAULT_METRICS,
    MeanStd,
    aggregate_seeds,
    bootstrap_ci,
    hit_rate,
    metrics_from_ranks,
    mrr,
    ndcg,
    per_domain_metrics,
    ranks_from_scores,
)
from airrec.evaluate.negatives import (
    check_negatives,
    dataset_fingerprint,
    get_negatives,
    load_negatives,
    negatives_path,
    sample_negatives,
    save_negatives,
)
from airrec.evaluate.protocol import EvalResult, HistoriesLike, Scorer, evaluate
from airrec.evaluate.report import markdown_report, markdown_table, plot_results, results_json, write_report

__all__ = [
    "DEFAULT_METRICS",
    "EngineScorer",
    "EvalResult",
    "HistoriesLike",
    "MeanStd",
    "PopularityScorer",
    "RandomScorer",
    "Scorer",
    "aggregate_seeds",
    "bootstrap_ci",
    "check_negatives",
    "dataset_fingerprint",
    "evaluate",
    "get_negatives",
    "hit_rate",
    "load_negatives",
    "markdown_report",
    "markdown_table",
    "metrics_from_ranks",
    "mrr",
    "ndcg",
    "negatives_path",
    "per_domain_metrics",
    "plot_results",
    "ranks_from_scores",
    "results_json",
    "sample_negatives",
    "save_negatives",
    "write_report",
]
