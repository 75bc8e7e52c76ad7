"""One process's decoding: work units in, outcomes out, with retries.

:class:`IntentGenerator` owns a model and a prompt and turns work units (item, behaviour,
text) into outcomes, retrying answers the parser rejects (greedy first; then sampled at
``retry_temperature`` with a new seed per attempt) and recording the rest as failed with an
excerpt of the raw answer — never dropping them, never raising for one bad answer. The run
around it (cache, shards, worker processes) is :mod:`airrec.generate.runner`; worker
processes (:mod:`airrec.generate.workers`) each hold one generator.
"""

from __future__ import annotations

import logging
import os
import string
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airrec.errors import ConfigError, GenerationError
from airrec.generate.llama_batch import BatchJob, LlamaBatchEngine
from airrec.generate.models import ResolvedModel, resolve_model
from airrec.generate.parse import parse_intents
from airrec.generate.prompts import DEFAULT_PROMPT, PromptTemplate

__all__ = ["IntentGenerator", "Outcome", "Unit", "resolve", "split_answer_lines"]

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
        self.model = resolve(model, allow_install)
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


def resolve(model: str | os.PathLike[str] | ResolvedModel, allow_install: bool) -> ResolvedModel:
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
