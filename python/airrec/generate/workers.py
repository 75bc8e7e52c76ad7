"""Worker processes, each with its own model and one thread.

Why processes with one thread each rather than one process with all cores: llama.cpp
synchronises its threads at every graph node (hundreds per token). On a machine where other
jobs compete for the cores, a descheduled thread stalls its siblings at every barrier; we
measured SmolLM2 decoding 10× slower with 2 threads than with 1 on this (shared) 2-core
machine. Independent single-thread processes never wait for each other. Model weights are
``mmap``-ed, so N workers share one copy of the file in the page cache.

Only the parent writes the cache (one SQLite writer); workers stream :class:`Outcome` objects
back. Workers are *spawned* (forking a process that holds llama.cpp threads is unsafe), so
a script calling this needs the usual ``if __name__ == "__main__":`` guard.
A worker whose parent dies (``kill -9``) notices within a second and exits, so a killed
run leaves no orphans burning CPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from airrec.errors import GenerationError
from airrec.generate.generator import IntentGenerator, Outcome, Unit
from airrec.generate.models import ResolvedModel
from airrec.generate.prompts import PromptTemplate

__all__ = ["generate_in_workers"]


def _watch_parent(parent: int) -> None:
    """Exit this process as soon as its parent is gone (re-parented to init/subreaper)."""

    def loop() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(3)
            threading.Event().wait(0.5)

    threading.Thread(target=loop, daemon=True).start()


def _worker(
    model: ResolvedModel,
    prompt: PromptTemplate,
    options: dict[str, Any],
    parent: int,
    inbox: Any,
    outbox: Any,
) -> None:
    _watch_parent(parent)
    try:
        gen = IntentGenerator(model, prompt, **options)
        outbox.put(("ready", gen.settings))

        def feed() -> Iterator[Unit]:
            # Pulled lazily by the decoder as slots free up: small chunks balance the
            # workers without draining a worker's batch between chunks.
            while (chunk := inbox.get()) is not None:
                yield from chunk

        for outcome in gen.generate(feed()):
            outbox.put(("outcome", outcome))
        gen.close()
        outbox.put(("cpu", time.process_time()))
    except BaseException as exc:  # report, don't die silently
        outbox.put(("error", f"{type(exc).__name__}: {exc}"))


def generate_in_workers(
    model: ResolvedModel,
    prompt: PromptTemplate,
    units: Sequence[Unit],
    *,
    workers: int,
    chunk_size: int,
    options: dict[str, Any],
    settings_out: dict[str, Any] | None = None,
) -> Iterator[Outcome]:
    """Answer ``units`` in ``workers`` processes; yields outcomes as they arrive."""
    ctx = mp.get_context("spawn")  # fork would copy llama.cpp's threads and locks
    # Workers pull units as their sequence slots free up, so the first worker to load would
    # take a whole small run (64 slots > 48 units) and leave the others idle: cap each
    # worker's slots at its share. Large runs keep the full batch.
    share = -(-len(units) // workers)
    options = {**options, "n_parallel": max(1, min(options.get("n_parallel", 64), share))}
    inbox: Any = ctx.Queue()
    outbox: Any = ctx.Queue()
    for start in range(0, len(units), chunk_size):
        inbox.put(list(units[start : start + chunk_size]))
    for _ in range(workers):
        inbox.put(None)
    procs = [
        ctx.Process(
            target=_worker, args=(model, prompt, options, os.getpid(), inbox, outbox), daemon=True
        )
        for _ in range(workers)
    ]
    for proc in procs:
        proc.start()
    remaining = len(units)
    cpu: list[float] = []
    try:
        while remaining or len(cpu) < len(procs):
            try:
                kind, payload = outbox.get(timeout=1.0)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    raise GenerationError(
                        "all generation workers exited early (workers use the 'spawn' start "
                        "method: a calling script needs an `if __name__ == '__main__':` guard)"
                    ) from None
                continue
            if kind == "outcome":
                remaining -= 1
                yield payload
            elif kind == "ready":
                if settings_out is not None:
                    settings_out.update(payload)
            elif kind == "cpu":
                cpu.append(float(payload))
                if settings_out is not None:
                    settings_out["worker_cpu_seconds"] = round(sum(cpu), 3)
            else:
                raise GenerationError(f"a generation worker failed: {payload}")
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5)
