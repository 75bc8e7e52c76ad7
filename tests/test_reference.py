"""The NumPy reference against values worked out by hand from docs/online-path.md.

The hand case is the 5-node trie of ``tiny_inputs`` (2-D unit vectors at the angles below) and
three events, with ``decay_lambda = ln 2`` so every decay is a power of two:

    node   phrase   angle  parent        item  angle  paths
    0      food       0°    -            0      35°   → 2  (nodes 0, 1, 2)
    1      snacks    30°    0            1     -50°   → 3, 1  (nodes 0, 1, 3: node 0 once)
    2      chips     40°    1            2      80°   → 4
    3      drinks   -60°    0            3      10°   (no paths; the candidate)
    4      kitchen   90°    -

    events: (item 0, behaviour 0, t=0), (item 1, behaviour 1, t=1), (item 2, behaviour 0, t=3)
    behaviour_weights [1, 2]  ⇒  c = [1·2⁻³, 2·2⁻², 1·2⁰] = [1/8, 1/2, 1],  W = 13/8
    w = [5/8, 5/8, 1/8, 1/2, 1]  ⇒  w̃ = [5/13, 5/13, 1/13, 4/13, 8/13]
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airrec.bundle import Composition, write_bundle
from airrec.errors import (
    ConfigError,
    InputError,
    InputTypeError,
    UnknownBehaviourError,
    UnknownItemError,
)
from airrec.reference import Reference, RefTree
from airrec.synthetic import make_synthetic_histories

NODE_ANGLES = [0.0, 30.0, 40.0, -60.0, 90.0]
ITEM_ANGLES = [35.0, -50.0, 80.0, 10.0]
DEPTH = [1, 2, 3, 2, 1]
W_TILDE = [5 / 13, 5 / 13, 1 / 13, 4 / 13, 8 / 13]
C_OVER_W = [1 / 13, 4 / 13, 8 / 13]  # c_e / W per event
CANDIDATE = 3

HAND_CONFIG: dict[str, Any] = {
    "behaviour_weights": [1.0, 2.0],
    "decay_lambda": math.log(2),
    "beam_width": 2,
    "max_chains": 2,
    "max_chain_depth": 4,
    "walk_alpha": 0.5,
    "node_evidence_cap": 1,
    "max_evidence": 8,
    "evidence_alpha": 1.0,
    "evidence_max_age": None,
    "cold_start_paths": 0,
}

# A 1-head composition simple enough to evaluate by hand: q = 2x, k = z + type_key[type],
# v = z + type_value[type], u = Σ att·v + bo.
TYPE_KEY = np.zeros((5, 2))
TYPE_KEY[4] = [0.3, 0.0]  # the null slot's key
TYPE_VALUE = np.array([[0.01 * t, -0.02 * t] for t in range(5)])
BO = np.array([0.1, -0.2])
WEIGHT_BIAS = 0.5
SCORE_W_OUT, SCORE_W_INTER, SCORE_BIAS = np.array([1.0, 0.0]), np.array([0.5, 0.5]), 0.25


def cos_deg(a: float, b: float) -> float:
    return math.cos(math.radians(a - b))


def hand_composition() -> Composition:
    eye = np.eye(2)
    return Composition(
        wq=2 * eye, wk=eye, wv=eye, wo=eye, bo=BO, type_key=TYPE_KEY, type_value=TYPE_VALUE,
        weight_bias=np.array([WEIGHT_BIAS]), score_w_out=SCORE_W_OUT,
        score_w_inter=SCORE_W_INTER, score_bias=np.array([SCORE_BIAS]),
    )


@pytest.fixture
def hand_bundle(tmp_path: Path, tiny_inputs: dict[str, Any]) -> Path:
    return write_bundle(
        tmp_path / "hand", **tiny_inputs, composition=hand_composition(), config=HAND_CONFIG
    )


@pytest.fixture
def ref(hand_bundle: Path) -> Reference:
    return Reference(hand_bundle)


@pytest.fixture
def hand_tree(ref: Reference) -> RefTree:
    return ref.tree([0, 1, 2], behaviours=[0, 1, 0], timestamps=[0.0, 1.0, 3.0])


# ---- §2 the tree -----------------------------------------------------------------------------


def test_weights_by_hand(hand_tree: RefTree) -> None:
    assert hand_tree.t_ref == 3.0
    np.testing.assert_allclose(hand_tree.contributions, [1 / 8, 1 / 2, 1.0], rtol=1e-15)
    assert hand_tree.total_mass == pytest.approx(13 / 8, rel=1e-15)
    np.testing.assert_array_equal(hand_tree.node_ids, [0, 1, 2, 3, 4])
    np.testing.assert_allclose(hand_tree.node_weights, W_TILDE, rtol=1e-14)


def test_structure_and_evidence_cap_by_hand(hand_tree: RefTree) -> None:
    assert hand_tree.roots == [0, 4]
    assert [hand_tree.tree_children(n) for n in range(5)] == [[1, 3], [2], [], [], []]
    # cap 1 keeps the largest c_e: event 1 (c = 1/2) beats event 0 (c = 1/8) wherever both reach
    assert [hand_tree.node_evidence(n) for n in range(5)] == [[1], [1], [0], [1], [2]]
    assert hand_tree.event_nodes(1) == (0, 1, 3)


def test_evidence_ties_keep_the_later_event(ref: Reference) -> None:
    tree = ref.tree([0, 0], timestamps=[5.0, 5.0])
    assert tree.node_evidence(2) == [1]
    assert Reference(ref.arrays, node_evidence_cap=2).tree([0, 0], timestamps=[5, 5]).node_evidence(
        2
    ) == [1, 0]


def test_events_without_paths_count_in_the_total_mass(ref: Reference) -> None:
    tree = ref.tree([0, 3], timestamps=[0.0, 0.0])  # item 3 has no paths, cold start is off
    assert tree.total_mass == pytest.approx(2.0)
    np.testing.assert_array_equal(tree.node_ids, [0, 1, 2])
    np.testing.assert_allclose(tree.node_weights, [0.5, 0.5, 0.5])


def test_cold_start_takes_the_paths_of_the_nearest_leaves(ref: Reference) -> None:
    cold = Reference(ref.arrays, cold_start_paths=2)
    # item 3 at 10°: leaves 2 (40°, cos 30°) and 3 (-60°, cos 70°) beat leaf 4 (90°, cos 80°)
    assert cold.event_nodes(3) == (0, 1, 2, 3)
    assert Reference(ref.arrays, cold_start_paths=1).event_nodes(3) == (0, 1, 2)


def test_path_slots_per_behaviour(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    # item 0: behaviour 0 → leaf 2, behaviour 1 → leaf 4
    tiny_inputs["item_path_offsets"] = np.array([0, 1, 2, 2, 2, 2, 2, 2, 2])
    tiny_inputs["item_path_leaves"] = np.array([2, 4])
    path = write_bundle(
        tmp_path / "b", **tiny_inputs, path_slots=2, config={"behaviour_weights": [1.0, 1.0]}
    )
    ref = Reference(path, cold_start_paths=0)
    assert ref.event_nodes(0, behaviour=0) == (0, 1, 2)
    assert ref.event_nodes(0, behaviour=1) == (4,)


def test_normalised_weights_ignore_a_common_time_shift(small_bundle: Path) -> None:
    ref = Reference(small_bundle)
    h = make_synthetic_histories(1, 30, ref.arrays.dims.n_items, seed=3)
    base = ref.tree(h.items, timestamps=h.timestamps)
    shifted = ref.tree(h.items, timestamps=h.timestamps + 1e4)
    np.testing.assert_array_equal(base.node_ids, shifted.node_ids)
    np.testing.assert_allclose(base.node_weights, shifted.node_weights, rtol=1e-9)
    for c in (0, 17, 60):
        assert ref.contexts(base, c) == ref.contexts(shifted, c)
        np.testing.assert_allclose(ref.intent_vector(base, c), ref.intent_vector(shifted, c),
                                   atol=1e-6)


def test_adding_events_one_by_one_equals_building_at_once(small_bundle: Path) -> None:
    ref = Reference(small_bundle, behaviour_weights=[1.0, 3.0], node_evidence_cap=3)
    h = make_synthetic_histories(1, 25, ref.arrays.dims.n_items, seed=4, n_behaviours=2)
    order = np.random.default_rng(0).permutation(25)  # out of time order: t_ref moves around
    items, kinds, times = h.items[order], h.behaviours[order], h.timestamps[order]
    batch = ref.tree(items, kinds, times)
    incremental = ref.tree([])
    for item, kind, t in zip(items.tolist(), kinds.tolist(), times.tolist()):
        incremental.add(item, kind, t)
    assert incremental.t_ref == batch.t_ref == times.max()
    np.testing.assert_array_equal(incremental.node_ids, batch.node_ids)
    np.testing.assert_allclose(incremental.node_weights, batch.node_weights, rtol=1e-12)
    for c in range(0, ref.arrays.dims.n_items, 7):
        assert ref.contexts(incremental, c) == ref.contexts(batch, c)


def test_add_without_timestamp_continues_one_after_the_latest(ref: Reference) -> None:
    tree = ref.tree([])
    tree.add(0)
    assert tree.t_ref == 0.0
    tree.add(2, timestamp=7.5)
    tree.add(1, behaviour=1)
    np.testing.assert_array_equal(tree.timestamps, [0.0, 7.5, 8.5])
    assert ref.tree([0, 2, 1]).t_ref == 2.0  # batch default: positions


# ---- §3 retrieval ----------------------------------------------------------------------------


def walk_scores(candidate: int = CANDIDATE) -> dict[int, float]:
    """s_n = cos(node, candidate) + walk_alpha · ln w̃_n for the hand case."""
    return {
        n: cos_deg(NODE_ANGLES[n], ITEM_ANGLES[candidate]) + 0.5 * math.log(W_TILDE[n])
        for n in range(5)
    }


def mean(chain: list[int], candidate: int = CANDIDATE) -> float:
    s = walk_scores(candidate)
    return sum(s[n] for n in chain) / len(chain)


def test_chains_and_evidence_by_hand(ref: Reference, hand_tree: RefTree) -> None:
    # s ≈ [0.507, 0.462, -0.416, -0.247, -0.069]. Beam 2 keeps both roots, then [0,1] and
    # [0,3]; [4] and [0,3] complete, [0,1] grows to [0,1,2]. Complete chain means:
    # [0,1,2] 0.184 > [0,3] 0.130 > [4] -0.069, so the best two are [0,1,2] and [0,3].
    assert mean([0, 1, 2]) > mean([0, 3]) > mean([4])
    chains, evidence = ref.contexts(hand_tree, CANDIDATE)
    assert chains == [[0, 1, 2], [0, 3]]
    # Evidence: node 2 keeps event 0, node 3 keeps event 1. Scores ln(c/W) + cos(item, cand):
    # event 1: ln(4/13) + cos 60° ≈ -0.679 beats event 0: ln(1/13) + cos 25° ≈ -1.659.
    ev = {e: math.log(C_OVER_W[e]) + cos_deg(ITEM_ANGLES[e], ITEM_ANGLES[CANDIDATE])
          for e in (0, 1)}
    assert ev[1] > ev[0]
    assert evidence == [1, 0]


def test_a_chain_scores_the_mean_not_the_sum_of_its_nodes(hand_bundle: Path) -> None:
    ref = Reference(hand_bundle, max_chains=1)
    tree = ref.tree([0, 1, 2], behaviours=[0, 1, 0], timestamps=[0.0, 1.0, 3.0])
    # for item 0 (35°): s ≈ [0.341, 0.518, -0.286, -0.676, 0.331]; by sum [0,1,2] (0.574)
    # would beat [4] (0.331), by mean [4] beats [0,1,2] (0.191)
    assert mean([4], candidate=0) > mean([0, 1, 2], candidate=0)
    assert 3 * mean([0, 1, 2], candidate=0) > mean([4], candidate=0)
    assert ref.contexts(tree, 0) == ([[4]], [2])


@pytest.mark.parametrize(
    ("overrides", "chains", "evidence"),
    [
        # beam 1 keeps only root 0, then only [0,1]: root 4 and [0,3] never complete
        ({"beam_width": 1}, [[0, 1, 2]], [0]),
        # chains stop at 2 nodes: [0,1] (0.484) and [0,3]; node 1 keeps event 1 only
        ({"max_chain_depth": 2}, [[0, 1], [0, 3]], [1]),
        # chain [4] adds event 2: ln(8/13) + cos 70° ≈ -0.144, ahead of events 1 and 0
        ({"max_chains": 3}, [[0, 1, 2], [0, 3], [4]], [2, 1, 0]),
        ({"max_evidence": 1}, [[0, 1, 2], [0, 3]], [1]),
        ({"max_evidence": 0}, [[0, 1, 2], [0, 3]], []),
        # event 0 is 3 time units old
        ({"evidence_max_age": 2.5}, [[0, 1, 2], [0, 3]], [1]),
        # similarity weighs 5x: event 0 ≈ -2.565 + 5 cos 25° ≈ 1.967, event 1 ≈ 1.321,
        # event 2 ≈ -0.486 + 5 cos 70° ≈ 1.224
        ({"max_chains": 3, "evidence_alpha": 5.0}, [[0, 1, 2], [0, 3], [4]], [0, 1, 2]),
    ],
)
def test_walk_and_evidence_settings(
    hand_bundle: Path, overrides: dict[str, Any], chains: list[list[int]], evidence: list[int]
) -> None:
    ref = Reference(hand_bundle, **overrides)
    tree = ref.tree([0, 1, 2], behaviours=[0, 1, 0], timestamps=[0.0, 1.0, 3.0])
    assert ref.contexts(tree, CANDIDATE) == (chains, evidence)

# ---- §4 composition --------------------------------------------------------------------------


def hand_intent_vector() -> np.ndarray:
    """u for the hand case, slot by slot: chain nodes 0, 1, 2, 3, evidence 1, 0, null."""
    x = np.array([math.cos(math.radians(10)), math.sin(math.radians(10))])
    slots = [(np.array([math.cos(math.radians(NODE_ANGLES[n])),
                        math.sin(math.radians(NODE_ANGLES[n]))]), W_TILDE[n], DEPTH[n] - 1)
             for n in (0, 1, 2, 3)]
    slots += [(np.array([math.cos(math.radians(ITEM_ANGLES[e])),
                         math.sin(math.radians(ITEM_ANGLES[e]))]), C_OVER_W[e], 3)
              for e in (1, 0)]
    slots.append((np.zeros(2), 1.0, 4))
    logits = [
        (2 * x) @ (z + TYPE_KEY[t]) / math.sqrt(2) + WEIGHT_BIAS * math.log(w) for z, w, t in slots
    ]
    exp = [math.exp(v) for v in logits]
    attention = [e / sum(exp) for e in exp]
    return sum(a * (z + TYPE_VALUE[t]) for a, (z, _, t) in zip(attention, slots)) + BO


def test_intent_vector_and_score_by_hand(ref: Reference, hand_tree: RefTree) -> None:
    u = hand_intent_vector()
    np.testing.assert_allclose(ref.intent_vector(hand_tree, CANDIDATE), u, rtol=1e-6)
    x = np.array([math.cos(math.radians(10)), math.sin(math.radians(10))])
    expected = SCORE_W_OUT @ u + SCORE_W_INTER @ (u * x) + SCORE_BIAS
    assert ref.score(hand_tree, CANDIDATE) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(ref.scores(hand_tree, [CANDIDATE, 0]),
                               [expected, ref.score(hand_tree, 0)])
    np.testing.assert_allclose(ref.intent_vectors(hand_tree, [CANDIDATE])[0], u, rtol=1e-6)


def test_empty_history_attends_to_the_null_slot_alone(small_bundle: Path) -> None:
    ref = Reference(small_bundle)
    empty = ref.tree([])
    assert empty.t_ref is None and empty.total_mass == 0.0 and empty.node_ids.size == 0
    assert ref.contexts(empty, 5) == ([], [])
    b, null = ref.arrays, ref.arrays.dims.max_depth + 1
    expected = b.compose_bo + b.compose_type_value[null].astype(np.float64) @ b.compose_wo
    for candidate in (5, 77):
        np.testing.assert_allclose(ref.intent_vector(empty, candidate), expected, atol=1e-6)


# ---- §5 top-k --------------------------------------------------------------------------------


def test_nearest_intents_by_hand(ref: Reference) -> None:
    ids, sims = ref.nearest_intents([3 * math.cos(math.radians(10)),
                                     3 * math.sin(math.radians(10))], 2)
    np.testing.assert_array_equal(ids, [2, 3])
    np.testing.assert_allclose(sims, [cos_deg(40, 10), cos_deg(-60, 10)], rtol=1e-6)


def test_retrieve_by_hand(ref: Reference, hand_tree: RefTree) -> None:
    # tree leaves 2, 3, 4 with w̃ 1/13, 4/13, 8/13: the profile points up-right, nearer item 0
    # (35°) than item 1 (-50°)
    profile = sum(W_TILDE[n] * np.array([math.cos(math.radians(NODE_ANGLES[n])),
                                         math.sin(math.radians(NODE_ANGLES[n]))])
                  for n in (2, 3, 4))
    profile /= np.linalg.norm(profile)
    sims = [profile @ [math.cos(math.radians(a)), math.sin(math.radians(a))]
            for a in ITEM_ANGLES[:2]]
    ids, values = ref.retrieve(hand_tree, 0, k=2, rerank=False)
    np.testing.assert_array_equal(ids, [0, 1])
    np.testing.assert_allclose(values, sims, rtol=1e-6)
    ids, values = ref.retrieve(hand_tree, 0, k=2, pool=1)  # pool 1: only item 0 is scored
    np.testing.assert_array_equal(ids, [0])
    np.testing.assert_allclose(values, [ref.score(hand_tree, 0)], rtol=1e-6)
    ids, values = ref.retrieve(hand_tree, 1, k=2)
    scores = [ref.score(hand_tree, i) for i in (2, 3)]
    np.testing.assert_array_equal(ids, [2, 3] if scores[0] >= scores[1] else [3, 2])
    assert ref.retrieve(ref.tree([]), 0)[0].size == 0


# ---- input errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.tree([0, 4]), UnknownItemError),
        (lambda r: r.tree([-1]), UnknownItemError),
        (lambda r: r.tree([0], behaviours=[2]), UnknownBehaviourError),
        (lambda r: r.tree([0], timestamps=[math.nan]), InputError),
        (lambda r: r.tree([0.0, 1.0]), InputTypeError),
        (lambda r: r.tree([0, 1], timestamps=[0.0]), InputError),
        (lambda r: r.tree([]).add(0, behaviour=5), UnknownBehaviourError),
        (lambda r: r.tree([]).add(0, timestamp=math.inf), InputError),
        (lambda r: r.contexts(r.tree([0]), 9), UnknownItemError),
        (lambda r: r.retrieve(r.tree([0]), 2), InputError),
        (lambda r: r.nearest_intents([0.0, 0.0], 1), InputError),
        (lambda r: Reference(r.arrays, beam_width=0), ConfigError),
        (lambda r: Reference(r.arrays, no_such_key=1), ConfigError),
        (lambda r: Reference(r.arrays, behaviour_weights=[1.0]).tree([0], behaviours=[1]),
         UnknownBehaviourError),
    ],
)
def test_bad_input_raises_typed_errors(ref: Reference, call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        call(ref)
