"""The online engine: load a bundle once, answer requests from many threads.

This module is the public face of the Rust engine (``airrec._airrec``). It turns whatever a
caller passes (lists, NumPy arrays of any integer dtype, ...) into the exact dtypes the Rust side
borrows zero-copy, and gives every misuse a typed error. All compute releases the GIL.

Semantics of every call are specified in ``docs/online-path.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

import numpy as np
import numpy.typing as npt

from airrec import _airrec
from airrec.errors import InputError, InputTypeError

if TYPE_CHECKING:
    from airrec.bundle import Composition

__all__ = ["Engine", "UserTree", "Context", "Histories", "Explanation", "Slots"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float32]
ArrayLike = Union[npt.ArrayLike, Sequence[int]]


def _as_ids(values: Any, name: str, ndim: int = 1) -> IntArray:
    """Integer ids as a C-contiguous int64 array (a no-op, zero-copy, for int64 input)."""
    arr = np.asarray(values)
    if arr.size == 0 and arr.dtype.kind == "f":
        arr = arr.astype(np.int64)  # np.asarray([]) is float64; an empty list is fine
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise InputTypeError(f"{name} must hold integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.int64).max:
        raise InputError(f"{name} holds ids beyond the int64 range")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _holds_str(values: Any) -> bool:
    """Whether ``values`` names items by external id (a ``str``, or a list/tuple with one):
    those go to :meth:`Engine._ids` as they are; anything else becomes an array first (a list
    of vectors stays a list of vectors)."""
    return isinstance(values, str) or (isinstance(values, (list, tuple)) and any(isinstance(v, str) for v in values))


def _as_times(values: Any, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values)
    if arr.dtype.kind not in "iuf" or arr.dtype == np.bool_:
        raise InputTypeError(f"{name} must be numbers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float64)


#: Largest magnitude a vector entry may have: squares summed over any dimension this engine
#: takes stay far inside float32 (a 3e38 entry is finite but made every score NaN).
_MAX_ENTRY = 1e15


def _as_vectors(values: Any, dim: int, name: str) -> FloatArray:
    arr = np.asarray(values)
    if arr.dtype.kind != "f":
        raise InputTypeError(f"{name} must be floating point, got dtype {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InputError(f"{name} must have shape (n, {dim}), got {arr.shape}")
    with np.errstate(over="ignore"):  # 1e39 in float64 becomes inf here, refused just below
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not (np.isfinite(out).all() and float(np.abs(out).max()) <= _MAX_ENTRY):
        raise InputError(
            f"{name} must hold finite values (no NaN or infinity) of magnitude <= "
            f"{_MAX_ENTRY:g}: larger ones would make scores non-finite"
        )
    return out


def _events(
    items: Any, behaviours: Any | None, timestamps: Any | None
) -> tuple[IntArray, IntArray, npt.NDArray[np.float64]]:
    """Normalises an event list; defaults: behaviour 0, timestamps = positions 0..n-1."""
    it = _as_ids(items, "items")
    bh = np.zeros(len(it), np.int64) if behaviours is None else _as_ids(behaviours, "behaviours")
    ts = np.arange(len(it), dtype=np.float64) if timestamps is None else _as_times(timestamps, "timestamps")
    if not (len(it) == len(bh) == len(ts)):
        raise InputError(
            f"items, behaviours and timestamps must have the same length, got {len(it)}, {len(bh)}, {len(ts)}"
        )
    return it, bh, ts


#: The int64 range ids and counts travel in to the binding.
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _as_int(value: Any, name: str) -> int:
    """A Python or NumPy integer (no bools, floats or strings) as ``int``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def _as_id(value: Any, name: str) -> int:
    """One integer id (as in :func:`_as_ids`: no bools, floats or strings; int64 range)."""
    v = _as_int(value, name)
    if not _INT64_MIN <= v <= _INT64_MAX:
        raise InputError(f"{name} = {v} is beyond the int64 range")
    return v


def _check_k(k: int, name: str = "k") -> int:
    """A non-negative machine-size integer (k, pool, width, domain, n_threads), or a typed
    error (never an ``OverflowError``)."""
    v = _as_int(k, name)
    if v < 0:
        raise InputError(f"{name} must be >= 0, got {v}")
    if v > _INT64_MAX:
        raise InputError(f"{name} = {v} is beyond the int64 range")
    return v


@dataclass(frozen=True)
class Context:
    """What the walk chose for one candidate: chains of node ids (root first) and evidence
    (indices into the user's events, best first)."""

    chains: list[list[int]]
    evidence: list[int]


@dataclass(frozen=True)
class Explanation:
    """Why a candidate got its score: its chains (phrases, weights, similarities, attention),
    the evidence events kept, and the attention left on the null slot."""

    candidate: int
    #: The candidate's external id (evidence entries carry theirs as ``"ext"``).
    candidate_ext: str
    score: float
    intent_vector: FloatArray
    chains: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    null_attention: float

    def __str__(self) -> str:
        lines = [f"candidate {self.candidate} ({self.candidate_ext}): score {self.score:+.4f}"]
        for c in self.chains:
            path = " > ".join(c["phrases"])
            lines.append(f"  chain {path}  (walk score {c['score']:.3f}, weight {c['weights'][-1]:.3f})")
        for e in self.evidence:
            lines.append(
                f"  evidence event {e['event']}: item {e['item']} ({e['ext']}) at t={e['timestamp']:g} "
                f"(weight {e['weight']:.3f}, similarity {e['similarity']:.3f}, attention {e['attention']:.3f})"
            )
        lines.append(f"  null slot attention {self.null_attention:.3f}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Histories:
    """Many users' events packed as CSR: user ``u`` owns ``offsets[u]:offsets[u+1]``."""

    offsets: IntArray
    items: IntArray
    behaviours: IntArray
    timestamps: npt.NDArray[np.float64] = field(repr=False)

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_arrays(
        cls, offsets: Any, items: Any, behaviours: Any | None = None, timestamps: Any | None = None
    ) -> Histories:
        off = _as_ids(offsets, "offsets")
        it = _as_ids(items, "items")
        bh = np.zeros(len(it), np.int64) if behaviours is None else _as_ids(behaviours, "behaviours")
        if len(off) == 0 or off[0] != 0 or off[-1] != len(it) or bool(np.any(np.diff(off) < 0)):
            # Checked here, before positions are derived from them (np.repeat would raise a
            # plain ValueError on a decreasing offset).
            raise InputError(
                f"offsets must start at 0, never decrease and end at len(items) = {len(it)}"
            )
        if timestamps is None:
            # Positions within each user's own sequence.
            starts = np.repeat(off[:-1], np.diff(off)) if len(off) > 1 else np.zeros(0, np.int64)
            ts = (np.arange(len(it)) - starts).astype(np.float64)
        else:
            ts = _as_times(timestamps, "timestamps")
        return cls(off, it, bh, ts)

    @classmethod
    def from_lists(cls, histories: Sequence[Sequence[int]]) -> Histories:
        """One list of item ids per user, oldest first; behaviour 0, timestamps = positions."""
        lengths = np.fromiter((len(h) for h in histories), dtype=np.int64, count=len(histories))
        offsets = np.zeros(len(histories) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        # Each id checked as an id (no 1.5, '3', True or None; int64 range), not cast by NumPy.
        flat = [_as_id(i, "histories item") for h in histories for i in h]
        return cls.from_arrays(offsets, np.asarray(flat, dtype=np.int64))


@dataclass(frozen=True)
class Slots:
    """The attention slots the engine composes for each (user, candidate), padded to
    :attr:`Engine.slot_width` (``docs/online-path.md`` §4; the null slot is implied).

    ``ids`` is a node id for chain slots and an item id for evidence slots (``-1`` on padding),
    ``types`` the slot type (``depth - 1`` for nodes, ``max_depth`` for evidence, 255 on
    padding), ``ln_w`` the ``ln(w)`` the engine uses (``0`` on padding). Training reads these
    so that the composition it learns sees exactly what serving feeds it.
    """

    PAD_TYPE = 255

    ids: npt.NDArray[np.int32]
    types: npt.NDArray[np.uint8]
    ln_w: npt.NDArray[np.float32]


class UserTree:
    """A user's weighted intent tree, built from events and updated one event at a time.

    Obtain one from :meth:`Engine.tree`. A tree belongs to the engine (bundle and tree
    settings) that built it; using it with another raises :class:`~airrec.InputError`.
    """

    __slots__ = ("_engine", "_tree")

    def __init__(self, engine: Engine, tree: _airrec.UserTree) -> None:
        self._engine = engine
        self._tree = tree

    def add(self, item: int | str, behaviour: int = 0, timestamp: float | None = None) -> UserTree:
        """Adds one event (default timestamp: one after the latest). Returns ``self``.

        The same rules as :meth:`Engine.tree`: an item is an internal id (an integer: ``1.5``
        is an :class:`~airrec.InputTypeError`) or an external id (a ``str``), timestamps are
        finite numbers."""
        item = self._engine.item_id(item) if isinstance(item, str) else _as_id(item, "item")
        behaviour = _as_id(behaviour, "behaviour")
        if timestamp is None:
            timestamp = self._tree.t_ref + 1.0 if self._tree.n_events else 0.0
        elif isinstance(timestamp, bool) or not isinstance(timestamp, (int, float, np.number)):
            raise InputTypeError(f"timestamp must be a number, got {type(timestamp).__name__}")
        if not np.isfinite(float(timestamp)):
            raise InputError(f"timestamp must be finite, got {timestamp}")
        self._engine._engine.add_event(self._tree, int(item), int(behaviour), float(timestamp))
        return self

    def extend(self, items: Any, behaviours: Any | None = None, timestamps: Any | None = None) -> UserTree:
        """Adds events in order (items as in :meth:`Engine.tree`). Returns ``self``."""
        it = self._engine._ids(items, "items")
        bh = np.zeros(len(it), np.int64) if behaviours is None else _as_ids(behaviours, "behaviours")
        if timestamps is None:
            start = self._tree.t_ref + 1.0 if self._tree.n_events else 0.0
            ts = start + np.arange(len(it), dtype=np.float64)
        else:
            ts = _as_times(timestamps, "timestamps")
        if not (len(it) == len(bh) == len(ts)):
            raise InputError("items, behaviours and timestamps must have the same length")
        for i, b, t in zip(it.tolist(), bh.tolist(), ts.tolist()):
            self._engine._engine.add_event(self._tree, i, b, t)
        return self

    @property
    def n_events(self) -> int:
        return self._tree.n_events

    @property
    def n_nodes(self) -> int:
        return self._tree.n_nodes

    @property
    def t_ref(self) -> float:
        """Latest timestamp seen (``-inf`` when empty)."""
        return self._tree.t_ref

    @property
    def total_mass(self) -> float:
        """Total decayed behaviour mass ``W`` (the latest event counts its full weight)."""
        return self._tree.total_mass

    @property
    def node_ids(self) -> IntArray:
        """Trie nodes the user's events reach, ascending."""
        return self._tree.nodes()[0]

    @property
    def node_weights(self) -> npt.NDArray[np.float64]:
        """Normalised weight ``w̃`` of each node in :attr:`node_ids`."""
        return self._tree.nodes()[1]

    def __repr__(self) -> str:
        return f"UserTree(n_events={self.n_events}, n_nodes={self.n_nodes})"


TreeLike = Union[UserTree, npt.ArrayLike, Sequence[int]]


class Engine:
    """The airrec online engine over one bundle.

    >>> engine = Engine.load("bundle/")                              # doctest: +SKIP
    >>> tree = engine.tree([12, 40, 7])                              # doctest: +SKIP
    >>> engine.score(tree, [3, 99, 150])                             # doctest: +SKIP

    Thread-safe: one engine serves any number of threads; every compute call releases the GIL.
    """

    __slots__ = ("_engine", "_dims")

    def __init__(self, engine: _airrec.Engine) -> None:
        self._engine = engine
        self._dims: dict[str, int] = json.loads(engine.dims_json)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, verify_checksums: bool = True, **overrides: Any) -> Engine:
        """Loads and validates a bundle directory.

        ``overrides`` replace config values stored in the bundle (see ``docs/online-path.md``
        §6), e.g. ``Engine.load(p, beam_width=8, decay_lambda=0.0)``.
        """
        raw = _airrec.Engine.load(os.fspath(path), json.dumps(overrides) if overrides else None, verify_checksums)
        return cls(raw)

    def with_config(self, **overrides: Any) -> Engine:
        """The same bundle (shared, no reload) with some config values replaced."""
        return Engine(self._engine.with_overrides(json.dumps(overrides)))

    def with_composition(self, composition: Composition) -> Engine:
        """The same bundle and config (shared) with other composition and score-head weights,
        folded over the bundle's vectors now; nothing is written. Training validates the
        weights it learns this way, with the arithmetic that will serve them. The weights must
        fit the bundle's dims (:class:`~airrec.errors.InputError` otherwise)."""
        from airrec.bundle import Composition

        if not isinstance(composition, Composition):
            raise InputTypeError("composition must be an airrec.bundle.Composition")
        arrays = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in composition.arrays().items()}
        return Engine(self._engine.with_composition(arrays))

    # -- description -------------------------------------------------------------------------

    @property
    def config(self) -> dict[str, Any]:
        return dict(json.loads(self._engine.config_json))

    @property
    def dims(self) -> dict[str, int]:
        return dict(self._dims)

    @property
    def meta(self) -> dict[str, Any]:
        meta = json.loads(self._engine.meta_json)
        return dict(meta) if isinstance(meta, dict) else {}

    @property
    def n_items(self) -> int:
        return self._dims["n_items"]

    @property
    def n_nodes(self) -> int:
        return self._dims["n_nodes"]

    @property
    def dim(self) -> int:
        return self._dims["dim"]

    @property
    def domains(self) -> list[str]:
        return self._engine.domains

    @property
    def path(self) -> str:
        return os.fspath(self._engine.path)

    @property
    def manifest_sha256(self) -> str:
        """sha256 of the ``manifest.json`` bytes this engine was loaded and verified from (the
        bundle's identity; read by the engine, so it is the manifest the files matched)."""
        return self._engine.manifest_sha256

    # -- external ids ------------------------------------------------------------------------

    def item_ids(self, external: Sequence[str]) -> IntArray:
        """Internal ids of items named by their external ids (the dataset's own, as the bundle
        stores them); an unknown id is an :class:`~airrec.errors.UnknownItemError` naming it."""
        if isinstance(external, str):
            raise InputTypeError("item_ids takes a sequence of external ids, not one str")
        ids = list(external)
        if not all(isinstance(i, str) for i in ids):
            raise InputTypeError("external ids must be str")
        return self._engine.item_ids(ids)

    def item_id(self, external: str) -> int:
        """The internal id of the item with external id ``external``."""
        if not isinstance(external, str):
            raise InputTypeError(f"an external id must be a str, got {type(external).__name__}")
        return int(self._engine.item_ids([external])[0])

    def external_ids(self, items: Any) -> list[str]:
        """External ids of internal item ids (e.g. of what :meth:`retrieve` returns)."""
        return self._engine.external_ids(_as_ids(items, "items"))

    def _ids(self, values: Any, name: str) -> IntArray:
        """Item ids given as internal ids (integers) or as external ids (all ``str``)."""
        if isinstance(values, str):
            raise InputTypeError(f"{name} must be a sequence of ids, not one str")
        if _holds_str(values):
            if not all(isinstance(v, str) for v in values):
                raise InputTypeError(f"{name} mixes external ids (str) and internal ids (int)")
            return self.item_ids(values)
        if isinstance(values, np.ndarray) and values.dtype.kind == "U":
            if values.ndim != 1:
                raise InputError(f"{name} must be 1-D, got shape {values.shape}")
            return self.item_ids(values.astype(str).tolist())
        return _as_ids(values, name)

    def phrase(self, node: int) -> str:
        """The phrase of a trie node."""
        return self._engine.phrase(_as_id(node, "node"))

    def path_text(self, node: int) -> str:
        """``root > ... > node`` for a trie node."""
        return self._engine.path_text(_as_id(node, "node"))

    def __repr__(self) -> str:
        return repr(self._engine)

    # -- trees -------------------------------------------------------------------------------

    def tree(self, items: Any = (), behaviours: Any | None = None, timestamps: Any | None = None) -> UserTree:
        """A user's intent tree from their events (oldest first by default).

        An empty history is valid: it yields an empty tree, whose intent vector is the
        composition of the null slot alone.
        """
        it, bh, ts = _events(self._ids(items, "items"), behaviours, timestamps)
        return UserTree(self, self._engine.build_tree(it, bh, ts))

    def _tree_of(self, user: TreeLike) -> _airrec.UserTree:
        if isinstance(user, UserTree):
            return user._tree
        return self.tree(user)._tree

    # -- single request ----------------------------------------------------------------------

    def score(self, user: TreeLike, candidates: Any) -> FloatArray:
        """Scores (built-in score head) of candidates: item ids ``[C]`` or vectors ``[C, dim]``
        of items outside the bundle (L2-normalised)."""
        tree = self._tree_of(user)
        cand = candidates if _holds_str(candidates) else np.asarray(candidates)
        if isinstance(cand, np.ndarray) and cand.ndim == 2 and cand.dtype.kind == "f":
            return self._engine.scores_for_vectors(tree, _as_vectors(cand, self.dim, "candidates"))
        return self._engine.scores(tree, self._ids(cand, "candidates"))

    def intent_vectors(self, user: TreeLike, candidates: Any) -> FloatArray:
        """Target-aware intent vectors ``[C, dim]`` (ids ``[C]`` or vectors ``[C, dim]``)."""
        tree = self._tree_of(user)
        cand = candidates if _holds_str(candidates) else np.asarray(candidates)
        if isinstance(cand, np.ndarray) and cand.ndim == 2 and cand.dtype.kind == "f":
            return self._engine.intent_vectors_for_vectors(tree, _as_vectors(cand, self.dim, "candidates"))
        return self._engine.intent_vectors(tree, self._ids(cand, "candidates"))

    def contexts(self, user: TreeLike, candidates: Any) -> list[Context]:
        """The chains and evidence the walk picks for each candidate."""
        raw = self._engine.contexts(self._tree_of(user), self._ids(candidates, "candidates"))
        return [Context([list(c) for c in chains], list(ev)) for chains, ev in raw]

    def explain(self, user: TreeLike, candidate: int | str) -> Explanation:
        """Chains (with phrases), evidence events and attention behind one candidate's score
        (``candidate`` an internal id, or an external id as a ``str``)."""
        candidate = self.item_id(candidate) if isinstance(candidate, str) else _as_id(candidate, "candidate")
        d = self._engine.explain(self._tree_of(user), candidate)
        return Explanation(
            candidate=int(candidate),
            candidate_ext=self.external_ids([candidate])[0],
            score=float(d["score"]),
            intent_vector=d["intent_vector"],
            chains=list(d["chains"]),
            evidence=list(d["evidence"]),
            null_attention=float(d["null_attention"]),
        )

    # -- batches -----------------------------------------------------------------------------

    def _batch(self, histories: Histories, candidates: Any, vectors: bool, n_threads: int | None) -> FloatArray:
        h = self._histories(histories, n_threads)
        cand = _as_ids(candidates, "candidates", ndim=2)
        return self._engine.batch(h.offsets, h.items, h.behaviours, h.timestamps, cand, vectors, n_threads)

    def score_batch(self, histories: Histories, candidates: Any, *, n_threads: int | None = None) -> FloatArray:
        """Scores ``[U, C]`` for many users at once, in parallel (all cores by default;
        ``n_threads`` at most 256, pools of the last 4 distinct counts are kept)."""
        return self._batch(histories, candidates, False, n_threads)

    def intent_vectors_batch(
        self, histories: Histories, candidates: Any, *, n_threads: int | None = None
    ) -> FloatArray:
        """Intent vectors ``[U, C, dim]`` for many users at once, in parallel."""
        return self._batch(histories, candidates, True, n_threads)

    @property
    def slot_width(self) -> int:
        """Most attention slots one candidate can have (null slot excluded)."""
        return self._engine.slot_width

    def _histories(self, histories: Histories, n_threads: int | None) -> Histories:
        if not isinstance(histories, Histories):
            raise InputTypeError("histories must be an airrec.Histories (see Histories.from_arrays)")
        # A Histories built directly (not through from_arrays) gets the same checks here, so
        # a wrong dtype is an InputTypeError, not the binding's TypeError.
        histories = Histories.from_arrays(histories.offsets, histories.items, histories.behaviours,
                                          histories.timestamps)
        if n_threads is not None and _check_k(n_threads, "n_threads") == 0:
            raise InputError("n_threads must be >= 1")
        return histories

    def slots_batch(self, histories: Histories, candidates: Any, *, n_threads: int | None = None) -> Slots:
        """The attention slots ``[U, C, slot_width]`` of each user's row of ``candidates``
        (what :meth:`score_batch` composes), for training the composition in torch."""
        h = self._histories(histories, n_threads)
        cand = _as_ids(candidates, "candidates", ndim=2)
        ids, types, ln_w = self._engine.slots_batch(h.offsets, h.items, h.behaviours, h.timestamps, cand, n_threads)
        return Slots(ids, types, ln_w)

    def tree_slots_batch(
        self, histories: Histories, width: int, *, n_threads: int | None = None
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        """Each user's tree nodes, heaviest first, at most ``width``: ``(node ids, ln w̃)``,
        each ``[U, width]``, padded with ``-1`` / ``0`` (target-independent; for ablations)."""
        h = self._histories(histories, n_threads)
        width = _check_k(width, "width")
        return self._engine.tree_slots_batch(h.offsets, h.items, h.behaviours, h.timestamps, width, n_threads)

    # -- top-k -------------------------------------------------------------------------------

    def _domain_id(self, domain: int | str) -> int:
        if isinstance(domain, str):
            try:
                return self.domains.index(domain)
            except ValueError:
                raise InputError(f"unknown domain {domain!r}; the bundle has {self.domains}") from None
        return _check_k(domain, "domain")

    def retrieve(
        self, user: TreeLike, domain: int | str, k: int = 10, *, pool: int = 100, rerank: bool = True
    ) -> tuple[IntArray, FloatArray]:
        """Top-``k`` items of ``domain`` for a user: the ``pool`` items nearest to the user's
        profile vector (usearch), re-scored target-aware when ``rerank``. Returns
        ``(item_ids, scores)``; with ``rerank=False`` the scores are cosine similarities."""
        k = _check_k(k)
        pool = _check_k(pool, "pool")
        return self._engine.retrieve(self._tree_of(user), self._domain_id(domain), k, pool, rerank)

    def nearest_intents(self, vector: Any, k: int = 5) -> tuple[IntArray, FloatArray]:
        """The ``k`` trie leaves nearest to ``vector`` (cold start for an unseen item)."""
        k = _check_k(k)
        v = _as_vectors(np.asarray(vector).reshape(1, -1), self.dim, "vector")[0]
        return self._engine.nearest_intents(v, k)
