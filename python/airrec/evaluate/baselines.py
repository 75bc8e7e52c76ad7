"""Scorers that need no training: popularity, random, and the Rust engine's built-in score head.

GRU4Rec and SASRec (torch) come later; they implement the same
:class:`~airrec.evaluate.protocol.Scorer` method and are evaluated by the same loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from airrec.data.dataset import Dataset
from airrec.engine import Engine, Histories
from airrec.errors import InputError
from airrec.evaluate.protocol import HistoriesLike

__all__ = ["EngineScorer", "PopularityScorer", "RandomScorer"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]


class PopularityScorer:
    """Scores an item by how often it occurs in the training data: the same list for everyone.

    Counts cover every event of the train split's sequences and, with
    ``include_eval_histories=True`` (the default), the *histories* of the valid and test lines
    too — never their targets. Counting those histories is legitimate: they are the inputs a
    deployed system sees at inference time, and on LLMCDSR's split valid/test users are
    separate from train users, so their histories add real (if small: ~32k of ~434k events)
    evidence. It also matches what a sequential model conditioned on those histories can use.

    Ties (items with equal counts, e.g. the many never-seen items) are ranked pessimistically
    by the harness: a target with count 0 ranks below every other zero-count candidate.
    """

    def __init__(self, dataset: Dataset, *, include_eval_histories: bool = True) -> None:
        events = [dataset.train.items]
        if include_eval_histories:
            events += [dataset.valid.items, dataset.test.items]
        counts = np.bincount(np.concatenate(events), minlength=dataset.n_items)
        self.counts: IntArray = counts.astype(np.int64)
        self._scores = counts.astype(np.float32)  # exact below 2**24 events per item
        self.include_eval_histories = include_eval_histories
        self.name = "popularity" if include_eval_histories else "popularity (train only)"

    def score(self, histories: HistoriesLike, candidates: IntArray) -> FloatArray:
        """The candidates' counts (the histories are ignored: popularity is not personal)."""
        cand = np.asarray(candidates, dtype=np.int64)
        if cand.size and (int(cand.min()) < 0 or int(cand.max()) >= self._scores.size):
            raise InputError(f"candidate ids outside [0, {self._scores.size})")
        scores: FloatArray = self._scores[cand]
        return scores


class RandomScorer:
    """Independent uniform scores: the chance level (HR@10 ~= 10 / (n + 1) with ``n`` negatives).

    A sanity check of the harness rather than a baseline to beat.
    """

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)
        self.name = "random"

    def score(self, histories: HistoriesLike, candidates: IntArray) -> FloatArray:
        scores: FloatArray = self._rng.random(np.shape(candidates), dtype=np.float32)
        return scores


def engine_label(meta: dict[str, Any]) -> str:
    """A results label for a bundle's score head, from what its manifest says it is."""
    comp = meta.get("composition") if isinstance(meta, dict) else None
    if isinstance(comp, dict) and comp.get("trained"):
        model = comp.get("model", "AIR")
        seed = f", seed {comp['seed']}" if "seed" in comp else ""
        return f"{model} intent channel alone (trained composition{seed}, no backbone)"
    return "AIR zero-shot (untrained score head)"


class EngineScorer:
    """The Rust engine's built-in score head (``Engine.score_batch``) as a scorer.

    With an untrained bundle this is a *zero-shot* baseline: the candidate-conditioned intent
    vector's similarity to the candidate, with the composition at its initial weights. The
    default label says which it is, from the bundle's provenance (``meta.composition``, which
    training's export writes): zero-shot, or the trained composition's intent channel alone
    (without the backbone it was trained beside).
    """

    def __init__(self, engine: Engine, *, name: str | None = None, n_threads: int | None = None) -> None:
        self.engine = engine
        self.n_threads = n_threads
        self.name = name or engine_label(engine.meta)

    def check_dataset(self, dataset: Dataset) -> None:
        """Refuse a bundle built for another item set (ids would silently mean other items)."""
        if self.engine.n_items != dataset.n_items:
            raise InputError(
                f"the bundle has {self.engine.n_items} items, dataset {dataset.name} has "
                f"{dataset.n_items}: it was built for another dataset"
            )
        if list(self.engine.domains) != list(dataset.domain_names):
            # Domain names differ in case or spelling across tools; the item counts must match.
            bundle_domains = np.asarray(self.engine.domains)
            if bundle_domains.size != dataset.n_domains:
                raise InputError(
                    f"the bundle has domains {self.engine.domains}, the dataset {dataset.domain_names}"
                )

    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[Any]:
        h = histories if isinstance(histories, Histories) else Histories.from_arrays(
            histories.offsets, histories.items, histories.behaviours, histories.timestamps
        )
        return self.engine.score_batch(h, candidates, n_threads=self.n_threads)
