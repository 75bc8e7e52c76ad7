"""Training the AIR model (:mod:`airrec.models.air`) and scoring with it.

Backbone and AIR part train together, from scratch, on the train split:

* the backbone's own objective, exactly the SASRec baseline's (every position of every train
  sequence predicts its next item; sampled softmax over in-domain negatives; see
  :mod:`airrec.models.train`), so without intents this *is* the SASRec (mixed) baseline;
* the AIR objective: per sequence and step, ``positions`` random positions (default one) with a
  non-empty history; each target against ``n_negatives`` items drawn uniformly from the
  target's domain (the distribution of the 999 evaluation negatives), scored by the full AIR
  score; sampled softmax.

Per step, the **Rust engine** builds each chosen position's tree from its history and returns
the attention slots of every candidate (:meth:`airrec.Engine.slots_batch`): the same tree, walk
and evidence pruning that serve. Torch composes them and backpropagates into the composition,
the score head, the interaction ``P`` and the backbone.

Selection: the epoch with the best valid HR@10 (mean over domains, the saved 999 negatives),
as for the baselines. Reproducible: seeded torch and NumPy, one torch thread by default; the
engine's slots do not depend on its thread count.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import Tensor

from airrec._files import atomic_writer
from airrec.data.dataset import Dataset, hash_arrays
from airrec.engine import Engine, Histories, Slots
from airrec.errors import InputError
from airrec.evaluate.negatives import get_negatives
from airrec.evaluate.protocol import HistoriesLike, histories_of
from airrec.models._seq import training_windows
from airrec.models.air import AIRModel, AIRVariant, IntentComposition, item_intent_nodes
from airrec.models.base import SequentialScorer
from airrec.models.train import (
    EpochLog,
    Selection,
    TrainConfig,
    _Loss,
    batch_order,
    build_model,
    config_dict,
    train_sequences,
    valid_hr10,
)

__all__ = [
    "SELECT_ON", "AIRScorer", "AIRTrainConfig", "AIRTrainResult", "build_air_model", "engine_settings", "load_air_scorer",
    "save_air_checkpoint", "train_air",
]

IntArray = npt.NDArray[np.int64]
log = logging.getLogger(__name__)


#: What may keep an AIR run's epoch (:attr:`AIRTrainConfig.select_on`).
SELECT_ON: tuple[str, ...] = ("air", "backbone")


@dataclass(frozen=True)
class AIRTrainConfig:
    """Hyper-parameters of the AIR part (the backbone comes trained)."""

    epochs: int = 30
    n_negatives: int = 15  #: AIR objective: in-domain negatives per example
    #: AIR objective: random positions per window row (each with a non-empty history); 0 takes
    #: every such position. The backbone's own objective always uses every position.
    positions: int = 1
    #: Engine settings for training and serving this model (walk, chains, evidence: what the
    #: composition sees), on top of the bundle's and the variant's; saved in the checkpoint
    #: and in an export, so serving uses what training did.
    engine: dict[str, Any] = field(default_factory=dict)
    air_weight: float = 1.0  #: weight of the AIR objective beside the backbone's
    #: Whether the AIR objective trains the backbone too. False makes AIR a plug-in on its
    #: backbone: the AIR objective reaches only the intent part (composition, ``P``), and
    #: its draws come from a random stream of their own, so the backbone trains exactly as
    #: its baseline row does (same batches, negatives, dropout: the same weights every
    #: epoch) and the intent part learns a correction on top of it.
    backbone_grad: bool = True
    #: What keeps an epoch and stops training: ``"air"``, the AIR score's valid HR@10 (from
    #: ``eval_from`` on, with this config's patience); ``"backbone"``, the backbone's own valid
    #: HR@10, every epoch, with the backbone config's patience, as its baseline row is chosen.
    #: With ``backbone_grad=False`` that keeps the baseline's epoch too, so AIR and its
    #: baseline hold the same backbone weights and differ only by the intent part; without it,
    #: the AIR score's noisier valid can keep an under-trained backbone.
    select_on: str = "air"  #: one of :data:`SELECT_ON`
    patience: int = 3
    #: Valid is scored from this epoch on (earlier epochs of a from-scratch backbone are far
    #: from the best, and scoring 1,000 candidates per line through the engine is not free).
    eval_from: int = 8
    #: Early stopping only after this many epochs (the intent channel gives a good first epoch
    #: that the still-untrained backbone only overtakes after a few more).
    min_epochs: int = 12
    seed: int = 0
    threads: int | None = 1  #: torch threads; the engine uses all cores
    eval_negatives: int = 999
    eval_seed: int = 0
    negatives_cache: Path | None = None
    progress: bool = True
    score_chunk: int = 16  #: users per torch forward when scoring (memory bound)
    #: Where scoring (valid every epoch, test at the end) composes the intent vectors:
    #: ``"engine"`` folds the current weights into the engine (``Engine.with_composition``)
    #: and composes there, what serving will compute (parity ≤ 1e-5 with torch; ~5× less
    #: validation time on Food–Kitchen: benches/results/validation-cost.json); ``"torch"``
    #: composes the engine's slots in torch.
    compose_in: str = "engine"
    #: Memory for the engine's slots of the valid lines, computed once and reused every epoch
    #: when composing in torch (~210 MiB for Food–Kitchen's 960 valid lines × 1,000
    #: candidates); 0 recomputes them.
    slot_cache_mib: float = 512.0
    checkpoint: Path | None = None


@dataclass
class AIRTrainResult:
    scorer: AIRScorer
    config: AIRTrainConfig
    best_epoch: int
    best_valid_hr10: float
    epochs: list[EpochLog] = field(default_factory=list)
    #: The backbone's settings (dim, dropout, lr, max_len, its negatives), for the log.
    backbone_config: TrainConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        cfg = config_dict(self.config)
        backbone = None if self.backbone_config is None else config_dict(self.backbone_config)
        return {
            "kind": "air", "name": self.scorer.name, "variant": asdict(self.scorer.model.variant), "config": cfg,
            "backbone_config": backbone,
            "best_epoch": self.best_epoch, "best_valid_hr10": self.best_valid_hr10,
            "epochs": [{**asdict(e), "valid_hr10": None if e.valid_hr10 != e.valid_hr10 else e.valid_hr10}
                       for e in self.epochs],
        }


class AIRScorer:
    """A trained :class:`AIRModel` behind the harness's ``score(histories, candidates)``."""

    def __init__(self, model: AIRModel, engine: Engine, backbone: SequentialScorer, *, name: str = "AIR",
                 chunk: int = 16, slot_cache_mib: float = 0.0, compose_in: str = "engine") -> None:
        if compose_in not in ("engine", "torch"):
            raise InputError(f"compose_in must be 'engine' or 'torch', got {compose_in!r}")
        self.model = model
        self.engine = engine
        self.backbone = backbone
        self.name = name
        self.chunk = max(1, chunk)
        self.compose_in = compose_in
        self._slots = _SlotCache(engine, slot_cache_mib)
        self._folded: tuple[bytes, Engine] | None = None

    def _composing_engine(self) -> Engine | None:
        """The engine with the model's current composition folded in (refolded only when the
        weights changed), or None where scoring composes in torch (``compose_in="torch"``, or
        a target-independent variant, which the engine does not compute)."""
        if self.compose_in != "engine" or not self.model.variant.target_aware:
            return None
        comp = self.model.composition.to_composition()
        digest = hashlib.blake2b(digest_size=16)
        arrays = sorted(comp.arrays().items())
        digest.update(" ".join(name for name, _ in arrays).encode())
        hash_arrays(digest, [array for _, array in arrays])
        key = digest.digest()
        if self._folded is None or self._folded[0] != key:
            self._folded = (key, self.engine.with_composition(comp))
        return self._folded[1]

    def cache_slots(self, budget_mib: float) -> None:
        """Start a fresh slot cache of ``budget_mib`` (0: none) for :meth:`score`."""
        self._slots = _SlotCache(self.engine, budget_mib)

    def intent_vectors(self, histories: Histories, candidates: IntArray, *, cached: bool = False) -> Tensor:
        """``u`` for every (user, candidate): ``[U, C, d]`` (``[U, 1, d]`` when target-independent).

        ``cached``: reuse the engine's slots of an earlier call with the same inputs (scoring
        valid every epoch); training's random positions never repeat and are not cached."""
        comp = self.model.composition
        if not self.model.variant.target_aware:
            ids, _ = self.engine.tree_slots_batch(histories, self.model.variant.pooled_width)
            return comp.pooled(torch.from_numpy(ids)).unsqueeze(1)
        slots = self._slots.get(histories, candidates) if cached else self.engine.slots_batch(histories, candidates)
        x = comp.candidate_vectors(torch.from_numpy(candidates))
        u: Tensor = comp(x, torch.from_numpy(slots.ids), torch.from_numpy(slots.types), torch.from_numpy(slots.ln_w))
        return u

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
                engine = self._composing_engine()
                for lo in range(0, histories.n_users, self.chunk):
                    hi = min(lo + self.chunk, histories.n_users)
                    sub = histories_of(histories, np.arange(lo, hi, dtype=np.int64))
                    if engine is not None:
                        u = torch.from_numpy(engine.intent_vectors_batch(sub, cand[lo:hi]))
                    else:
                        u = self.intent_vectors(sub, cand[lo:hi], cached=True)
                    s = self.model.scores(states[lo:hi], torch.from_numpy(cand[lo:hi]), u)
                    out[lo:hi] = s.cpu().numpy()
        finally:
            self.model.train(was)
        return out


class _SlotCache:
    """The engine's attention slots by their inputs, within a memory budget.

    Slots are a pure function of the bundle, the histories and the candidates (they do not
    depend on anything torch learns), so validation, which scores the same lines against the
    same saved negatives every epoch, asks the engine once and composes from the cache after.
    Keys are a 128-bit BLAKE2b digest of every input array; past the budget new entries are
    computed and not stored.
    """

    def __init__(self, engine: Engine, budget_mib: float) -> None:
        self.engine = engine
        self.budget = int(budget_mib * 2**20)
        self.used = 0
        self.entries: dict[bytes, Slots] = {}

    def get(self, histories: Histories, candidates: IntArray) -> Slots:
        if self.budget <= 0:
            return self.engine.slots_batch(histories, candidates)
        digest = hashlib.blake2b(digest_size=16)
        hash_arrays(digest, [histories.offsets, histories.items, histories.behaviours, histories.timestamps, candidates])
        key = digest.digest()
        hit = self.entries.get(key)
        if hit is not None:
            return hit
        slots = self.engine.slots_batch(histories, candidates)
        size = slots.ids.nbytes + slots.types.nbytes + slots.ln_w.nbytes
        if self.used + size <= self.budget:
            self.entries[key] = slots
            self.used += size
        return slots


def build_air_model(
    engine: Engine, dataset: Dataset, backbone_config: TrainConfig, variant: AIRVariant = AIRVariant()
) -> AIRModel:
    """An untrained AIR model: a fresh backbone of ``variant.backbone`` (seeded by the caller)
    and the engine bundle's composition as the composition's init."""
    from airrec.bundle import load_arrays

    arrays = load_arrays(engine.path, verify=False)
    text = arrays.item_vectors if variant.backbone_text else None
    nodes = item_intent_nodes(arrays) if variant.item_intents else None
    if variant.backbone not in ("sasrec-mixed", "gru4rec"):
        raise InputError(f"AIR backbone {variant.backbone!r}: choose sasrec-mixed or gru4rec")
    if variant.backbone != "sasrec-mixed" and (text is not None or nodes is not None):
        raise InputError("backbone_text and item_intents need the sasrec-mixed backbone")
    backbone, _ = build_model(variant.backbone, dataset, backbone_config, item_text=text, item_nodes=nodes)
    comp = IntentComposition(arrays.composition, arrays.node_vectors, arrays.item_vectors,
                             use_weights=variant.use_weights)
    return AIRModel(backbone, comp, variant)


def engine_settings(variant: AIRVariant, config: AIRTrainConfig) -> dict[str, Any]:
    """The engine settings a model trains and serves with: the variant's, then the config's."""
    return {**variant.engine_overrides, **config.engine}


def _air_positions(lengths: IntArray, starts: IntArray, rng: np.random.Generator,
                   per_row: int = 1) -> tuple[IntArray, IntArray]:
    """Per window row, ``per_row`` random positions (distinct; 0: all) whose history is
    non-empty: ``(rows, positions)`` (rows with no such position are left out). ``starts`` is
    each row's first target index."""
    low = (starts == 0).astype(np.int64)  # position 0 of a full sequence has no history
    span = lengths - low
    if per_row == 1:  # the original draw, kept so that runs of the default setting reproduce
        rows = np.flatnonzero(span > 0)
        pos = low[rows] + (rng.random(rows.size) * span[rows]).astype(np.int64)
        return rows, pos
    width = int(lengths.max()) if lengths.size else 0
    cols = np.arange(width)
    usable = (cols >= low[:, None]) & (cols < lengths[:, None])
    keys = np.where(usable, rng.random((lengths.size, width)), np.inf)
    take = width if per_row <= 0 else min(per_row, width)
    order = np.argsort(keys, axis=1, kind="stable")[:, :take]  # a random subset per row
    rows, j = np.nonzero(np.take_along_axis(usable, order, axis=1))
    return rows.astype(np.int64), order[rows, j].astype(np.int64)


def train_air(
    dataset: Dataset,
    engine: Engine,
    config: AIRTrainConfig = AIRTrainConfig(),
    backbone_config: TrainConfig = TrainConfig(),
    *,
    variant: AIRVariant = AIRVariant(),
    name: str = "AIR",
) -> AIRTrainResult:
    """Train backbone and AIR part together; select the epoch on valid HR@10."""
    from tqdm.auto import tqdm  # type: ignore[import-untyped, unused-ignore]

    if config.epochs < 1 or config.n_negatives < 1 or backbone_config.batch_size < 1:
        raise InputError("epochs, n_negatives and batch_size must be >= 1")
    if config.positions < 0:
        raise InputError(f"positions must be >= 0 (0: every position), got {config.positions}")
    if config.select_on not in SELECT_ON:
        raise InputError(f"select_on: choose one of {SELECT_ON}, got {config.select_on!r}")
    if engine.n_items != dataset.n_items:
        raise InputError(f"the bundle has {engine.n_items} items, the dataset {dataset.n_items}")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    overrides = engine_settings(variant, config)
    if overrides:
        engine = engine.with_config(**overrides)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    bcfg = replace(backbone_config, seed=config.seed, progress=False)
    model = build_air_model(engine, dataset, bcfg, variant)
    backbone = SequentialScorer(model.backbone, dataset.items.domains, view="mixed", max_len=bcfg.max_len,
                                name="backbone")
    scorer = AIRScorer(model, engine, backbone, name=name, chunk=config.score_chunk,
                       slot_cache_mib=config.slot_cache_mib if config.compose_in == "torch" else 0.0,
                       compose_in=config.compose_in)

    s = dataset.train
    seqs = train_sequences(dataset, "mixed")
    lines = np.flatnonzero([q.size > 0 for q in seqs]).astype(np.int64)
    windows = training_windows([seqs[u] for u in lines], bcfg.max_len)
    if len(windows) == 0:
        raise InputError(f"{dataset.name}: no training sequences")
    starts = np.array([seqs[u].size for u in lines], dtype=np.int64) - windows.lengths
    valid_neg = get_negatives(dataset, "valid", config.eval_negatives, config.eval_seed, config.negatives_cache)
    seq_loss = _Loss(dataset, bcfg, rng, torch.device("cpu"))
    optim = torch.optim.Adam(model.parameters(), lr=bcfg.lr, weight_decay=bcfg.weight_decay)
    domains = np.asarray(dataset.items.domains, dtype=np.int64)
    pools = [dataset.items_of_domain(d) for d in range(dataset.n_domains)]
    k = config.n_negatives
    # The plug-in draws its positions and negatives from a stream of its own: the backbone's
    # stream (batch order, its negatives) then stays the baseline's, draw for draw.
    air_rng = rng if config.backbone_grad else np.random.default_rng([config.seed, 1])

    on_backbone = config.select_on == "backbone"
    patience, min_epochs = (bcfg.patience, bcfg.min_epochs) if on_backbone else (config.patience, config.min_epochs)
    selection = Selection(model, f"{name} (kept on its backbone's valid)" if on_backbone else name,
                          patience=patience, min_epochs=min_epochs,
                          checkpoint=config.checkpoint, progress=config.progress)
    for epoch in range(1, config.epochs + 1):
        model.train()
        started = time.perf_counter()
        losses = []
        for idx in tqdm(batch_order(windows, bcfg.batch_size, rng), desc=f"{name} epoch {epoch}",
                        disable=not config.progress, leave=False):
            width = int(windows.lengths[idx].max())
            tokens = torch.from_numpy(windows.inputs[idx, :width])
            targets = windows.targets[idx, :width]
            valid = targets >= 0
            states = model.backbone.states(tokens)
            loss = seq_loss(model.backbone, states[torch.from_numpy(valid)], targets[valid])
            rows, pos = _air_positions(windows.lengths[idx], starts[idx], air_rng, config.positions)
            if rows.size:
                tgt = targets[rows, pos]
                cands = np.empty((rows.size, k + 1), dtype=np.int64)
                cands[:, 0] = tgt
                tdom = domains[tgt]
                for d in np.unique(tdom).tolist():
                    sel = np.flatnonzero(tdom == d)
                    cands[sel, 1:] = pools[d][air_rng.integers(0, pools[d].size, (sel.size, k))]
                hist = histories_of(s, lines[idx[rows]], starts[idx[rows]] + pos)
                u = scorer.intent_vectors(hist, cands)
                cand_t = torch.from_numpy(cands)
                logits = model.scores(states[torch.from_numpy(rows), torch.from_numpy(pos)], cand_t, u,
                                      backbone_grad=config.backbone_grad)
                collide = torch.zeros_like(logits, dtype=torch.bool)
                collide[:, 1:] = cand_t[:, 1:] == cand_t[:, :1]
                logits = logits.masked_fill(collide, float("-inf"))
                air_loss = F.cross_entropy(logits, torch.zeros(rows.size, dtype=torch.long))
                loss = loss + config.air_weight * air_loss
            optim.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call, unused-ignore]
            optim.step()
            losses.append(float(loss.detach()))
        train_s = time.perf_counter() - started
        started = time.perf_counter()
        if on_backbone:
            hr, per = valid_hr10(backbone, dataset, valid_neg)
        elif epoch < min(config.eval_from, config.epochs):
            selection.logs.append(EpochLog(epoch, float(np.mean(losses)), train_s, 0.0, float("nan"), {}))
            log.info("%s epoch %d: loss %.4f, train %.1f s (valid not scored before epoch %d)",
                     name, epoch, selection.logs[-1].loss, train_s, config.eval_from)
            continue
        else:
            hr, per = valid_hr10(scorer, dataset, valid_neg)
        if selection.update(EpochLog(epoch, float(np.mean(losses)), train_s, time.perf_counter() - started, hr, per)):
            break
    selection.restore()
    # Selected on the backbone, the run still reports the AIR score's valid HR@10 (its epoch's).
    best_hr = valid_hr10(scorer, dataset, valid_neg)[0] if on_backbone else selection.best_hr
    scorer.cache_slots(0.0)  # the valid lines' slots are done with; test lines are scored once
    return AIRTrainResult(scorer, config, selection.best_epoch, best_hr, selection.logs, bcfg)


def save_air_checkpoint(result: AIRTrainResult, backbone_config: TrainConfig, path: str | Path) -> Path:
    """The trained model's state plus what rebuilding it needs (variant, backbone config)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    cfg = config_dict(backbone_config)
    payload = {"format": "airrec-air-checkpoint", "version": 1, "name": result.scorer.name,
               "variant": asdict(result.scorer.model.variant), "backbone_config": cfg,
               "engine": engine_settings(result.scorer.model.variant, result.config),
               "best_epoch": result.best_epoch, "state": result.scorer.model.state_dict()}
    with atomic_writer(out) as handle:
        torch.save(payload, handle)
    return out


def load_air_scorer(path: str | Path, engine: Engine, dataset: Dataset) -> AIRScorer:
    """An :class:`AIRScorer` from :func:`save_air_checkpoint`'s file, over ``engine`` (the
    bundle it was trained on, or its export)."""
    import pickle

    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError) as e:
        raise InputError(f"{path}: cannot read an AIR checkpoint ({e})") from None
    if not isinstance(payload, dict) or payload.get("format") != "airrec-air-checkpoint":
        raise InputError(f"{path}: not an AIR checkpoint (airrec train writes them)")
    variant = AIRVariant(**payload["variant"])
    fields_ = {f for f in TrainConfig.__dataclass_fields__}
    bcfg = TrainConfig(**{k: v for k, v in payload["backbone_config"].items() if k in fields_ and k not in
                          ("negatives_cache", "checkpoint")})
    overrides = payload.get("engine", variant.engine_overrides)  # version-1 files before it: the variant's
    if overrides:
        engine = engine.with_config(**overrides)
    model = build_air_model(engine, dataset, bcfg, variant)
    try:
        model.load_state_dict(payload["state"])
    except RuntimeError as e:
        raise InputError(f"{path}: the checkpoint does not fit this bundle/dataset ({e})") from None
    model.eval()
    backbone = SequentialScorer(model.backbone, dataset.items.domains, view="mixed", max_len=bcfg.max_len)
    return AIRScorer(model, engine, backbone, name=str(payload.get("name", "AIR")))
