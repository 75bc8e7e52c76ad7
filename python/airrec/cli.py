"""The `airrec` command line: one subcommand per pipeline stage.

Each stage reads the previous stage's output from disk, so any stage can be re-run alone:

    airrec run               the whole Food–Kitchen pipeline (data, intents, bundle, training, evaluation)
    airrec data fetch        download a public dataset (checksummed) into the data directory
    airrec generate          LLM intent generation (llama.cpp, GGUF), cached and resumable
    airrec build             intents + embeddings -> intent trie -> bundle the engine loads
    airrec evaluate          rank valid/test targets (999 sampled negatives, full ranking)
    airrec train             train AIR (and baselines, ablations) on bundles, evaluate, export
    airrec baselines         train SASRec / GRU4Rec (torch) and evaluate them in the same harness
    airrec serve             the example HTTP service (score / retrieve / explain, hot reload)
    airrec info BUNDLE       describe a bundle
    airrec explain BUNDLE    why an item scores what it does for a history
    airrec bench online      online-path latency/throughput beside the NumPy reference
    airrec bench generate    intent-generation throughput: naive loop vs the pipeline
    airrec bench generate-quality  intent quality report and grouped-vs-single agreement
    airrec bench load        HTTP load test of the example service, with a hot reload midway
    airrec bench llm-vs-air  request-time LLM vs the airrec online path, same users

Heavy imports (torch, llama.cpp) happen inside the subcommand that needs them, so `--help`
stays instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from airrec.errors import AirrecError, InputError

Handler = Callable[[argparse.Namespace], int]


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="the whole Food–Kitchen pipeline: data, intents, bundle, training, evaluation",
        description="Loads (or downloads) Food–Kitchen, merges the committed intents with LLM "
        "intents generated for still-missing valid/test history items (at most --max-generate), "
        "builds the bundle (MiniLM embeddings, cached), trains the models (default: SASRec-mixed "
        "and AIR; --models all adds GRU4Rec, SASRec target-only and the AIR ablations) for each "
        "seed, evaluates them with popularity on the 999-negative protocol and exports the trained "
        "AIR composition into a bundle. Every stage is cached under --work-dir.",
    )
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(run)
    run.add_argument("--work-dir", help="where stages keep their outputs (default ~/.cache/airrec/runs/<dataset>)")
    run.add_argument("--intents", action="append", help="intents file(s) to start from (default: the committed artifact)")
    run.add_argument("--model", default="qwen2.5-coder-0.5b", help="LLM for missing intents (default qwen2.5-coder-0.5b)")
    run.add_argument("--max-generate", type=int, default=200, help="generate at most this many missing items (default 200; the rest use cold start)")
    run.add_argument("--no-install", action="store_true", help="never pip-install a preset model's packages")
    _add_training_arguments(run)
    run.add_argument("--no-download", action="store_true", help="fail instead of downloading missing data")
    run.set_defaults(handler=_run_pipeline)


def _add_tune(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.models.tune import TUNING_GRID

    tune = sub.add_parser(
        "tune",
        help="equal-budget hyper-parameter search on valid for every model (the run pipeline's data)",
        description="Trains every model of --models at the same --trials settings (trial 0: the "
        "defaults; the others drawn from the grid " + "; ".join(f"{k} {list(v)}" for k, v in TUNING_GRID.items())
        + ") with the first seed, selects on valid HR@10 and writes <work>/tuning/tuning.{json,md}. "
        "Resumable: finished trials are kept. Train the final seeds with `airrec run --hyper <that json>`.",
    )
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(tune)
    tune.add_argument("--work-dir", help="the run pipeline's work dir (default ~/.cache/airrec/runs/<dataset>)")
    tune.add_argument("--intents", action="append", help="intents file(s) (default: the committed artifact)")
    tune.add_argument("--models", default="sasrec-mixed,gru4rec,air,air-gru4rec",
                      help="comma-separated models (default: sasrec-mixed,gru4rec,air,air-gru4rec)")
    tune.add_argument("--trials", type=int, default=3, help="settings per model, the defaults included (default 3)")
    tune.add_argument("--grid-seed", type=int, default=0, help="seed of the drawn grid points (default 0)")
    tune.add_argument("--seed", type=int, default=0, help="training seed of every trial (default 0)")
    tune.add_argument("--epochs", type=int, default=30, help="maximum epochs per trial (early stopping on valid)")
    tune.add_argument("--negatives", type=int, default=999, metavar="N",
                      help="sampled negatives per valid line (default: 999)")
    tune.add_argument("--max-generate", type=int, default=200, help="as for `airrec run`")
    tune.add_argument("--no-download", action="store_true", help="fail instead of downloading missing data")
    tune.set_defaults(handler=_run_tune)


def _run_tune(args: argparse.Namespace) -> int:
    from airrec.data.source import source_from_args
    from airrec.pipeline import RunOptions, default_work_dir, tune_pipeline

    source = source_from_args(args)
    opts = RunOptions(
        source=source, work_dir=Path(args.work_dir) if args.work_dir else default_work_dir(source.label),
        intents=None if args.intents is None else [Path(p) for p in args.intents], max_generate=args.max_generate,
        seeds=[args.seed], models=[m.strip() for m in args.models.split(",") if m.strip()], epochs=args.epochs,
        negatives=args.negatives, download=not args.no_download,
    )
    path = tune_pipeline(opts, args.trials, args.grid_seed)
    print(path.with_suffix(".md").read_text(encoding="utf-8"))
    print(f"tuning: {path}")
    return 0


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    from airrec.models.suite import ALL_MODELS, MODEL_NAMES
    from airrec.pipeline import DEFAULT_MODELS, DEFAULT_SMOLLM2_INTENTS

    extra = [m for m in MODEL_NAMES if m not in ALL_MODELS]
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help=f"comma-separated from {', '.join(ALL_MODELS)} (these are 'all'), {', '.join(extra)} "
                   f"(default: {','.join(DEFAULT_MODELS)})")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S",
                   help="training seeds; several give mean ± std (default: 0)")
    p.add_argument("--ablation-seeds", type=int, nargs="+", metavar="S",
                   help="training seeds of the AIR ablations (default: --seeds)")
    p.add_argument("--negatives", type=int, default=999, metavar="N",
                   help="sampled negatives per valid/test line, from the target's domain (default: 999, "
                   "the LLMCDSR protocol; a small catalogue needs fewer)")
    p.add_argument("--negatives-seed", type=int, default=0,
                   help="seed of the saved evaluation negatives, shared by every model and seed (default: 0)")
    p.add_argument("--epochs", type=int, default=30, help="maximum epochs per model (early stopping on valid)")
    p.add_argument("--smollm2-intents", type=Path, default=DEFAULT_SMOLLM2_INTENTS,
                   help=f"intents for the air-smollm2 ablation (default: {DEFAULT_SMOLLM2_INTENTS})")
    p.add_argument("--full-ranking", action="store_true", help="also rank against the whole target domain")
    p.add_argument("--hyper", type=Path, metavar="TUNING_JSON",
                   help="train with the settings `airrec tune` chose per model (its tuning.json)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="MODEL.KEY=VALUE",
                   help="a setting on top of --hyper, e.g. air-gru4rec.air_positions=4 (repeatable; backbone "
                   "TrainConfig fields, and for AIR models air_negatives, air_positions, air_weight, air_backbone_grad, air_select_on, "
                   "air_engine as a "
                   "JSON object of engine settings); a run "
                   "with settings is saved under its own name")
    p.add_argument("--no-plots", action="store_true")


def _run_pipeline(args: argparse.Namespace) -> int:
    from airrec.data.source import source_from_args
    from airrec.models.tune import parse_overrides
    from airrec.pipeline import RunOptions, default_work_dir, run_pipeline

    source = source_from_args(args)
    opts = RunOptions(
        source=source,
        work_dir=Path(args.work_dir) if args.work_dir else default_work_dir(source.label),
        intents=None if args.intents is None else [Path(p) for p in args.intents],
        model=args.model,
        max_generate=args.max_generate,
        allow_install=not args.no_install,
        seeds=args.seeds,
        ablation_seeds=args.ablation_seeds,
        negatives=args.negatives,
        negatives_seed=args.negatives_seed,
        models=[m.strip() for m in args.models.split(",") if m.strip()],
        epochs=args.epochs,
        smollm2_intents=args.smollm2_intents,
        full_ranking=args.full_ranking,
        download=not args.no_download,
        plots=not args.no_plots,
        hyper=args.hyper,
        overrides=parse_overrides(args.overrides),
    )
    report = run_pipeline(opts)
    print(f"intents: {report.intents}")
    print(f"bundle: {report.bundle}\nresults: {report.results}")
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in report.seconds.items()))
    return 0


def _add_train(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tr = sub.add_parser(
        "train",
        help="train AIR (and baselines / ablations) on built bundles, evaluate, export",
        description="Trains the requested models for each seed (AIR: a SASRec-mixed backbone and the "
        "engine's intent composition, trained together; the Rust engine supplies every chain and "
        "evidence slot), selects each on valid HR@10, evaluates all of them with the same saved "
        "test negatives, writes results.json / results.md / plots and training.json to --out, and "
        "exports AIR's trained composition into <out>/bundles/air.seed<S> (parity-checked).",
    )
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(tr)
    tr.add_argument("--bundle", type=Path, required=True, help="the intents bundle (airrec build / airrec run)")
    tr.add_argument("--random-bundle", type=Path, help="bundle built from shuffled intents (for air-random)")
    tr.add_argument("--smollm2-bundle", type=Path, help="bundle built from SmolLM2 intents (for air-smollm2)")
    tr.add_argument("--out", type=Path, default=Path("results/train"), help="output directory (default results/train)")
    tr.add_argument("--intents-label", default="LLM",
                    help="what made the bundle's intents, for the AIR labels (e.g. Qwen, SmolLM2; default LLM)")
    _add_training_arguments(tr)
    tr.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from airrec.data.source import source_from_args
    from airrec.models.suite import ALL_MODELS, SuiteOptions, parse_models, run_suite
    from airrec.models.tune import hyper_settings, parse_overrides

    models = list(ALL_MODELS) if args.models.strip() == "all" else parse_models(args.models)
    bundles = {"main": args.bundle}
    if args.random_bundle:
        bundles["random"] = args.random_bundle
    if args.smollm2_bundle:
        bundles["smollm2"] = args.smollm2_bundle
    hyper = hyper_settings(args.hyper, parse_overrides(args.overrides))
    report = run_suite(source_from_args(args).load(), SuiteOptions(
        models=models, seeds=args.seeds, ablation_seeds=args.ablation_seeds, bundles=bundles, out_dir=args.out,
        negatives=args.negatives,
        negatives_seed=args.negatives_seed,
        full_ranking=args.full_ranking, epochs=args.epochs, plots=not args.no_plots, hyper=hyper,
        intents_label=args.intents_label,
    ))
    print(report.markdown.read_text(encoding="utf-8"))
    print("wrote " + ", ".join(str(p) for p in [report.results, report.markdown, report.training, *report.plots, *report.exported]))
    return 0


def _add_data(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    data = sub.add_parser("data", help="datasets: fetch public files into the data directory")
    dsub = data.add_subparsers(dest="data_command", required=True)
    fetch = dsub.add_parser(
        "fetch",
        help="download a dataset and verify its sha256 sums",
        description="Downloads the public files of a dataset into DATA_HOME/<name>, verifying each "
        "file's sha256; files already present and correct are skipped.",
    )
    fetch.add_argument("--dataset", default="food-kitchen", help="dataset name (default: food-kitchen)")
    fetch.add_argument("--data-home", help="data directory (default: $AIRREC_DATA_HOME or ~/.cache/airrec/data)")
    fetch.add_argument("--base-url", help="mirror to download from instead of the upstream URL")
    fetch.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
    fetch.set_defaults(handler=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from airrec.data import dataset_dir, fetch, get_spec

    spec = get_spec(args.dataset)
    dest = dataset_dir(args.dataset, args.data_home)
    files = fetch(spec, dest, base_url=args.base_url, timeout=args.timeout)
    downloaded = sum(f.downloaded for f in files)
    print(f"{args.dataset}: {len(files)} files verified in {dest} ({downloaded} downloaded)")
    return 0


def _add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.generate.cli import add_generate_arguments, run_generate

    gen = sub.add_parser(
        "generate",
        help="generate atomic intents for a dataset's items with a local GGUF LLM",
        description="Runs the LLM over (behaviour, item text) pairs and stores 1-3 hierarchical "
        "intent paths per pair in a persistent, resumable cache (kill it any time and re-run).",
    )
    add_generate_arguments(gen)
    gen.set_defaults(handler=run_generate)


def _add_build(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.kb.cli import add_build_arguments, run_build

    build = sub.add_parser(
        "build",
        help="build a bundle (intent trie, vectors, indexes) from an intents file",
        description="Merges intent paths into the global trie, embeds phrases and item texts, "
        "projects them into one space and writes the versioned bundle the engine loads.",
    )
    add_build_arguments(build)
    build.set_defaults(handler=run_build)


def _add_evaluate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.evaluate.cli import add_evaluate_arguments, run_evaluate

    ev = sub.add_parser(
        "evaluate",
        help="rank valid/test targets: 999 sampled negatives and/or full ranking",
        description="Evaluates popularity and, given --bundle, the engine's score head on the "
        "LLMCDSR protocol (999 negatives from the target's domain, saved and reused) and/or full "
        "ranking; writes results JSON, a markdown table and plots.",
    )
    add_evaluate_arguments(ev)
    ev.set_defaults(handler=run_evaluate)


def _add_baselines(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.models.cli import add_baselines_arguments, run_baselines

    bl = sub.add_parser(
        "baselines",
        help="train and evaluate SASRec (mixed / target-only) and GRU4Rec on the saved negatives",
        description="Trains each sequential baseline on the train split (sampled in-domain "
        "softmax, early stopping on valid HR@10) and evaluates it beside popularity on the same "
        "999 saved negatives; writes results JSON + markdown and the training log.",
    )
    add_baselines_arguments(bl)
    bl.set_defaults(handler=run_baselines)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from airrec.serve.server import add_arguments

    serve = sub.add_parser(
        "serve",
        help="run the example HTTP service (FastAPI + uvicorn) over a bundle",
        description="Serves /score, /retrieve, /explain, /admin/reload and /healthz on 127.0.0.1.",
    )
    add_arguments(serve)
    serve.set_defaults(handler=lambda args: _run_serve(args, serve))


def _run_serve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from airrec.serve.server import serve

    return serve(args, parser)


def _add_info(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    info = sub.add_parser("info", help="describe a bundle (dims, domains, config, provenance)")
    info.add_argument("bundle", help="bundle directory")
    info.add_argument("--no-verify", action="store_true", help="skip sha256 verification of the arrays")
    info.set_defaults(handler=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    from airrec.engine import Engine

    engine = Engine.load(args.bundle, verify_checksums=not args.no_verify)
    print(json.dumps({"dims": engine.dims, "domains": engine.domains, "config": engine.config,
                      "meta": engine.meta}, indent=2))
    return 0


def _add_features(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ft = sub.add_parser(
        "features",
        help="AIR scores and intent vectors of (user, candidate) pairs, as Parquet",
        description="Reads histories (user, item[, behaviour, timestamp]) and candidates (user, "
        "candidate) Parquet, runs the engine on every pair (locally, or in Ray actors with --ray) "
        "and writes part-*.parquet files of (user, candidate, score, intent) into --out.",
    )
    ft.add_argument("--bundle", required=True, help="bundle directory")
    ft.add_argument("--histories", required=True, help="events Parquet file or directory")
    ft.add_argument("--candidates", required=True, help="candidate pairs Parquet file or directory")
    ft.add_argument("--out", required=True, help="output directory (written atomically)")
    ft.add_argument("--ray", default=None, metavar="ADDRESS", help="'local' or a Ray cluster address")
    ft.add_argument("--actors", type=int, default=None, help="Ray actors (default: one per cluster CPU)")
    ft.add_argument("--batch-users", type=int, default=256, help="users per engine batch (default 256)")
    ft.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    ft.set_defaults(handler=_run_features)


def _run_features(args: argparse.Namespace) -> int:
    from airrec.features import compute_features

    r = compute_features(args.bundle, args.histories, args.candidates, args.out, ray_address=args.ray,
                         actors=args.actors, batch_users=args.batch_users, overwrite=args.overwrite)
    print(json.dumps({"out": str(r.out_dir), "users": r.users, "rows": r.rows, "dim": r.dim,
                      "seconds": round(r.seconds, 3), "rows_per_s": round(r.rows_per_s, 1), "runner": r.runner}))
    return 0


def _add_explain(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ex = sub.add_parser("explain", help="explain a candidate's score for a history of item ids",
                        description="Items are named by their external ids (the dataset's own, as "
                                    "the bundle stores them), or by internal ids with --internal-ids.")
    ex.add_argument("bundle", help="bundle directory")
    ex.add_argument("--history", required=True, help="comma-separated item ids, oldest first")
    ex.add_argument("--candidate", required=True, help="item id to explain")
    ex.add_argument("--internal-ids", action="store_true",
                    help="the ids are the bundle's internal ids 0..n_items-1, not external ids")
    ex.set_defaults(handler=_run_explain)


def _run_explain(args: argparse.Namespace) -> int:
    from airrec.engine import Engine

    engine = Engine.load(args.bundle)
    history: list[str] | list[int] = [x.strip() for x in args.history.split(",") if x.strip()]
    candidate: str | int = args.candidate.strip()
    if args.internal_ids:
        try:
            history, candidate = [int(x) for x in history], int(candidate)
        except ValueError as e:
            raise InputError(f"--internal-ids takes integers: {e}") from None
    print(engine.explain(history, candidate))
    return 0


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="benchmarks that write their figures to a JSON file")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    online = bsub.add_parser(
        "online",
        help="online-path latency and throughput, Rust beside the NumPy reference",
        description="Generates (once, cached) a synthetic bundle of the given shape, then measures "
        "single-request latency (tree + scoring of all candidates) of the Rust engine and of the "
        "NumPy reference, and batch throughput on 1 thread and on all cores.",
    )
    online.add_argument("--out", required=True, help="JSON file to write")
    online.add_argument("--users", type=int, default=1000, help="requests timed for Rust (default 1000)")
    online.add_argument("--numpy-users", type=int, default=40, help="requests timed for NumPy (default 40)")
    online.add_argument("--batch-users", type=int, default=2000, help="users per batch call (default 2000)")
    online.add_argument("--torch-users", type=int, default=200,
                        help="requests timed for the vectorised torch peer (default 200; 0 skips it)")
    online.add_argument("--instructions", action="store_true",
                        help="also count the engine's instructions per request under valgrind (slow)")
    online.add_argument("--events", type=int, default=50, help="events per user (default 50)")
    online.add_argument("--candidates", type=int, default=200, help="candidates per request (default 200)")
    online.add_argument("--dim", type=int, default=64)
    online.add_argument("--heads", type=int, default=4)
    online.add_argument("--nodes", type=int, default=100_000, help="trie nodes (default 100k)")
    online.add_argument("--items", type=int, default=40_000, help="items (default 40k)")
    online.add_argument("--quick", action="store_true", help="small shape and counts (a smoke run)")
    online.set_defaults(handler=_run_bench_online)

    from airrec.generate.cli import (
        add_bench_arguments,
        add_quality_arguments,
        run_bench,
        run_quality,
    )

    gen = bsub.add_parser(
        "generate",
        help="intent-generation throughput: naive one-item-per-call loop vs the pipeline",
        description="Runs the naive chat loop and the batched pipeline on the same items in the "
        "same run and writes items/s, tokens/s and examples side by side.",
    )
    add_bench_arguments(gen)
    gen.set_defaults(handler=run_bench)

    quality = bsub.add_parser(
        "generate-quality",
        help="intent quality report (before/after a prompt change) and grouped-vs-single agreement",
    )
    add_quality_arguments(quality)
    quality.set_defaults(handler=run_quality)

    lva = bsub.add_parser(
        "llm-vs-air",
        help="latency of asking the LLM at request time vs the airrec online path (same users)",
        description="For Food–Kitchen test users: the LLM over their recent item texts at request "
        "time (+ the same composition) versus the engine request alone; writes both latencies "
        "and their ratio.",
    )
    lva.add_argument("--bundle", required=True, help="a Food–Kitchen bundle (e.g. from `airrec run`)")
    lva.add_argument("--model", default="qwen2.5-coder-0.5b")
    lva.add_argument("--data-home")
    lva.add_argument("--users", type=int, default=5)
    lva.add_argument("--recent", type=int, default=10, help="recent items the LLM reads per user")
    lva.add_argument("--allow-install", action="store_true")
    lva.add_argument("--out", required=True)
    lva.set_defaults(handler=_run_llm_vs_air)

    from airrec.serve.loadtest import add_arguments as add_load_arguments

    load = bsub.add_parser(
        "load", help="load test of the example HTTP service (loopback only), reload midway",
    )
    add_load_arguments(load)
    load.set_defaults(handler=_run_bench_load)


def _run_bench_load(args: argparse.Namespace) -> int:
    from airrec.serve.loadtest import run

    return run(args)


def _run_bench_online(args: argparse.Namespace) -> int:
    from airrec.bench.online import Shape, run_online_bench, summary

    if args.quick:
        shape = Shape(events_per_user=args.events, candidates=50, dim=32, heads=4, n_nodes=3000, n_items=2000)
        result = run_online_bench(args.out, shape=shape, users=50, numpy_users=5, batch_users=100,
                                  torch_users=min(args.torch_users, 20), instructions=args.instructions)
    else:
        shape = Shape(events_per_user=args.events, candidates=args.candidates, dim=args.dim,
                      heads=args.heads, n_nodes=args.nodes, n_items=args.items)
        result = run_online_bench(args.out, shape=shape, users=args.users, numpy_users=args.numpy_users,
                                  batch_users=args.batch_users, torch_users=args.torch_users,
                                  instructions=args.instructions)
    print(summary(result))
    print(f"figures written to {args.out}")
    return 0


def _run_llm_vs_air(args: argparse.Namespace) -> int:
    from airrec.bench.llm_vs_air import run_llm_vs_air

    r = run_llm_vs_air(args.bundle, args.out, model=args.model, data_home=args.data_home,
                       users=args.users, recent=args.recent, allow_install=args.allow_install)
    llm, air = r["llm_request_time"], r["airrec_online"]
    print(f"LLM at request time: p50 {llm['p50_ms']:.0f} ms ({r['users']} users, {r['recent_items_per_user']} items each)")
    print(f"airrec online path:  p50 {air['p50_ms']:.3f} ms, p99 {air['p99_ms']:.3f} ms")
    print(f"ratio (p50): {r['ratio_p50']:,.0f}x   (paper: ~400x)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from airrec import __version__

    parser = argparse.ArgumentParser(
        prog="airrec",
        description="airrec: LLM intents for cross-domain recommendation, served by a Rust engine.",
    )
    parser.add_argument("--version", action="version", version=f"airrec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    _add_tune(sub)
    _add_data(sub)
    _add_generate(sub)
    _add_build(sub)
    _add_evaluate(sub)
    _add_train(sub)
    _add_baselines(sub)
    _add_serve(sub)
    _add_info(sub)
    _add_features(sub)
    _add_explain(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.handler
    try:
        return handler(args)
    except AirrecError as e:
        print(f"airrec: error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("airrec: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
