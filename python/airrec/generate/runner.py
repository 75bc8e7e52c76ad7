"""The generation run: items in, cached intent paths out, resumable at any point.

:class:`IntentGenerator` owns a model and a prompt and turns work units (item, behaviour,
text) into outcomes, retrying answers the parser rejects (greedy first; then sampled at
``retry_temperature`` with a new seed per attempt) and recording the rest as failed with an
excerpt of the raw answer — never dropping them, never raising for one bad answer.

:func:`generate_intents` wires it to the cache: it lists the units of a dataset (or of plain
``(item_id, text)`` pairs), keeps those of its shard, skips keys already in the cache, and
commits finished units in small transactions as they stream out of the batched decoder. A
kill loses at most the uncommitted tail; the re-run redoes exactly that tail.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airrec.errors import ConfigError, GenerationError
from airrec.generate.cache import CacheRow, IntentCache, cache_key, parse_shard, shard_of, text_hash
from airrec.generate.llama_batch import BatchJob, LlamaBatchEngine
from airrec.generate.models import ResolvedModel, resolve_model
from airrec.generate.parse import parse_intents
from airrec.generate.prompts import DEFAULT_PROMPT, PromptTemplate

__all__ = [
    "GenerationSummary",
    "IntentGenerator",
    "Outcome",
    "Unit",
    "generate_intents",
    "units_for",
]

log = logging.getLogger("airrec.generate")


@dataclass(frozen=True)
class Unit:
    """One thing to generate for: an item's text under one behaviour."""

    key: str
    item_id: int
    behaviour: str
    text: str


@dataclass
class Outcome:
    """What became of a unit (``status`` ``ok`` or ``failed``)."""

    unit: Unit
    paths: list[list[str]]
    status: str
    attempts: int
    error: str = ""
    raw: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0


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


class IntentGenerator:
    """A loaded model + prompt that answers units in parallel sequences.

    ``n_parallel`` sequences decode together (the throughput lever on CPU, see
    :mod:`airrec.generate.llama_batch`). ``n_threads`` defaults to 1: on a machine shared
    with other jobs, llama.cpp's per-node thread barriers made 2 threads 3-10x *slower* than
    1 here (see :mod:`airrec.generate.workers`); scale out with worker processes
    (``generate_intents(..., workers=n)``) or shards instead.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | ResolvedModel,
        prompt: PromptTemplate = DEFAULT_PROMPT,
        *,
        n_threads: int | None = None,
        n_parallel: int = 16,
        seed: int = 0,
        max_attempts: int = 3,
        retry_temperature: float = 0.7,
        n_ctx: int = 0,
        allow_install: bool = False,
    ) -> None:
        if n_parallel < 1 or max_attempts < 1:
            raise ConfigError("n_parallel and max_attempts must be >= 1")
        self.model = _resolve(model, allow_install)
        self.prompt = prompt
        self.n_parallel = n_parallel
        self.seed = seed
        self.max_attempts = max_attempts
        self.retry_temperature = retry_temperature
        self.n_threads = n_threads or 1
        per_seq = 256 + prompt.max_tokens
        ctx = n_ctx or 1024 + n_parallel * per_seq
        self.engine = LlamaBatchEngine(
            self.model.path, n_parallel=n_parallel, n_ctx=ctx, n_threads=self.n_threads
        )
        messages = prompt.messages()
        probe = "@@ITEM@@"
        full = self.engine.apply_chat(
            messages + [("user", prompt.user_message("@@BEHAVIOUR@@", probe))], add_assistant=True
        )
        prefix = self.engine.apply_chat(messages, add_assistant=False)
        if not full.startswith(prefix):
            raise GenerationError("the chat template does not extend the few-shot prefix")
        self._suffix_template = full[len(prefix) :]
        self.prefix_tokens = self.engine.tokenize(prefix, add_special=True)
        self.engine.set_prefix(self.prefix_tokens)
        self._grammar = prompt.grammar()

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "n_parallel": self.n_parallel,
            "n_threads": self.n_threads,
            "max_attempts": self.max_attempts,
            "prompt": self.prompt.key,
            "prefix_tokens": len(self.prefix_tokens),
        }

    def _suffix(self, unit: Unit) -> list[int]:
        user = self.prompt.user_message(unit.behaviour, unit.text)
        template = self.prompt.user_message("@@BEHAVIOUR@@", "@@ITEM@@")
        text = self._suffix_template.replace(template, user)
        return self.engine.tokenize(text)

    def _job(self, unit: Unit, attempt: int, suffix: list[int]) -> BatchJob:
        greedy = attempt == 1
        return BatchJob(
            key=(unit, attempt),
            suffix=suffix,
            grammar=self._grammar,
            max_tokens=self.prompt.max_tokens,
            temperature=0.0 if greedy else self.retry_temperature,
            seed=self.seed * 1000 + attempt,
            stop=_ends_line,
        )

    def generate(self, units: Iterable[Unit]) -> Iterator[Outcome]:
        """Answer ``units`` (streamed, in completion order), retries included.

        ``units`` is consumed lazily, as sequence slots free up: a worker can feed it from a
        queue, and the batch never drains between chunks."""
        instant: list[Outcome] = []
        suffixes: dict[str, list[int]] = {}

        def first_jobs() -> Iterator[BatchJob]:
            for unit in units:
                if not unit.text.strip():
                    instant.append(Outcome(unit, [], "failed", 0, "empty item text"))
                    continue
                suffixes[unit.key] = self._suffix(unit)
                yield self._job(unit, 1, suffixes[unit.key])

        queue = _JobQueue(first_jobs())
        tokens: dict[str, list[int]] = {}
        busy: dict[str, float] = {}  # decode seconds per unit, over its attempts
        for result in self.engine.run(queue):
            yield from instant
            instant.clear()
            unit, attempt = result.key
            spent = tokens.setdefault(unit.key, [0, 0])
            took = busy.get(unit.key, 0.0) + result.seconds
            busy[unit.key] = took
            spent[0] += result.prompt_tokens
            spent[1] += result.completion_tokens
            parsed = parse_intents(result.text, unit.text)
            if not parsed.ok and result.finish == "length":
                parsed.problems.append("answer hit max_tokens")
            if parsed.ok or attempt >= self.max_attempts:
                yield Outcome(
                    unit,
                    parsed.paths,
                    "ok" if parsed.ok else "failed",
                    attempt,
                    parsed.error,
                    result.text,
                    spent[0],
                    spent[1],
                    took,
                )
                busy.pop(unit.key, None)
                tokens.pop(unit.key, None)
                suffixes.pop(unit.key, None)
            else:
                queue.append(self._job(unit, attempt + 1, suffixes[unit.key]))
        yield from instant

    def close(self) -> None:
        self.engine.close()


class _JobQueue:
    """The deque-like queue :meth:`LlamaBatchEngine.run` reads: retries first (appended),
    then fresh jobs pulled from an iterator only when a slot is free."""

    def __init__(self, source: Iterator[BatchJob]) -> None:
        self._source = source
        self._ready: deque[BatchJob] = deque()

    def _fill(self) -> bool:
        if not self._ready:
            nxt = next(self._source, None)
            if nxt is not None:
                self._ready.append(nxt)
        return bool(self._ready)

    def __bool__(self) -> bool:
        return self._fill()

    def __getitem__(self, index: int) -> BatchJob:
        if index != 0 or not self._fill():
            raise IndexError(index)
        return self._ready[0]

    def popleft(self) -> BatchJob:
        if not self._fill():
            raise IndexError("empty job queue")
        return self._ready.popleft()

    def append(self, job: BatchJob) -> None:
        self._ready.append(job)


def _resolve(model: str | os.PathLike[str] | ResolvedModel, allow_install: bool) -> ResolvedModel:
    if isinstance(model, ResolvedModel):
        return model
    return resolve_model(model, allow_install=allow_install)


def _ends_line(text: str) -> bool:
    return text.endswith("\n")


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
        resolved = _resolve(model, allow_install)
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
            from airrec.generate.workers import generate_in_workers

            options = dict(generator_options)
            summary.settings = {"workers": workers}
            stream = generate_in_workers(
                resolved, prompt, todo, workers=workers,
                chunk_size=4, options=options,
                settings_out=summary.settings,
            )
            _run(stream, resolved.sha256, prompt.key, len(todo), cache, summary, progress,
                 commit_every)
            summary.settings["workers"] = workers
        elif todo:
            if generator is None:
                generator = IntentGenerator(resolved, prompt, **generator_options)
            summary.settings = generator.settings
            try:
                _run(generator.generate(todo), resolved.sha256, prompt.key, len(todo), cache,
                     summary, progress, commit_every)
            finally:
                if owned:
                    generator.close()
    summary.seconds = time.perf_counter() - started
    log.info("generation: %s", summary.line())
    return summary


def _run(
    outcomes: Iterable[Outcome],
    sha: str,
    pkey: str,
    total: int,
    cache: IntentCache,
    summary: GenerationSummary,
    progress: bool,
    commit_every: int,
) -> None:
    from tqdm import tqdm  # type: ignore[import-untyped]

    bar = tqdm(total=total, unit="item", disable=not progress, smoothing=0.1, desc="intents")
    pending: list[CacheRow] = []

    def flush() -> None:
        cache.put_many(pending)
        bar.update(len(pending))
        pending.clear()

    try:
        for out in outcomes:
            summary.ok += out.status == "ok"
            summary.failed += out.status == "failed"
            summary.retries += max(0, out.attempts - 1)
            summary.tokens_in += out.tokens_in
            summary.tokens_out += out.tokens_out
            u = out.unit
            pending.append(
                CacheRow(
                    u.key, sha, pkey, u.behaviour, text_hash(u.text), u.item_id, out.paths,
                    out.status, out.attempts, out.error, out.raw, out.tokens_in, out.tokens_out,
                    out.seconds,
                )
            )
            if len(pending) >= commit_every:
                flush()
                bar.set_postfix(ok=summary.ok, failed=summary.failed, refresh=False)
        flush()
    finally:
        bar.close()
