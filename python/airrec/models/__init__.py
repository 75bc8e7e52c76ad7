"""Sequential baselines in torch (DESIGN.md §5), evaluated by :mod:`airrec.evaluate`.

* :mod:`~airrec.models.sasrec` — SASRec (mixed-domain or target-domain-only history).
* :mod:`~airrec.models.gru4rec` — GRU4Rec.
* :mod:`~airrec.models.base` — the model interface and the harness's :class:`Scorer` wrapper.
* :mod:`~airrec.models.train` — the shared trainer (sampled in-domain negatives, early
  stopping on valid HR@10).
* :mod:`~airrec.models.cli` — ``airrec baselines``.

torch is imported by these modules, so import them only where torch is installed.
"""

from __future__ import annotations

from airrec.models.base import SequenceModel, SequentialScorer
from airrec.models.gru4rec import GRU4Rec
from airrec.models.sasrec import SASRec
from airrec.models.train import MODEL_KINDS, EpochLog, TrainConfig, TrainResult, build_model, train_model

__all__ = [
    "MODEL_KINDS",
    "EpochLog",
    "GRU4Rec",
    "SASRec",
    "SequenceModel",
    "SequentialScorer",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "train_model",
]
