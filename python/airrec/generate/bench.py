"""``airrec bench generate``: the naive per-item chat loop against the pipeline, same items,
same model, same process, one after the other.

The naive loop is what a user would write first: ``Llama.create_chat_completion`` per item,
the same system text and few-shot examples (answers shown as JSON), greedy, JSON-schema
constrained output. It is not a straw man: llama-cpp-python already reuses the matching
prompt prefix between consecutive calls, so its few-shot prefix is evaluated only once too.

A second reference row, ``naive_unconstrained``, is the same loop without the JSON schema:
llama-cpp-python's grammar pass over the whole vocabulary is a large part of the naive
loop's cost, and the pipeline avoids it (top-k grammar checks), so this row shows how much
of the speedup is not just that.

Wall-clock figures on a shared machine drift with other people's load, so each side also
reports CPU seconds (``items_per_cpu_s``, ``cpu_speedup``): with one llama.cpp thread per
process there is no barrier spinning, and CPU time measures the work itself. The pipeline's
CPU time is the sum over its worker processes, model loading included.

The pipeline is :class:`~airrec.generate.IntentGenerator` in one single-thread worker
process per core: compact answers, parallel sequences over a shared prefix, top-k grammar
checks. Its timed region re-evaluates the
prefix, so both sides pay that once; model loading is outside both timings. Figures are
written to a JSON file (benchmarks never assert on time).
"""

from __future__ import annotations

import json
import logging
import os
import random
import time
from pathlib import Path
from typing import Any

from airrec._files import write_atomic
from airrec.generate.generator import IntentGenerator, Outcome, Unit
from airrec.generate.llama_batch import quiet_llama_logs
from airrec.generate.models import resolve_model
from airrec.generate.parse import parse_intents
from airrec.generate.prompts import DEFAULT_PROMPT, PROMPT_V1, PromptTemplate
from airrec.generate.runner import units_for
from airrec.generate.workers import generate_in_workers

__all__ = ["bench_generate", "bench_quality", "naive_loop"]

log = logging.getLogger("airrec.generate.bench")


def _pick_items(dataset: Any, n_items: int, seed: int) -> list[tuple[int, str]]:
    """``n_items`` items with text, spread over domains (a seeded sample, not the first N,
    which in Food–Kitchen would all be Food)."""
    texts = dataset.items.texts
    candidates = [i for i in range(len(texts)) if texts[i].strip()]
    chosen = sorted(random.Random(seed).sample(candidates, min(n_items, len(candidates))))
    return [(i, texts[i]) for i in chosen]


def naive_loop(
    model_path: str,
    units: list[Unit],
    prompt: PromptTemplate,
    n_threads: int,
    *,
    constrained: bool = True,
) -> tuple[dict[str, Any], dict[str, list[list[str]]]]:
    """One ``create_chat_completion`` per unit; returns (figures, paths by unit key).

    ``n_threads`` is used for decoding *and* prompt evaluation (llama-cpp-python's default
    batch threads are all cores, which on a loaded machine made the first, prefix-evaluating
    call several times slower: a pathology, not a property of the naive loop).
    ``constrained=False`` drops the JSON schema (a faster, riskier baseline)."""
    from llama_cpp import Llama

    quiet_llama_logs()
    llm = Llama(
        model_path=model_path, n_ctx=2048, verbose=False, seed=0, n_threads=n_threads,
        n_threads_batch=n_threads,
    )
    used_threads = llm.n_threads
    head = [{"role": r, "content": c} for r, c in prompt.json_messages()]
    schema = prompt.json_schema()
    paths: dict[str, list[list[str]]] = {}
    failures = tokens_out = tokens_in = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for unit in units:
        message = {"role": "user", "content": prompt.user_message(unit.behaviour, unit.text)}
        fmt: Any = {"type": "json_object", "schema": schema} if constrained else None
        out: Any = llm.create_chat_completion(
            messages=[*head, message],  # type: ignore[list-item]
            response_format=fmt,
            temperature=0.0,
            max_tokens=96,
        )
        tokens_out += int(out["usage"]["completion_tokens"])
        tokens_in += int(out["usage"]["prompt_tokens"])
        parsed = parse_intents(out["choices"][0]["message"]["content"] or "", unit.text)
        failures += not parsed.ok
        paths[unit.key] = parsed.paths
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    del llm
    figures = _figures(len(units), seconds, tokens_out, failures, tokens_in)
    figures["cpu_seconds"] = round(cpu, 3)
    figures["items_per_cpu_s"] = round(len(units) / cpu, 4) if cpu > 0 else None
    figures["settings"] = {"n_threads": used_threads, "json_schema": constrained}
    return figures, paths


def _ceiling(
    model: Any,
    prompt: PromptTemplate,
    threads: int,
    n_parallel: int,
    concurrency: int,
    pipe: dict[str, Any],
    workers: int,
) -> dict[str, Any]:
    """The limit of this machine for the pipeline's token counts: plain ``llama_decode``
    tokens/s (answers at the batch size, prompts in one call) turned into items/s with the
    measured prompt and answer tokens per item, times the worker count (one core each).

    Measured at ``n_parallel`` sequences (a full batch, as in a catalogue run) and at
    ``concurrency``, the sequences a run of this size keeps busy per worker."""
    gen = IntentGenerator(model, prompt, n_threads=threads, n_parallel=n_parallel)
    try:
        full = gen.engine.decode_rates(n_parallel)
        run = gen.engine.decode_rates(max(1, concurrency))
    finally:
        gen.close()
    per_item = pipe["tokens_per_item"]

    def items_per_s(rates: dict[str, float]) -> float:
        seconds = (
            per_item["prompt"] / rates["prompt_tokens_per_s"]
            + per_item["answer"] / rates["decode_tokens_per_s"]
        )
        return round(workers / seconds, 3) if seconds > 0 else 0.0

    limit_full, limit_run = items_per_s(full), items_per_s(run)
    return {
        "workers": workers,
        "threads_per_worker": threads,
        "full_batch": {"n_seqs": n_parallel, **full, "items_per_s": limit_full},
        "this_run": {"n_seqs": max(1, concurrency), **run, "items_per_s": limit_run},
        "pipeline_share_of_this_run_limit": (
            round(pipe["items_per_s"] / limit_run, 3) if limit_run else None
        ),
    }


def _figures(
    n: int, seconds: float, tokens_out: int, failures: int, tokens_in: int
) -> dict[str, Any]:
    return {
        "items_per_s": round(n / seconds, 4),
        "tokens_per_item": {
            "prompt": round(tokens_in / n, 2) if n else 0.0,
            "answer": round(tokens_out / n, 2) if n else 0.0,
        },
        "tokens_per_s": round(tokens_out / seconds, 2),
        "seconds": round(seconds, 3),
        "failures": failures,
        "output_tokens": tokens_out,
        "prompt_tokens_evaluated_or_reported": tokens_in,
    }


def _pipeline(
    resolved: Any,
    prompt: PromptTemplate,
    units: list[Unit],
    n_workers: int,
    threads: int,
    n_parallel: int,
    seed: int,
) -> tuple[list[Outcome], float, float, dict[str, Any]]:
    """Run the pipeline on ``units``: (outcomes, wall seconds, CPU seconds, settings).

    With several workers the clock starts before they spawn, so their model loads count;
    with one, the timed region re-evaluates the prefix (as the naive loop pays it once)."""
    if n_workers > 1:
        settings: dict[str, Any] = {}
        start = time.perf_counter()
        outcomes = list(
            generate_in_workers(
                resolved, prompt, units, workers=n_workers, chunk_size=4,
                options={"n_threads": threads, "n_parallel": n_parallel, "seed": seed},
                settings_out=settings,
            )
        )
        seconds = time.perf_counter() - start
        cpu = float(settings.pop("worker_cpu_seconds", 0.0))
        settings["workers"] = n_workers
        settings["timing_includes_model_load"] = True
        return outcomes, seconds, cpu, settings
    gen = IntentGenerator(resolved, prompt, n_threads=threads, n_parallel=n_parallel, seed=seed)
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        gen.engine.set_prefix(gen.prefix_tokens)
        outcomes = list(gen.generate(units))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        settings = gen.settings
        settings["workers"] = 1
    finally:
        gen.close()
    return outcomes, seconds, cpu, settings


def _ray_runner(address: str, pairs: list[tuple[int, str]], behaviour: str, resolved: Any, prompt: PromptTemplate,
                actors: int, n_parallel: int, seed: int) -> dict[str, Any]:
    """The Ray runner on ``pairs`` into a throw-away cache: its summary figures."""
    import tempfile

    from airrec._ray import connect
    from airrec.generate.ray_runner import generate_intents_ray

    connect(address)  # outside the clock: a cluster is started once, not per run
    with tempfile.TemporaryDirectory() as tmp:
        s = generate_intents_ray(pairs, Path(tmp) / "ray.sqlite", address=address, actors=actors, model=resolved,
                                 prompt=prompt, behaviours=[behaviour], batch_size=n_parallel, seed=seed)
    return {"actors": actors, "items": s.ok + s.failed, "failed": s.failed, "seconds": round(s.seconds, 3),
            "items_per_s": round((s.ok + s.failed) / s.seconds, 4) if s.seconds > 0 else 0.0,
            "tokens_per_item": round((s.tokens_in + s.tokens_out) / max(1, s.ok + s.failed), 2),
            "timing_includes_model_load": True}


def bench_generate(
    model: str,
    n_items: int,
    out_path: str | Path,
    *,
    dataset: Any = None,
    data_home: str | Path | None = None,
    n_threads: int | None = None,
    n_parallel: int = 64,
    prompt: PromptTemplate = DEFAULT_PROMPT,
    seed: int = 0,
    n_examples: int = 8,
    allow_install: bool = False,
    workers: int | None = None,
    ray: str | None = None,
) -> dict[str, Any]:
    """Time the naive loop and the pipeline on the same ``n_items`` Food–Kitchen items (or
    ``dataset``'s) and write ``{model, n_items, naive, pipeline, speedup, examples}`` JSON.

    ``workers`` defaults to one single-thread worker process per core (the pipeline's best
    setting here); ``n_threads`` (default 1) is the thread count of the naive loop and of
    each pipeline worker. Scripts calling this with ``workers > 1`` need an
    ``if __name__ == "__main__":`` guard (spawned workers). ``ray`` (``"local"`` or a cluster
    address) also times the Ray runner on the same items (``n_workers`` actors, a fresh cache;
    the clock covers the actors' model loads, not the cluster start)."""
    if dataset is None:
        from airrec.data import load_food_kitchen

        dataset = load_food_kitchen(data_home)
    resolved = resolve_model(model, allow_install=allow_install)
    threads = n_threads or 1
    pairs = _pick_items(dataset, n_items, seed)
    behaviour = dataset.behaviour_names[0]
    units = units_for(
        pairs, model_sha=resolved.sha256, prompt_key=prompt.key, behaviours=[behaviour]
    )
    log.info("bench: %d items, model %s, %d threads", len(units), resolved.name, threads)

    naive, naive_paths = naive_loop(str(resolved.path), units, prompt, threads)
    log.info("naive: %s", naive)
    free, _ = naive_loop(str(resolved.path), units, prompt, threads, constrained=False)
    log.info("naive without JSON schema: %s", free)

    n_workers = workers if workers is not None else max(1, os.cpu_count() or 1)
    outcomes, seconds, cpu, settings = _pipeline(
        resolved, prompt, units, n_workers, threads, n_parallel, seed
    )
    pipe = _figures(
        len(units), seconds, sum(o.tokens_out for o in outcomes),
        sum(o.status != "ok" for o in outcomes), sum(o.tokens_in for o in outcomes),
    )
    pipe["cpu_seconds"] = round(cpu, 3)
    pipe["items_per_cpu_s"] = round(len(units) / cpu, 4) if cpu > 0 else None
    pipe["retries"] = sum(max(0, o.attempts - 1) for o in outcomes)
    pipe["settings"] = settings
    log.info("pipeline: %s", pipe)
    concurrency = min(n_parallel, -(-len(units) // (n_workers * prompt.items_per_prompt)))
    ceiling = _ceiling(resolved, prompt, threads, n_parallel, concurrency, pipe, n_workers)
    log.info("ceiling: %s", ceiling)
    by_key = {o.unit.key: o for o in outcomes}
    examples = [
        {
            "item": u.item_id,
            "title": u.text,
            "naive_paths": naive_paths.get(u.key, []),
            "pipeline_paths": by_key[u.key].paths if u.key in by_key else [],
        }
        for u in units[:n_examples]
    ]
    ray_figures = None
    if ray is not None:
        ray_figures = _ray_runner(ray, pairs, behaviour, resolved, prompt, n_workers, n_parallel, seed)
        ray_figures["vs_local_pipeline"] = (
            round(ray_figures["items_per_s"] / pipe["items_per_s"], 3) if pipe["items_per_s"] else None
        )
        log.info("ray: %s", ray_figures)
    report: dict[str, Any] = {
        "model": resolved.name,
        "model_sha256": resolved.sha256,
        "n_items": len(units),
        "naive": naive,
        "naive_unconstrained": free,
        "pipeline": pipe,
        "speedup": (
            round(pipe["items_per_s"] / naive["items_per_s"], 3) if naive["items_per_s"] else None
        ),
        "speedup_vs_unconstrained": (
            round(pipe["items_per_s"] / free["items_per_s"], 3) if free["items_per_s"] else None
        ),
        "cpu_speedup": (
            round(pipe["items_per_cpu_s"] / naive["items_per_cpu_s"], 3)
            if pipe["items_per_cpu_s"] and naive["items_per_cpu_s"] else None
        ),
        "ceiling": ceiling,
        **({"ray": ray_figures} if ray_figures is not None else {}),
        "examples": examples,
    }
    write_atomic(out_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def bench_quality(
    model: str,
    n_items: int,
    n_agreement: int,
    out_path: str | Path,
    *,
    dataset: Any = None,
    data_home: str | Path | None = None,
    baseline: str | Path | None = None,
    baseline_prompt: PromptTemplate = PROMPT_V1,
    prompt: PromptTemplate = DEFAULT_PROMPT,
    group_size: int = 8,
    n_parallel: int = 64,
    workers: int | None = None,
    seed: int = 0,
    allow_install: bool = False,
    embedder: Any = None,
) -> dict[str, Any]:
    """The quality report of ``prompt`` on ``n_items`` items, against a baseline, and the
    agreement of grouped answers (``group_size`` items per prompt) with them on the first
    ``n_agreement``.

    ``baseline`` is an intents file made earlier (e.g. the committed artefact, another
    prompt): items are then drawn from those it covers and its answers are scored on the
    same items ("before"; example copies counted against ``baseline_prompt``'s examples).
    The grouped run is ``prompt`` with ``items_per_prompt=group_size``, same system text and
    examples. Writes ``{after, before, grouped, agreement, ...}`` JSON.
    """
    from dataclasses import replace

    from airrec.generate.quality import agreement, quality_of
    from airrec.kb.intents import read_intents

    if dataset is None:
        from airrec.data import load_food_kitchen

        dataset = load_food_kitchen(data_home)
    resolved = resolve_model(model, allow_install=allow_install)
    texts = dataset.items.texts
    before_paths = read_intents(baseline).paths_by_key() if baseline is not None else {}
    pool = sorted({i for i, b in before_paths if b == 0}) if before_paths else range(len(texts))
    pool = [i for i in pool if texts[i].strip()]
    chosen = sorted(random.Random(seed).sample(pool, min(n_items, len(pool))))
    behaviour = dataset.behaviour_names[0]
    pairs = [(i, texts[i]) for i in chosen]
    n_workers = workers if workers is not None else max(1, os.cpu_count() or 1)
    examples = prompt.example_paths

    def run(template: PromptTemplate, some: list[tuple[int, str]]) -> tuple[
        dict[int, list[list[str]]], float, dict[str, Any]
    ]:
        units = units_for(some, model_sha=resolved.sha256, prompt_key=template.key,
                          behaviours=[behaviour])
        outcomes, seconds, _, settings = _pipeline(
            resolved, template, units, n_workers, 1, n_parallel, seed
        )
        return {o.unit.item_id: o.paths for o in outcomes}, len(units) / seconds, settings

    single, single_rate, settings = run(prompt, pairs)
    grouped_prompt = replace(prompt, items_per_prompt=group_size)
    first = pairs[:n_agreement]
    grouped, grouped_rate, _ = run(grouped_prompt, first)
    report: dict[str, Any] = {
        "model": resolved.name,
        "prompt": prompt.key,
        "grouped_prompt": grouped_prompt.key,
        "n_items": len(pairs),
        "n_agreement": len(first),
        "settings": settings,
        "after": quality_of(((t, single.get(i, [])) for i, t in pairs), examples),
        "items_per_s": round(single_rate, 3),
        "grouped": quality_of(((t, grouped.get(i, [])) for i, t in first), examples),
        "grouped_items_per_s": round(grouped_rate, 3),
        "agreement": agreement(
            [grouped.get(i, []) for i, _ in first],
            [single.get(i, []) for i, _ in first],
            embedder=embedder,
        ),
        "examples": [
            {"item": i, "title": t, "single": single.get(i, []), "grouped": grouped.get(i, [])}
            for i, t in first[:8]
        ],
    }
    if before_paths:
        report["baseline"] = str(baseline)
        report["baseline_prompt"] = baseline_prompt.key
        report["before"] = quality_of(
            ((t, before_paths.get((i, 0), [])) for i, t in pairs),
            baseline_prompt.example_paths,
        )
        report["agreement_with_baseline"] = agreement(
            [single.get(i, []) for i, _ in pairs],
            [before_paths.get((i, 0), []) for i, _ in pairs],
            embedder=embedder,
        )
    write_atomic(out_path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report
