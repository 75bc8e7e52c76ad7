"""The generation run: items in, cached intent paths out, resumable at any point.

:func:`generate_intents` wires :class:`~airrec.generate.generator.IntentGenerator` (one per
worker process, :mod:`airrec.generate.workers`) to the cache: it lists the units of a dataset
(or of plain ``(item_id, text)`` pairs), keeps those of its shard, skips keys already in the
cache, and commits finished units in small transactions as they stream out of the batched
decoder. A kill loses at most the uncommitted tail; the re-run redoes exactly that tail.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airrec.errors import ConfigError
from airrec.generate.cache import CacheRow, IntentCache, cache_key, parse_shard, shard_of, text_hash
from airrec.generate.generator import IntentGenerator, Outcome, Unit, resolve, split_answer_lines
from airrec.generate.models import ResolvedModel
from airrec.generate.prompts import DEFAULT_PROMPT, PromptTemplate
from airrec.generate.quality import QualityTally
from airrec.generate.workers import generate_in_workers

__all__ = [
    "GenerationSummary",
    "IntentGenerator",
    "cache_row",
    "Outcome",
    "Unit",
    "generate_intents",
    "split_answer_lines",
    "units_for",
]

log = logging.getLogger("airrec.generate")


@dataclass
class GenerationSummary:
    """Totals of one :func:`generate_intents` call (``cached`` units were already done)."""

    units: int = 0
    cached: int = 0
    ok: int = 0
    failed: int = 0
    retries: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    #: :class:`~airrec.generate.quality.QualityTally` figures over the units generated in
    #: this call (cached ones excluded).
    quality: dict[str, Any] = field(default_factory=dict)

    def count(self, status: str, attempts: int, tokens_in: int, tokens_out: int) -> None:
        """Add one finished unit (every runner counts its outcomes through this)."""
        self.ok += status == "ok"
        self.failed += status == "failed"
        self.retries += max(0, attempts - 1)
        self.tokens_in += tokens_in
        self.tokens_out += tokens_out

    @property
    def items_per_s(self) -> float:
        done = self.ok + self.failed
        return done / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_out / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        return (
            f"{self.units} units: {self.cached} cached, {self.ok} ok, {self.failed} failed, "
            f"{self.retries} retries; {self.tokens_in} prompt + {self.tokens_out} output tokens "
            f"in {self.seconds:.1f} s ({self.items_per_s:.2f} items/s, "
            f"{self.tokens_per_s:.1f} output tokens/s)"
        )


def units_for(
    source: Any,
    *,
    model_sha: str,
    prompt_key: str,
    items: Iterable[int] | None = None,
    behaviours: Sequence[str] | None = None,
) -> list[Unit]:
    """Units for a :class:`~airrec.data.Dataset` (its ``items.texts`` and
    ``behaviour_names``) or a sequence of ``(item_id, text)`` pairs, deduplicated by key."""
    if hasattr(source, "items") and hasattr(source, "behaviour_names"):
        texts: Sequence[str] = source.items.texts
        names = tuple(behaviours or source.behaviour_names)
        ids: Iterable[int] = range(len(texts)) if items is None else items
        pairs = [(int(i), texts[int(i)]) for i in ids]
    else:
        names = tuple(behaviours or ("purchase",))
        pairs = [(int(i), str(t)) for i, t in source]
        if items is not None:
            wanted = set(int(i) for i in items)
            pairs = [p for p in pairs if p[0] in wanted]
    seen: set[str] = set()
    out: list[Unit] = []
    for behaviour in names:
        for item_id, text in pairs:
            key = cache_key(model_sha, prompt_key, behaviour, text_hash(text))
            if key not in seen:
                seen.add(key)
                out.append(Unit(key, item_id, behaviour, text))
    return out


def generate_intents(
    dataset_or_items: Any,
    cache_path: str | Path,
    *,
    model: str | os.PathLike[str] | ResolvedModel | IntentGenerator = "qwen2.5-coder-0.5b",
    prompt: PromptTemplate = DEFAULT_PROMPT,
    items: Iterable[int] | None = None,
    behaviours: Sequence[str] | None = None,
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
    commit_every: int = 16,
    allow_install: bool = False,
    workers: int = 1,
    **generator_options: Any,
) -> GenerationSummary:
    """Fill ``cache_path`` with intents for every (item, behaviour) not yet in it.

    ``shard="i/n"`` keeps the units whose key hashes to shard ``i`` of ``n``. Finished units
    are committed ``commit_every`` at a time in one transaction each. ``workers > 1`` runs
    that many processes (see :mod:`airrec.generate.workers`), each with its own model and
    ``n_threads`` (default 1); ``generator_options`` go to :class:`IntentGenerator`.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    started = time.perf_counter()
    shard_t = parse_shard(shard)
    owned = not isinstance(model, IntentGenerator)
    if isinstance(model, IntentGenerator):
        generator, prompt = model, model.prompt
        resolved = model.model
    else:
        resolved = resolve(model, allow_install)
        generator = None
    units = units_for(
        dataset_or_items, model_sha=resolved.sha256, prompt_key=prompt.key, items=items,
        behaviours=behaviours,
    )
    if shard_t is not None:
        units = [u for u in units if shard_of(u.key, shard_t[1]) == shard_t[0]]
    summary = GenerationSummary(units=len(units))
    with IntentCache(cache_path) as cache:
        done = cache.done_keys(u.key for u in units)
        todo = [u for u in units if u.key not in done]
        summary.cached = len(units) - len(todo)
        log.info(
            "%d units, %d already cached, %d to generate", len(units), summary.cached, len(todo)
        )
        if todo and (workers > 1 and generator is None):
            options = dict(generator_options)
            summary.settings = {"workers": workers}
            stream = generate_in_workers(
                resolved, prompt, todo, workers=workers,
                chunk_size=4, options=options,
                settings_out=summary.settings,
            )
            _run(stream, resolved.sha256, prompt, len(todo), cache, summary, progress,
                 commit_every)
            summary.settings["workers"] = workers
        elif todo:
            if generator is None:
                generator = IntentGenerator(resolved, prompt, **generator_options)
            summary.settings = generator.settings
            try:
                _run(generator.generate(todo), resolved.sha256, prompt, len(todo), cache,
                     summary, progress, commit_every)
            finally:
                if owned:
                    generator.close()
    summary.seconds = time.perf_counter() - started
    log.info("generation: %s", summary.line())
    return summary


def cache_row(out: Outcome, sha: str, prompt_key: str) -> CacheRow:
    """The cache row of one finished unit (every runner stores outcomes through this)."""
    u = out.unit
    return CacheRow(
        u.key, sha, prompt_key, u.behaviour, text_hash(u.text), u.item_id, out.paths, out.status,
        out.attempts, out.error, out.raw, out.tokens_in, out.tokens_out, out.seconds,
    )


def _run(
    outcomes: Iterable[Outcome],
    sha: str,
    prompt: PromptTemplate,
    total: int,
    cache: IntentCache,
    summary: GenerationSummary,
    progress: bool,
    commit_every: int,
) -> None:
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=total, unit="item", disable=not progress, smoothing=0.1, desc="intents")
    pending: list[CacheRow] = []
    pkey = prompt.key
    tally = QualityTally(prompt.example_paths)

    def flush() -> None:
        cache.put_many(pending)
        bar.update(len(pending))
        pending.clear()

    try:
        for out in outcomes:
            summary.count(out.status, out.attempts, out.tokens_in, out.tokens_out)
            tally.add(out.unit.text, out.paths, out.status, out.error)
            pending.append(cache_row(out, sha, pkey))
            if len(pending) >= commit_every:
                flush()
                bar.set_postfix(ok=summary.ok, failed=summary.failed, refresh=False)
        flush()
    finally:
        bar.close()
        summary.quality = tally.report()
