"""Retry and failure recording, with a scripted engine instead of a model."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from pathlib import Path

from airrec.generate import DEFAULT_PROMPT, IntentCache, IntentGenerator, ResolvedModel, units_for
from airrec.generate.llama_batch import BatchJob, BatchResult
from airrec.generate.runner import generate_intents


class ScriptedEngine:
    """Answers attempt ``k`` of an item with ``script[title][k-1]`` (last entry repeats)."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.jobs: list[BatchJob] = []

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return [1, 2, 3]

    def run(self, jobs: deque[BatchJob]) -> Iterator[BatchResult]:
        while jobs:
            job = jobs.popleft()
            self.jobs.append(job)
            unit, attempt = job.key
            answers = self.script[unit.text]
            text = answers[min(attempt, len(answers)) - 1]
            yield BatchResult(job.key, text, 3, 5, "stop", 0.01)

    def close(self) -> None:
        pass


def scripted(script: dict[str, list[str]], attempts: int = 3) -> IntentGenerator:
    gen = IntentGenerator.__new__(IntentGenerator)
    gen.model = ResolvedModel(Path("/nonexistent.gguf"), "f" * 64, "scripted")
    gen.prompt = DEFAULT_PROMPT
    gen.n_parallel, gen.n_threads, gen.seed = 4, 1, 0
    gen.max_attempts, gen.retry_temperature = attempts, 0.7
    gen.engine = ScriptedEngine(script)  # type: ignore[assignment]
    gen.prefix_tokens = [0]
    gen._suffix_template = "@@ITEM@@"
    gen._grammar = DEFAULT_PROMPT.grammar()
    return gen


def test_retry_then_ok_then_failed(tmp_path: Path) -> None:
    script = {
        "Green Tea Bags": ["food > tea > green tea\n"],
        "Steel Wok": ["garbage", "kitchen > cookware > woks\n"],
        "Mystery Box": ["", "{{{", "still nothing"],
        "": ["never asked"],
    }
    items = list(enumerate(script))
    gen = scripted(script)
    cache = tmp_path / "c.sqlite"
    summary = generate_intents(items, cache, model=gen, progress=False)
    assert (summary.ok, summary.failed, summary.retries) == (2, 2, 3)
    with IntentCache(cache) as db:
        rows = {r.item_id: r for r in db.rows()}
    assert rows[0].paths == [["food", "tea", "green tea"]] and rows[0].attempts == 1
    assert rows[1].status == "ok" and rows[1].attempts == 2
    assert rows[2].status == "failed" and rows[2].attempts == 3 and rows[2].raw == "still nothing"
    assert "no intent path" in rows[2].error
    assert rows[3].status == "failed" and rows[3].error == "empty item text"
    engine = gen.engine
    assert isinstance(engine, ScriptedEngine)
    mystery = [j for j in engine.jobs if j.key[0].text == "Mystery Box"]
    assert [j.temperature for j in mystery] == [0.0, 0.7, 0.7]
    assert len({j.seed for j in mystery}) == 3  # each retry samples differently
    # re-running finds everything cached, including the recorded failures
    again = generate_intents(items, cache, model=gen, progress=False)
    assert again.cached == 4 and again.ok == again.failed == 0


def test_units_need_no_model() -> None:
    pairs = [(0, "a"), (1, "b")]
    units = units_for(pairs, model_sha="x", prompt_key="p", behaviours=["click", "buy"])
    got = [(u.item_id, u.behaviour) for u in units]
    assert got == [(0, "click"), (1, "click"), (0, "buy"), (1, "buy")]
