"""One experiment: train the requested models for several seeds and evaluate them together.

Every model — popularity, the torch baselines, AIR and its ablations — is selected on valid and
evaluated on test with the *same* saved negatives (one negatives seed for all training seeds),
so the table compares models, not samples. Training seeds vary the models only.

Model names (``--models``):

=========================  ===============================================================
``popularity``             train-split popularity (no training, seed-independent)
``gru4rec``                GRU4Rec over the mixed sequence
``sasrec-target``          SASRec on the target domain's events only
``sasrec-mixed``           SASRec over the mixed sequence (= AIR's backbone without intents)
``air-backbone``           AIR's backbone alone (only differs from ``sasrec-mixed`` with
                           ``AIRVariant.backbone_text``; not part of ``all``)
``sasrec-intents``         SASRec-mixed whose item embeddings add learned embeddings of the
                           item's intent nodes (item-side intents only; not part of ``all``)
``air``                    AIR: SASRec-mixed + the engine's intents (main bundle)
``air-no-weights``         ablation: no tree weighting (no ``ln w``, no walk bias, no decay)
``air-no-target``          ablation: no target-aware retrieval (mean of the tree's nodes)
``air-random``             ablation: random intents (another item's LLM answer; own bundle)
``air-smollm2``            ablation: SmolLM2-135M intents instead of Qwen 0.5B (own bundle)
``air-item-intents``       lever: AIR with item-side intents in its backbone too (not in ``all``)
``air-gru4rec``            lever: AIR over a GRU4Rec backbone (against ``gru4rec``; not in ``all``)
``air-gru4rec-random``     ablation of ``air-gru4rec``: random intents (the ``air-random`` bundle;
                           not in ``all``)
=========================  ===============================================================

``air`` is exported: its trained composition and score head replace the bundle's
(:func:`airrec.bundle.replace_composition`) in ``<out>/bundles/air.seed<S>``, beside its torch
checkpoint, and the export is checked for parity (engine vs torch on valid lines).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from airrec.data.dataset import Dataset
from airrec.errors import InputError

__all__ = [
    "AIR_HYPER", "AIR_VARIANTS", "ALL_MODELS", "MODEL_NAMES", "SuiteOptions", "SuiteReport", "check_export_parity", "check_hyper",
    "effective_hyper", "hyper_tag", "model_label", "run_suite", "split_air_hyper",
]

log = logging.getLogger(__name__)

#: Row labels of the results table.
MODEL_NAMES: dict[str, str] = {
    "popularity": "popularity",
    "gru4rec": "GRU4Rec",
    "sasrec-target": "SASRec (target-only)",
    "sasrec-mixed": "SASRec (mixed)",
    "air-backbone": "AIR backbone alone (no intents)",
    "air": "AIR (SASRec-mixed + Qwen intents)",
    "air-no-weights": "AIR w/o tree weighting",
    "air-no-target": "AIR w/o target-aware retrieval",
    "air-random": "AIR with random intents",
    "air-smollm2": "AIR with SmolLM2 intents",
    "sasrec-intents": "SASRec (mixed) + item intents",
    "air-item-intents": "AIR + item intents",
    "air-gru4rec": "AIR (GRU4Rec + Qwen intents)",
    "air-gru4rec-random": "AIR (GRU4Rec) with random intents",
}
#: Labels of the AIR models that use the main bundle's intents, by what made those intents.
_INTENT_LABELS = {
    "air": "AIR (SASRec-mixed + {intents} intents)",
    "air-item-intents": "AIR + item intents ({intents})",
    "air-gru4rec": "AIR (GRU4Rec + {intents} intents)",
}


def model_label(model: str, intents: str = "Qwen") -> str:
    """The results label of ``model`` when the main bundle's intents come from ``intents``
    (``"Qwen"``: the committed Food–Kitchen artifact; :data:`MODEL_NAMES` has those labels)."""
    if model in _INTENT_LABELS and intents != "Qwen":
        return _INTENT_LABELS[model].format(intents=intents)
    return MODEL_NAMES[model]


#: AIR models: (bundle key, variant switches).
AIR_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "air": ("main", {}),
    "air-no-weights": ("main", {"use_weights": False}),
    "air-no-target": ("main", {"target_aware": False}),
    "air-random": ("random", {}),
    "air-smollm2": ("smollm2", {}),
    "air-item-intents": ("main", {"item_intents": True}),
    "air-gru4rec": ("main", {"backbone": "gru4rec"}),
    "air-gru4rec-random": ("random", {"backbone": "gru4rec"}),
}
BASELINES = ("gru4rec", "sasrec-target", "sasrec-mixed")
#: What ``--models all`` means.
ALL_MODELS: tuple[str, ...] = tuple(
    m for m in MODEL_NAMES
    if m not in ("air-backbone", "sasrec-intents", "air-item-intents", "air-gru4rec", "air-gru4rec-random")
)
#: Full ranking (``full_ranking=True``) skips the ablations: scoring a whole domain through the
#: engine costs minutes per model, and the ablations are compared on the sampled protocol.
ABLATION_NAMES = frozenset(
    MODEL_NAMES[m] for m in [*AIR_VARIANTS, "air-backbone"] if m not in ("air", "air-item-intents", "air-gru4rec")
)


@dataclass
class SuiteOptions:
    """What to train and evaluate; defaults are the main job's (one seed, the main models)."""

    models: Sequence[str] = ("popularity", "sasrec-mixed", "air")
    seeds: Sequence[int] = (0,)
    #: Seeds of the AIR ablations (``None``: ``seeds``); fewer keeps a full run affordable.
    ablation_seeds: Sequence[int] | None = None
    #: Bundles by key: ``main`` (required for AIR models), ``random``, ``smollm2``.
    bundles: Mapping[str, Path] = field(default_factory=dict)
    out_dir: Path = Path("results/train")
    negatives: int = 999
    negatives_seed: int = 0
    negatives_cache: Path | None = None
    full_ranking: bool = False  #: also full ranking (every model but the AIR ablations)
    epochs: int = 30
    plots: bool = True
    progress: bool = True
    export: bool = True
    #: Per model, :class:`~airrec.models.train.TrainConfig` fields that replace the defaults
    #: (the tuning's choice, :mod:`airrec.models.tune`); AIR models apply them to their backbone.
    #: A run with overrides is saved under its own name, never mistaken for a default run.
    hyper: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: What made the main bundle's intents, for the AIR labels (:func:`model_label`).
    intents_label: str = "Qwen"


@dataclass
class SuiteReport:
    results: Path
    markdown: Path
    training: Path
    plots: list[Path]
    exported: list[Path]
    seconds: float


def parse_models(text: str | Sequence[str]) -> list[str]:
    """``"sasrec-mixed,air"`` (or a list) -> checked model names, in order, without repeats."""
    items = text.split(",") if isinstance(text, str) else list(text)
    kinds = list(dict.fromkeys(k.strip() for k in items if k.strip()))
    bad = [k for k in kinds if k not in MODEL_NAMES]
    if bad or not kinds:
        raise InputError(f"unknown model(s) {bad or text!r}; choose from {', '.join(MODEL_NAMES)}")
    return kinds


def check_export_parity(scorer: Any, bundle: Path, dataset: Dataset, n_lines: int = 64) -> dict[str, float]:
    """Max |engine − torch| of intent vectors and AIR scores on the first valid lines, with the
    exported bundle's engine and the trained torch composition (same candidates: target +
    200 items of its domain)."""
    import torch

    from airrec.engine import Engine
    from airrec.evaluate.protocol import histories_of

    engine = Engine.load(bundle)
    s = dataset.valid
    lines = np.arange(min(n_lines, len(s)), dtype=np.int64)
    hist = histories_of(s, lines)
    rng = np.random.default_rng(0)
    assert s.targets is not None
    targets = s.targets[lines]
    pools = [dataset.items_of_domain(d) for d in range(dataset.n_domains)]
    cands = np.stack([np.r_[t, rng.choice(pools[int(dataset.items.domains[t])], 200)] for t in targets])
    comp = scorer.model.composition
    with torch.no_grad():
        slots = engine.slots_batch(hist, cands)
        x = comp.candidate_vectors(torch.from_numpy(cands))
        u = comp(x, torch.from_numpy(slots.ids), torch.from_numpy(slots.types), torch.from_numpy(slots.ln_w))
        score = comp.score(u, x).numpy()
    ue = engine.intent_vectors_batch(hist, cands)
    se = engine.score_batch(hist, cands)
    return {"max_abs_intent_vector": float(np.abs(ue - u.numpy()).max()),
            "max_abs_score": float(np.abs(se - score).max()), "lines": int(lines.size)}


def _export(result: Any, bundle: Path, out: Path, seed: int, variant_overrides: Mapping[str, Any],
            backbone_config: Any) -> Path:
    from airrec.bundle import replace_composition
    from airrec.models.air_train import save_air_checkpoint

    comp = result.scorer.model.composition.to_composition()
    meta = {"composition": {"trained": True, "model": "air", "seed": seed, "best_epoch": result.best_epoch,
                            "best_valid_hr10": round(result.best_valid_hr10, 6),
                            "torch_checkpoint": f"../../checkpoints/air.seed{seed}.pt"}}
    path = replace_composition(bundle, out / "bundles" / f"air.seed{seed}", comp, config=variant_overrides,
                               meta=meta, overwrite=True)
    save_air_checkpoint(result, backbone_config, out / "checkpoints" / f"air.seed{seed}.pt")
    return path


def hyper_tag(hyper: Mapping[str, Any]) -> str:
    """A short, stable name for a set of hyper-parameter overrides (empty for the defaults)."""
    import hashlib

    if not hyper:
        return ""
    text = json.dumps(dict(hyper), sort_keys=True)
    return "@" + hashlib.sha256(text.encode()).hexdigest()[:8]


#: Settings of the AIR objective and of the engine an AIR model trains and serves with, that
#: its hyper-parameters may name, by the :class:`~airrec.models.air_train.AIRTrainConfig` field
#: they set (the other keys are the backbone's TrainConfig fields).
AIR_HYPER: dict[str, str] = {"air_negatives": "n_negatives", "air_positions": "positions", "air_weight": "air_weight",
                             "air_engine": "engine", "air_backbone_grad": "backbone_grad",
                             "air_select_on": "select_on"}


def effective_hyper(hyper: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides that differ from the defaults (TrainConfig's; AIRTrainConfig's for the
    :data:`AIR_HYPER` keys): a trial at the defaults is the default run and reuses it."""
    from airrec.models.air_train import AIRTrainConfig
    from airrec.models.train import TrainConfig

    defaults, air_defaults = TrainConfig(), AIRTrainConfig()

    def default(key: str) -> Any:
        return getattr(air_defaults, AIR_HYPER[key]) if key in AIR_HYPER else getattr(defaults, key)

    return {k: v for k, v in sorted(hyper.items()) if default(k) != v}


def split_air_hyper(hyper: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(TrainConfig fields, AIRTrainConfig fields)`` of one model's hyper-parameters."""
    backbone = {k: v for k, v in hyper.items() if k not in AIR_HYPER}
    return backbone, {AIR_HYPER[k]: v for k, v in hyper.items() if k in AIR_HYPER}


def check_hyper(hyper: Mapping[str, Mapping[str, Any]]) -> None:
    """Unknown models or TrainConfig fields are refused (a typo would otherwise train defaults)."""
    from dataclasses import fields

    from airrec.models.train import TrainConfig

    allowed = {f.name for f in fields(TrainConfig)} - {"seed", "negatives_cache", "checkpoint", "progress", "device",
                                                       "eval_negatives", "eval_seed", "threads", "epochs"}
    for model, values in hyper.items():
        if model not in MODEL_NAMES:
            raise InputError(f"hyper-parameters for unknown model {model!r}")
        ok = allowed | set(AIR_HYPER) if model in AIR_VARIANTS else allowed
        bad = sorted(set(values) - ok)
        if bad:
            raise InputError(f"{model}: {bad} are not tunable fields ({', '.join(sorted(ok))})")
        for key, value in values.items():
            if key in AIR_HYPER and not _valid_air_setting(key, value):
                raise InputError(f"{model}: {key} = {value!r} (air_negatives: an int >= 1; air_positions: an int "
                                 ">= 0, 0 = every position; air_weight: a finite number >= 0; air_backbone_grad: true or "
                                 "false; air_select_on: \"air\" or \"backbone\"; air_engine: an object of engine settings, e.g. {\"max_evidence\": 16})")


def _valid_air_setting(key: str, value: Any) -> bool:
    import math

    if key == "air_engine":  # the engine checks names and ranges when the model is built
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if key == "air_backbone_grad":
        return isinstance(value, bool)
    if key == "air_select_on":
        from airrec.models.air_train import SELECT_ON

        return isinstance(value, str) and value in SELECT_ON
    if isinstance(value, bool):
        return False
    if key == "air_weight":
        return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0
    return isinstance(value, int) and value >= (1 if key == "air_negatives" else 0)


def _run_file(out: Path, model: str, seed: int) -> Path:
    return out / "runs" / f"{model}.seed{seed}.json"


def _load_run(out: Path, model: str, seed: int,
              provenance: dict[str, Any]) -> tuple[list[Any], dict[str, Any] | None] | None:
    """A finished run's results and training log, or None when it has not finished or was
    made from other inputs.

    ``model`` is the run's name: the model plus :func:`hyper_tag` of its overrides. A run is
    keyed by ``provenance`` too (the data's fingerprint, the protocol, the intents): a saved
    run whose provenance differs is rerun, never reused for other data. Records written
    before provenance was stored carry none and are reused as they are."""
    from airrec.evaluate.store import load_result

    path = _run_file(out, model, seed)
    if not path.exists():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    saved = record.get("provenance")
    if saved is not None and saved != provenance:
        differ = sorted(k for k in {*saved, *provenance} if saved.get(k) != provenance.get(k))
        log.warning("%s seed %d: the saved run in %s was made with other %s; running it again",
                    model, seed, out / "runs", ", ".join(differ))
        return None
    return [load_result(out / "runs" / f) for f in record["results"]], record.get("training")


def _run_provenance(dataset: Dataset, opts: SuiteOptions, model: str, data_sha256: str) -> dict[str, Any]:
    """What a run's results depend on besides its name and seed: the data, the protocol, the
    epoch budget and, for models that read a bundle, the intents the bundle was built from."""
    from airrec.bundle import read_manifest

    provenance: dict[str, Any] = {"data_sha256": data_sha256, "negatives": opts.negatives,
                                  "negatives_seed": opts.negatives_seed, "epochs": opts.epochs,
                                  "full_ranking": opts.full_ranking}
    key = AIR_VARIANTS[model][0] if model in AIR_VARIANTS else (
        "main" if model in ("air-backbone", "sasrec-intents") else None)
    if key is not None:
        kb = read_manifest(opts.bundles[key]).get("meta", {}).get("kb", {})
        provenance["intents_sha256"] = kb.get("intents_sha256") if isinstance(kb, dict) else None
    return provenance


def _save_run(out: Path, model: str, seed: int, results: Sequence[Any], training: dict[str, Any] | None,
              provenance: dict[str, Any]) -> None:
    """Save a finished run: its results (one .npz each), then its record (the commit point)."""
    from airrec._files import write_json_atomic
    from airrec.evaluate.store import save_result

    names = []
    for r in results:
        name = f"{model}.seed{seed}.{r.protocol}.npz"
        save_result(r, out / "runs" / name)
        names.append(name)
    write_json_atomic(_run_file(out, model, seed), {"model": model, "seed": seed, "results": names,
                                                    "training": training, "provenance": provenance})


def run_suite(dataset: Dataset, opts: SuiteOptions) -> SuiteReport:
    """Train and evaluate ``opts.models`` for every seed; write results, tables and plots.

    Every finished (model, seed) run is saved under ``<out>/runs`` and reused by a later call
    with the same ``out_dir`` (delete its file to rerun it): a crash loses only the run in
    progress, and several processes may fill one ``out_dir`` with different models or seeds.
    """
    from airrec.bundle import load_arrays
    from airrec.engine import Engine
    from airrec.evaluate.baselines import PopularityScorer
    from airrec.evaluate.cli import default_negatives_cache
    from airrec.evaluate.negatives import get_negatives
    from airrec.evaluate.protocol import EvalResult, Scorer, evaluate
    from airrec.evaluate.report import write_report
    from airrec.models.air import AIRVariant, item_intent_nodes
    from airrec.models.air_train import AIRTrainConfig, engine_settings, train_air
    from airrec.models.plots import plot_training
    from airrec.models.train import TrainConfig, train_model

    models = parse_models(opts.models)
    check_hyper(opts.hyper)
    for m in models:
        if m in ("air-backbone", "sasrec-intents") and "main" not in opts.bundles:
            raise InputError(f"{m} needs the 'main' bundle (its item vectors or intents)")
        if m in AIR_VARIANTS and AIR_VARIANTS[m][0] not in opts.bundles:
            raise InputError(f"{m} needs the {AIR_VARIANTS[m][0]!r} bundle")
    if not opts.seeds:
        raise InputError("at least one seed")
    started = time.perf_counter()
    out = Path(opts.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = opts.negatives_cache or default_negatives_cache()
    test_neg = get_negatives(dataset, "test", opts.negatives, opts.negatives_seed, cache)
    results: list[EvalResult] = []
    training: list[dict[str, Any]] = []
    exported: list[Path] = []
    engines: dict[str, Engine] = {}
    # Every bundle an AIR model needs is loaded and matched to the dataset before anything is
    # trained: a bundle of other data would otherwise fail only after the baselines' hours.
    for key in dict.fromkeys(AIR_VARIANTS[m][0] for m in models if m in AIR_VARIANTS):
        engines[key] = Engine.load(opts.bundles[key])
        if engines[key].n_items != dataset.n_items:
            raise InputError(f"the {key!r} bundle {opts.bundles[key]} has {engines[key].n_items} items, "
                             f"dataset {dataset.name!r} {dataset.n_items}: it was built for other data")

    def evaluate_all(scorer: Scorer, name: str, seed: int) -> list[EvalResult]:
        runs = [evaluate(scorer, dataset, "test", test_neg, seed=seed, model=name)]
        if opts.full_ranking and name not in ABLATION_NAMES:
            runs.append(evaluate(scorer, dataset, "test", full_ranking=True, seed=seed, model=name))
        return runs

    def label(m: str) -> str:
        return model_label(m, opts.intents_label)

    def run_one(m: str, seed: int) -> tuple[list[EvalResult], dict[str, Any] | None]:
        if m == "popularity":
            return evaluate_all(PopularityScorer(dataset), label(m), seed), None
        backbone_hyper, air_hyper = split_air_hyper(opts.hyper.get(m, {}))
        base_cfg = TrainConfig(**{**backbone_hyper, "epochs": opts.epochs, "seed": seed,
                                  "eval_seed": opts.negatives_seed, "negatives_cache": cache,
                                  "eval_negatives": opts.negatives, "progress": opts.progress})
        if m in BASELINES or m in ("air-backbone", "sasrec-intents"):
            text = nodes = None
            if m == "air-backbone" and AIRVariant().backbone_text:
                text = load_arrays(opts.bundles["main"], verify=False).item_vectors
            if m == "sasrec-intents":
                nodes = item_intent_nodes(load_arrays(opts.bundles["main"], verify=False))
            kind = m if m in BASELINES else "sasrec-mixed"
            t = train_model(kind, dataset, base_cfg, item_text=text, item_nodes=nodes, name=label(m))
            return evaluate_all(t.scorer, label(m), seed), {**t.to_dict(), "model": label(m), "seed": seed}
        key, switches = AIR_VARIANTS[m]
        variant = AIRVariant(**switches)
        acfg = AIRTrainConfig(**air_hyper, epochs=opts.epochs, seed=seed, eval_seed=opts.negatives_seed,
                              eval_negatives=opts.negatives, negatives_cache=cache, progress=opts.progress)
        r = train_air(dataset, engines[key], acfg, base_cfg, variant=variant, name=label(m))
        log_entry = {**r.to_dict(), "model": label(m), "seed": seed}
        if m == "air" and opts.export:
            path = _export(r, opts.bundles[key], out, seed, engine_settings(variant, acfg), base_cfg)
            log_entry["export"] = {"bundle": str(path), "parity": check_export_parity(r.scorer, path, dataset)}
            log.info("exported %s (parity %s)", path, log_entry["export"]["parity"])
        return evaluate_all(r.scorer, label(m), seed), log_entry

    ablation_seeds = set(opts.seeds if opts.ablation_seeds is None else opts.ablation_seeds)
    data_sha256 = dataset.fingerprint()
    for seed in list(dict.fromkeys([*opts.seeds, *sorted(ablation_seeds)])):
        for m in models:
            run_seed = opts.negatives_seed if m == "popularity" else seed
            if m == "popularity" and seed != opts.seeds[0]:
                continue  # untrained: one run
            if MODEL_NAMES[m] in ABLATION_NAMES:
                if seed not in ablation_seeds:
                    continue
            elif seed not in opts.seeds:
                continue
            run_name = m + hyper_tag(effective_hyper(opts.hyper.get(m, {})))
            provenance = _run_provenance(dataset, opts, m, data_sha256)
            done = _load_run(out, run_name, run_seed, provenance)
            if done is None:
                done = run_one(m, run_seed)
                _save_run(out, run_name, run_seed, done[0], done[1], provenance)
            else:
                log.info("%s seed %d: reusing the saved run in %s", m, run_seed, out / "runs")
                # A run saved under another label (the intents' source) is the same run.
                done = ([dataclasses.replace(r, model=label(m)) for r in done[0]],
                        None if done[1] is None else {**done[1], "model": label(m)})
            results += done[0]
            if done[1] is not None:
                training.append(done[1])
                if "export" in done[1]:
                    exported.append(Path(done[1]["export"]["bundle"]))
    seconds = time.perf_counter() - started
    summary = [
        {"model": t["model"], "seed": t["seed"], "best_epoch": t["best_epoch"],
         "best_valid_hr10": round(t["best_valid_hr10"], 4), "epochs_run": len(t["epochs"]),
         "mean_epoch_train_seconds": round(float(np.mean([e["train_seconds"] for e in t["epochs"]])), 1)}
        for t in training
    ]
    parity = {f"seed{t['seed']}": t["export"]["parity"] for t in training if "export" in t}
    meta: dict[str, Any] = {
        "dataset": dataset.name, "split": "test", "negatives": opts.negatives,
        "negatives_seed": opts.negatives_seed, "training_seeds": list(opts.seeds),
        "ablation_seeds": sorted(ablation_seeds), "models": models,
        "selection": "best epoch on valid HR@10 averaged over domains (one shared checkpoint)",
        "bundles": {k: str(v) for k, v in opts.bundles.items()}, "export_parity": parity,
        "training": summary, "seconds": round(seconds, 1),
    }
    paths = write_report(results, out, meta=meta, plots=opts.plots)
    training_path = out / "training.json"
    training_path.write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    plots = list(paths.plots)
    if opts.plots:
        plots += plot_training(training, out / "plots")
    return SuiteReport(paths.json, paths.markdown, training_path, plots, exported, seconds)
