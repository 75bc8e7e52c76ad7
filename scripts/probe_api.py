"""Bad input at the Python API: how does each call of ``airrec.Engine`` refuse it?

Every case hands one hostile value to one public call (``Engine.tree``, ``UserTree.add`` and
``extend``, ``score``, ``intent_vectors``, ``contexts``, ``explain``, ``retrieve``,
``nearest_intents``, the ``*_batch`` calls, ``Histories``, ``phrase``, config overrides) and
records what came back. Outcomes:

``typed``     an ``airrec.errors.AirrecError`` (what every refusal should be)
``untyped``   any other exception (its class name is recorded): a bug
``accepted``  the call returned normally with finite numbers: a bug where the input should
              have been refused, correct for the few valid inputs the probe also checks
``nan``       the call returned non-finite numbers (NaN, infinity): a bug
``crash``     the child process running the case died (a segfault, an abort)
``hang``      no answer within ``--timeout`` seconds
``leak``      only for the thread-bound case: more than 100 threads stayed alive

Classes (from issue 12): ``overflow`` (ids, counts and settings of 2**63, 2**64, -2**63-1),
``timestamps`` (NaN, infinities, ``'abc'``, ``None``), ``non-integer ids`` (1.5, ``'3'``,
``None``, ``True``, ``b'1'``), ``histories`` (malformed CSR offsets, dtypes, lengths, also
through a directly constructed ``Histories``), ``non-finite scores`` (candidate vectors of
3e38, NaN, inf; huge or non-finite config values), ``threads`` (``n_threads`` out of range;
20 distinct counts must not leave > 100 threads alive), ``concurrency`` (``add`` while
another thread reads the same tree: every collision must be typed, ``TreeBusyError`` in
practice; the types seen and the attempt counts are in each case's ``detail``).

Cases run in spawned child processes (one child serves many cases; a fresh one replaces it
after a crash or a hang), so a segfault or a deadlock is counted instead of ending the probe.
The counts go to ``--out`` as JSON (``airrec-api-probe/1``: ``cases``, ``counts`` per class
and outcome, ``totals``), written atomically. The exit status is 1 when any case is a bug.

    PYTHONPATH=python python scripts/probe_api.py --out benches/results/api-probe.json

The bundle is synthetic and small (300 nodes, 120 items, dim 16), built in a temporary
directory, so a run takes a few seconds. Outcomes are deterministic; the ``detail`` of the
thread-bound and ``concurrency`` cases (thread and attempt counts) depends on scheduling.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import math
import multiprocessing
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec import Engine, Histories, UserTree
from airrec._files import write_json_atomic
from airrec.errors import AirrecError

FORMAT = "airrec-api-probe/1"
OUTCOMES = ("typed", "untyped", "accepted", "nan", "crash", "hang", "leak")
#: Outcomes that are bugs whatever the case expected.
ALWAYS_BAD = frozenset({"untyped", "nan", "crash", "hang", "leak"})
MESSAGE_CHARS = 120
REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benches" / "results" / "api-probe.json"

#: Threads the engine may keep after ``n_threads`` = 2..21: the pools of the last 4 distinct
#: counts, 18 + 19 + 20 + 21. The probe waits (up to 5 s) for the count to settle there, since
#: evicted pools' threads exit on their own schedule.
THREADS_KEPT = 78
#: Most threads those 20 distinct counts may leave alive: slack above THREADS_KEPT for pools
#: still being torn down, not room for a pile-up (20 kept pools would be 230 threads).
THREAD_LIMIT = 100
#: Bounds of one concurrency case: attempts, seconds, and the pause between attempts (the
#: pause lets the reader get back into a GIL-free read, so adds keep colliding with it).
CONCURRENCY_ATTEMPTS = 300
CONCURRENCY_SECONDS = 1.0
CONCURRENCY_PAUSE = 0.001

FloatArray = npt.NDArray[np.float32]


# ---- the cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fixture:
    """What every case in a child works on: one engine, loaded once per child."""

    bundle: Path
    engine: Engine
    histories: Histories  # two users
    vector: FloatArray  # one valid candidate vector, shape (1, dim)
    many: npt.NDArray[np.int64]  # 20 copies of every item id: a read long enough to collide with
    many_vectors: FloatArray  # as many valid candidate vectors

    @classmethod
    def load(cls, bundle: Path) -> Fixture:
        engine = Engine.load(bundle)
        vector = np.full((1, engine.dim), 1.0 / math.sqrt(engine.dim), np.float32)
        many = np.arange(engine.n_items, dtype=np.int64).repeat(20)
        vecs = np.random.default_rng(0).normal(size=(len(many), engine.dim)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        return cls(bundle, engine, Histories.from_lists([[1, 2, 3], [4, 5]]), vector, many, vecs)

    def new_tree(self) -> UserTree:
        """A fresh tree per case, so an add that a case gets accepted never leaks into the next."""
        return self.engine.tree([1, 2, 3])


@dataclass(frozen=True)
class Measured:
    """What a case that measures (rather than calls once) returns: its own outcome, details."""

    outcome: str
    detail: dict[str, Any]
    exception: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class Case:
    """``call(fixture, arg)`` under ``name``; ``expect`` is ``typed`` (must be refused),
    ``accepted`` (a valid input) or ``either`` (refused or answered finitely: both fine)."""

    name: str
    group: str
    call: Callable[[Fixture, Any], object]
    arg: Any = None
    expect: str = "typed"


# The bad values of each class, labelled for case names. Typed `Any`: they are passed where
# the API's annotations forbid them, which is the point.
OVERFLOW: tuple[tuple[str, Any], ...] = (("2**63", 2**63), ("2**64", 2**64), ("-2**63-1", -(2**63) - 1))
NON_INTEGER: tuple[tuple[str, Any], ...] = (
    ("1.5", 1.5), ("'3'", "3"), ("None", None), ("True", True), ("b'1'", b"1"),
)
BAD_TIMES: tuple[tuple[str, Any], ...] = (
    ("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf), ("'abc'", "abc"), ("None", None),
)
BAD_ENTRIES: tuple[tuple[str, Any], ...] = (
    ("3e38", 3e38), ("1e39", 1e39), ("nan", math.nan), ("inf", math.inf), ("-inf", -math.inf),
    ("-1e16", -1e16),
)


def _scored(fx: Fixture, tree: UserTree) -> tuple[UserTree, FloatArray]:
    """A tree and its scores: an accepted bad event shows up as ``nan`` if it poisoned them."""
    return tree, fx.engine.score(tree, [4, 5, 6])


def _with_engine(engine: Engine) -> tuple[dict[str, Any], FloatArray]:
    """An engine's config and a score from it (an accepted bad setting shows up as ``nan``)."""
    return engine.config, engine.score(engine.tree([1, 2, 3]), [4, 5, 6])


def _batch(fx: Fixture, h: Any, n_threads: Any = None) -> FloatArray:
    """``score_batch`` with a valid candidate row per user of ``h`` (whatever ``h`` is)."""
    rows = max(len(np.asarray(getattr(h, "offsets", [0, 0]))) - 1, 0)
    return fx.engine.score_batch(h, np.ones((rows, 2), np.int64), n_threads=n_threads)


def _vectors(fx: Fixture, entry: float) -> npt.NDArray[np.float64]:
    """The valid candidate vector with its first entry replaced (float64, so 1e39 survives)."""
    bad = fx.vector.astype(np.float64)
    bad[0, 0] = entry
    return bad


def _h(offsets: Any, items: Any, behaviours: Any = None, timestamps: Any = None) -> Histories:
    """A ``Histories`` built directly, bypassing ``from_arrays``' checks: the dataclass is public,
    so ``score_batch`` must not trust it."""
    n = len(items)
    return Histories(
        offsets,
        items,
        np.zeros(n, np.int64) if behaviours is None else behaviours,
        np.arange(n, dtype=np.float64) if timestamps is None else timestamps,
    )


Call = Callable[[Fixture, Any], object]

#: Calls that take an item id, a behaviour id or a count, as (name, call with the value).
ID_CALLS: tuple[tuple[str, Call], ...] = (
    ("tree(items=[v])", lambda fx, v: fx.engine.tree([v])),
    ("tree(behaviours=[v])", lambda fx, v: fx.engine.tree([1], behaviours=[v])),
    ("add(item=v)", lambda fx, v: fx.new_tree().add(v)),
    ("add(behaviour=v)", lambda fx, v: fx.new_tree().add(1, v)),
    ("extend(items=[v])", lambda fx, v: fx.new_tree().extend([v])),
    ("score(candidates=[v])", lambda fx, v: fx.engine.score(fx.new_tree(), [v])),
    ("intent_vectors(candidates=[v])", lambda fx, v: fx.engine.intent_vectors(fx.new_tree(), [v])),
    ("contexts(candidates=[v])", lambda fx, v: fx.engine.contexts(fx.new_tree(), [v])),
    ("explain(candidate=v)", lambda fx, v: fx.engine.explain(fx.new_tree(), v)),
    ("score_batch(candidates=[[v]])", lambda fx, v: fx.engine.score_batch(fx.histories, [[v], [v]])),
    ("Histories.from_lists([[v]])", lambda fx, v: _batch(fx, Histories.from_lists([[v]]))),
    ("Histories.from_arrays(items=[v])", lambda fx, v: _batch(fx, Histories.from_arrays([0, 1], [v]))),
    ("phrase(node=v)", lambda fx, v: fx.engine.phrase(v)),
    ("path_text(node=v)", lambda fx, v: fx.engine.path_text(v)),
    ("retrieve(domain=v)", lambda fx, v: fx.engine.retrieve(fx.new_tree(), v, 5)),
    ("retrieve(k=v)", lambda fx, v: fx.engine.retrieve(fx.new_tree(), 0, v)),
    ("retrieve(pool=v)", lambda fx, v: fx.engine.retrieve(fx.new_tree(), 0, 5, pool=v)),
    ("nearest_intents(k=v)", lambda fx, v: fx.engine.nearest_intents(fx.vector[0], v)),
    ("tree_slots_batch(width=v)", lambda fx, v: fx.engine.tree_slots_batch(fx.histories, v)),
)

#: Calls that take ``n_threads``.
THREAD_CALLS: tuple[tuple[str, Call], ...] = (
    ("score_batch(n_threads=v)", lambda fx, v: _batch(fx, fx.histories, v)),
    ("intent_vectors_batch(n_threads=v)",
     lambda fx, v: fx.engine.intent_vectors_batch(fx.histories, [[1], [2]], n_threads=v)),
    ("slots_batch(n_threads=v)", lambda fx, v: fx.engine.slots_batch(fx.histories, [[1], [2]], n_threads=v)),
    ("tree_slots_batch(n_threads=v)", lambda fx, v: fx.engine.tree_slots_batch(fx.histories, 4, n_threads=v)),
)

#: Config settings that take an integer count.
COUNT_SETTINGS = ("beam_width", "max_chains", "max_chain_depth", "max_evidence")


def _overflow_cases() -> Iterator[Case]:
    for label, v in OVERFLOW:
        for name, call in ID_CALLS + THREAD_CALLS:
            yield Case(_named(name, label), "overflow", call, v)
        yield Case(f"Histories.from_arrays(offsets=[0, {label}])", "overflow",
                   lambda fx, v: _batch(fx, Histories.from_arrays([0, v], [1])), v)
        for setting in COUNT_SETTINGS:
            yield Case(f"with_config({setting}={label})", "overflow",
                       lambda fx, a: _with_engine(fx.engine.with_config(**{a[0]: a[1]})), (setting, v))
        yield Case(f"Engine.load(beam_width={label})", "overflow",
                   lambda fx, v: _with_engine(Engine.load(fx.bundle, beam_width=v)), v)


def _named(template: str, label: str) -> str:
    """``'add(item=v)'`` with ``v`` (the placeholder, always after ``=`` or ``[``) replaced."""
    for before in ("=[[v]]", "=[v]", "([[v]])", "=v)", "=v,"):
        if before in template:
            return template.replace(before, before.replace("v", label))
    raise AssertionError(f"no placeholder in {template!r}")


def _timestamp_cases() -> Iterator[Case]:
    for label, t in BAD_TIMES:
        yield Case(f"tree(timestamps=[0, {label}])", "timestamps",
                   lambda fx, t: _scored(fx, fx.engine.tree([1, 2], timestamps=[0.0, t])), t)
        # `add(timestamp=None)` is the documented default (one after the latest event).
        yield Case(f"add(timestamp={label})", "timestamps",
                   lambda fx, t: _scored(fx, fx.new_tree().add(4, 0, t)), t,
                   "accepted" if t is None else "typed")
        yield Case(f"extend(timestamps=[{label}])", "timestamps",
                   lambda fx, t: _scored(fx, fx.new_tree().extend([4], timestamps=[t])), t)
        yield Case(f"Histories.from_arrays(timestamps=[0, {label}])", "timestamps",
                   lambda fx, t: _batch(fx, Histories.from_arrays([0, 2], [1, 2], timestamps=[0.0, t])), t)
        if isinstance(t, float):
            yield Case(f"Histories(timestamps=[0, {label}])", "timestamps",
                       lambda fx, t: _batch(fx, _h(np.array([0, 2]), np.array([1, 2]),
                                                   timestamps=np.array([0.0, t]))), t)
    # Finite but extreme: refusing them and answering finitely are both fine; NaN is not.
    for label, stamps in (("[-1e308, 1e308]", [-1e308, 1e308]), ("[0, 1e308]", [0.0, 1e308])):
        yield Case(f"tree(timestamps={label})", "timestamps",
                   lambda fx, s: _scored(fx, fx.engine.tree([1, 2], timestamps=s)), stamps, "either")
    yield Case("add(timestamp=1e308)", "timestamps",
               lambda fx, _: _scored(fx, fx.new_tree().add(4, 0, 1e308)), None, "either")


def _non_integer_cases() -> Iterator[Case]:
    for label, v in NON_INTEGER:
        for name, call in ID_CALLS:
            yield Case(_named(name, label), "non-integer ids", call, v)
        # `n_threads=None` is the documented default (all cores).
        yield Case(f"score_batch(n_threads={label})", "non-integer ids",
                   lambda fx, v: _batch(fx, fx.histories, v), v, "accepted" if v is None else "typed")


def _histories_cases() -> Iterator[Case]:
    """Malformed CSR through ``from_arrays`` (then ``score_batch``) and built directly."""
    g = "histories"
    via_from_arrays: tuple[tuple[str, tuple[Any, ...]], ...] = (
        ("decreasing offsets [0, 5, 2]", ([0, 5, 2], [1, 2, 3])),
        ("offsets [0, 2] not ending at len(items)=3", ([0, 2], [1, 2, 3])),
        ("offsets [0, 4] beyond len(items)=3", ([0, 4], [1, 2, 3])),
        ("negative first offset [-1, 3]", ([-1, 3], [1, 2, 3])),
        ("negative offset [0, -1, 3]", ([0, -1, 3], [1, 2, 3])),
        ("empty offsets", ([], [1, 2, 3])),
        ("float offsets", (np.array([0.0, 3.0]), [1, 2, 3])),
        ("float items", ([0, 3], np.array([1.0, 2.0, 3.0]))),
        ("float behaviours", ([0, 3], [1, 2, 3], np.zeros(3))),
        ("string timestamps", ([0, 3], [1, 2, 3], None, np.array(["a", "b", "c"]))),
        ("2-D items", ([0, 3], np.array([[1, 2, 3]]))),
        ("2-D offsets", (np.array([[0, 3]]), [1, 2, 3])),
        ("behaviours shorter than items", ([0, 3], [1, 2, 3], [0, 0])),
        ("timestamps shorter than items", ([0, 3], [1, 2, 3], None, [0.0, 1.0])),
        ("unknown item 120", ([0, 2], [1, 120])),
        ("unknown item -1", ([0, 2], [1, -1])),
        ("unknown behaviour 1", ([0, 2], [1, 2], [0, 1])),
    )
    for label, args in via_from_arrays:
        yield Case(f"from_arrays: {label}", g, lambda fx, a: _batch(fx, Histories.from_arrays(*a)), args)
    i64 = np.int64
    # A Histories built directly goes through from_arrays' checks in every batch call: a
    # wrong value is refused; an integer/float array of another width, a list or a strided
    # view is converted as from_arrays converts it (answered: "either").
    direct: tuple[tuple[str, Callable[[], Histories], str], ...] = (
        ("offsets [0, 5] beyond len(items)=2", lambda: _h(np.array([0, 5]), np.array([1, 2])), "typed"),
        ("decreasing offsets [0, 2, 1]", lambda: _h(np.array([0, 2, 1]), np.array([1, 2])), "typed"),
        ("negative offset [-1, 2]", lambda: _h(np.array([-1, 2]), np.array([1, 2])), "typed"),
        ("empty offsets", lambda: _h(np.zeros(0, i64), np.array([1, 2])), "typed"),
        ("int32 offsets", lambda: _h(np.array([0, 2], np.int32), np.array([1, 2])), "either"),
        ("float64 items", lambda: _h(np.array([0, 2]), np.array([1.0, 2.0])), "typed"),
        ("list offsets and items", lambda: _h([0, 2], [1, 2]), "either"),
        ("float32 timestamps", lambda: _h(np.array([0, 2]), np.array([1, 2]), None, np.zeros(2, np.float32)),
         "either"),
        ("behaviours shorter than items", lambda: _h(np.array([0, 2]), np.array([1, 2]), np.zeros(1, i64)), "typed"),
        ("timestamps shorter than items", lambda: _h(np.array([0, 2]), np.array([1, 2]), None, np.zeros(1)),
         "typed"),
        ("non-contiguous items", lambda: _h(np.array([0, 2]), np.array([1, 9, 2, 9])[::2]), "either"),
    )
    for label, make, expect in direct:
        yield Case(f"Histories(): {label}", g, lambda fx, m: _batch(fx, m()), make, expect)
    yield Case("score_batch(histories=list)", g, lambda fx, h: fx.engine.score_batch(h, [[1]]), [[1, 2]])
    yield Case("score_batch: 3 candidate rows for 2 users", g,
               lambda fx, _: fx.engine.score_batch(fx.histories, np.ones((3, 2), np.int64)))
    yield Case("score_batch: 1-D candidates", g,
               lambda fx, _: fx.engine.score_batch(fx.histories, np.ones(4, np.int64)))
    yield Case("score_batch: float candidates", g,
               lambda fx, _: fx.engine.score_batch(fx.histories, np.ones((2, 2))))


def _non_finite_cases() -> Iterator[Case]:
    g = "non-finite scores"
    for label, x in BAD_ENTRIES:
        yield Case(f"score(vectors with {label})", g, lambda fx, x: fx.engine.score(fx.new_tree(), _vectors(fx, x)), x)
        yield Case(f"intent_vectors(vectors with {label})", g,
                   lambda fx, x: fx.engine.intent_vectors(fx.new_tree(), _vectors(fx, x)), x)
        yield Case(f"nearest_intents(vector with {label})", g,
                   lambda fx, x: fx.engine.nearest_intents(_vectors(fx, x)[0], 3), x)
    # Vectors the engine L2-normalises: a zero or denormal-small one must not give NaN.
    for label, x in (("0", 0.0), ("1e-30", 1e-30)):
        yield Case(f"score(vector of all {label})", g,
                   lambda fx, x: fx.engine.score(fx.new_tree(), np.full((1, fx.engine.dim), x, np.float32)),
                   x, "either")
    # Config values a caller may override at load or on a live engine.
    settings: tuple[tuple[str, Any], ...] = (
        ("behaviour_weights", [1e308]), ("behaviour_weights", [3e38]), ("behaviour_weights", [1e7]),
        ("behaviour_weights", [math.inf]), ("behaviour_weights", [math.nan]),
        ("behaviour_weights", [-1.0]), ("behaviour_weights", [0.0]), ("behaviour_weights", []),
        ("decay_lambda", math.nan), ("decay_lambda", math.inf), ("decay_lambda", -1.0),
        ("decay_lambda", 1e308), ("walk_alpha", 1e308), ("walk_alpha", math.nan),
        ("evidence_alpha", -math.inf), ("evidence_max_age", math.nan), ("evidence_max_age", -1.0),
    )
    for key, value in settings:
        yield Case(f"Engine.load({key}={value!r})", g,
                   lambda fx, kv: _with_engine(Engine.load(fx.bundle, **{kv[0]: kv[1]})), (key, value))
        yield Case(f"with_config({key}={value!r})", g,
                   lambda fx, kv: _with_engine(fx.engine.with_config(**{kv[0]: kv[1]})), (key, value))


def _live_threads() -> int:
    """This process's thread count (the kernel's, which sees the engine's native threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:  # not Linux: Python's count, blind to native pools but better than none
        pass
    return threading.active_count()


def _thread_bound(fx: Fixture, _: Any) -> Measured:
    """20 distinct valid ``n_threads``: the engine must not keep a pool per count."""
    expected = _batch(fx, fx.histories, 1)
    before = _live_threads()
    peak = before
    for n in range(2, 22):
        if not np.array_equal(_batch(fx, fx.histories, n), expected):
            raise AssertionError(f"score_batch(n_threads={n}) differs from n_threads=1")
        peak = max(peak, _live_threads())
    # Evicted pools' threads exit on their own schedule: let the count settle before judging.
    t0 = time.monotonic()
    while _live_threads() - before > THREADS_KEPT and time.monotonic() - t0 < 5:
        time.sleep(0.05)
    after = _live_threads()
    detail = {"threads_before": before, "threads_peak": peak, "threads_after": after,
              "threads_left": after - before, "settle_seconds": round(time.monotonic() - t0, 2),
              "kept_at_most": THREADS_KEPT, "limit": THREAD_LIMIT}
    return Measured("accepted" if after - before <= THREAD_LIMIT else "leak", detail)


def _thread_cases() -> Iterator[Case]:
    for label, v in (("0", 0), ("257", 257), ("-1", -1)):
        for name, call in THREAD_CALLS:
            yield Case(_named(name, label), "threads", call, v)
    yield Case("20 distinct n_threads leave <= 100 threads", "threads", _thread_bound, None, "accepted")


def _collide(fx: Fixture, arg: tuple[Callable[[Fixture, UserTree], object], Callable[[UserTree], object]]) -> Measured:
    """One thread reads a tree (GIL released) in a loop while this one adds to it."""
    read, write = arg
    tree = fx.engine.tree(list(range(1, 40)))
    stop, started = threading.Event(), threading.Event()
    counts: dict[str, collections.Counter[str]] = {"writer": collections.Counter(), "reader": collections.Counter()}
    types: set[str] = set()
    first: dict[str, BaseException] = {}  # the first typed and the first untyped exception

    def record(side: str, exc: BaseException) -> None:
        kind = "typed" if isinstance(exc, AirrecError) else "untyped"
        counts[side][kind] += 1
        types.add(type(exc).__name__)
        first.setdefault(kind, exc)

    def reader() -> None:
        started.set()
        while not stop.is_set():
            try:
                read(fx, tree)
                counts["reader"]["ok"] += 1
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # PyO3's PanicException is a BaseException
                record("reader", exc)

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    started.wait(5)
    t0 = time.monotonic()
    try:
        for _ in range(CONCURRENCY_ATTEMPTS):
            if time.monotonic() - t0 > CONCURRENCY_SECONDS:
                break
            try:
                write(tree)
                counts["writer"]["ok"] += 1
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                record("writer", exc)
            time.sleep(CONCURRENCY_PAUSE)
    finally:
        stop.set()
        thread.join(5)
    detail = {"attempts": sum(counts["writer"].values()), "seconds": round(time.monotonic() - t0, 2),
              "writer": dict(counts["writer"]), "reader": dict(counts["reader"]),
              "exception_types": sorted(types)}
    for kind in ("untyped", "typed"):
        if kind in first:
            e = first[kind]
            return Measured(kind, detail, type(e).__name__, str(e)[:MESSAGE_CHARS])
    # No collision in the time allowed is inconclusive, not a failure: "accepted", expected.
    return Measured("accepted", detail)


def _concurrency_cases() -> Iterator[Case]:
    reads: tuple[tuple[str, Callable[[Fixture, UserTree], object]], ...] = (
        ("score", lambda fx, t: fx.engine.score(t, fx.many)),
        ("score(vectors)", lambda fx, t: fx.engine.score(t, fx.many_vectors)),
        ("intent_vectors", lambda fx, t: fx.engine.intent_vectors(t, fx.many)),
        ("contexts", lambda fx, t: fx.engine.contexts(t, fx.many[:600])),
        ("explain", lambda fx, t: fx.engine.explain(t, 5)),
        ("retrieve", lambda fx, t: fx.engine.retrieve(t, 0, 10, pool=100)),
    )
    for label, read in reads:
        yield Case(f"add while another thread runs {label}", "concurrency", _collide,
                   (read, lambda t: t.add(1)), "either")
    yield Case("extend while another thread runs score", "concurrency", _collide,
               (reads[0][1], lambda t: t.extend([1, 2])), "either")


def build_cases() -> list[Case]:
    """Every case, in a fixed order (parent and children build the same list)."""
    cases = [
        *_overflow_cases(), *_timestamp_cases(), *_non_integer_cases(), *_histories_cases(),
        *_non_finite_cases(), *_thread_cases(), *_concurrency_cases(),
    ]
    names = [c.name for c in cases]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AssertionError(f"duplicate case names: {dupes}")
    return cases


# ---- running one case (in a child) -----------------------------------------------------------


def _finite(value: object) -> bool:
    """Whether every number reachable from a result is finite."""
    if isinstance(value, np.ndarray):
        return value.dtype.kind not in "fc" or bool(np.isfinite(value).all())
    if isinstance(value, (float, np.floating)):
        return math.isfinite(float(value))
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, UserTree):
        # `t_ref` is -inf for an empty tree by definition; otherwise it is the latest timestamp.
        return (math.isfinite(value.total_mass) and _finite(value.node_weights)
                and (value.n_events == 0 or math.isfinite(value.t_ref)))
    if isinstance(value, Engine):
        return _finite(value.config)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return all(_finite(getattr(value, f.name)) for f in dataclasses.fields(value))
    return True


def run_case(case: Case, fx: Fixture) -> dict[str, Any]:
    """The outcome of one case, as the JSON record (without ``bug``)."""
    record: dict[str, Any] = {"name": case.name, "class": case.group, "expect": case.expect,
                              "exception": None, "message": None}
    try:
        value = case.call(fx, case.arg)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # PyO3's PanicException derives from BaseException only
        record["outcome"] = "typed" if isinstance(exc, AirrecError) else "untyped"
        record["exception"] = type(exc).__name__
        record["message"] = str(exc)[:MESSAGE_CHARS]
        return record
    if isinstance(value, Measured):
        record.update(outcome=value.outcome, exception=value.exception, message=value.message,
                      detail=value.detail)
    else:
        record["outcome"] = "accepted" if _finite(value) else "nan"
    return record


def _worker(conn: Connection, bundle: str) -> None:
    """A child's loop: load the engine once, then answer case names until told to stop."""
    fx = Fixture.load(Path(bundle))
    cases = {c.name: c for c in build_cases()}
    conn.send("ready")
    while True:
        try:
            name = conn.recv()
        except EOFError:  # the parent went away
            return
        if name is None:
            return
        conn.send(run_case(cases[name], fx))


# ---- the parent ------------------------------------------------------------------------------


class Child:
    """A spawned worker process; a case it dies on or never answers is a crash or a hang."""

    def __init__(self, bundle: Path, startup_timeout: float = 120.0) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork: the engine's threads, a clean heap
        self.conn, child_conn = ctx.Pipe()
        self.proc: BaseProcess = ctx.Process(target=_worker, args=(child_conn, str(bundle)), daemon=True)
        self.proc.start()
        child_conn.close()  # so a dead child reads as EOF here
        if not self.conn.poll(startup_timeout):
            self.kill()
            raise RuntimeError(f"probe child not ready in {startup_timeout} s")
        try:
            self.conn.recv()
        except EOFError:
            self.proc.join(5)
            raise RuntimeError(f"probe child died while loading the bundle (exit {self.proc.exitcode})") from None

    def run(self, name: str, timeout: float) -> dict[str, Any] | tuple[str, str]:
        """The case's record, or ``(outcome, message)`` for a crash or a hang."""
        self.conn.send(name)
        if not self.conn.poll(timeout):
            self.kill()
            return "hang", f"no answer in {timeout:g} s"
        try:
            result: dict[str, Any] = self.conn.recv()
            return result
        except EOFError:
            self.proc.join(5)
            code = self.proc.exitcode
            if code is not None and code < 0:
                return "crash", f"killed by {signal.Signals(-code).name}"
            return "crash", f"exit code {code}"

    def close(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.is_alive():
            self.kill()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join()


def probe(bundle: Path, timeout: float) -> dict[str, Any]:
    """Runs every case (in children) and returns the report."""
    records: list[dict[str, Any]] = []
    child = Child(bundle)
    try:
        for case in build_cases():
            got = child.run(case.name, timeout)
            if isinstance(got, tuple):
                outcome, message = got
                got = {"name": case.name, "class": case.group, "expect": case.expect,
                       "outcome": outcome, "exception": None, "message": message}
                child = Child(bundle)  # the old one is dead or killed
            got["bug"] = got["outcome"] in ALWAYS_BAD or (
                got["outcome"] != case.expect and case.expect != "either")
            records.append(got)
    finally:
        child.close()
    counts: dict[str, dict[str, int]] = {}
    for r in records:
        counts.setdefault(r["class"], dict.fromkeys(OUTCOMES, 0))[r["outcome"]] += 1
    totals = {o: sum(c[o] for c in counts.values()) for o in OUTCOMES}
    return {"format": FORMAT, "cases": records, "counts": counts, "totals": totals}


def print_table(report: dict[str, Any]) -> None:
    width = max(len(c) for c in report["counts"]) + 2
    print("class".ljust(width) + "".join(o.rjust(9) for o in OUTCOMES))
    for group, c in [*report["counts"].items(), ("total", report["totals"])]:
        print(group.ljust(width) + "".join(str(c[o]).rjust(9) for o in OUTCOMES))
    bugs = [r for r in report["cases"] if r["bug"]]
    print(f"\n{len(report['cases'])} cases, {len(bugs)} not as expected" + (":" if bugs else ""))
    for r in bugs:
        what = f"{r['exception']}: {r['message']}" if r["exception"] else (r["message"] or "")
        what = " ".join(what.split())  # Rust messages may span lines; the table may not
        print(f"  [{r['class']}] {r['name']} -> {r['outcome']} (expected {r['expect']}) {what}".rstrip())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help="JSON report (default: benches/results/api-probe.json in the repository)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per case before it counts as a hang")
    args = p.parse_args(argv)
    from airrec.synthetic import make_synthetic_bundle

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="airrec-probe-") as tmp:
        bundle = make_synthetic_bundle(
            Path(tmp) / "bundle", n_nodes=300, n_items=120, dim=16, n_heads=2, depth=3,
            paths_per_item=2, seed=0,
        )
        report = probe(bundle, args.timeout)
    write_json_atomic(args.out, report)
    print_table(report)
    print(f"wrote {os.fspath(args.out)} in {time.perf_counter() - started:.1f} s")
    return 1 if any(r["bug"] for r in report["cases"]) else 0


if __name__ == "__main__":
    sys.exit(main())
