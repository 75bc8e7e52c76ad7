"""In-process thread scaling of one engine: does throughput grow with threads?

The service's design rests on the engine releasing the GIL (``py.detach`` around every compute
call in ``rust/airrec-py``). This measures it directly, without HTTP: ``T`` threads share one
engine and score the same bounded amount of work. Besides calls per second it reports
``parallelism`` = process CPU seconds / wall seconds, which stays near 1 if the threads
serialise on the GIL and approaches ``min(T, free cores)`` if they do not. On a shared machine
the calls-per-second figure depends on the neighbours; parallelism much less so.

A control runs the same work as one ``score_batch(n_threads=T)`` call, parallel inside Rust
and never touching the GIL: if the control does not scale either, the machine (its free
cores) is the limit, not the GIL.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from airrec.engine import Engine, Histories

__all__ = ["engine_thread_scaling"]


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def engine_thread_scaling(
    engine: Engine,
    threads: Sequence[int] = (1, 2, 4),
    *,
    calls: int = 400,
    history: int = 300,
    candidates: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """``calls`` score calls (one ``history``-event tree, ``candidates`` ids) split over ``T``
    threads for each ``T`` in ``threads``; returns calls/s, speed-up and parallelism per T."""
    rng = np.random.default_rng(seed)
    tree = engine.tree(rng.integers(0, engine.n_items, history))
    cands = rng.integers(0, engine.n_items, candidates)
    engine.score(tree, cands)  # warm caches
    rows: list[dict[str, Any]] = []
    for t in threads:
        barrier = threading.Barrier(t + 1)

        def run(n: int, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for _ in range(n):
                engine.score(tree, cands)

        workers = [threading.Thread(target=run, args=(calls // t,)) for _ in range(t)]
        for w in workers:
            w.start()
        cpu0, t0 = _cpu_s(), time.perf_counter()
        barrier.wait()
        for w in workers:
            w.join()
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        done = (calls // t) * t
        rows.append({"threads": t, "calls": done, "wall_s": round(wall, 4),
                     "calls_per_s": round(done / wall, 1), "parallelism": round(cpu / wall, 2)})
    users = Histories.from_lists([rng.integers(0, engine.n_items, history).tolist() for _ in range(calls)])
    batch = np.tile(cands, (calls, 1))
    for r in rows:
        cpu0, t0 = _cpu_s(), time.perf_counter()
        engine.score_batch(users, batch, n_threads=r["threads"])
        wall, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
        r["control_rust_batch"] = {"calls_per_s": round(calls / wall, 1), "parallelism": round(cpu / wall, 2)}
    base = rows[0]["calls_per_s"]
    for r in rows:
        r["speedup"] = round(r["calls_per_s"] / base, 2) if base else None
    return {
        "cpus": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "work": {"history_events": history, "candidates": candidates, "calls": calls},
        "rows": rows,
    }
