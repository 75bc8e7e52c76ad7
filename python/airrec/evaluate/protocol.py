"""The evaluation loop: any :class:`Scorer`, one split, sampled negatives or full ranking.

A model enters the harness through one method, ``score(histories, candidates)``. Everything a
protocol needs (which candidates, in what batches, how to rank, how to slice) lives here, so
popularity, the Rust engine and the torch baselines (GRU4Rec, SASRec, later) are evaluated by
the same code on the same negatives and cannot drift apart in their tie handling or metric
definitions.

Two protocols:

* **sampled** (LLMCDSR/C2DSR, what the papers report): the target against the ``n`` saved
  negatives of its line (:mod:`airrec.evaluate.negatives`).
* **full ranking** (RecBole's stricter protocol): the target against *every other item of its
  domain*. Nothing is excluded — not even items of the user's history — because valid/test
  users here are new users whose history is their input, and repeat purchases are legitimate
  targets; excluding history items would be a different protocol. Candidates are scored in
  chunks of at most ``max_scores`` per call, so memory stays bounded for any domain size.

In both, the target is column 0 of every call and is compared with the other columns *of the
same call*, with the pessimistic tie rule of :mod:`airrec.evaluate.metrics`.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from airrec.data.dataset import Dataset, Split, SplitRef
from airrec.engine import Histories
from airrec.errors import InputError
from airrec.evaluate.metrics import DEFAULT_METRICS, per_domain_metrics, ranks_from_scores
from airrec.evaluate.negatives import check_negatives

__all__ = [
    "EvalResult",
    "HistoriesLike",
    "IN_DOMAIN_UPPERS",
    "LENGTH_UPPERS",
    "Scorer",
    "bin_labels",
    "evaluate",
    "histories_of",
    "in_domain_counts",
    "scorer_name",
]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
Protocol_ = Literal["sampled", "full"]

#: Cold-start slice: bins of "history events in the target's domain" by inclusive upper edge,
#: i.e. 0, 1-2, 3-5, 6+. Food–Kitchen test users all have mixed histories, so the 0 bin is
#: where cross-domain transfer is the only signal.
IN_DOMAIN_UPPERS: tuple[int, ...] = (0, 2, 5)
#: History-length slice: 0-5, 6-10, 11-20, 21+ events. Fixed edges rather than quartiles so
#: the bins mean the same thing on valid and test and across datasets.
LENGTH_UPPERS: tuple[int, ...] = (5, 10, 20)


class HistoriesLike(Protocol):
    """CSR histories: user ``u`` owns ``offsets[u]:offsets[u+1]`` of the flat arrays.

    :class:`airrec.Histories` is one (and is what :func:`evaluate` passes), so a scorer
    wrapping the engine hands it straight to ``Engine.score_batch``.
    """

    @property
    def offsets(self) -> IntArray: ...
    @property
    def items(self) -> IntArray: ...
    @property
    def behaviours(self) -> IntArray: ...
    @property
    def timestamps(self) -> FloatArray: ...


@runtime_checkable
class Scorer(Protocol):
    """What a model must do to be evaluated: score candidates for a batch of histories.

    ``score(histories, candidates)`` gets ``U`` histories (oldest event first) and int64
    ``candidates`` ``[U, C]`` (global item ids, all from the target's domain within a row;
    column 0 is the target, but a scorer must not rely on that) and returns scores ``[U, C]``
    (any float dtype, higher = better, no NaN).

    Contract: a candidate's score depends only on the history and that candidate, not on the
    other candidates in the row, since full ranking splits the domain over several calls. A
    single-domain model (SASRec on the target domain only) finds the domain from the
    candidates and filters the history itself. An optional ``name`` attribute labels results.
    """

    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[np.floating[Any]]: ...


def scorer_name(scorer: Scorer) -> str:
    """The scorer's ``name`` attribute, else its class name."""
    name = getattr(scorer, "name", None)
    return name if isinstance(name, str) and name else type(scorer).__name__


def histories_of(split: Split | HistoriesLike, lines: IntArray, lengths: IntArray | None = None) -> Histories:
    """The histories of some lines of a split (or of other CSR histories) as
    :class:`airrec.Histories` (gathered copies); with ``lengths``, only the first
    ``lengths[k]`` events of line ``lines[k]`` (a prefix, e.g. a training example's history)."""
    starts = split.offsets[lines]
    if lengths is None:
        lengths = split.offsets[lines + 1] - starts
    offsets = np.zeros(lines.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]), dtype=np.int64)
    return Histories(offsets, split.items[idx], split.behaviours[idx], split.timestamps[idx])


def in_domain_counts(dataset: Dataset, split: SplitRef) -> IntArray:
    """Per line: how many history events are in the target's domain (the cold-start measure)."""
    s = dataset.split(split)
    if s.targets is None:
        raise InputError(f"{s.name}: in-domain counts need targets")
    line_of_event = np.repeat(np.arange(len(s)), s.lengths)
    domains = dataset.items.domains
    same = domains[s.items] == domains[s.targets][line_of_event]
    return np.bincount(line_of_event, weights=same, minlength=len(s)).astype(np.int64)


def bin_labels(values: npt.ArrayLike, uppers: Sequence[int]) -> tuple[IntArray, tuple[str, ...]]:
    """Bin non-negative integers by inclusive upper edges: ``(0, 2, 5)`` -> 0, 1-2, 3-5, 6+.

    Returns each value's bin index and the bins' labels.
    """
    edges = [int(u) for u in uppers]
    if any(b <= a for a, b in itertools.pairwise(edges)) or (edges and edges[0] < 0):
        raise InputError(f"bin edges must be increasing and >= 0, got {uppers}")
    labels, low = [], 0
    for up in edges:
        labels.append(str(low) if up == low else f"{low}-{up}")
        low = up + 1
    labels.append(f"{low}+")
    index = np.searchsorted(np.asarray(edges, dtype=np.int64), np.asarray(values), side="left")
    return index.astype(np.int64), tuple(labels)


@dataclass(frozen=True, eq=False)
class EvalResult:
    """Per-line outcome of one evaluation (one model, split, protocol and seed).

    Keeps the per-line ranks rather than only the means, so that any slice, bootstrap or new
    metric can be computed later without scoring again.
    """

    model: str
    dataset: str
    split: str
    protocol: Protocol_
    n_negatives: int | None  #: per line for ``sampled``; ``None`` for full ranking
    seed: int | None  #: the negatives' seed (and, for trained models, the run's seed)
    domain_names: tuple[str, ...]
    ranks: IntArray  #: pessimistic 1-based rank of each line's target
    domains: IntArray  #: each line's target domain
    in_domain: IntArray  #: history events in the target's domain, per line
    lengths: IntArray  #: history length, per line
    tied: BoolArray  #: whether the target tied with at least one candidate
    seconds: float = 0.0
    metric_names: tuple[str, ...] = field(default=DEFAULT_METRICS)

    @property
    def protocol_label(self) -> str:
        if self.protocol == "full":
            return "full ranking"
        return f"{self.n_negatives} sampled negatives"

    def metrics(self) -> dict[str, dict[str, float]]:
        """``{domain: {metric: value}}`` plus ``"all"``."""
        return per_domain_metrics(self.ranks, self.domains, self.domain_names, self.metric_names)

    def line_counts(self) -> dict[str, int]:
        counts = np.bincount(self.domains, minlength=len(self.domain_names))
        out = {name: int(counts[i]) for i, name in enumerate(self.domain_names)}
        out["all"] = int(self.ranks.size)
        return out

    def tie_rates(self) -> dict[str, float]:
        """Share of lines where the target tied with some candidate (ranked pessimistically)."""
        out = {
            name: float(self.tied[self.domains == i].mean()) if np.any(self.domains == i) else float("nan")
            for i, name in enumerate(self.domain_names)
        }
        out["all"] = float(self.tied.mean()) if self.tied.size else float("nan")
        return out

    def slices(
        self, in_domain_uppers: Sequence[int] = IN_DOMAIN_UPPERS, length_uppers: Sequence[int] = LENGTH_UPPERS
    ) -> dict[str, dict[str, dict[str, dict[str, float]]]]:
        """``{slice: {bin: {domain: {"n": lines, metric: value}}}}`` for the cold-start
        (``in_domain_events``) and ``history_length`` slices."""
        out: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
        for slice_name, values, uppers in (
            ("in_domain_events", self.in_domain, in_domain_uppers),
            ("history_length", self.lengths, length_uppers),
        ):
            index, labels = bin_labels(values, uppers)
            bins: dict[str, dict[str, dict[str, float]]] = {}
            for b, label in enumerate(labels):
                sel = index == b
                table = per_domain_metrics(self.ranks[sel], self.domains[sel], self.domain_names, self.metric_names)
                counts = np.bincount(self.domains[sel], minlength=len(self.domain_names))
                for i, name in enumerate(self.domain_names):
                    table[name] = {"n": float(counts[i]), **table[name]}
                table["all"] = {"n": float(sel.sum()), **table["all"]}
                bins[label] = table
            out[slice_name] = bins
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary (no per-line arrays)."""
        return {
            "model": self.model, "dataset": self.dataset, "split": self.split,
            "protocol": self.protocol, "n_negatives": self.n_negatives, "seed": self.seed,
            "lines": self.line_counts(), "tie_rate": self.tie_rates(), "seconds": self.seconds,
            "metrics": self.metrics(), "slices": self.slices(),
        }


def _scores(scorer: Scorer, histories: Histories, candidates: IntArray) -> npt.NDArray[np.floating[Any]]:
    scores = np.asarray(scorer.score(histories, candidates))
    if scores.shape != candidates.shape:
        raise InputError(
            f"{scorer_name(scorer)} returned scores of shape {scores.shape} for candidates {candidates.shape}"
        )
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    return scores


def evaluate(
    scorer: Scorer,
    dataset: Dataset,
    split: SplitRef,
    negatives: npt.ArrayLike | None = None,
    *,
    full_ranking: bool = False,
    batch_users: int = 256,
    max_scores: int = 1 << 22,
    seed: int | None = None,
    model: str | None = None,
) -> EvalResult:
    """Rank every line's target with ``scorer`` and return per-line ranks with their slices.

    ``negatives`` (``[lines, n]``, from :func:`~airrec.evaluate.negatives.get_negatives`) are
    required for the sampled protocol and ignored with ``full_ranking=True``. ``batch_users``
    lines go to the scorer per call; in full ranking a call holds at most ``max_scores``
    candidates (the domain is split into item chunks). ``seed`` is recorded in the result (the
    negatives' seed); ``model`` overrides the scorer's name.
    """
    s = dataset.split(split)
    if s.targets is None:
        raise InputError(f"{dataset.name}.{s.name} has no targets to evaluate")
    if batch_users < 1 or max_scores < 2:
        raise InputError("batch_users must be >= 1 and max_scores >= 2")
    targets = s.targets
    domains = dataset.domain_of(targets).astype(np.int64)
    ranks = np.ones(len(s), dtype=np.int64)
    tied = np.zeros(len(s), dtype=bool)
    started = time.perf_counter()
    n_neg: int | None = None
    if not full_ranking:
        if negatives is None:
            raise InputError("the sampled protocol needs negatives (or pass full_ranking=True)")
        neg = np.asarray(negatives, dtype=np.int64)
        check_negatives(neg, dataset, s)
        n_neg = int(neg.shape[1])
        for start in range(0, len(s), batch_users):
            lines = np.arange(start, min(start + batch_users, len(s)), dtype=np.int64)
            cand = np.concatenate([targets[lines, None], neg[lines]], axis=1)
            sc = _scores(scorer, histories_of(s, lines), cand)
            ranks[lines] = ranks_from_scores(sc[:, 0], sc[:, 1:])
            tied[lines] = (sc[:, 1:] == sc[:, :1]).any(axis=1)
    else:
        for d in np.unique(domains).tolist():
            pool = dataset.items_of_domain(int(d))
            in_d = np.flatnonzero(domains == d)
            for start in range(0, in_d.size, batch_users):
                lines = in_d[start : start + batch_users]
                hist = histories_of(s, lines)
                t = targets[lines]
                width = max(1, max_scores // lines.size - 1)
                for lo in range(0, pool.size, width):
                    chunk = pool[lo : lo + width]
                    cand = np.empty((lines.size, chunk.size + 1), dtype=np.int64)
                    cand[:, 0] = t
                    cand[:, 1:] = chunk
                    sc = _scores(scorer, hist, cand)
                    others = chunk[None, :] != t[:, None]  # the target's own column is not a rival
                    ranks[lines] += ranks_from_scores(sc[:, 0], sc[:, 1:], others) - 1
                    tied[lines] |= ((sc[:, 1:] == sc[:, :1]) & others).any(axis=1)
    seconds = time.perf_counter() - started
    name = model or scorer_name(scorer)
    log.info("%s on %s.%s (%s): %.1f s", name, dataset.name, s.name, "full" if full_ranking else "sampled", seconds)
    return EvalResult(
        model=name,
        dataset=dataset.name,
        split=s.name,
        protocol="full" if full_ranking else "sampled",
        n_negatives=n_neg,
        seed=seed,
        domain_names=dataset.domain_names,
        ranks=ranks,
        domains=domains,
        in_domain=in_domain_counts(dataset, s),
        lengths=s.lengths.astype(np.int64),
        tied=tied,
        seconds=seconds,
    )
