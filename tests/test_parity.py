"""Parity: the Rust engine and the NumPy reference pick the same chains and evidence, and give
the same vectors and scores (to 1e-5), over hypothesis-randomised small bundles.

Cold start is compared separately on data where usearch's search is exact (a tiny leaf index):
the engine searches usearch, the reference searches exhaustively.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("airrec._airrec", reason="the Rust extension is not built")

from airrec import Engine, Histories
from airrec.bundle import Composition, write_bundle
from airrec.reference import Reference, RefTree
from airrec.synthetic import make_candidates, make_synthetic_histories

TOL: dict[str, float] = {"rtol": 1e-5, "atol": 1e-5}


# ---- random cases ----------------------------------------------------------------------------


@dataclass
class Case:
    """A random bundle's inputs, load-time overrides, one user's events and candidates."""

    bundle: dict[str, Any]
    overrides: dict[str, Any]
    items: np.ndarray
    behaviours: np.ndarray
    timestamps: np.ndarray
    candidates: np.ndarray


def random_trie(
    rng: np.random.Generator, n_nodes: int, max_depth: int, p_root: float
) -> np.ndarray:
    """Parents in topological order; a node is a root with probability ``p_root`` (node 0
    always), else the child of a random earlier node that is not at ``max_depth`` yet."""
    parent = np.full(n_nodes, -1, dtype=np.int64)
    depth = np.ones(n_nodes, dtype=np.int64)
    for n in range(1, n_nodes):
        open_nodes = np.flatnonzero(depth[:n] < max_depth)
        if open_nodes.size and rng.random() >= p_root:
            parent[n] = rng.choice(open_nodes)
            depth[n] = depth[parent[n]] + 1
    return parent


def random_composition(rng: np.random.Generator, dim: int, heads: int, dk: int, max_depth: int,
                       scale: float) -> Composition:
    a = heads * dk

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, scale / np.sqrt(shape[0]), size=shape)

    return Composition(
        wq=normal(dim, a), wk=normal(dim, a), wv=normal(dim, a), wo=normal(a, dim),
        bo=rng.normal(0, 0.1, dim), type_key=normal(max_depth + 2, a),
        type_value=normal(max_depth + 2, a), weight_bias=rng.normal(0.5, 0.5, heads),
        score_w_out=rng.normal(0, 1, dim), score_w_inter=rng.normal(0, 1, dim),
        score_bias=rng.normal(0, 1, 1),
    )


def random_paths(rng: np.random.Generator, n_items: int, slots: int, n_nodes: int,
                 p_empty: float) -> tuple[np.ndarray, np.ndarray]:
    """CSR of 0-3 paths per slot ending at any node (interior nodes too), some rows empty."""
    lengths = np.where(rng.random(n_items * slots) < p_empty, 0,
                       rng.integers(1, 4, n_items * slots))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return offsets, rng.integers(0, n_nodes, int(offsets[-1]))


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_nodes = draw(st.integers(1, 24))
    parent = random_trie(rng, n_nodes, draw(st.integers(1, 5)), draw(st.floats(0.0, 0.6)))
    max_depth = int(np.max(_depths(parent)))
    n_behaviours = draw(st.integers(1, 3))
    slots = draw(st.sampled_from([1, n_behaviours]))
    n_items = draw(st.integers(1, 12))
    heads, dk = draw(st.integers(1, 2)), draw(st.sampled_from([1, 2, 4]))
    dim = draw(st.sampled_from([2, 4, 8]))
    offsets, leaves = random_paths(rng, n_items, slots, n_nodes, draw(st.floats(0.0, 0.4)))
    config = {
        "behaviour_weights": draw(st.lists(st.floats(0.2, 5.0), min_size=n_behaviours,
                                           max_size=n_behaviours)),
        "decay_lambda": draw(st.sampled_from([0.0, 0.1, 0.5, 1.0])),
        "beam_width": draw(st.integers(1, 4)),
        "max_chains": draw(st.integers(1, 4)),
        "max_chain_depth": draw(st.integers(1, 6)),
        "walk_alpha": draw(st.floats(-1.0, 1.0)),
        "node_evidence_cap": draw(st.integers(0, 4)),
        "max_evidence": draw(st.integers(0, 5)),
        "evidence_alpha": draw(st.floats(-2.0, 2.0)),
        "evidence_max_age": draw(st.none() | st.floats(0.0, 10.0)),
        "cold_start_paths": 0,
    }
    overrides = draw(st.fixed_dictionaries({}, optional={
        "beam_width": st.integers(1, 4), "max_chains": st.integers(1, 4),
        "walk_alpha": st.floats(-1.0, 1.0), "max_evidence": st.integers(0, 5),
    }))
    n_events = draw(st.integers(0, 12))
    integer_times = draw(st.booleans())  # integer times give equal contributions: ties
    timestamps = (rng.integers(0, 8, n_events) if integer_times
                  else rng.uniform(0, 15, n_events)).astype(np.float64)
    return Case(
        bundle=dict(
            trie_parent=parent, trie_phrases=[f"n{n}" for n in range(n_nodes)],
            item_path_offsets=offsets, item_path_leaves=leaves,
            node_vectors=rng.normal(size=(n_nodes, dim)),
            item_vectors=rng.normal(size=(n_items, dim)),
            item_domain=rng.integers(0, 2, n_items), domain_names=["a", "b"],
            composition=random_composition(rng, dim, heads, dk, max_depth,
                                           draw(st.floats(0.1, 3.0))),
            config=config, path_slots=slots,
        ),
        overrides=overrides,
        items=rng.integers(0, min(n_items, draw(st.integers(1, 12))), n_events),  # duplicates
        behaviours=rng.integers(0, n_behaviours, n_events),
        timestamps=timestamps,
        candidates=rng.integers(0, n_items, draw(st.integers(1, 6))),
    )


def _depths(parent: np.ndarray) -> np.ndarray:
    depth = np.ones(parent.size, dtype=np.int64)
    for n, p in enumerate(parent.tolist()):
        if p >= 0:
            depth[n] = depth[p] + 1
    return depth


# ---- comparisons -----------------------------------------------------------------------------


def assert_same_config(config: dict[str, Any], expected: dict[str, Any]) -> None:
    """Equal up to float parsing (see test_engine_reads_config_floats_exactly)."""
    assert config.keys() == expected.keys()
    for key, value in expected.items():
        if key == "behaviour_weights":
            assert config[key] == pytest.approx(value, rel=1e-15)
        else:
            assert config[key] == (value if value is None else pytest.approx(value, rel=1e-15))


def assert_same_tree(tree: Any, ref_tree: RefTree) -> None:
    assert tree.n_events == ref_tree.n_events
    np.testing.assert_array_equal(tree.node_ids, ref_tree.node_ids)
    np.testing.assert_allclose(tree.node_weights, ref_tree.node_weights, rtol=1e-9)
    if ref_tree.n_events:
        assert tree.t_ref == ref_tree.t_ref
        assert tree.total_mass == pytest.approx(ref_tree.total_mass, rel=1e-9)


def assert_same_outputs(engine: Engine, ref: Reference, tree: Any, ref_tree: RefTree,
                        candidates: np.ndarray) -> None:
    contexts = engine.contexts(tree, candidates)
    for candidate, context in zip(candidates.tolist(), contexts):
        assert (context.chains, context.evidence) == ref.contexts(ref_tree, candidate)
    np.testing.assert_allclose(engine.intent_vectors(tree, candidates),
                               ref.intent_vectors(ref_tree, candidates), **TOL)
    np.testing.assert_allclose(engine.score(tree, candidates), ref.scores(ref_tree, candidates),
                               **TOL)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_engine_matches_reference(case: Case) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_bundle(Path(tmp) / "b", **case.bundle)
        engine = Engine.load(path, **case.overrides)
        ref = Reference(path, **case.overrides)
        assert_same_config(engine.config, ref.config)
        ref_tree = ref.tree(case.items, case.behaviours, case.timestamps)

        batch = engine.tree(case.items, case.behaviours, case.timestamps)
        assert_same_tree(batch, ref_tree)
        assert_same_outputs(engine, ref, batch, ref_tree, case.candidates)

        incremental = engine.tree([])
        for item, behaviour, t in zip(case.items.tolist(), case.behaviours.tolist(),
                                      case.timestamps.tolist()):
            incremental.add(item, behaviour, t)
        assert_same_tree(incremental, ref_tree)
        assert_same_outputs(engine, ref, incremental, ref_tree, case.candidates)


# ---- fixed data: config, defaults, batches, cold start, top-k --------------------------------


def test_engine_reads_config_floats_exactly(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    weights = [0.20207752167818266, 1.0000000000000002, 2.718281828459045]
    path = write_bundle(tmp_path / "b", **tiny_inputs,
                        config={"behaviour_weights": weights, "walk_alpha": 0.1 + 0.2})
    config = Engine.load(path).config
    assert config["behaviour_weights"] == weights
    assert config["walk_alpha"] == 0.1 + 0.2


@pytest.fixture(scope="module")
def engines(small_bundle: Path) -> tuple[Engine, Reference]:
    return Engine.load(small_bundle, verify_checksums=True), Reference(small_bundle)


def test_empty_history(engines: tuple[Engine, Reference]) -> None:
    engine, ref = engines
    candidates = np.array([0, 5, 99])
    tree, ref_tree = engine.tree([]), ref.tree([])
    assert engine.contexts(tree, candidates)[0].chains == []
    assert_same_outputs(engine, ref, tree, ref_tree, candidates)
    assert engine.retrieve(tree, 0)[0].size == 0


def test_default_behaviours_and_timestamps(engines: tuple[Engine, Reference]) -> None:
    engine, ref = engines
    tree, ref_tree = engine.tree([3, 50, 3, 7]), ref.tree([3, 50, 3, 7])
    tree.add(11)
    ref_tree.add(11)
    assert tree.t_ref == ref_tree.t_ref == 4.0
    assert_same_tree(tree, ref_tree)
    assert_same_outputs(engine, ref, tree, ref_tree, np.arange(0, 120, 9))


def test_batch_calls_match_per_user_reference(engines: tuple[Engine, Reference]) -> None:
    engine, ref = engines
    n_items = ref.arrays.dims.n_items
    h = make_synthetic_histories(4, 9, n_items, seed=5)
    h.offsets[2] = h.offsets[1]  # user 1 has no events
    candidates = make_candidates(4, 6, n_items, seed=6)
    histories = Histories.from_arrays(h.offsets, h.items, h.behaviours, h.timestamps)
    scores = engine.score_batch(histories, candidates, n_threads=2)
    vectors = engine.intent_vectors_batch(histories, candidates)
    assert scores.shape == (4, 6) and vectors.shape == (4, 6, ref.arrays.dims.dim)
    for u in range(4):
        events = slice(h.offsets[u], h.offsets[u + 1])
        ref_tree = ref.tree(h.items[events], h.behaviours[events], h.timestamps[events])
        np.testing.assert_allclose(scores[u], ref.scores(ref_tree, candidates[u]), **TOL)
        np.testing.assert_allclose(vectors[u], ref.intent_vectors(ref_tree, candidates[u]), **TOL)


def test_cold_start_matches_exact_search_on_a_tiny_index(
    tmp_path: Path, tiny_inputs: dict[str, Any]
) -> None:
    path = write_bundle(tmp_path / "b", **tiny_inputs)  # item 3 has no paths; 3 leaves
    for k in (1, 2, 3):
        engine, ref = Engine.load(path, cold_start_paths=k), Reference(path, cold_start_paths=k)
        items = np.array([3, 0, 3])
        tree, ref_tree = engine.tree(items), ref.tree(items)
        assert_same_tree(tree, ref_tree)
        assert_same_outputs(engine, ref, tree, ref_tree, np.arange(4))


@pytest.mark.parametrize("rerank", [True, False])
def test_retrieve_matches_exact_search(engines: tuple[Engine, Reference], rerank: bool) -> None:
    engine, ref = engines
    h = make_synthetic_histories(1, 12, ref.arrays.dims.n_items, seed=8)
    tree, ref_tree = engine.tree(h.items), ref.tree(h.items)
    for domain in (0, 1):
        ids, scores = engine.retrieve(tree, domain, k=5, pool=20, rerank=rerank)
        ref_ids, ref_scores = ref.retrieve(ref_tree, domain, k=5, pool=20, rerank=rerank)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, **TOL)


def test_nearest_intents_match_exact_search(engines: tuple[Engine, Reference]) -> None:
    engine, ref = engines
    for item in (0, 42, 119):
        vector = ref.arrays.item_vectors[item]
        ids, sims = engine.nearest_intents(vector, 4)
        ref_ids, ref_sims = ref.nearest_intents(vector, 4)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(sims, ref_sims, **TOL)
