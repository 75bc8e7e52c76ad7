"""Which engine a service answers with, and how to swap it without dropping a request.

A service holds one :class:`EngineRegistry`. Each request takes **one** snapshot of the current
:class:`Loaded` (``registry.current``) and uses that engine for everything it does, tree
included: trees are engine-bound, and a request that re-read the registry half-way could
otherwise score a tree of bundle *v1* with the engine of bundle *v2* (an error at best, a
mixed-version answer at worst).

:meth:`EngineRegistry.reload` loads and validates the new bundle *off to the side* (checksums,
shapes, a warm-up query), and only then publishes it with one reference assignment. Requests in
flight keep their snapshot, so the old engine (and its memory maps) stays alive until the last
of them finishes; the garbage collector drops it afterwards. A load that fails raises and leaves
the old engine serving: nothing is published until everything has succeeded.

Write each new bundle to a **new directory** and reload that: overwriting the files of the
bundle being served changes memory-mapped arrays under the requests using them.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airrec.engine import Engine
from airrec.errors import AirrecError

__all__ = ["EngineRegistry", "Loaded", "ReloadInProgressError", "ReloadTimeoutError"]


class ReloadInProgressError(AirrecError):
    """Another reload is running; a service answers 409 rather than queueing reloads."""


@dataclass(frozen=True)
class Loaded:
    """One published engine: immutable, so a snapshot can never change under a request.

    ``version`` increases by one on every successful (re)load and never otherwise;
    ``manifest_sha256`` identifies the bundle's content (the manifest lists every file's
    sha256), so two loads of the same bundle have the same hash and different versions.
    """

    version: int
    engine: Engine
    path: str
    manifest_sha256: str
    loaded_at: float

    def describe(self) -> dict[str, Any]:
        """What ``/healthz`` reports: enough to tell which bundle answered."""
        return {
            "version": self.version,
            "bundle": self.path,
            "manifest_sha256": self.manifest_sha256,
            "loaded_at": self.loaded_at,
            "n_items": self.engine.n_items,
            "n_nodes": self.engine.n_nodes,
            "dim": self.engine.dim,
            "domains": self.engine.domains,
        }


def _load(path: str | os.PathLike[str], version: int, overrides: dict[str, Any]) -> Loaded:
    """Loads, validates and warms up a bundle; publishes nothing."""
    p = Path(path).resolve()
    engine = Engine.load(p, verify_checksums=True, **overrides)
    if engine.n_items > 0:
        # One real query through every endpoint's path (tree, walk, composition, score head;
        # the retrieval index; explanations), so a bundle that loads but cannot answer is
        # refused here, not by the first user request.
        tree = engine.tree([0])
        engine.score(tree, [0])
        for domain in range(len(engine.domains)):
            engine.retrieve(tree, domain, 1, pool=4)
        engine.explain(tree, 0)
    return Loaded(version, engine, str(p), engine.manifest_sha256, time.time())


class ReloadTimeoutError(AirrecError):
    """A bundle load ran past the reload time limit; the old engine keeps serving."""


class EngineRegistry:
    """Holds the current :class:`Loaded`; swaps it atomically on :meth:`reload`.

    Thread-safe. Readers take no lock: reading one attribute is atomic, and the object read
    is immutable. Reloads are serialised by their own lock so versions stay in order, and the
    swap itself is a single assignment made under ``_swap_lock`` (so a reader sees either the
    old pair or the new one, never parts of both).
    """

    #: Loads past their time limit that are still running (a thread cannot be killed); once
    #: this many are stuck, reloads are refused until one ends, so a bundle that hangs the
    #: loader cannot pile up threads.
    MAX_STUCK_LOADS = 2

    def __init__(self, path: str | os.PathLike[str], **overrides: Any) -> None:
        """Loads the first bundle (version 1); ``overrides`` go to every :meth:`Engine.load`."""
        self._overrides = dict(overrides)
        self._reload_lock = threading.Lock()
        self._swap_lock = threading.Lock()
        self._stuck: list[threading.Thread] = []
        self._current: Loaded = _load(path, 1, self._overrides)

    @property
    def current(self) -> Loaded:
        """The snapshot a request must take once and use throughout."""
        return self._current

    def reload(
        self, path: str | os.PathLike[str], *, wait: bool = True, timeout_s: float | None = None
    ) -> Loaded:
        """Loads ``path`` fully, then makes it current; returns the new snapshot.

        Raises what the load raised (:class:`~airrec.BundleError`, ...) with the old engine
        still current. With ``wait=False`` a reload that finds another one running raises
        :class:`ReloadInProgressError` instead of waiting for it. With ``timeout_s``, a load
        still running after that long raises :class:`ReloadTimeoutError` and releases the
        reload lock; the abandoned load finishes (or hangs) in its thread and is never
        published.
        """
        if not self._reload_lock.acquire(blocking=wait):
            raise ReloadInProgressError("another reload is in progress; retry when it is done")
        try:
            self._stuck = [t for t in self._stuck if t.is_alive()]
            if len(self._stuck) >= self.MAX_STUCK_LOADS:
                raise ReloadInProgressError(
                    f"{len(self._stuck)} earlier loads ran past the time limit and are still "
                    "running; reloads resume when they end"
                )
            version = self._current.version + 1
            if timeout_s is None:
                new = _load(path, version, self._overrides)
            else:
                new = self._load_within(path, version, timeout_s)
            with self._swap_lock:
                self._current = new
            return new
        finally:
            self._reload_lock.release()

    def _load_within(self, path: str | os.PathLike[str], version: int, timeout_s: float) -> Loaded:
        """:func:`_load` in a daemon thread, waited for at most ``timeout_s`` seconds."""
        result: list[Loaded] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                result.append(_load(path, version, self._overrides))
            except BaseException as exc:  # handed to the waiting caller below
                failure.append(exc)

        thread = threading.Thread(target=work, name="airrec-bundle-load", daemon=True)
        thread.start()
        thread.join(timeout_s)
        if thread.is_alive():
            self._stuck.append(thread)
            raise ReloadTimeoutError(f"the bundle did not load within {timeout_s:g} s")
        if failure:
            raise failure[0]
        return result[0]
