"""Intent generation on a Ray cluster: the same batched pipeline, in a pool of Ray actors.

Units (the same :func:`~airrec.generate.runner.units_for` keys as the local runner) flow as a
Ray Dataset into ``map_batches`` over :class:`GenerationActor`: each actor loads the GGUF model
once (one llama.cpp thread, one CPU), runs :class:`~airrec.generate.generator.IntentGenerator`
on its batches and commits every finished unit into **its own** SQLite shard cache
(``<cache>.ray-shards/<actor>.sqlite``, the local runner's format) before it returns the
batch. The driver merges the shard caches into the one cache at the end
(:func:`~airrec.generate.cache.merge_caches`) and deletes them.

Resumable the same way as the local runner: a new run first merges any shard caches a killed
run left behind, then skips every key already in the cache. Killing an actor, or the driver
with ``kill -9``, loses at most the units of the batches in flight: a committed row is never
redone, and the cache's primary key makes a duplicate impossible.

On a real cluster the model must resolve on every node (a preset name whose ``llm-*`` package
is installed there, or a path on a shared file system); each actor checks the sha256 it
resolves against the driver's.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from airrec.errors import ConfigError, ModelError
from airrec.generate.cache import IntentCache, merge_caches
from airrec.generate.generator import IntentGenerator, Unit, resolve
from airrec.generate.models import PRESETS, ResolvedModel
from airrec.generate.prompts import DEFAULT_PROMPT, PromptTemplate
from airrec.generate.quality import QualityTally
from airrec.generate.runner import GenerationSummary, cache_row, units_for

__all__ = ["GenerationActor", "generate_intents_ray", "shard_dir_of"]

log = logging.getLogger("airrec.generate")


def shard_dir_of(cache_path: str | os.PathLike[str]) -> Path:
    """Where the actors of a Ray run write their shard caches for ``cache_path``."""
    path = Path(cache_path)
    return path.with_name(path.name + ".ray-shards")


def _merge_shards(cache_path: Path) -> int:
    """Merge (then delete) the shard caches of an earlier or the current run; returns how
    many shard files were merged."""
    shards = sorted(shard_dir_of(cache_path).glob("*.sqlite"))
    if not shards:
        return 0
    merge_caches(cache_path, *shards)
    for shard in shards:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{shard}{suffix}").unlink(missing_ok=True)
    return len(shards)


class GenerationActor:
    """One model, one shard cache; called by Ray Data with batches of units (NumPy dicts)."""

    def __init__(self, model: str, sha256: str, prompt: PromptTemplate, shard_dir: str,
                 options: dict[str, Any], commit_every: int = 4) -> None:
        resolved = resolve(model, False)
        if resolved.sha256 != sha256:
            raise ModelError(f"model {model!r} resolves to sha256 {resolved.sha256[:12]} on this node, "
                             f"the driver's is {sha256[:12]}")
        self.sha = sha256
        self.prompt = prompt
        self.commit_every = max(1, commit_every)
        self.generator = IntentGenerator(resolved, prompt, **{"n_threads": 1, **options})
        Path(shard_dir).mkdir(parents=True, exist_ok=True)
        self.shard = Path(shard_dir) / f"{uuid.uuid4().hex}.sqlite"
        self._cache: IntentCache | None = None
        self._thread = 0

    @property
    def cache(self) -> IntentCache:
        """The shard cache, opened on the thread that calls (Ray calls batches on another
        thread than the constructor's, and a SQLite connection belongs to its thread)."""
        if self._cache is None or self._thread != threading.get_ident():
            if self._cache is not None:
                self._cache.close()
            self._cache, self._thread = IntentCache(self.shard), threading.get_ident()
        return self._cache

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        units = [Unit(str(k), int(i), str(b), str(t))
                 for k, i, b, t in zip(batch["key"], batch["item_id"], batch["behaviour"], batch["text"])]
        out: dict[str, list[Any]] = {k: [] for k in ("key", "text", "paths", "status", "attempts", "error",
                                                     "tokens_in", "tokens_out")}
        pending = []
        for o in self.generator.generate(units):
            pending.append(cache_row(o, self.sha, self.prompt.key))
            if len(pending) >= self.commit_every:
                self.cache.put_many(pending)
                pending.clear()
            for name, value in (("key", o.unit.key), ("text", o.unit.text), ("paths", json.dumps(o.paths)),
                                ("status", o.status), ("attempts", o.attempts), ("error", o.error),
                                ("tokens_in", o.tokens_in), ("tokens_out", o.tokens_out)):
                out[name].append(value)
        self.cache.put_many(pending)  # committed before the batch counts as done
        return out


def generate_intents_ray(
    dataset_or_items: Any,
    cache_path: str | os.PathLike[str],
    *,
    address: str = "local",
    actors: int | None = None,
    model: str | os.PathLike[str] | ResolvedModel = "qwen2.5-coder-0.5b",
    prompt: PromptTemplate = DEFAULT_PROMPT,
    items: Iterable[int] | None = None,
    behaviours: Sequence[str] | None = None,
    batch_size: int = 64,
    allow_install: bool = False,
    num_cpus: int | None = None,
    **generator_options: Any,
) -> GenerationSummary:
    """Fill ``cache_path`` with intents for every (item, behaviour) not yet in it, on Ray.

    ``actors`` (default: one per CPU of the cluster) each hold one model; ``batch_size`` units
    go to an actor at a time (its parallel sequences: ``n_parallel`` defaults to it).
    ``num_cpus`` caps a local cluster. The summary has the local runner's fields.
    """
    from airrec._ray import connect

    if batch_size < 1 or (actors is not None and actors < 1):
        raise ConfigError("batch_size and actors must be >= 1")
    started = time.perf_counter()
    resolved = resolve(model, allow_install)
    cache_path = Path(cache_path)
    units = units_for(dataset_or_items, model_sha=resolved.sha256, prompt_key=prompt.key, items=items,
                      behaviours=behaviours)
    leftover = _merge_shards(cache_path)
    if leftover:
        log.info("merged %d shard caches left by an earlier run", leftover)
    with IntentCache(cache_path) as cache:
        done = cache.done_keys(u.key for u in units)
    todo = [u for u in units if u.key not in done]
    summary = GenerationSummary(units=len(units), cached=len(units) - len(todo))
    log.info("%d units, %d already cached, %d to generate on Ray", len(units), summary.cached, len(todo))
    if todo:
        ray = connect(str(address), num_cpus=num_cpus)
        blocks = max(1, -(-len(todo) // batch_size))
        # No more actors than batches: an idle actor would only load the model.
        n = min(actors or max(1, int(ray.cluster_resources().get("CPU", 1))), blocks)
        summary.settings = {"runner": "ray", "address": str(address), "actors": n, "batch_size": batch_size,
                            "model": resolved.name, "prompt": prompt.key}
        options = {"n_parallel": batch_size, **generator_options}
        ds = ray.data.from_items([{"key": u.key, "item_id": u.item_id, "behaviour": u.behaviour, "text": u.text}
                                  for u in todo], override_num_blocks=blocks)
        # A preset name resolves on each node (its llm-* package); anything else by path.
        spec = model if isinstance(model, str) and model in PRESETS else str(resolved.path)
        results = ds.map_batches(
            GenerationActor, batch_size=batch_size, batch_format="numpy", concurrency=n, num_cpus=1,
            fn_constructor_args=(spec, resolved.sha256, prompt, str(shard_dir_of(cache_path)), options),
        )
        tally = QualityTally(prompt.example_paths)
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for text, paths, status, attempts, error, t_in, t_out in zip(
                batch["text"], batch["paths"], batch["status"], batch["attempts"], batch["error"],
                batch["tokens_in"], batch["tokens_out"],
            ):
                summary.count(str(status), int(attempts), int(t_in), int(t_out))
                tally.add(str(text), json.loads(str(paths)), str(status), str(error))
        summary.quality = tally.report()
        _merge_shards(cache_path)
    summary.seconds = time.perf_counter() - started
    log.info("generation (ray): %s", summary.line())
    return summary
