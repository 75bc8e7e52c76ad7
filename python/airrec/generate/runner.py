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
import string
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
from airrec.generate.quality import QualityTally

__all__ = [
    "GenerationSummary",
    "IntentGenerator",
    "Outcome",
    "Unit",
    "generate_intents",
    "split_answer_lines",
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
    #: :class:`~airrec.generate.quality.QualityTally` figures over the units generated in
    #: this call (cached ones excluded).
    quality: dict[str, Any] = field(default_factory=dict)

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
        n_parallel: int = 64,
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
        self.group_size = prompt.items_per_prompt
        # Per sequence: the chat-template tokens, then per item its title (<= 200 chars) and
        # its answer (<= max_tokens).
        per_seq = 256 + self.group_size * (64 + prompt.max_tokens)
        ctx = n_ctx or 1024 + n_parallel * per_seq
        self.engine = LlamaBatchEngine(
            self.model.path, n_parallel=n_parallel, n_ctx=ctx, n_threads=self.n_threads,
            n_batch=max(1024, 128 * self.group_size),
        )
        messages = prompt.messages()
        full = self.engine.apply_chat(messages + [("user", _PROBE)], add_assistant=True)
        prefix = self.engine.apply_chat(messages, add_assistant=False)
        if not full.startswith(prefix) or full.count(_PROBE) != 1:
            raise GenerationError("the chat template does not extend the few-shot prefix")
        # The shared prefix runs on into the last user turn, up to the user template's first
        # placeholder ("...<|im_start|>user\nbehaviour:"): the turn markers and fixed words
        # are evaluated once, and a job's suffix is only what differs per item (about 10
        # tokens less per item than a suffix starting at the turn, same text to the model).
        opening, self._suffix_template = full[len(prefix) :].split(_PROBE)
        self._lead = _literal_lead(prompt.user)
        self.prefix_tokens = self.engine.tokenize(prefix + opening + self._lead, add_special=True)
        self.engine.set_prefix(self.prefix_tokens)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "model": self.model.name,
            "n_parallel": self.n_parallel,
            "n_threads": self.n_threads,
            "max_attempts": self.max_attempts,
            "prompt": self.prompt.key,
            "items_per_prompt": self.group_size,
            "prefix_tokens": len(self.prefix_tokens),
        }

    def _suffix(self, group: Sequence[Unit]) -> list[int]:
        """Tokens after the shared prefix: the user turn for ``group`` and the assistant
        header. A grouped template lists the units numbered; a single-item one takes one."""
        if self.prompt.grouped:
            user = self.prompt.group_message(group[0].behaviour, [u.text for u in group])
        else:
            user = self.prompt.user_message(group[0].behaviour, group[0].text)
        if not user.startswith(self._lead):
            raise GenerationError(f"user turn {user[:40]!r} does not start with {self._lead!r}")
        return self.engine.tokenize(user[len(self._lead) :] + self._suffix_template)

    def _job(self, group: tuple[Unit, ...], attempt: int) -> BatchJob:
        """Attempt 1 of a group is greedy; retries (one unit each) sample with a new seed."""
        greedy = attempt == 1
        n = len(group)
        return BatchJob(
            key=(group, attempt),
            suffix=self._suffix(group),
            grammar=self.prompt.grammar(n),
            max_tokens=self.prompt.max_tokens * n,
            temperature=0.0 if greedy else self.retry_temperature,
            seed=self.seed * 1000 + attempt,
            stop=_LineCount(n),
        )

    def _groups(self, units: Iterable[Unit], instant: list[Outcome]) -> Iterator[BatchJob]:
        """First attempts: consecutive units of one behaviour, ``group_size`` per job.

        Grouping follows the input order, so the same item list gives the same groups (and,
        greedy, the same answers)."""
        open_groups: dict[str, list[Unit]] = {}
        for unit in units:
            if not unit.text.strip():
                instant.append(Outcome(unit, [], "failed", 0, "empty item text"))
                continue
            group = open_groups.setdefault(unit.behaviour, [])
            group.append(unit)
            if len(group) == self.group_size:
                del open_groups[unit.behaviour]
                yield self._job(tuple(group), 1)
        for group in open_groups.values():
            yield self._job(tuple(group), 1)

    def generate(self, units: Iterable[Unit]) -> Iterator[Outcome]:
        """Answer ``units`` (streamed, in completion order), retries included.

        ``units`` is consumed lazily, as sequence slots free up: a worker can feed it from a
        queue, and the batch never drains between chunks. A grouped answer is split into its
        numbered lines; each unit whose line does not parse is retried alone (sampled), so
        one bad line never costs its group a second pass."""
        instant: list[Outcome] = []
        queue = _JobQueue(self._groups(units, instant))
        spent: dict[str, list[float]] = {}  # prompt tokens, output tokens, seconds per unit
        for result in self.engine.run(queue):
            yield from instant
            instant.clear()
            group, attempt = result.key
            n = len(group)
            answers = split_answer_lines(result.text, n, self.prompt.grouped)
            for unit, answer in zip(group, answers):
                used = spent.setdefault(unit.key, [0.0, 0.0, 0.0])
                # A group's tokens and time are shared equally by its units.
                used[0] += result.prompt_tokens / n
                used[1] += result.completion_tokens / n
                used[2] += result.seconds / n
                parsed = parse_intents(answer, unit.text)
                if not parsed.ok and result.finish == "length":
                    parsed.problems.append("answer hit max_tokens")
                if parsed.ok or attempt >= self.max_attempts:
                    del spent[unit.key]
                    yield Outcome(
                        unit,
                        parsed.paths,
                        "ok" if parsed.ok else "failed",
                        attempt,
                        parsed.error,
                        answer,
                        round(used[0]),
                        round(used[1]),
                        used[2],
                    )
                else:
                    queue.append(self._job((unit,), attempt + 1))
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


#: Stands for the user turn while the chat template is rendered once at start-up.
_PROBE = "@@USER-TURN@@"


def _literal_lead(user_template: str) -> str:
    """The fixed text every user turn starts with: the template up to its first
    placeholder, without trailing spaces (a token boundary at ``":"`` + ``" word"`` is
    where the tokenizer splits anyway, so prefix + suffix tokenize as the whole would)."""
    literal = next(iter(string.Formatter().parse(user_template)), ("", None, None, None))[0]
    return literal.rstrip()


class _LineCount:
    """Stop condition: the answer is complete at its ``n``-th newline (the grammar would
    allow only end-of-turn after it; stopping saves that decode step)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, text: str) -> bool:
        return text.count("\n") >= self.n


def split_answer_lines(text: str, n: int, numbered: bool) -> list[str]:
    """The ``n`` per-item answers in a grouped answer (``"1. a > b\n2. c > d\n"``), each
    without its number; missing lines come back empty (the parser then reports them).
    A single-item answer (``numbered=False``) is returned whole."""
    if not numbered:
        return [text] + [""] * (n - 1)
    out = [""] * n
    for line in text.splitlines():
        head, dot, rest = line.partition(". ")
        if dot and head.isdigit() and 1 <= int(head) <= n and not out[int(head) - 1]:
            out[int(head) - 1] = rest
    return out


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
            summary.ok += out.status == "ok"
            summary.failed += out.status == "failed"
            summary.retries += max(0, out.attempts - 1)
            summary.tokens_in += out.tokens_in
            summary.tokens_out += out.tokens_out
            u = out.unit
            tally.add(u.text, out.paths, out.status, out.error)
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
        summary.quality = tally.report()
