"""Training the AIR model (:mod:`airrec.models.air`) and scoring with it.

Examples: every position of every *train* sequence with a non-empty history predicts its next
item (the item the user did next), as the backbone was trained; each epoch samples
``positions_per_sequence`` of them per sequence. For each example the candidates are the target
and ``n_negatives`` items drawn uniformly from the target's domain (the distribution the 999
evaluation negatives come from); the loss is the sampled softmax of the target.

Per batch, the **Rust engine** builds each example's tree from its history and returns the
attention slots of every candidate (:meth:`airrec.Engine.slots_batch`); torch composes them and
backpropagates into the composition, the score head and the interaction ``P``. The backbone's
states are computed once (it is frozen) for every position.

Selection: the epoch with the best valid HR@10 (mean over domains, saved 999 negatives), as for
the baselines. Reproducible: seeded torch and NumPy, one torch thread by default; the engine's
slots do not depend on its thread count.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from airrec.data.dataset import Dataset
from airrec.engine import Engine, Histories
from airrec.errors import InputError
from airrec.evaluate.negatives import get_negatives
from airrec.evaluate.protocol import HistoriesLike, evaluate
from airrec.models._seq import training_windows
from airrec.models.air import AIRModel, AIRVariant, IntentComposition
from airrec.models.base import SequentialScorer
from airrec.models.train import EpochLog

__all__ = ["AIRScorer", "AIRTrainConfig", "AIRTrainResult", "build_air_model", "train_air"]

IntArray = npt.NDArray[np.int64]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AIRTrainConfig:
    """Hyper-parameters of the AIR part (the backbone comes trained)."""

    epochs: int = 12
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.0
    n_negatives: int = 31
    positions_per_sequence: int = 2
    patience: int = 3
    seed: int = 0
    threads: int | None = 1  #: torch threads; the engine uses all cores
    eval_negatives: int = 999
    eval_seed: int = 0
    negatives_cache: Path | None = None
    progress: bool = True
    score_chunk: int = 16  #: users per torch forward when scoring (memory bound)


@dataclass
class AIRTrainResult:
    scorer: AIRScorer
    config: AIRTrainConfig
    best_epoch: int
    best_valid_hr10: float
    epochs: list[EpochLog] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        cfg = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self.config).items()}
        return {
            "kind": "air", "name": self.scorer.name, "variant": asdict(self.scorer.model.variant), "config": cfg,
            "best_epoch": self.best_epoch, "best_valid_hr10": self.best_valid_hr10,
            "epochs": [asdict(e) for e in self.epochs],
        }


def _sub_histories(offsets: IntArray, items: IntArray, behaviours: IntArray, timestamps: npt.NDArray[np.float64],
                   lines: IntArray, lengths: IntArray) -> Histories:
    """The first ``lengths[k]`` events of line ``lines[k]`` of a CSR split, as Histories."""
    off = np.zeros(lines.size + 1, dtype=np.int64)
    np.cumsum(lengths, out=off[1:])
    idx = np.repeat(offsets[lines] - off[:-1], lengths) + np.arange(int(off[-1]), dtype=np.int64)
    return Histories(off, items[idx], behaviours[idx], timestamps[idx])


class AIRScorer:
    """A trained :class:`AIRModel` behind the harness's ``score(histories, candidates)``."""

    def __init__(self, model: AIRModel, engine: Engine, backbone: SequentialScorer, *, name: str = "AIR",
                 chunk: int = 16) -> None:
        self.model = model
        self.engine = engine
        self.backbone = backbone
        self.name = name
        self.chunk = max(1, chunk)

    def intent_vectors(self, histories: Histories, candidates: IntArray) -> Tensor:
        """``u`` for every (user, candidate): ``[U, C, d]`` (``[U, 1, d]`` when target-independent)."""
        comp = self.model.composition
        if not self.model.variant.target_aware:
            ids, _ = self.engine.tree_slots_batch(histories, self.model.variant.pooled_width)
            return comp.pooled(torch.from_numpy(ids)).unsqueeze(1)
        slots = self.engine.slots_batch(histories, candidates)
        x = comp.candidate_vectors(torch.from_numpy(candidates))
        return comp(x, torch.from_numpy(slots.ids), torch.from_numpy(slots.types), torch.from_numpy(slots.ln_w))

    def score(self, histories: HistoriesLike, candidates: IntArray) -> npt.NDArray[np.float32]:
        if not isinstance(histories, Histories):
            histories = Histories(histories.offsets, histories.items, histories.behaviours, histories.timestamps)
        cand = np.ascontiguousarray(candidates, dtype=np.int64)
        if cand.ndim != 2 or cand.shape[0] != histories.n_users:
            raise InputError(f"candidates must be [users, C], got {cand.shape}")
        out = np.zeros(cand.shape, dtype=np.float32)
        was = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                states = self.backbone._states(histories, None)
                for lo in range(0, histories.n_users, self.chunk):
                    hi = min(lo + self.chunk, histories.n_users)
                    lines = np.arange(lo, hi, dtype=np.int64)
                    sub = _sub_histories(histories.offsets, histories.items, histories.behaviours,
                                         histories.timestamps, lines, np.diff(histories.offsets)[lo:hi])
                    u = self.intent_vectors(sub, cand[lo:hi])
                    s = self.model.scores(states[lo:hi], torch.from_numpy(cand[lo:hi]), u)
                    out[lo:hi] = s.cpu().numpy()
        finally:
            self.model.train(was)
        return out


def build_air_model(engine: Engine, backbone: SequentialScorer, variant: AIRVariant = AIRVariant()) -> AIRModel:
    """An untrained AIR model: the engine bundle's composition as init, the backbone frozen."""
    from airrec.bundle import load_arrays

    arrays = load_arrays(engine.path, verify=False)
    comp = IntentComposition(arrays.composition, arrays.node_vectors, arrays.item_vectors,
                             use_weights=variant.use_weights)
    return AIRModel(backbone.model, comp, variant)


@dataclass(frozen=True)
class _Examples:
    """Every (train line, target position >= 1) with the backbone state that predicts it."""

    lines: IntArray  #: train split line
    positions: IntArray  #: index of the target in its line (= history length)
    states: Tensor  #: [n, dim] backbone states (frozen)


def _examples(dataset: Dataset, backbone: SequentialScorer, batch: int = 512) -> _Examples:
    s = dataset.train
    seqs = [s.items[s.offsets[u] : s.offsets[u + 1]] for u in range(len(s))]
    keep = np.flatnonzero([q.size > 0 for q in seqs])
    windows = training_windows([seqs[u] for u in keep], backbone.max_len)
    lines, positions, states = [], [], []
    model = backbone.model
    was = model.training
    model.eval()
    with torch.no_grad():
        for lo in range(0, len(windows), batch):
            hi = min(lo + batch, len(windows))
            width = int(windows.lengths[lo:hi].max())
            out = model.states(torch.from_numpy(windows.inputs[lo:hi, :width]))
            for r in range(hi - lo):
                n = int(windows.lengths[lo + r])
                line = int(keep[lo + r])
                full = seqs[line].size
                start = full - n  # the window holds the last n targets of the line
                p = np.arange(n)
                ok = start + p >= 1  # a non-empty history
                lines.append(np.full(int(ok.sum()), line, dtype=np.int64))
                positions.append((start + p[ok]).astype(np.int64))
                states.append(out[r, p[ok]])
    model.train(was)
    return _Examples(np.concatenate(lines), np.concatenate(positions), torch.cat(states))


def _sample(ex: _Examples, per_line: int, rng: np.random.Generator) -> IntArray:
    """Up to ``per_line`` random examples of every line, shuffled."""
    key = rng.random(ex.lines.size)
    order = np.lexsort((key, ex.lines))
    lines = ex.lines[order]
    first = np.r_[0, np.flatnonzero(np.diff(lines)) + 1]
    rank = np.arange(lines.size) - np.repeat(first, np.diff(np.r_[first, lines.size]))
    chosen = order[rank < per_line]
    out: IntArray = chosen[rng.permutation(chosen.size)]
    return out


def _valid_hr10(scorer: AIRScorer, dataset: Dataset, negatives: IntArray) -> tuple[float, dict[str, float]]:
    result = evaluate(scorer, dataset, "valid", negatives)
    metrics, counts = result.metrics(), result.line_counts()
    per = {d: metrics[d]["HR@10"] for d in dataset.domain_names if counts.get(d, 0) > 0}
    return float(np.mean(list(per.values()))), per


def train_air(
    dataset: Dataset,
    engine: Engine,
    backbone: SequentialScorer,
    config: AIRTrainConfig = AIRTrainConfig(),
    *,
    variant: AIRVariant = AIRVariant(),
    name: str = "AIR",
) -> AIRTrainResult:
    """Train the AIR part over a trained, frozen ``backbone``; select the epoch on valid."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]

    if config.epochs < 1 or config.batch_size < 1 or config.n_negatives < 1 or config.positions_per_sequence < 1:
        raise InputError("epochs, batch_size, n_negatives and positions_per_sequence must be >= 1")
    if engine.n_items != dataset.n_items:
        raise InputError(f"the bundle has {engine.n_items} items, the dataset {dataset.n_items}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if variant.engine_overrides:
        engine = engine.with_config(**variant.engine_overrides)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = build_air_model(engine, backbone, variant)
    scorer = AIRScorer(model, engine, backbone, name=name, chunk=config.score_chunk)
    ex = _examples(dataset, backbone)
    if ex.lines.size == 0:
        raise InputError(f"{dataset.name}: no training examples")
    valid_neg = get_negatives(dataset, "valid", config.eval_negatives, config.eval_seed, config.negatives_cache)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    s = dataset.train
    domains = np.asarray(dataset.items.domains, dtype=np.int64)
    pools = [dataset.items_of_domain(d) for d in range(dataset.n_domains)]

    best_state = copy.deepcopy(model.state_dict())
    best_hr, best_epoch, logs = -1.0, 0, []
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        losses = []
        order = _sample(ex, config.positions_per_sequence, rng)
        batches = [order[i : i + config.batch_size] for i in range(0, order.size, config.batch_size)]
        for idx in tqdm(batches, desc=f"{name} epoch {epoch}", disable=not config.progress, leave=False):
            lines, pos = ex.lines[idx], ex.positions[idx]
            targets = s.items[s.offsets[lines] + pos]
            cands = np.empty((idx.size, config.n_negatives + 1), dtype=np.int64)
            cands[:, 0] = targets
            tdom = domains[targets]
            for d in np.unique(tdom).tolist():
                sel = np.flatnonzero(tdom == d)
                cands[sel, 1:] = pools[d][rng.integers(0, pools[d].size, (sel.size, config.n_negatives))]
            hist = _sub_histories(s.offsets, s.items, s.behaviours, s.timestamps, lines, pos)
            u = scorer.intent_vectors(hist, cands)
            cand_t = torch.from_numpy(cands)
            logits = model.scores(ex.states[torch.from_numpy(idx)], cand_t, u)
            collide = torch.zeros_like(logits, dtype=torch.bool)
            collide[:, 1:] = cand_t[:, 1:] == cand_t[:, :1]
            logits = logits.masked_fill(collide, float("-inf"))
            loss = F.cross_entropy(logits, torch.zeros(idx.size, dtype=torch.long))
            optim.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            optim.step()
            losses.append(float(loss.detach()))
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        hr, per = _valid_hr10(scorer, dataset, valid_neg)
        eval_s = time.perf_counter() - started
        logs.append(EpochLog(epoch, float(np.mean(losses)), train_s, eval_s, hr, per))
        better = hr > best_hr
        per_txt = " ".join(f"{d} {v:.4f}" for d, v in per.items())
        line = (f"{name} epoch {epoch}: loss {logs[-1].loss:.4f}, train {train_s:.1f} s, valid HR@10 {hr:.4f} "
                f"({per_txt}), eval {eval_s:.1f} s{' *' if better else ''}")
        if config.progress:
            tqdm.write(line)
        else:
            log.info(line)
        if better:
            best_hr, best_epoch = hr, epoch
            best_state = copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return AIRTrainResult(scorer, config, best_epoch, best_hr, logs)
