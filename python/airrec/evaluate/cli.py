"""``airrec evaluate``: the no-training baselines on a dataset split, written as JSON + markdown.

Wire it into the main parser with::

    ev = subparsers.add_parser("evaluate", help="evaluate baselines and a bundle")
    add_evaluate_arguments(ev)
    ev.set_defaults(handler=run_evaluate)

It evaluates popularity and, with ``--bundle``, the engine's built-in score head. The bundle is
untrained for now, so the latter is labelled a zero-shot baseline. Negatives are sampled once
per ``(dataset, split, n, seed)`` and cached (``--negatives-cache``), so later runs (and other
models) rank against exactly the same items.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airrec.errors import InputError

if TYPE_CHECKING:
    from airrec.data.dataset import Dataset, SplitRef
    from airrec.evaluate.protocol import EvalResult, Scorer

__all__ = ["add_evaluate_arguments", "default_negatives_cache", "evaluate_scorers", "run_evaluate"]


def default_negatives_cache() -> Path:
    """``$AIRREC_CACHE_DIR/negatives``, else ``~/.cache/airrec/negatives``."""
    root = os.environ.get("AIRREC_CACHE_DIR") or os.path.join("~", ".cache", "airrec")
    return Path(os.path.expandvars(os.path.expanduser(root))) / "negatives"


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``airrec evaluate`` flags to ``parser``."""
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(parser)
    parser.add_argument("--bundle", type=Path,
                        help="also evaluate this bundle's built-in score head (untrained: zero-shot)")
    parser.add_argument("--checkpoint", type=Path,
                        help="also evaluate the full AIR model of this checkpoint (airrec train) over --bundle")
    parser.add_argument("--split", default="test", choices=["valid", "test"], help="split to rank (default: test)")
    parser.add_argument("--negatives", type=int, default=999, metavar="N",
                        help="sampled negatives per line, from the target's domain (default: 999)")
    parser.add_argument("--seed", type=int, nargs="+", default=[0], metavar="S",
                        help="negative-sampling seed(s); several give mean ± std (default: 0)")
    parser.add_argument("--full-ranking", action="store_true",
                        help="also rank against every item of the target's domain")
    parser.add_argument("--no-sampled", action="store_true", help="skip the sampled protocol")
    parser.add_argument("--out", type=Path, default=Path("results"), help="output directory (default: results/)")
    parser.add_argument("--negatives-cache", type=Path,
                        help="where sampled negatives are kept (default: $AIRREC_CACHE_DIR/negatives)")
    parser.add_argument("--batch-users", type=int, default=256, help="lines per scorer call (default: 256)")
    parser.add_argument("--threads", type=int, help="engine threads (default: all cores)")
    parser.add_argument("--no-plots", action="store_true", help="do not draw PNG plots")


def _load_dataset(args: argparse.Namespace) -> Any:
    from airrec.data.source import source_from_args

    return source_from_args(args).load()


def evaluate_scorers(
    scorers: Sequence[Scorer],
    dataset: Dataset,
    split: SplitRef,
    *,
    negatives: int | None = 999,
    seeds: Sequence[int] = (0,),
    full_ranking: bool = False,
    negatives_cache: Path | None = None,
    batch_users: int = 256,
) -> list[EvalResult]:
    """Every scorer on the same saved negatives (one set per seed) and/or full ranking."""
    from airrec.evaluate.negatives import get_negatives
    from airrec.evaluate.protocol import evaluate

    cache = negatives_cache or default_negatives_cache()
    results: list[EvalResult] = []
    if negatives is not None:
        for seed in seeds:
            sampled = get_negatives(dataset, split, negatives, seed, cache)
            for scorer in scorers:
                results.append(evaluate(scorer, dataset, split, sampled, batch_users=batch_users, seed=seed))
    if full_ranking:
        # No sampling, so no seed: the untrained scorers here are deterministic.
        for scorer in scorers:
            results.append(evaluate(scorer, dataset, split, full_ranking=True, batch_users=batch_users))
    return results


def run_evaluate(args: argparse.Namespace) -> int:
    """Run ``airrec evaluate``; prints the markdown tables and the paths written. Returns 0."""
    from airrec.evaluate.baselines import EngineScorer, PopularityScorer
    from airrec.evaluate.report import write_report

    if args.no_sampled and not args.full_ranking:
        raise InputError("--no-sampled without --full-ranking leaves nothing to evaluate")
    dataset = _load_dataset(args)
    scorers: list[Scorer] = [PopularityScorer(dataset)]
    if args.bundle is not None:
        from airrec.engine import Engine

        engine = Engine.load(args.bundle)
        engine_scorer = EngineScorer(engine, n_threads=args.threads)
        engine_scorer.check_dataset(dataset)
        scorers.append(engine_scorer)
        if args.checkpoint is not None:
            from airrec.models.air_train import load_air_scorer

            scorers.append(load_air_scorer(args.checkpoint, engine, dataset))
    elif args.checkpoint is not None:
        raise InputError("--checkpoint needs --bundle (the bundle the model was trained on, or its export)")
    cache = args.negatives_cache or default_negatives_cache()
    results = evaluate_scorers(
        scorers, dataset, args.split,
        negatives=None if args.no_sampled else args.negatives, seeds=args.seed,
        full_ranking=args.full_ranking, negatives_cache=cache, batch_users=args.batch_users,
    )
    meta = {
        "dataset": dataset.name,
        "split": args.split,
        "negatives": args.negatives,
        "seeds": list(args.seed),
        "bundle": str(args.bundle) if args.bundle else None,
        "negatives_cache": str(cache),
    }
    paths = write_report(results, args.out, meta=meta, plots=not args.no_plots)
    print(paths.markdown.read_text(encoding="utf-8"))
    written = [paths.json, paths.markdown, *paths.plots]
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
