"""Retry and failure recording, with a scripted engine instead of a model."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from airrec.generate import DEFAULT_PROMPT, IntentCache, IntentGenerator, ResolvedModel, units_for
from airrec.generate.llama_batch import BatchJob, BatchResult
from airrec.generate.runner import generate_intents, split_answer_lines


class ScriptedEngine:
    """Answers attempt ``k`` of an item with ``script[title][k-1]`` (last entry repeats); a
    group's answer is its items' answers as numbered lines."""

    def __init__(self, script: dict[str, list[str]]) -> None:
        self.script = script
        self.jobs: list[BatchJob] = []

    def tokenize(self, text: str, add_special: bool = False) -> list[int]:
        return [1, 2, 3]

    def run(self, jobs: deque[BatchJob]) -> Iterator[BatchResult]:
        while jobs:
            job = jobs.popleft()
            self.jobs.append(job)
            group, attempt = job.key
            lines = []
            for n, unit in enumerate(group, 1):
                answers = self.script[unit.text]
                lines.append(f"{n}. {answers[min(attempt, len(answers)) - 1].strip()}\n")
            yield BatchResult(job.key, "".join(lines), 3, 5, "stop", 0.01)

    def close(self) -> None:
        pass


def scripted(
    script: dict[str, list[str]], attempts: int = 3, group_size: int = 2
) -> IntentGenerator:
    gen = IntentGenerator.__new__(IntentGenerator)
    gen.model = ResolvedModel(Path("/nonexistent.gguf"), "f" * 64, "scripted")
    gen.prompt = replace(DEFAULT_PROMPT, items_per_prompt=group_size)
    gen.group_size = group_size
    gen.n_parallel, gen.n_threads, gen.seed = 4, 1, 0
    gen.max_attempts, gen.retry_temperature = attempts, 0.7
    gen.engine = ScriptedEngine(script)  # type: ignore[assignment]
    gen.prefix_tokens = [0]
    gen._suffix_template, gen._lead = "", "behaviour:"
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
    mystery = [j for j in engine.jobs if "Mystery Box" in {u.text for u in j.key[0]}]
    assert [j.temperature for j in mystery] == [0.0, 0.7, 0.7]
    assert len({j.seed for j in mystery}) == 3  # each retry samples differently
    # first attempts go two items per prompt; a retry carries only the unit that failed
    assert [len(j.key[0]) for j in engine.jobs if j.key[1] == 1] == [2, 1]
    assert all(len(j.key[0]) == 1 for j in engine.jobs if j.key[1] > 1)
    assert all(f'"{len(j.key[0])}. " line' in j.grammar for j in engine.jobs)
    # re-running finds everything cached, including the recorded failures
    again = generate_intents(items, cache, model=gen, progress=False)
    assert again.cached == 4 and again.ok == again.failed == 0


def test_units_need_no_model() -> None:
    pairs = [(0, "a"), (1, "b")]
    units = units_for(pairs, model_sha="x", prompt_key="p", behaviours=["click", "buy"])
    got = [(u.item_id, u.behaviour) for u in units]
    assert got == [(0, "click"), (1, "click"), (0, "buy"), (1, "buy")]


@pytest.mark.parametrize("size", [1, 3, 8])
def test_one_bad_line_retries_only_its_unit(tmp_path: Path, size: int) -> None:
    titles = [f"Item {i}" for i in range(8)]
    script = {t: [f"food > snacks > item{chr(97 + i)} bars\n"] for i, t in enumerate(titles)}
    script["Item 5"] = ["garbage", "food > snacks > crisps\n"]
    gen = scripted(script, group_size=size)
    summary = generate_intents(list(enumerate(titles)), tmp_path / "c.sqlite", model=gen,
                               progress=False)
    assert (summary.ok, summary.failed, summary.retries) == (8, 0, 1)
    engine = gen.engine
    assert isinstance(engine, ScriptedEngine)
    firsts = [len(j.key[0]) for j in engine.jobs if j.key[1] == 1]
    assert sum(firsts) == 8 and max(firsts) == size
    retried = [j.key[0] for j in engine.jobs if j.key[1] == 2]
    assert [[u.text for u in g] for g in retried] == [["Item 5"]]
    assert summary.quality["items"] == 8 and summary.quality["failure_rate"] == 0.0
    assert summary.quality["top_first_phrase"] == "food"


def test_split_answer_lines() -> None:
    text = "1. a > b\n3. e > f | g > h\n2. c > d\n9. out > of range\n1. dup > line\n"
    assert split_answer_lines(text, 3, True) == ["a > b", "c > d", "e > f | g > h"]
    assert split_answer_lines("1. a > b\n", 3, True) == ["a > b", "", ""]
    assert split_answer_lines("x. a > b\nno number\n", 2, True) == ["", ""]
    assert split_answer_lines("a > b\n", 1, False) == ["a > b\n"]
