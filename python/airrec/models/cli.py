"""``airrec baselines``: train the torch baselines, evaluate them on test beside popularity.

Wire it into the main parser with::

    bl = subparsers.add_parser("baselines", help="train and evaluate SASRec / GRU4Rec")
    add_baselines_arguments(bl)
    bl.set_defaults(handler=run_baselines)

Every model is selected on valid (HR@10 averaged over the domains, the valid split's saved 999
negatives) and reported on test against the saved test negatives of
:func:`~airrec.evaluate.negatives.get_negatives` — the same files ``airrec evaluate`` uses, so
the numbers sit in one table with popularity and the engine. The report (``results.json``,
``results.md``) is :func:`~airrec.evaluate.report.write_report`'s, and ``training.json`` holds
each model's per-epoch log (loss, epoch seconds, valid HR@10).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airrec.errors import InputError

if TYPE_CHECKING:
    from airrec.data.dataset import Dataset, SplitRef
    from airrec.evaluate.protocol import EvalResult
    from airrec.models.train import TrainConfig, TrainResult

__all__ = ["add_baselines_arguments", "parse_models", "run_baselines", "train_and_evaluate"]

_KINDS = ("sasrec-mixed", "sasrec-target", "gru4rec")  # = train.MODEL_KINDS, without importing torch


def add_baselines_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``airrec baselines`` flags to ``parser``."""
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(parser)
    parser.add_argument("--out", type=Path, default=Path("results/baselines"),
                        help="output directory (default: results/baselines)")
    parser.add_argument("--models", default="sasrec-mixed,sasrec-target,gru4rec",
                        help=f"comma-separated, from {', '.join(_KINDS)} (default: all)")
    parser.add_argument("--epochs", type=int, default=30,
                        help="maximum epochs (default: 30; early stopping on valid usually ends sooner)")
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs (default: 3)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed, also the negatives' seed (default: 0)")
    parser.add_argument("--dim", type=int, default=64, help="embedding / hidden size (default: 64)")
    parser.add_argument("--max-len", type=int, default=50, help="sequence window (default: 50)")
    parser.add_argument("--batch-size", type=int, default=128, help="sequences per step (default: 128)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    parser.add_argument("--dropout", type=float, default=0.2, help="dropout (default: 0.2)")
    parser.add_argument("--loss", choices=["softmax", "bce"], default="softmax",
                        help="sampled softmax over in-domain negatives, or BCE with one (default: softmax)")
    parser.add_argument("--train-negatives", type=int, default=100,
                        help="sampled-softmax negatives per batch and domain (default: 100)")
    parser.add_argument("--domain-embedding", action="store_true",
                        help="sasrec-mixed: add a learned domain embedding to the inputs")
    parser.add_argument("--negatives", type=int, default=999, metavar="N",
                        help="evaluation negatives per line, valid and test (default: 999)")
    parser.add_argument("--negatives-cache", type=Path,
                        help="where sampled negatives are kept (default: $AIRREC_CACHE_DIR/negatives)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: 1)")
    parser.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    parser.add_argument("--checkpoint-dir", type=Path, help="also save each model's best state here")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")


def parse_models(text: str) -> list[str]:
    """``"sasrec-mixed,gru4rec"`` -> the kinds, checked, in order, without repeats."""
    kinds = list(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    bad = [k for k in kinds if k not in _KINDS]
    if bad or not kinds:
        raise InputError(f"unknown model(s) {bad or text!r}; choose from {', '.join(_KINDS)}")
    return kinds


def _config(args: argparse.Namespace, kind: str) -> TrainConfig:
    from airrec.evaluate.cli import default_negatives_cache
    from airrec.models.train import TrainConfig

    ckpt = args.checkpoint_dir / f"{kind}.seed{args.seed}.pt" if args.checkpoint_dir else None
    return TrainConfig(
        dim=args.dim, max_len=args.max_len, dropout=args.dropout, domain_embedding=args.domain_embedding,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, loss=args.loss,
        n_negatives=args.train_negatives, patience=args.patience, seed=args.seed, threads=args.threads,
        eval_negatives=args.negatives, eval_seed=args.seed,
        negatives_cache=args.negatives_cache or default_negatives_cache(), checkpoint=ckpt,
        progress=not args.no_progress, device=args.device,
    )


def train_and_evaluate(
    dataset: Dataset, kinds: Sequence[str], configs: Sequence[TrainConfig], *, split: SplitRef = "test"
) -> tuple[list[EvalResult], list[TrainResult]]:
    """Train each kind with its config, then evaluate popularity and every model on ``split``
    with the saved negatives of the first config's ``(eval_negatives, eval_seed)``."""
    from airrec.evaluate.baselines import PopularityScorer
    from airrec.evaluate.negatives import get_negatives
    from airrec.evaluate.protocol import evaluate
    from airrec.models.train import train_model

    if len(kinds) != len(configs) or not kinds:
        raise InputError("one config per model kind")
    first = configs[0]
    negatives = get_negatives(dataset, split, first.eval_negatives, first.eval_seed, first.negatives_cache)
    trained = [train_model(kind, dataset, cfg) for kind, cfg in zip(kinds, configs)]
    results = [evaluate(PopularityScorer(dataset), dataset, split, negatives, seed=first.eval_seed)]
    results += [evaluate(t.scorer, dataset, split, negatives, seed=t.config.seed) for t in trained]
    return results, trained


def run_baselines(args: argparse.Namespace) -> int:
    """Run ``airrec baselines``; prints the markdown tables and the paths written. Returns 0."""
    from airrec.data.source import source_from_args
    from airrec.evaluate.report import write_report

    kinds = parse_models(args.models)
    dataset = source_from_args(args).load()
    started = time.perf_counter()
    configs = [_config(args, k) for k in kinds]
    results, trained = train_and_evaluate(dataset, kinds, configs)
    training = [t.to_dict() for t in trained]
    meta: dict[str, Any] = {
        "dataset": dataset.name, "split": "test", "negatives": args.negatives, "seeds": [args.seed],
        "models": kinds, "selection": "best epoch on valid HR@10 averaged over domains",
        "training": [
            {"name": t["name"], "best_epoch": t["best_epoch"], "best_valid_hr10": round(t["best_valid_hr10"], 4),
             "epochs_run": len(t["epochs"]),
             "mean_epoch_seconds": round(sum(e["train_seconds"] for e in t["epochs"]) / len(t["epochs"]), 2)}
            for t in training
        ],
        "seconds": round(time.perf_counter() - started, 1),
    }
    paths = write_report(results, args.out, meta=meta, plots=not args.no_plots)
    train_path = Path(args.out) / "training.json"
    train_path.write_text(json.dumps(training, indent=2) + "\n", encoding="utf-8")
    print(paths.markdown.read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in [paths.json, paths.markdown, train_path, *paths.plots]))
    return 0
