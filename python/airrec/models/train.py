"""One trainer for the torch baselines (SASRec mixed / target-only, GRU4Rec).

Examples: every prefix of every *train*-split sequence predicts its next item, SASRec-style (one
forward pass per sequence window of at most ``max_len`` positions; see
:mod:`airrec.models._seq`). Valid/test histories are not trained on: they are the inputs of
held-out users, used only at scoring time.

Loss (``loss="softmax"``, the default): sampled softmax, the target against ``n_negatives``
(default 100) items drawn uniformly from *the target's own domain* — the same distribution the
evaluation protocol draws its 999 negatives from, so training optimises the ranking that is
measured. The negatives are drawn once per batch and domain and shared by all positions of that
domain (one ``[positions, 100]`` matrix product instead of gathering 100 vectors per position,
which on one CPU thread is the difference between seconds and minutes per epoch); a negative
equal to a position's target is masked out. ``loss="bce"`` is SASRec's original objective (one
in-domain negative per positive, binary cross-entropy), kept for comparison.

Optimiser Adam; early stopping on valid HR@10 averaged over the domains (each domain weighs the
same, whatever its line count), scored by the evaluation harness on the saved 999 negatives of
the valid split. The best state is kept in memory (and written to ``checkpoint`` if given).

Reproducible: ``torch.manual_seed(seed)`` before the model is built, one
``numpy.random.Generator(seed)`` for batch order and negatives, a fixed batch order per epoch,
and ``torch.set_num_threads(threads)`` (1 by default: the reference machine has two cores and
shares one) — the same seed gives bit-identical weights on the same machine.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from airrec.data.dataset import Dataset
from airrec.errors import InputError
from airrec.evaluate.negatives import get_negatives
from airrec.evaluate.protocol import Scorer, evaluate
from airrec.models._seq import TrainingWindows, training_windows
from airrec.models.base import HistoryView, SequenceModel, SequentialScorer
from airrec.models.gru4rec import GRU4Rec
from airrec.models.sasrec import SASRec

__all__ = ["MODEL_KINDS", "EpochLog", "TrainConfig", "TrainResult", "build_model", "train_model"]

IntArray = npt.NDArray[np.int64]
ModelKind = Literal["sasrec-mixed", "sasrec-target", "gru4rec"]
MODEL_KINDS: tuple[str, ...] = ("sasrec-mixed", "sasrec-target", "gru4rec")
log = logging.getLogger(__name__)
MODEL_NAMES = {"sasrec-mixed": "SASRec (mixed)", "sasrec-target": "SASRec (target-only)", "gru4rec": "GRU4Rec"}


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and run settings (defaults: the "modest budget" of the baselines)."""

    dim: int = 64
    max_len: int = 50
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    domain_embedding: bool = False  #: sasrec-mixed only: add a learned domain embedding
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    loss: Literal["softmax", "bce"] = "softmax"
    n_negatives: int = 100  #: per batch and domain, for ``loss="softmax"``
    patience: int = 3  #: epochs without a better valid HR@10 before stopping
    #: Early stopping only after this many epochs, as for AIR: valid HR@10 of a fresh model
    #: wobbles for the first epochs, and GRU4Rec seed 3 stopped at epoch 4 on its epoch-1
    #: score (valid 0.12 against 0.42-0.45 for the other seeds) without it.
    min_epochs: int = 12
    seed: int = 0
    threads: int | None = 1  #: ``torch.set_num_threads``; None leaves it as is
    eval_negatives: int = 999
    eval_seed: int = 0  #: seed of the valid negatives (shared with every other model)
    negatives_cache: Path | None = None
    checkpoint: Path | None = None
    progress: bool = True
    device: str = "cpu"


@dataclass(frozen=True)
class EpochLog:
    """One epoch: mean loss, training seconds, and the valid metrics it was selected on."""

    epoch: int
    loss: float
    train_seconds: float
    eval_seconds: float
    valid_hr10: float  #: mean over domains
    valid_hr10_per_domain: dict[str, float]


def config_dict(config: Any) -> dict[str, Any]:
    """A config dataclass as JSON-ready values (paths as strings), for logs and checkpoints."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()}


@dataclass
class TrainResult:
    """The best model as a scorer, and the run's log."""

    scorer: SequentialScorer
    kind: str
    config: TrainConfig
    best_epoch: int
    best_valid_hr10: float
    epochs: list[EpochLog] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cfg = config_dict(self.config)
        return {
            "kind": self.kind, "name": self.scorer.name, "config": cfg, "best_epoch": self.best_epoch,
            "best_valid_hr10": self.best_valid_hr10, "epochs": [asdict(e) for e in self.epochs],
        }


def build_model(
    kind: str, dataset: Dataset, config: TrainConfig, *, item_text: npt.ArrayLike | None = None,
    item_nodes: npt.ArrayLike | None = None,
) -> tuple[SequenceModel, HistoryView]:
    """The untrained network of ``kind`` and the history view it is trained and scored on.

    ``item_text`` (SASRec only): frozen per-item text vectors added, projected, to the ID
    embeddings. ``item_nodes`` (SASRec only): each item's intent-trie nodes
    (:func:`airrec.models.intents.item_intent_nodes`), whose learned embeddings are added."""
    if kind in ("sasrec-mixed", "sasrec-target"):
        mixed = kind == "sasrec-mixed"
        use_dom = mixed and config.domain_embedding
        model: SequenceModel = SASRec(
            dataset.n_items, dim=config.dim, n_blocks=config.n_blocks, n_heads=config.n_heads,
            max_len=config.max_len, dropout=config.dropout,
            item_domains=dataset.items.domains if use_dom else None, n_domains=dataset.n_domains,
            item_text=item_text, item_nodes=item_nodes,
        )
        return model, "mixed" if mixed else "target-only"
    if kind == "gru4rec":
        return GRU4Rec(dataset.n_items, dim=config.dim, dropout=config.dropout), "mixed"
    raise InputError(f"unknown model {kind!r}; choose from {', '.join(MODEL_KINDS)}")


def train_sequences(dataset: Dataset, view: HistoryView) -> list[IntArray]:
    """The train split's sequences; for ``target-only`` each one's per-domain sub-sequences."""
    s = dataset.train
    seqs = [s.items[s.offsets[u] : s.offsets[u + 1]] for u in range(len(s))]
    if view == "mixed":
        return seqs
    domains = dataset.items.domains
    return [seq[domains[seq] == d] for seq in seqs for d in range(dataset.n_domains)]


def batch_order(windows: TrainingWindows, batch_size: int, rng: np.random.Generator) -> list[IntArray]:
    """Shuffled batches of similar lengths: shuffle, sort by length within chunks of 50
    batches, cut, shuffle the batches. Padding to each batch's longest row then wastes little
    (the mean train sequence is ~8 events, the window 50)."""
    perm = rng.permutation(len(windows))
    chunk = batch_size * 50
    batches: list[IntArray] = []
    for lo in range(0, perm.size, chunk):
        part = perm[lo : lo + chunk]
        part = part[np.argsort(windows.lengths[part], kind="stable")]
        batches += [part[i : i + batch_size] for i in range(0, part.size, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Loss:
    """Sampled-softmax or BCE loss over one batch's valid positions, negatives from the
    target's domain."""

    def __init__(self, dataset: Dataset, config: TrainConfig, rng: np.random.Generator, device: torch.device):
        self.domains = np.asarray(dataset.items.domains, dtype=np.int64)
        self.pools = [dataset.items_of_domain(d) for d in range(dataset.n_domains)]
        self.config = config
        self.rng = rng
        self.device = device

    def __call__(self, model: SequenceModel, states: Tensor, targets: IntArray) -> Tensor:
        """``states`` ``[P, dim]`` at the positions whose next items are ``targets`` ``[P]``."""
        t = torch.from_numpy(targets).to(self.device)
        pos = (states * model.item_vectors(t)).sum(-1)
        tdom = self.domains[targets]
        total = states.new_zeros(())
        for d in np.unique(tdom).tolist():
            sel_np = np.flatnonzero(tdom == d)
            sel = torch.from_numpy(sel_np).to(self.device)
            pool = self.pools[d]
            if self.config.loss == "bce":
                neg_items = torch.from_numpy(pool[self.rng.integers(0, pool.size, sel_np.size)]).to(self.device)
                neg = (states[sel] * model.item_vectors(neg_items)).sum(-1)
                total = total + (F.softplus(-pos[sel]) + F.softplus(neg)).sum()
            else:
                negs = torch.from_numpy(pool[self.rng.integers(0, pool.size, self.config.n_negatives)]).to(self.device)
                logits = states[sel] @ model.item_vectors(negs).T
                logits = logits.masked_fill(negs[None, :] == t[sel, None], float("-inf"))
                logits = torch.cat([pos[sel, None], logits], dim=1)
                total = total + F.cross_entropy(logits, logits.new_zeros(sel_np.size, dtype=torch.long), reduction="sum")
        return total / max(1, targets.size)


class Selection:
    """Best-epoch selection on valid HR@10 with early stopping, shared by every trainer.

    Keeps the best state in memory (and in ``checkpoint`` if given), logs one line per epoch,
    and says when to stop: ``patience`` epochs without improvement, never before
    ``min_epochs``.
    """

    def __init__(self, model: torch.nn.Module, name: str, *, patience: int, min_epochs: int = 0,
                 checkpoint: Path | None = None, progress: bool = True) -> None:
        self.model, self.name, self.patience, self.min_epochs = model, name, patience, min_epochs
        self.checkpoint, self.progress = checkpoint, progress
        self.best_state = copy.deepcopy(model.state_dict())
        self.best_hr, self.best_epoch = -1.0, 0
        self.logs: list[EpochLog] = []

    def update(self, entry: EpochLog) -> bool:
        """Record an evaluated epoch; returns True when training should stop."""
        from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]

        self.logs.append(entry)
        better = entry.valid_hr10 > self.best_hr
        per_txt = " ".join(f"{d} {v:.4f}" for d, v in entry.valid_hr10_per_domain.items())
        line = (
            f"{self.name} epoch {entry.epoch}: loss {entry.loss:.4f}, train {entry.train_seconds:.1f} s, "
            f"valid HR@10 {entry.valid_hr10:.4f} ({per_txt}), eval {entry.eval_seconds:.1f} s{' *' if better else ''}"
        )
        if self.progress:
            tqdm.write(line)
        else:
            log.info(line)
        if better:
            self.best_hr, self.best_epoch = entry.valid_hr10, entry.epoch
            self.best_state = copy.deepcopy(self.model.state_dict())
            if self.checkpoint is not None:
                self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
                torch.save(self.best_state, self.checkpoint)
            return False
        return entry.epoch - self.best_epoch >= self.patience and entry.epoch >= self.min_epochs

    def restore(self) -> None:
        """Load the best state back into the model (eval mode)."""
        self.model.load_state_dict(self.best_state)
        self.model.eval()


def valid_hr10(scorer: Scorer, dataset: Dataset, negatives: IntArray) -> tuple[float, dict[str, float]]:
    """Valid HR@10 averaged over the domains present (each domain weighs the same), and per domain."""
    result = evaluate(scorer, dataset, "valid", negatives)
    metrics = result.metrics()
    counts = result.line_counts()
    per = {d: metrics[d]["HR@10"] for d in dataset.domain_names if counts.get(d, 0) > 0}
    return float(np.mean(list(per.values()))), per


def train_model(
    kind: str, dataset: Dataset, config: TrainConfig = TrainConfig(), *, item_text: npt.ArrayLike | None = None,
    item_nodes: npt.ArrayLike | None = None, name: str | None = None,
) -> TrainResult:
    """Train ``kind`` on ``dataset.train``, select the epoch on valid HR@10, return the best.

    ``item_text``, ``item_nodes``: see :func:`build_model`; ``name`` labels the scorer
    (default: the kind's)."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.epochs < 1 or config.batch_size < 1 or config.n_negatives < 1:
        raise InputError("epochs, batch_size and n_negatives must be >= 1")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    model, view = build_model(kind, dataset, config, item_text=item_text, item_nodes=item_nodes)
    model.to(device)
    name = name or MODEL_NAMES.get(kind, kind)
    scorer = SequentialScorer(model, dataset.items.domains, view=view, max_len=config.max_len, name=name, device=device)
    windows = training_windows(train_sequences(dataset, view), config.max_len)
    if len(windows) == 0:
        raise InputError(f"{dataset.name}: no training sequences")
    valid_neg = get_negatives(dataset, "valid", config.eval_negatives, config.eval_seed, config.negatives_cache)
    loss_fn = _Loss(dataset, config, rng, device)
    optim = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    selection = Selection(model, name, patience=config.patience, min_epochs=config.min_epochs,
                          checkpoint=config.checkpoint, progress=config.progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        losses = []
        batches = batch_order(windows, config.batch_size, rng)
        for idx in tqdm(batches, desc=f"{name} epoch {epoch}", disable=not config.progress, leave=False):
            width = int(windows.lengths[idx].max())
            tokens = torch.from_numpy(windows.inputs[idx, :width]).to(device)
            targets = windows.targets[idx, :width]
            valid = targets >= 0
            states = model.states(tokens)[torch.from_numpy(valid).to(device)]
            loss = loss_fn(model, states, targets[valid])
            optim.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            optim.step()
            losses.append(float(loss.detach()))
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        hr, per = valid_hr10(scorer, dataset, valid_neg)
        if selection.update(EpochLog(epoch, float(np.mean(losses)), train_s, time.perf_counter() - started, hr, per)):
            break
    selection.restore()
    return TrainResult(scorer, kind, config, selection.best_epoch, selection.best_hr, selection.logs)
