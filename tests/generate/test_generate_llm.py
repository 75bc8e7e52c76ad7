"""Real SmolLM2-135M runs: end-to-end structure, and resume after ``kill -9`` mid-run."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airrec.generate import IntentCache, generate_intents

pytestmark = pytest.mark.llm


def check_rows(cache_path: Path, expected_items: set[int]) -> None:
    with IntentCache(cache_path) as cache:
        rows = list(cache.rows())
    assert sorted(r.item_id for r in rows) == sorted(expected_items)  # each exactly once
    for row in rows:
        if row.status == "ok":
            assert 1 <= len(row.paths) <= 3
            for path in row.paths:
                assert 2 <= len(path) <= 4
                assert all(p and p == p.lower() and len(p.split()) <= 4 for p in path)
        else:
            assert row.status == "failed" and row.error and row.paths == []


def test_end_to_end(tmp_path: Path, items: list, smollm2: str) -> None:
    subset = items[:24]
    cache = tmp_path / "cache.sqlite"
    summary = generate_intents(subset, cache, model=smollm2, progress=False, n_parallel=8)
    assert summary.units == 24 and summary.ok + summary.failed == 24
    assert summary.ok >= 12  # a 135M model is weak, but most answers must parse
    assert summary.tokens_out > 0
    check_rows(cache, {i for i, _ in subset})
    again = generate_intents(subset, cache, model=smollm2, progress=False)
    assert again.cached == 24 and again.ok == again.failed == 0


SCRIPT = """
import sys, json
from airrec.generate import generate_intents
items = [tuple(x) for x in json.load(open(sys.argv[1]))]
s = generate_intents(items, sys.argv[2], model=sys.argv[3], progress=False, commit_every=2,
                     n_parallel=4)
print(json.dumps({"cached": s.cached, "ok": s.ok, "failed": s.failed}))
"""


def count(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        with sqlite3.connect(cache, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM intents").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def test_resume_after_kill(tmp_path: Path, items: list, smollm2: str) -> None:
    (tmp_path / "items.json").write_text(json.dumps(items))
    cache = tmp_path / "cache.sqlite"
    args = [sys.executable, "-c", SCRIPT, str(tmp_path / "items.json"), str(cache), smollm2]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while count(cache) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    committed = count(cache)
    assert 2 <= committed < len(items), "the kill should land mid-run"
    out = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["cached"] == committed  # nothing redone that was committed
    assert result["ok"] + result["failed"] == len(items) - committed  # nothing lost
    check_rows(cache, {i for i, _ in items})


def test_worker_processes(tmp_path: Path, items: list, smollm2: str) -> None:
    subset = items[:8]
    cache = tmp_path / "cache.sqlite"
    summary = generate_intents(subset, cache, model=smollm2, progress=False, workers=2,
                               n_parallel=4)
    assert summary.ok + summary.failed == 8 and summary.settings["workers"] == 2
    check_rows(cache, {i for i, _ in subset})
