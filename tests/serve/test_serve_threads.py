"""One Engine shared by many Python threads answers exactly what serial calls answer.

This is what lets the service run every request in a thread pool against one engine: the
engine is immutable after load and releases the GIL, so threads must neither corrupt each
other's answers nor serialise (the latter is measured by the load test, not asserted here).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from airrec import Engine

N_THREADS = 8


def _work(engine: Engine, n: int, seed: int) -> list[tuple[list[int], list[int]]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.integers(0, engine.n_items, size=int(rng.integers(0, 60))).tolist(),
         rng.integers(0, engine.n_items, size=25).tolist())
        for _ in range(n)
    ]


def _answer(engine: Engine, items: list[int], candidates: list[int]) -> tuple[Any, ...]:
    tree = engine.tree(items)
    top, top_scores = engine.retrieve(tree, 0, 10, pool=40)
    x = engine.explain(tree, candidates[0])
    return (
        engine.score(tree, candidates).tolist(),
        top.tolist(),
        top_scores.tolist(),
        x.score,
        x.chains,
        x.evidence,
    )


def test_eight_threads_equal_serial(small_bundle: Path) -> None:
    engine = Engine.load(small_bundle)
    work = _work(engine, 60, seed=3)
    serial = [_answer(engine, items, cands) for items, cands in work]

    results: list[list[tuple[int, tuple[Any, ...]]]] = [[] for _ in range(N_THREADS)]
    errors: list[BaseException] = []
    start = threading.Barrier(N_THREADS)

    def run(t: int) -> None:
        try:
            order = np.random.default_rng(100 + t).permutation(len(work))  # each thread its own order
            start.wait()
            for _ in range(3):
                for i in order.tolist():
                    results[t].append((i, _answer(engine, *work[i])))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sum(len(r) for r in results) == N_THREADS * 3 * len(work)
    for per_thread in results:
        for i, answer in per_thread:
            assert answer == serial[i], i


def test_trees_built_concurrently_equal_serial(small_bundle: Path) -> None:
    """Incremental trees (``add``) built in parallel threads end up equal to serial ones."""
    engine = Engine.load(small_bundle)
    work = _work(engine, 16, seed=5)
    serial = [engine.score(engine.tree(items), cands).tolist() for items, cands in work]
    out: dict[int, list[float]] = {}

    def run(i: int) -> None:
        tree = engine.tree()
        for item in work[i][0]:
            tree.add(item)
        out[i] = engine.score(tree, work[i][1]).tolist()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(out) == len(work)
    for i, expected in enumerate(serial):
        np.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)
