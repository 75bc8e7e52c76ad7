"""Equal-budget hyper-parameter search on valid: every model gets the same trials.

A gain over an under-tuned baseline means nothing, so the search is the same for every model:
:func:`trial_settings` draws ``n`` points of :data:`TUNING_GRID` once (trial 0 is always the
defaults), and every model — the baselines and AIR, whose settings apply to its backbone — is
trained at each point with the same training seed and selected on valid HR@10 (the saved 999
valid negatives; test is never looked at). Each (model, trial) is an ordinary
:func:`~airrec.models.suite.run_suite` run saved under ``<out>/runs`` with its settings' tag, so
a stopped search resumes where it was and a trial at the defaults reuses the default run.

``tuning.json`` holds every trial's valid score, best epoch and epoch time, and per model the
chosen setting; ``airrec run --hyper tuning.json`` trains the final seeds with those choices.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from airrec.data.dataset import Dataset
from airrec.errors import DataError, InputError

__all__ = [
    "TUNING_GRID", "TuningOptions", "chosen_hyper", "hyper_settings", "parse_overrides", "read_tuning", "run_tuning",
    "trial_settings",
]

log = logging.getLogger(__name__)

#: The searched TrainConfig fields and their values (the defaults are 64, 0.2, 1e-3, 50, 100).
TUNING_GRID: dict[str, tuple[Any, ...]] = {
    "dim": (48, 64, 96),
    "dropout": (0.1, 0.2, 0.3),
    "lr": (5e-4, 1e-3, 2e-3),
    "max_len": (30, 50),
    "n_negatives": (50, 100, 200),
}
FORMAT = "airrec-tuning"


def trial_settings(n_trials: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n_trials`` settings: the defaults first, then distinct grid points drawn with ``seed``.

    Every model is tuned on this same list: equal budget, same points."""
    from airrec.models.suite import effective_hyper

    if n_trials < 1:
        raise InputError("at least one trial (the defaults)")
    keys = list(TUNING_GRID)
    points = [dict(zip(keys, values, strict=True)) for values in product(*(TUNING_GRID[k] for k in keys))]
    others = [p for p in points if effective_hyper(p)]
    if n_trials - 1 > len(others):
        raise InputError(f"the grid has {len(others) + 1} points, {n_trials} trials asked")
    random.Random(seed).shuffle(others)
    return [{}, *(effective_hyper(p) for p in others[: n_trials - 1])]


@dataclass
class TuningOptions:
    models: Sequence[str] = ("sasrec-mixed", "gru4rec", "air", "air-gru4rec")
    trials: int = 3
    grid_seed: int = 0  #: seed of the drawn grid points
    seed: int = 0  #: training seed of every trial
    bundles: Mapping[str, Path] = field(default_factory=dict)
    out_dir: Path = Path("results/tuning")
    #: A suite output directory whose default runs (seed ``seed``) stand for trial 0.
    reuse_dir: Path | None = None
    negatives: int = 999
    negatives_seed: int = 0
    negatives_cache: Path | None = None
    epochs: int = 30
    progress: bool = True
    intents_label: str = "Qwen"  #: see :func:`airrec.models.suite.model_label`


def _adopt_default_runs(opts: TuningOptions, models: Sequence[str]) -> None:
    """Copies the default runs of ``reuse_dir`` (trial 0, same seed) into the search."""
    from airrec.models.suite import _run_file

    if opts.reuse_dir is None:
        return
    src, dst = Path(opts.reuse_dir) / "runs", Path(opts.out_dir) / "runs"
    dst.mkdir(parents=True, exist_ok=True)
    for m in models:
        record = _run_file(Path(opts.reuse_dir), m, opts.seed)
        if not record.exists() or (dst / record.name).exists():
            continue
        for name in json.loads(record.read_text(encoding="utf-8"))["results"]:
            shutil.copy2(src / name, dst / name)
        shutil.copy2(record, dst / record.name)  # the record last: it is the commit point
        log.info("tuning: trial 0 of %s is the default run %s", m, record)


def _trial_row(out: Path, model: str, seed: int, k: int, setting: Mapping[str, Any]) -> dict[str, Any]:
    from airrec.models.suite import _run_file, hyper_tag

    record = json.loads(_run_file(out, model + hyper_tag(setting), seed).read_text(encoding="utf-8"))
    t = record["training"]
    epochs = t["epochs"]
    return {"trial": k, "setting": dict(setting), "best_valid_hr10": round(float(t["best_valid_hr10"]), 4),
            "best_epoch": t["best_epoch"], "epochs_run": len(epochs),
            "mean_epoch_train_seconds": round(sum(e["train_seconds"] for e in epochs) / len(epochs), 1)}


def _summary(opts: TuningOptions, models: Sequence[str], trials: list[dict[str, Any]], done: int) -> dict[str, Any]:
    out = Path(opts.out_dir)
    per_model: dict[str, Any] = {}
    for m in models:
        rows = [_trial_row(out, m, opts.seed, k, trials[k]) for k in range(done)]
        best = max(rows, key=lambda r: (r["best_valid_hr10"], -r["trial"])) if rows else None
        per_model[m] = {"trials": rows, "chosen": None if best is None else best["setting"],
                        "chosen_trial": None if best is None else best["trial"]}
    return {"format": FORMAT, "version": 1, "grid": {k: list(v) for k, v in TUNING_GRID.items()},
            "grid_seed": opts.grid_seed, "training_seed": opts.seed, "trials_planned": len(trials),
            "trials_done": done, "selection": "best valid HR@10 (mean over domains, 999 saved negatives)",
            "settings": trials, "models": per_model}


def _markdown(summary: Mapping[str, Any]) -> str:
    lines = [f"# Hyper-parameter search: {summary['trials_done']} of {summary['trials_planned']} trials per model",
             "", f"Training seed {summary['training_seed']}; selection: {summary['selection']}. "
             "Settings override TrainConfig's defaults (AIR: its backbone's).", "",
             "| model | trial | setting | valid HR@10 | best epoch | s/epoch |", "|---|---|---|---|---|---|"]
    for m, entry in summary["models"].items():
        for r in entry["trials"]:
            setting = ", ".join(f"{k}={v}" for k, v in r["setting"].items()) or "defaults"
            mark = " **(chosen)**" if r["trial"] == entry["chosen_trial"] else ""
            lines.append(f"| {m} | {r['trial']}{mark} | {setting} | {r['best_valid_hr10']:.4f} | "
                         f"{r['best_epoch']} | {r['mean_epoch_train_seconds']} |")
    return "\n".join(lines) + "\n"


def run_tuning(dataset: Dataset, opts: TuningOptions) -> Path:
    """Runs every trial for every model (trial by trial, so all models have the same budget
    whenever the search stops); writes ``tuning.json``/``tuning.md`` after each trial."""
    from airrec._files import write_atomic, write_json_atomic
    from airrec.models.suite import SuiteOptions, parse_models, run_suite

    models = [m for m in parse_models(opts.models) if m != "popularity"]
    if not models:
        raise InputError("no trainable model to tune")
    trials = trial_settings(opts.trials, opts.grid_seed)
    out = Path(opts.out_dir)
    _adopt_default_runs(opts, models)
    path = out / "tuning.json"
    for k, setting in enumerate(trials):
        log.info("tuning: trial %d/%d %s", k + 1, len(trials), setting or "defaults")
        run_suite(dataset, SuiteOptions(
            models=models, seeds=(opts.seed,), bundles=opts.bundles, out_dir=out, negatives=opts.negatives,
            negatives_seed=opts.negatives_seed, negatives_cache=opts.negatives_cache, epochs=opts.epochs,
            plots=False, progress=opts.progress, export=False, hyper={m: setting for m in models},
            intents_label=opts.intents_label,
        ))
        summary = _summary(opts, models, trials, k + 1)
        write_json_atomic(path, summary)
        write_atomic(out / "tuning.md", _markdown(summary))
    return path


def read_tuning(path: str | Path) -> dict[str, Any]:
    """A ``tuning.json`` written by :func:`run_tuning` (checked)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable tuning file ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("models"), dict):
        raise DataError(f"{p}: not an airrec tuning file (format {FORMAT!r})")
    return data


def parse_overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``MODEL.KEY=VALUE`` strings (``airrec run --set``) as per-model settings; a value is
    read as JSON (``4``, ``0.5``) and kept as a string otherwise."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, eq, raw = item.partition("=")
        model, dot, key = head.partition(".")
        if not eq or not dot or not model.strip() or not key.strip():
            raise InputError(f"--set {item!r}: expected MODEL.KEY=VALUE (e.g. air-gru4rec.air_positions=4)")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(model.strip(), {})[key.strip()] = value
    return out


def hyper_settings(path: str | Path | None, overrides: Mapping[str, Mapping[str, Any]] | None = None
                   ) -> dict[str, dict[str, Any]]:
    """Per model, the tuning file's chosen setting (none without ``path``) with ``overrides``
    on top (:func:`parse_overrides`), checked (:func:`airrec.models.suite.check_hyper`)."""
    from airrec.models.suite import check_hyper

    hyper = chosen_hyper(path) if path is not None else {}
    for model, values in (overrides or {}).items():
        hyper[model] = {**hyper.get(model, {}), **values}
    check_hyper(hyper)
    return hyper


def chosen_hyper(path: str | Path) -> dict[str, dict[str, Any]]:
    """Per model, the setting its search chose (for :attr:`SuiteOptions.hyper`)."""
    from airrec.models.suite import check_hyper

    hyper = {m: dict(e["chosen"]) for m, e in read_tuning(path)["models"].items() if e.get("chosen") is not None}
    check_hyper(hyper)
    return hyper
