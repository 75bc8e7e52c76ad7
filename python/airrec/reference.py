"""The NumPy reference of the online path, following docs/online-path.md to the letter.

This is the specification in executable form, not the engine: the Rust engine serves, this
module exists to test it (parity tests hold both to the same chains, evidence and vectors) and
as the benchmark baseline. It is written to be read next to docs/online-path.md; each method
names the section it implements. Similarities and weights are float64; the composition runs in
float64 from the bundle's float32 weights and the intent vector is returned as float32.

The one deliberate difference from the engine: cold start (§1) uses an exact brute-force
search for the nearest leaves, where the engine queries its usearch index.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec.bundle import BundleArrays, load_arrays, trie_leaves, validate_config
from airrec.errors import (
    InputError,
    InputTypeError,
    UnknownBehaviourError,
    UnknownItemError,
)

__all__ = ["RefTree", "Reference"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

Chain = list[int]


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


#: Smallest normalised weight fed to ``ln`` (docs/online-path.md §2): keeps ``ln(w)`` finite
#: when old events decay to zero.
MIN_WEIGHT = 1e-30


def _id_array(name: str, values: npt.ArrayLike, upper: int, error: type[InputError]) -> I64:
    """``values`` as a 1-D int64 array of ids in ``[0, upper)``."""
    array = np.asarray(values)
    if array.size == 0 and array.dtype == np.float64:  # an empty list
        array = array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputTypeError(f"{name} must be integer ids, got dtype {array.dtype}")
    if array.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {array.shape}")
    bad = np.flatnonzero((array < 0) | (array >= upper))
    if bad.size:
        raise error(f"{name}[{int(bad[0])}] = {int(array[bad[0]])} is outside [0, {upper})")
    return array.astype(np.int64)


def _one_id(name: str, value: object, upper: int, error: type[InputError]) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer id, got {value!r}")
    if not 0 <= value < upper:
        raise error(f"{name} {int(value)} is outside [0, {upper})")
    return int(value)


def _timestamps(values: npt.ArrayLike) -> F64:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputTypeError(f"timestamps must be numbers: {e}") from e
    if array.ndim != 1:
        raise InputError(f"timestamps must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise InputError("timestamps must be finite")
    return array


def _count(name: str, value: object) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InputTypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise InputError(f"{name} must be >= 0, got {value}")
    return int(value)


def _top_by_score(ids: I64, scores: F64, k: int) -> I64:
    """Positions of the ``k`` highest scores, ties by id ascending."""
    return np.lexsort((ids, -scores))[:k]


# --------------------------------------------------------------------------------------------
# §2 The user intent tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TreeState:
    """Everything §2 derives from a tree's events, computed at once and cached until ``add``."""

    t_ref: float | None
    contributions: F64  # c_e per event
    total_mass: float  # W
    node_ids: I64  # reached nodes, ascending
    node_weights: F64  # w̃_n, aligned with node_ids
    node_matrix: F64  # node_vectors[node_ids] in float64, for the walk's similarities
    weight: dict[int, float]
    evidence: dict[int, list[int]]
    children: dict[int, list[int]]
    roots: list[int]


class RefTree:
    """A user's intent tree (§2): the events so far and, lazily, the weighted tree they give.

    Built by :meth:`Reference.tree`; :meth:`add` appends one event. The tree is a pure
    function of its event list, so adding events one by one and building from all of them
    give the same tree by construction — which is exactly what the engine must match.
    """

    def __init__(self, ref: Reference) -> None:
        self._ref = ref
        self._items: list[int] = []
        self._behaviours: list[int] = []
        self._timestamps: list[float] = []
        self._event_nodes: list[tuple[int, ...]] = []
        self._cache: _TreeState | None = None

    def add(self, item: int, behaviour: int = 0, timestamp: float | None = None) -> None:
        """Add one event. ``timestamp=None`` means one after the latest (0 for the first), so
        events without timestamps continue the positions ``0..E-1`` of :meth:`Reference.tree`,
        as the engine's ``UserTree.add`` does."""
        item = _one_id("item", item, self._ref.arrays.dims.n_items, UnknownItemError)
        n_behaviours = len(self._ref.config["behaviour_weights"])
        behaviour = _one_id("behaviour", behaviour, n_behaviours, UnknownBehaviourError)
        if timestamp is None:
            t = 0.0 if self.t_ref is None else self.t_ref + 1.0
        else:
            t = float(_timestamps([timestamp])[0])
        self._append(item, behaviour, t)

    def _append(self, item: int, behaviour: int, timestamp: float) -> None:
        self._items.append(item)
        self._behaviours.append(behaviour)
        self._timestamps.append(timestamp)
        self._event_nodes.append(self._ref.event_nodes(item, behaviour))
        self._cache = None

    @property
    def n_events(self) -> int:
        return len(self._items)

    @property
    def items(self) -> I64:
        return np.array(self._items, dtype=np.int64)

    @property
    def timestamps(self) -> F64:
        return np.array(self._timestamps, dtype=np.float64)

    @property
    def t_ref(self) -> float | None:
        """The largest timestamp seen; ``None`` for an empty tree."""
        return self._state.t_ref

    @property
    def total_mass(self) -> float:
        """``W = Σ_e c_e`` over all events, with or without paths."""
        return self._state.total_mass

    @property
    def contributions(self) -> F64:
        """``c_e`` of every event, relative to ``t_ref``."""
        return self._state.contributions

    @property
    def node_ids(self) -> I64:
        return self._state.node_ids

    @property
    def node_weights(self) -> F64:
        """Normalised weights ``w̃_n = w_n / W``, aligned with :attr:`node_ids`."""
        return self._state.node_weights

    @property
    def roots(self) -> list[int]:
        return self._state.roots

    def tree_children(self, node: int) -> list[int]:
        """The trie children of ``node`` that some event reaches, ascending."""
        return self._state.children.get(node, [])

    def node_evidence(self, node: int) -> list[int]:
        """The node's evidence events: at most ``node_evidence_cap``, by ``(c_e, e)`` desc."""
        return self._state.evidence.get(node, [])

    def event_nodes(self, event: int) -> tuple[int, ...]:
        """The node set of event ``event`` (§1), ascending."""
        return self._event_nodes[event]

    @property
    def _state(self) -> _TreeState:
        if self._cache is None:
            self._cache = self._build()
        return self._cache

    def _build(self) -> _TreeState:
        config, arrays = self._ref.config, self._ref.arrays
        timestamps = np.array(self._timestamps, dtype=np.float64)
        t_ref = float(timestamps.max()) if timestamps.size else None
        weights = np.array(config["behaviour_weights"], dtype=np.float64)
        age = (t_ref if t_ref is not None else 0.0) - timestamps
        lam = config["decay_lambda"]
        # Without decay every factor is exactly 1 (0 * inf would be NaN for overflowing ages).
        factor = np.exp(-lam * age) if lam != 0.0 else np.ones_like(age)
        c = weights[np.array(self._behaviours, dtype=np.int64)] * factor
        total = float(c.sum())
        reaching: dict[int, list[int]] = {}  # node -> events reaching it, in event order
        for e, nodes in enumerate(self._event_nodes):
            for n in nodes:
                reaching.setdefault(n, []).append(e)
        node_ids = np.array(sorted(reaching), dtype=np.int64)
        w = np.array([c[reaching[n]].sum() for n in node_ids.tolist()], dtype=np.float64)
        node_weights = np.maximum(w / total, MIN_WEIGHT) if node_ids.size else w
        cap = config["node_evidence_cap"]
        evidence = {
            n: sorted(events, key=lambda e: (c[e], e), reverse=True)[:cap]
            for n, events in reaching.items()
        }
        children: dict[int, list[int]] = {}
        roots: list[int] = []
        for n in node_ids.tolist():  # ascending, so every child list is ascending
            p = int(arrays.trie_parent[n])
            (roots if p < 0 else children.setdefault(p, [])).append(n)
        return _TreeState(
            t_ref=t_ref, contributions=c, total_mass=total, node_ids=node_ids,
            node_weights=node_weights,
            node_matrix=arrays.node_vectors[node_ids].astype(np.float64),
            weight=dict(zip(node_ids.tolist(), node_weights.tolist())),
            evidence=evidence, children=children, roots=roots,
        )


# --------------------------------------------------------------------------------------------
# The reference engine
# --------------------------------------------------------------------------------------------


class Reference:
    """The online path of docs/online-path.md in NumPy, over one bundle.

    ``Reference(path_or_arrays, **config_overrides)``: overrides replace keys of the bundle's
    ``config`` (§6) and are validated the same way
    (:class:`~airrec.errors.ConfigError` on a bad key or value).
    """

    def __init__(self, bundle: str | os.PathLike[str] | BundleArrays, **config_overrides: Any):
        self.arrays = bundle if isinstance(bundle, BundleArrays) else load_arrays(bundle)
        self.config = validate_config(
            {**self.arrays.config, **config_overrides}, path_slots=self.arrays.dims.path_slots
        )
        composition = self.arrays.composition
        self._w = {name: a.astype(np.float64) for name, a in composition.arrays().items()}
        self.n_heads = composition.n_heads

    # ---- §1 intent lookup ---------------------------------------------------------------

    @cached_property
    def leaves(self) -> I64:
        """Trie leaves (nodes without children), ascending: the cold-start search space."""
        return trie_leaves(self.arrays.trie_parent)

    @cached_property
    def _leaf_matrix(self) -> F64:
        return self.arrays.node_vectors[self.leaves].astype(np.float64)

    def path(self, node: int) -> Chain:
        """The chain from ``node``'s root down to ``node``."""
        chain = [node]
        while (parent := int(self.arrays.trie_parent[chain[-1]])) >= 0:
            chain.append(parent)
        return chain[::-1]

    def item_paths(self, item: int, behaviour: int = 0) -> list[int]:
        """The deepest nodes of the cached paths of ``(item, behaviour)``: one CSR row."""
        slots = self.arrays.dims.path_slots
        row = item * slots + (behaviour if slots > 1 else 0)
        start, end = self.arrays.item_path_offsets[row], self.arrays.item_path_offsets[row + 1]
        return [int(n) for n in self.arrays.item_path_leaves[start:end]]

    def event_nodes(self, item: int, behaviour: int = 0) -> tuple[int, ...]:
        """The node set of an event: the union of the nodes of its paths, ascending.

        An item without cached paths takes the paths of its ``cold_start_paths`` nearest
        leaves (exact cosine search here), or none when that is 0.
        """
        ends = self.item_paths(item, behaviour)
        k = self.config["cold_start_paths"]
        if not ends and k > 0:
            x = self.arrays.item_vectors[item].astype(np.float64)
            ends = self._nearest_leaves(x, k)[0].tolist()
        return tuple(sorted({n for end in ends for n in self.path(end)}))

    def _nearest_leaves(self, unit_vector: F64, k: int) -> tuple[I64, F64]:
        """The ``k`` leaves most similar to a unit vector (exact), ties by id ascending."""
        similarities = self._leaf_matrix @ unit_vector
        top = _top_by_score(self.leaves, similarities, k)
        return self.leaves[top], similarities[top]

    # ---- §2 the user intent tree --------------------------------------------------------

    def tree(
        self,
        items: npt.ArrayLike,
        behaviours: npt.ArrayLike | None = None,
        timestamps: npt.ArrayLike | None = None,
    ) -> RefTree:
        """A user's tree from events ``(items[e], behaviours[e], timestamps[e])``.

        Behaviours default to 0, timestamps to the sequence positions ``0..E-1``.
        """
        dims = self.arrays.dims
        ids = _id_array("items", items, dims.n_items, UnknownItemError)
        n_behaviours = len(self.config["behaviour_weights"])
        kinds = (
            np.zeros(ids.size, dtype=np.int64)
            if behaviours is None
            else _id_array("behaviours", behaviours, n_behaviours, UnknownBehaviourError)
        )
        times = (
            np.arange(ids.size, dtype=np.float64) if timestamps is None else _timestamps(timestamps)
        )
        if not ids.size == kinds.size == times.size:
            raise InputError(
                f"items, behaviours and timestamps differ in length "
                f"({ids.size}, {kinds.size}, {times.size})"
            )
        tree = RefTree(self)
        for item, behaviour, t in zip(ids.tolist(), kinds.tolist(), times.tolist()):
            tree._append(item, behaviour, t)
        return tree

    # ---- §3 target-aware retrieval ------------------------------------------------------

    def _candidate_vector(self, candidate: object) -> F64:
        item = _one_id("candidate", candidate, self.arrays.dims.n_items, UnknownItemError)
        x: F64 = self.arrays.item_vectors[item].astype(np.float64)
        return x

    def contexts(self, tree: RefTree, candidate: int) -> tuple[list[Chain], list[int]]:
        """The chains and the evidence (event indices, in evidence order) for ``candidate``."""
        x = self._candidate_vector(candidate)
        chains = self._walk(tree, x)
        return chains, self._evidence(tree, chains, x)

    def _walk(self, tree: RefTree, x: F64) -> list[Chain]:
        """The beam walk of §3: the ``max_chains`` best root-to-node chains."""
        state, config = tree._state, self.config
        if not state.roots:
            return []
        similarity = state.node_matrix @ x
        node_score: dict[int, float] = dict(
            zip(
                state.node_ids.tolist(),
                (similarity + config["walk_alpha"] * np.log(state.node_weights)).tolist(),
            )
        )

        def mean_score(chain: Chain) -> float:
            return sum(node_score[n] for n in chain) / len(chain)  # summed root to leaf

        def top(chains: Iterable[Chain], k: int) -> list[Chain]:
            # Score descending, then node ids lexicographically ascending (list comparison).
            return sorted(chains, key=lambda ch: (-mean_score(ch), ch))[:k]

        beam, max_depth = config["beam_width"], config["max_chain_depth"]
        frontier = top([[r] for r in state.roots], beam)
        complete: list[Chain] = []
        while frontier:
            grown: list[Chain] = []
            for chain in frontier:
                children = tree.tree_children(chain[-1])
                if not children or len(chain) == max_depth:
                    complete.append(chain)
                else:
                    grown += [chain + [child] for child in children]
            frontier = top(grown, beam)
        return top(complete, config["max_chains"])

    def _evidence(self, tree: RefTree, chains: Sequence[Chain], x: F64) -> list[int]:
        """§3 evidence: the union of the chain ends' evidence, age-filtered, pruned, ordered."""
        state, config = tree._state, self.config
        events = sorted({e for chain in chains for e in tree.node_evidence(chain[-1])})
        max_age = config["evidence_max_age"]
        if max_age is not None and state.t_ref is not None:
            events = [e for e in events if state.t_ref - tree._timestamps[e] <= max_age]
        if not events:
            return []
        ids = np.array(events, dtype=np.int64)
        vectors = self.arrays.item_vectors[tree.items[ids]].astype(np.float64)
        relative_weight = np.maximum(state.contributions[ids] / state.total_mass, MIN_WEIGHT)
        scores = np.log(relative_weight) + config["evidence_alpha"] * (vectors @ x)
        kept: list[int] = ids[_top_by_score(ids, scores, config["max_evidence"])].tolist()
        return kept

    # ---- §4 composition -----------------------------------------------------------------

    def _slots(
        self, tree: RefTree, chains: Sequence[Chain], evidence: Sequence[int]
    ) -> tuple[F64, I64, F64]:
        """Slot vectors ``z``, types and ``ln w``: chain nodes, evidence events, null slot."""
        arrays, state = self.arrays, tree._state
        unique = dict.fromkeys(n for chain in chains for n in chain)  # chain order, once each
        nodes = np.array(list(unique), dtype=np.int64)
        ev = np.array(evidence, dtype=np.int64)
        max_depth = arrays.dims.max_depth
        z = np.concatenate(
            [
                arrays.node_vectors[nodes].astype(np.float64),
                arrays.item_vectors[tree.items[ev]].astype(np.float64),
                np.zeros((1, arrays.dims.dim)),
            ]
        )
        types = np.concatenate(
            [
                arrays.trie_depth[nodes].astype(np.int64) - 1,
                np.full(ev.size, max_depth, dtype=np.int64),
                [max_depth + 1],
            ]
        )
        log_w = np.concatenate(
            [
                np.log([state.weight[n] for n in unique]),
                np.log(np.maximum(state.contributions[ev] / state.total_mass, MIN_WEIGHT)),
                [0.0],
            ]
        )
        return z, types, log_w

    def _compose(self, x: F64, z: F64, types: I64, log_w: F64) -> F64:
        """Multi-head attention with the candidate as query over the slots: the vector ``u``."""
        w, heads = self._w, self.n_heads
        dk = w["compose_wq"].shape[1] // heads
        q = (x @ w["compose_wq"]).reshape(heads, dk)
        k = (z @ w["compose_wk"] + w["compose_type_key"][types]).reshape(len(z), heads, dk)
        v = (z @ w["compose_wv"] + w["compose_type_value"][types]).reshape(len(z), heads, dk)
        logits = np.einsum("shk,hk->sh", k, q) / math.sqrt(dk)
        logits += log_w[:, None] * w["compose_weight_bias"][None, :]
        attention = np.exp(logits - logits.max(axis=0, keepdims=True))
        attention /= attention.sum(axis=0, keepdims=True)
        heads_out = np.einsum("sh,shk->hk", attention, v).reshape(-1)
        u: F64 = heads_out @ w["compose_wo"] + w["compose_bo"]
        return u

    def _intent(self, tree: RefTree, candidate: int) -> tuple[F64, F64]:
        """The intent vector ``u`` (float64) and the candidate vector ``x``."""
        x = self._candidate_vector(candidate)
        chains = self._walk(tree, x)
        evidence = self._evidence(tree, chains, x)
        return self._compose(x, *self._slots(tree, chains, evidence)), x

    def _score(self, u: F64, x: F64) -> float:
        w = self._w
        return float(w["score_w_out"] @ u + w["score_w_inter"] @ (u * x) + w["score_bias"][0])

    def intent_vector(self, tree: RefTree, candidate: int) -> F32:
        """The target-conditioned intent vector of ``candidate``, float32 ``[d]``."""
        return self._intent(tree, candidate)[0].astype(np.float32)

    def score(self, tree: RefTree, candidate: int) -> float:
        """The built-in score head on the intent vector (computed in float64)."""
        return self._score(*self._intent(tree, candidate))

    def intent_vectors(self, tree: RefTree, candidates: npt.ArrayLike) -> F32:
        """:meth:`intent_vector` of each candidate, float32 ``[C, d]``."""
        ids = _id_array("candidates", candidates, self.arrays.dims.n_items, UnknownItemError)
        out = np.zeros((ids.size, self.arrays.dims.dim), dtype=np.float32)
        for i, c in enumerate(ids.tolist()):
            out[i] = self.intent_vector(tree, c)
        return out

    def scores(self, tree: RefTree, candidates: npt.ArrayLike) -> F64:
        """:meth:`score` of each candidate, float64 ``[C]``."""
        ids = _id_array("candidates", candidates, self.arrays.dims.n_items, UnknownItemError)
        return np.array([self.score(tree, c) for c in ids.tolist()], dtype=np.float64)

    # ---- §5 top-k retrieval -------------------------------------------------------------

    def profile(self, tree: RefTree) -> F64 | None:
        """``Σ w̃_n node_vectors[n]`` over the tree's leaves, L2-normalised; None if empty."""
        state = tree._state
        leaves = [i for i, n in enumerate(state.node_ids.tolist()) if n not in state.children]
        if not leaves:
            return None
        p = state.node_weights[leaves] @ state.node_matrix[leaves]
        norm = float(np.linalg.norm(p))
        return p / norm if norm > 0 else None

    def retrieve(
        self, tree: RefTree, domain: int, k: int = 10, pool: int = 100, rerank: bool = True
    ) -> tuple[I64, F32]:
        """The ``k`` best items of ``domain`` for the user, by exact search and then score.

        The ``pool`` items nearest to the profile (cosine, ties by id) are scored and the ``k``
        best returned with their scores; ``rerank=False`` returns the first ``k`` of the pool
        with their cosine similarities instead. An empty tree returns nothing.
        """
        domain = _one_id("domain", domain, self.arrays.dims.n_domains, InputError)
        k, pool = _count("k", k), _count("pool", pool)
        p = self.profile(tree)
        if p is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        items = np.flatnonzero(self.arrays.item_domain == domain).astype(np.int64)
        similarities = self.arrays.item_vectors[items].astype(np.float64) @ p
        nearest = _top_by_score(items, similarities, pool)
        ids, values = items[nearest], similarities[nearest]
        if rerank:
            values = self.scores(tree, ids)
            best = _top_by_score(ids, values, k)
            ids, values = ids[best], values[best]
        return ids[:k], values[:k].astype(np.float32)

    def nearest_intents(self, vector: npt.ArrayLike, k: int) -> tuple[I64, F32]:
        """The ``k`` trie leaves nearest to ``vector`` by cosine (exact), with similarities."""
        try:
            v = np.asarray(vector, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InputTypeError(f"vector must be numbers: {e}") from e
        if v.shape != (self.arrays.dims.dim,):
            raise InputError(f"vector must have shape ({self.arrays.dims.dim},), got {v.shape}")
        norm = float(np.linalg.norm(v))
        if not math.isfinite(norm) or norm == 0:
            raise InputError("vector must be finite and non-zero")
        ids, similarities = self._nearest_leaves(v / norm, _count("k", k))
        return ids, similarities.astype(np.float32)
