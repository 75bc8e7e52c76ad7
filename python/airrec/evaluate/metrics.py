"""Ranking metrics with one relevant item per line: rank, HR@k, NDCG@k, MRR, and aggregation.

Tie rule: **pessimistic**. The target's rank is ``1 + (number of other candidates scoring >=
the target)``. A tie therefore counts against the target. Why: the optimistic rule
(strictly greater) hands a constant scorer rank 1 on every line (HR@1 = 1.0), and a scorer that
collapses many items to one value (an untrained model, popularity with its many zero counts)
would be rewarded for the collapse. The average rule (half of the ties) is unbiased for random
tie-breaking but gives fractional ranks. The pessimistic rule is the only one where a model
cannot gain by producing ties, and it is order-independent (the candidates' order never
matters), so it is the one rule used everywhere in this package. The share of lines whose
target tied with some candidate is reported beside the metrics so ties are visible.

Non-finite scores: ``NaN`` is refused (it compares false with everything, which would silently
rank a NaN target first); ``±inf`` compare normally.

Per line (rank ``r`` of the one relevant item): ``HR@k = [r <= k]``,
``NDCG@k = [r <= k] / log2(r + 1)`` (the ideal DCG is 1), ``MRR = 1 / r``. Reported values are
means over lines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from airrec.errors import InputError

__all__ = [
    "DEFAULT_METRICS",
    "MeanStd",
    "aggregate_seeds",
    "bootstrap_ci",
    "paired_bootstrap",
    "hit_rate",
    "metric_values",
    "metrics_from_ranks",
    "mrr",
    "ndcg",
    "per_domain_metrics",
    "ranks_from_scores",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

#: The metrics the LLMCDSR/C2DSR tables report, in their column order.
DEFAULT_METRICS: tuple[str, ...] = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10", "MRR")


def _finite_check(scores: npt.NDArray[np.floating], what: str) -> None:
    if np.isnan(scores).any():
        raise InputError(f"{what}: scores contain NaN (a scorer must return numbers for every candidate)")


def ranks_from_scores(
    target_scores: npt.ArrayLike, other_scores: npt.ArrayLike, mask: npt.ArrayLike | None = None
) -> IntArray:
    """1-based pessimistic rank of each line's target among ``other_scores``.

    ``target_scores`` is ``[U]``; ``other_scores`` is ``[U, C]`` (the negatives, or a chunk of
    the domain); ``mask`` (``[U, C]`` or broadcastable, optional) says which columns count,
    e.g. to leave out the target's own column in full ranking. Returns
    ``1 + #{c : mask[u, c] and other[u, c] >= target[u]}``.
    Several chunks of one line combine as ``1 + sum(rank_chunk - 1)``.
    """
    t = np.asarray(target_scores, dtype=np.float64)
    o = np.asarray(other_scores)
    if t.ndim != 1 or o.ndim != 2 or o.shape[0] != t.shape[0]:
        raise InputError(f"need target scores [U] and other scores [U, C]; got {t.shape} and {o.shape}")
    _finite_check(t, "target")
    _finite_check(o, "candidates")
    # float32 -> float64 is exact, so comparing in float64 is the same as in the scorer's dtype.
    beats = np.asarray(o >= t[:, None], dtype=bool)
    if mask is not None:
        beats &= np.asarray(mask, dtype=bool)
    ranks: IntArray = (1 + beats.sum(axis=1)).astype(np.int64)
    return ranks


def _ranks(ranks: npt.ArrayLike) -> IntArray:
    r = np.asarray(ranks)
    if r.ndim != 1:
        raise InputError(f"ranks must be 1-D, got shape {r.shape}")
    if r.size and (r.dtype.kind not in "iu" or int(r.min()) < 1):
        raise InputError("ranks must be integers >= 1")
    return r.astype(np.int64, copy=False)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be an integer >= 1, got {k!r}")
    return int(k)


def hit_rate(ranks: npt.ArrayLike, k: int) -> FloatArray:
    """Per-line HR@k: 1.0 where the target is in the top ``k``."""
    return (_ranks(ranks) <= _check_k(k)).astype(np.float64)


def ndcg(ranks: npt.ArrayLike, k: int) -> FloatArray:
    """Per-line NDCG@k with one relevant item: ``1 / log2(rank + 1)`` inside the top ``k``, else 0."""
    r = _ranks(ranks)
    k = _check_k(k)
    return np.where(r <= k, 1.0 / np.log2(r.astype(np.float64) + 1.0), 0.0)


def mrr(ranks: npt.ArrayLike) -> FloatArray:
    """Per-line reciprocal rank (no cut-off, as in the LLMCDSR/C2DSR tables)."""
    return 1.0 / _ranks(ranks).astype(np.float64)


def metric_values(ranks: npt.ArrayLike, name: str) -> FloatArray:
    """Per-line values of a metric named like ``HR@10``, ``NDCG@5`` or ``MRR``."""
    if name == "MRR":
        return mrr(ranks)
    kind, _, k = name.partition("@")
    if kind in ("HR", "NDCG") and k.isdigit():
        return hit_rate(ranks, int(k)) if kind == "HR" else ndcg(ranks, int(k))
    raise InputError(f"unknown metric {name!r}: use HR@k, NDCG@k or MRR")


def metrics_from_ranks(ranks: npt.ArrayLike, names: Sequence[str] = DEFAULT_METRICS) -> dict[str, float]:
    """Mean of each metric over the lines (``nan`` for no lines: absent, not zero)."""
    r = _ranks(ranks)
    if r.size == 0:
        return {name: math.nan for name in names}
    return {name: float(metric_values(r, name).mean()) for name in names}


def per_domain_metrics(
    ranks: npt.ArrayLike,
    domains: npt.ArrayLike,
    domain_names: Sequence[str],
    names: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, dict[str, float]]:
    """``{domain name: {metric: value}}`` grouping lines by their target's domain, plus ``"all"``
    (every line weighted equally: dominated by the domain with more test lines, so the
    per-domain numbers are the ones to compare with published tables)."""
    r = _ranks(ranks)
    d = np.asarray(domains)
    if d.shape != r.shape:
        raise InputError(f"ranks {r.shape} and domains {d.shape} must have the same shape")
    out = {name: metrics_from_ranks(r[d == i], names) for i, name in enumerate(domain_names)}
    out["all"] = metrics_from_ranks(r, names)
    return out


@dataclass(frozen=True)
class MeanStd:
    """A metric over several runs (seeds): mean, sample standard deviation and the values."""

    mean: float
    std: float
    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    def __str__(self) -> str:
        if self.n <= 1:
            return f"{self.mean:.4f}"
        return f"{self.mean:.4f} ± {self.std:.4f}"

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {"mean": self.mean, "std": self.std, "n": self.n, "values": list(self.values)}


def aggregate_seeds(runs: Sequence[Mapping[str, float]]) -> dict[str, MeanStd]:
    """Mean ± std over runs (one ``{metric: value}`` per seed).

    The std is the sample std (``ddof=1``): seeds are a sample of possible runs. With one run
    it is 0 and :class:`MeanStd` prints no ``±``. Metrics missing from some runs are refused,
    because a mean over different sets of seeds is not comparable.
    """
    if not runs:
        return {}
    keys = list(runs[0])
    for run in runs[1:]:
        if set(run) != set(keys):
            raise InputError(f"runs report different metrics: {sorted(keys)} vs {sorted(run)}")
    out: dict[str, MeanStd] = {}
    for key in keys:
        values = np.array([run[key] for run in runs], dtype=np.float64)
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out[key] = MeanStd(float(values.mean()), std, tuple(float(v) for v in values))
    return out


def bootstrap_ci(
    values: npt.ArrayLike, *, n_boot: int = 1000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-line ``values`` (e.g. :func:`ndcg`).

    Answers "how much would this number move with other test users", which seeds do not:
    Food–Kitchen has only 300 Food test lines, so HR@10 has a standard error of ~0.03 there.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0:
        raise InputError("bootstrap needs a non-empty 1-D array of per-line values")
    if not 0.0 < alpha < 1.0 or n_boot < 1:
        raise InputError("need 0 < alpha < 1 and n_boot >= 1")
    means = _resampled_means(v, n_boot, seed)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _resampled_means(v: FloatArray, n_boot: int, seed: int) -> FloatArray:
    """Means of ``n_boot`` resamples (with replacement) of ``v``, drawn in ~1M-value chunks."""
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, (1 << 20) // v.size)
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, v.size, size=(stop - start, v.size))
        means[start:stop] = v[idx].mean(axis=1)
    return means


@dataclass(frozen=True)
class PairedDifference:
    """A paired bootstrap of ``mean(a) - mean(b)`` over the same lines.

    ``p_value`` is two-sided: twice the share of resampled differences on the far side of 0
    from the observed one (at least ``1 / (n_boot + 1)``, never 0 from a finite sample).
    """

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n_lines: int
    n_boot: int

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {"diff": self.diff, "ci95": [self.ci_low, self.ci_high], "p_value": self.p_value,
                "n_lines": self.n_lines, "n_boot": self.n_boot}


def paired_bootstrap(
    a: npt.ArrayLike, b: npt.ArrayLike, *, n_boot: int = 10_000, alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """Paired percentile bootstrap of the difference of two models' per-line values.

    ``a`` and ``b`` are per-line values of the same test lines (e.g. :func:`hit_rate` of each
    line, averaged over training seeds first), so each resample draws *lines* and keeps the
    pairing: the variance that both models share (hard users, easy users) cancels, which is
    what makes a 1-point HR@10 gain on 300 lines testable at all.
    """
    va = np.asarray(a, dtype=np.float64)
    vb = np.asarray(b, dtype=np.float64)
    if va.ndim != 1 or va.shape != vb.shape or va.size == 0:
        raise InputError(f"need two non-empty 1-D arrays of the same lines, got {va.shape} and {vb.shape}")
    if not (np.isfinite(va).all() and np.isfinite(vb).all()):
        raise InputError("per-line values must be finite")
    if not 0.0 < alpha < 1.0 or n_boot < 1:
        raise InputError("need 0 < alpha < 1 and n_boot >= 1")
    d = va - vb
    means = _resampled_means(d, n_boot, seed)
    observed = float(d.mean())
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    far = int((means <= 0).sum()) if observed >= 0 else int((means >= 0).sum())
    p = min(1.0, max(2 * far, 1) / n_boot)
    return PairedDifference(observed, float(lo), float(hi), p, int(d.size), n_boot)
