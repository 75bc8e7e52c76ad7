"""`airrec run`: the whole pipeline, end to end, each stage cached on disk.

1. **data**: the :class:`~airrec.data.source.DataSource` — by default the LLMCDSR Food–Kitchen
   split from the data directory (downloaded, checksummed, when absent), or the user's own
   tables (``--interactions/--items``, ``--recbole``);
2. **intents**: the committed intents artifact(s) (Food–Kitchen's, only for Food–Kitchen; or
   ``--intents``), plus LLM generation for the items of
   valid/test histories that are still missing (bounded by ``max_generate``; items left without
   intents fall back to cold start: their nearest intent leaves);
3. **bundle**: intent trie + MiniLM embeddings + usearch indexes (rebuilt only when its inputs
   change);
4. **train + evaluate** (:func:`airrec.models.suite.run_suite`): the requested models (default:
   popularity, SASRec-mixed and AIR; ``models="all"`` adds GRU4Rec, SASRec target-only and the
   AIR ablations, building the random-intents and SmolLM2-intents bundles they need) for every
   training seed, on the 999-negative protocol (and full ranking on request); the trained AIR
   composition is exported into ``<work>/results/bundles/air.seed<S>``; results as JSON +
   markdown + plots.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airrec._files import safe_name, sha256_file, write_json_atomic
from airrec.data.source import DataSource

log = logging.getLogger("airrec.run")

#: The committed intents artifact (regenerate with the command in benches/data/README.md).
DEFAULT_INTENTS = Path("benches/data/intents-food-kitchen-qwen2.5-coder-0.5b.jsonl.gz")
#: SmolLM2-135M intents of the same items, for the model-size ablation.
DEFAULT_SMOLLM2_INTENTS = Path("benches/data/intents-food-kitchen-smollm2-135m.jsonl.gz")
DEFAULT_MODELS: tuple[str, ...] = ("popularity", "sasrec-mixed", "air")


def default_work_dir(name: str = "food-kitchen") -> Path:
    """``$AIRREC_CACHE_DIR/runs/<name>`` (default ``~/.cache/airrec/runs/<name>``)."""
    root = os.environ.get("AIRREC_CACHE_DIR") or os.path.join("~", ".cache", "airrec")
    return Path(os.path.expanduser(root)) / "runs" / safe_name(name)


def _food_kitchen() -> DataSource:
    return DataSource(dataset="food-kitchen")


@dataclass
class RunOptions:
    """Settings of one pipeline run; every field has a default that works out of the box."""

    #: The dataset (default: Food–Kitchen under the data home).
    source: DataSource = field(default_factory=_food_kitchen)
    work_dir: Path = field(default_factory=default_work_dir)
    #: Intents files to start from; ``None``: the committed artifact (Food–Kitchen only).
    intents: Sequence[Path] | None = None
    model: str = "qwen2.5-coder-0.5b"
    max_generate: int = 200
    allow_install: bool = True
    dim: int = 64
    negatives: int = 999
    negatives_seed: int = 0
    #: Training seeds (every model is trained once per seed; negatives stay fixed).
    seeds: Sequence[int] = (0,)
    #: Seeds of the AIR ablations (``None``: ``seeds``).
    ablation_seeds: Sequence[int] | None = None
    #: Models to train and evaluate (see :mod:`airrec.models.suite`); ``("all",)`` for all.
    models: Sequence[str] = DEFAULT_MODELS
    epochs: int = 30
    smollm2_intents: Path = DEFAULT_SMOLLM2_INTENTS
    full_ranking: bool = False
    download: bool = True
    plots: bool = True
    #: A ``tuning.json`` (:mod:`airrec.models.tune`) whose chosen settings replace the defaults.
    hyper: Path | None = None
    #: Per model, settings on top of ``hyper``'s (``airrec run --set MODEL.KEY=VALUE``).
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class RunReport:
    intents: dict[str, int]
    bundle: Path
    results: Path
    seconds: dict[str, float]


def _seed_files(opts: RunOptions) -> list[Path]:
    if opts.intents is not None:
        return [Path(p) for p in opts.intents]
    # The committed artifact describes Food–Kitchen's items: on other data its ids would name
    # other items, so there the run starts from no intents (and generates them).
    return [DEFAULT_INTENTS] if opts.source.is_food_kitchen and DEFAULT_INTENTS.exists() else []


def prepare_intents(dataset: Any, opts: RunOptions) -> tuple[Path, dict[str, int]]:
    """Merges the seed intents files with freshly generated intents for missing items.

    "Missing" means: an item of a valid/test history (the items whose intents the evaluated
    users' trees are built from) with no intents for behaviour 0 yet.
    """
    import numpy as np

    from airrec.generate import export_intents, generate_intents
    from airrec.kb.intents import check_item_identity, read_intents, write_intents

    known: dict[tuple[int, int], list[list[str]]] = {}
    for path in _seed_files(opts):
        seed = read_intents(path)
        check_item_identity(seed, dataset)  # intents made for other data are refused, not attached
        known.update(seed.paths_by_key())
        log.info("intents: %d (item, behaviour) pairs from %s", len(known), path)
    needed = np.union1d(dataset.items_in("test"), dataset.items_in("valid"))
    missing = [int(i) for i in needed if (int(i), 0) not in known]
    to_generate = missing[: max(opts.max_generate, 0)]
    generated = 0
    if to_generate:
        log.info("intents: generating %d of %d missing items with %s", len(to_generate), len(missing), opts.model)
        from airrec.generate import DEFAULT_PROMPT, resolve_model

        cache = opts.work_dir / "intents-cache.sqlite"
        model = resolve_model(opts.model, allow_install=opts.allow_install)
        generate_intents(dataset, cache, model=model, items=to_generate)
        fresh = opts.work_dir / "generated.jsonl.gz"
        # This model's answers only: the work dir's cache may also hold another model's.
        export_intents(cache, dataset, fresh, model_sha=model.sha256, prompt_key=DEFAULT_PROMPT.key)
        new = read_intents(fresh).paths_by_key()
        generated = sum(1 for key in new if key not in known)
        known.update(new)
    merged = opts.work_dir / "intents.jsonl.gz"
    write_intents(merged, ((item, b, paths) for (item, b), paths in sorted(known.items())), identity=dataset)
    covered = sum(1 for i in needed if (int(i), 0) in known)
    counts = {
        "pairs": len(known),
        "needed_items": int(needed.size),
        "covered_items": covered,
        "generated_now": generated,
        "cold_start_items": int(needed.size) - covered,
    }
    return merged, counts


def build(dataset: Any, intents: Path, opts: RunOptions, name: str = "bundle") -> Path:
    """The bundle ``<work>/<name>``, rebuilt only when the intents or build settings changed."""
    from airrec.kb.build import build_bundle
    from airrec.kb.cli import default_cache_dir
    from airrec.kb.embed import SentenceTransformerEmbedder

    out = opts.work_dir / name
    from airrec.bundle import FORMAT_VERSION

    # The format version is an input: a bundle cached by an older airrec is rebuilt, not refused.
    inputs = {"intents_sha256": sha256_file(intents), "dim": opts.dim, "embedder": "minilm",
              "dataset": dataset.name, "data_sha256": dataset.fingerprint(), "format_version": FORMAT_VERSION}
    stamp = opts.work_dir / f"{name}.inputs.json"
    if (out / "manifest.json").exists() and stamp.exists() and json.loads(stamp.read_text()) == inputs:
        log.info("bundle: up to date (%s)", out)
        return out
    report = build_bundle(
        dataset, intents, out, embedder=SentenceTransformerEmbedder(), dim=opts.dim,
        cache_dir=default_cache_dir(), overwrite=True, progress=True,
    )
    log.info("bundle:\n%s", report.summary())
    write_json_atomic(opts.work_dir / f"{name}.report.json", report.to_json())  # trie stats, merges
    stamp.write_text(json.dumps(inputs))
    return out


def ablation_bundles(dataset: Any, intents: Path, opts: RunOptions, models: Sequence[str]) -> dict[str, Path]:
    """The extra bundles the requested AIR ablations need (random / SmolLM2 intents)."""
    from airrec.errors import DataError
    from airrec.kb.intents import shuffle_intents
    from airrec.models.suite import AIR_VARIANTS

    needed = {AIR_VARIANTS[m][0] for m in models if m in AIR_VARIANTS}
    out: dict[str, Path] = {}
    if "random" in needed:
        shuffled = opts.work_dir / "intents-random.jsonl.gz"
        shuffle_intents(intents, shuffled, seed=0)
        out["random"] = build(dataset, shuffled, opts, name="bundle-random")
    if "smollm2" in needed:
        if not Path(opts.smollm2_intents).exists():
            raise DataError(f"air-smollm2 needs SmolLM2 intents at {opts.smollm2_intents} (see benches/data/README.md)")
        out["smollm2"] = build(dataset, Path(opts.smollm2_intents), opts, name="bundle-smollm2")
    return out


def prepare(opts: RunOptions, models: Sequence[str]) -> tuple[Any, dict[str, Path], dict[str, int], dict[str, float]]:
    """Stages 1-3: the dataset, the bundles ``models`` need, intent counts, stage seconds."""
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    dataset = opts.source.load(download=opts.download)
    seconds["data"] = time.perf_counter() - t

    t = time.perf_counter()
    intents, counts = prepare_intents(dataset, opts)
    seconds["intents"] = time.perf_counter() - t
    log.info("intents: %s", counts)

    t = time.perf_counter()
    bundle = build(dataset, intents, opts)
    bundles = {"main": bundle, **ablation_bundles(dataset, intents, opts, models)}
    seconds["bundle"] = time.perf_counter() - t
    return dataset, bundles, counts, seconds


def intents_label(opts: RunOptions) -> str:
    """What made the run's intents, for the results labels: the committed Food–Kitchen
    artifact is Qwen2.5-Coder-0.5B's (also when ``--intents`` names it); without seed files every intent comes from ``model``;
    given files are of unknown origin ("LLM")."""
    committed = [DEFAULT_INTENTS.resolve()]
    if opts.source.is_food_kitchen and (opts.intents is None or [Path(p).resolve() for p in opts.intents] == committed):
        return "Qwen"  # the committed artifact, by default or named
    if not _seed_files(opts):
        name = Path(opts.model).name.lower()
        return "Qwen" if name.startswith("qwen") else "SmolLM2" if name.startswith("smollm2") else "LLM"
    return "LLM"


def _models(opts: RunOptions) -> list[str]:
    from airrec.models.suite import ALL_MODELS, parse_models

    return list(ALL_MODELS) if list(opts.models) == ["all"] else parse_models(opts.models)


def run_pipeline(opts: RunOptions) -> RunReport:
    """Runs every stage; see the module docstring."""
    from airrec.models.suite import SuiteOptions, run_suite
    from airrec.models.tune import hyper_settings

    models = _models(opts)
    hyper = hyper_settings(opts.hyper, opts.overrides)
    dataset, bundles, counts, seconds = prepare(opts, models)

    t = time.perf_counter()
    report = run_suite(dataset, SuiteOptions(
        models=models, seeds=opts.seeds, ablation_seeds=opts.ablation_seeds, bundles=bundles, out_dir=opts.work_dir / "results",
        negatives=opts.negatives, negatives_seed=opts.negatives_seed, full_ranking=opts.full_ranking,
        epochs=opts.epochs, plots=opts.plots, hyper=hyper, intents_label=intents_label(opts),
    ))
    seconds["train_evaluate"] = time.perf_counter() - t
    print(report.markdown.read_text(encoding="utf-8"))
    return RunReport(intents=counts, bundle=bundles["main"], results=report.results, seconds=seconds)


def tune_pipeline(opts: RunOptions, trials: int, grid_seed: int = 0) -> Path:
    """The equal-budget search (:func:`airrec.models.tune.run_tuning`) of ``opts.models`` on
    the pipeline's data and bundle, in ``<work>/tuning``; trial 0 reuses ``<work>/results``'
    default runs of the first seed. Returns ``tuning.json``."""
    from airrec.models.tune import TuningOptions, run_tuning, trial_settings

    models = _models(opts)
    trial_settings(trials, grid_seed)  # a bad budget fails before the data and bundle stages
    dataset, bundles, _, _ = prepare(opts, models)
    return run_tuning(dataset, TuningOptions(
        models=models, trials=trials, grid_seed=grid_seed, seed=opts.seeds[0], bundles=bundles,
        out_dir=opts.work_dir / "tuning", reuse_dir=opts.work_dir / "results", negatives=opts.negatives,
        negatives_seed=opts.negatives_seed, epochs=opts.epochs, intents_label=intents_label(opts),
    ))
