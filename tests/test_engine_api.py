"""The public Engine API: every documented behaviour on bad or edge-case input, and thread
safety. (Parity with the reference lives in test_parity.py.)"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

import airrec
from airrec import Engine, Histories
from airrec.errors import (
    AirrecError,
    ConfigError,
    InputError,
    InputTypeError,
    UnknownBehaviourError,
    UnknownItemError,
)


@pytest.fixture(scope="module")
def engine(small_bundle: Path) -> Engine:
    return Engine.load(small_bundle)


def test_errors_form_one_hierarchy() -> None:
    assert issubclass(UnknownItemError, InputError)
    assert issubclass(InputError, ValueError) and issubclass(InputError, AirrecError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, AirrecError)
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("bad", [-1, 120, 10**12])
def test_unknown_items_in_history_and_candidates(engine: Engine, bad: int) -> None:
    with pytest.raises(UnknownItemError, match=str(bad)):
        engine.tree([1, bad, 2])
    with pytest.raises(UnknownItemError):
        engine.score([1, 2], [3, bad])
    with pytest.raises(UnknownItemError):
        engine.explain([1, 2], bad)


def test_unknown_behaviour_and_bad_timestamps(engine: Engine) -> None:
    with pytest.raises(UnknownBehaviourError):
        engine.tree([1, 2], behaviours=[0, 1])  # the bundle configures one behaviour type
    with pytest.raises(InputError, match="finite"):
        engine.tree([1, 2], timestamps=[0.0, float("nan")])
    with pytest.raises(InputError, match="same length"):
        engine.tree([1, 2], timestamps=[0.0])


def test_wrong_dtypes_and_shapes(engine: Engine) -> None:
    with pytest.raises(InputTypeError, match="integers"):
        engine.tree(np.array([1.0, 2.0]))
    with pytest.raises(InputTypeError):
        engine.score([1], np.array([b"a", b"b"]))
    with pytest.raises(UnknownItemError, match='"a"'):  # str: external ids, none of this bundle's
        engine.score([1], np.array(["a", "b"]))
    with pytest.raises(InputError, match="1-D"):
        engine.tree(np.array([[1, 2]]))
    with pytest.raises(InputError, match="shape"):
        engine.score([1], np.zeros((2, engine.dim + 1), np.float32))
    # Every integer dtype is accepted and gives the same answer as int64.
    base = engine.score(np.array([1, 5, 9]), np.array([3, 4]))
    for dt in (np.int32, np.uint16, np.int8):
        np.testing.assert_array_equal(engine.score(np.array([1, 5, 9], dt), np.array([3, 4], dt)), base)


def test_empty_history_attends_to_the_null_slot(engine: Engine) -> None:
    tree = engine.tree([])
    assert tree.n_events == 0 and tree.n_nodes == 0
    vecs = engine.intent_vectors(tree, [3, 7])
    # The null slot alone: the same vector whatever the candidate.
    np.testing.assert_allclose(vecs[0], vecs[1], atol=1e-6)
    e = engine.explain(tree, 3)
    assert e.chains == [] and e.evidence == [] and e.null_attention == pytest.approx(1.0)
    ids, scores = engine.retrieve(tree, 0, k=5)
    assert ids.size == 0 and scores.size == 0


def test_empty_candidates_give_empty_results(engine: Engine) -> None:
    assert engine.score([1, 2], []).shape == (0,)
    assert engine.intent_vectors([1, 2], []).shape == (0, engine.dim)


def test_candidate_vectors_nan_and_shape(engine: Engine) -> None:
    v = np.random.default_rng(0).normal(size=(2, engine.dim)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    assert engine.score([1, 2], v).shape == (2,)
    v[1, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        engine.score([1, 2], v)
    with pytest.raises(InputError):
        engine.nearest_intents(np.full(engine.dim, np.inf, np.float32))


def test_vector_candidates_match_item_candidates(engine: Engine, small_bundle: Path) -> None:
    from airrec.bundle import load_arrays

    items = load_arrays(small_bundle).item_vectors
    np.testing.assert_allclose(engine.score([1, 2, 3], items[[4, 5]].astype(np.float32)),
                               engine.score([1, 2, 3], [4, 5]), atol=1e-5)


@pytest.mark.parametrize("k", [-1, -100])
def test_negative_k_is_refused(engine: Engine, k: int) -> None:
    with pytest.raises(InputError, match=">= 0"):
        engine.retrieve([1, 2], 0, k=k)
    with pytest.raises(InputError, match=">= 0"):
        engine.nearest_intents(np.ones(engine.dim, np.float32), k=k)
    with pytest.raises(InputTypeError):
        engine.retrieve([1, 2], 0, k=2.5)  # type: ignore[arg-type]


def test_retrieve_by_domain_name_and_k_zero(engine: Engine) -> None:
    ids, _ = engine.retrieve([1, 2, 3], engine.domains[0], k=0)
    assert ids.size == 0
    with pytest.raises(InputError, match="unknown domain"):
        engine.retrieve([1, 2, 3], "no-such-domain", k=3)
    with pytest.raises(InputError, match="domain"):
        engine.retrieve([1, 2, 3], 99, k=3)


def test_config_overrides_are_validated(small_bundle: Path, engine: Engine) -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        Engine.load(small_bundle, beam_widht=3)
    with pytest.raises(ConfigError):
        engine.with_config(beam_width=0)
    wide = engine.with_config(beam_width=8)
    assert wide.config["beam_width"] == 8 and engine.config["beam_width"] != 8


def test_trees_are_bound_to_their_engine_settings(engine: Engine) -> None:
    tree = engine.tree([1, 2, 3])
    engine.with_config(beam_width=1).score(tree, [4])  # walk settings may change
    with pytest.raises(InputError, match="rebuild"):
        engine.with_config(decay_lambda=0.5).score(tree, [4])


def test_incremental_tree_equals_batch_tree(engine: Engine) -> None:
    items = [5, 9, 9, 17, 40, 3]
    inc = engine.tree([])
    for it in items:
        inc.add(it)
    full = engine.tree(items)
    np.testing.assert_array_equal(inc.node_ids, full.node_ids)
    np.testing.assert_allclose(inc.node_weights, full.node_weights, rtol=1e-12)
    np.testing.assert_allclose(engine.score(inc, [1, 2, 60]), engine.score(full, [1, 2, 60]), atol=1e-6)


def test_batch_matches_single_requests_for_any_thread_count(engine: Engine) -> None:
    rng = np.random.default_rng(3)
    lists = [rng.integers(0, 120, size=n).tolist() for n in (0, 1, 7, 30, 12)]
    cands = rng.integers(0, 120, size=(len(lists), 6))
    h = Histories.from_lists(lists)
    single = np.stack([engine.score(lst, c) for lst, c in zip(lists, cands)])
    for threads in (None, 1, 2, 3):
        np.testing.assert_array_equal(engine.score_batch(h, cands, n_threads=threads), single)
    vecs = engine.intent_vectors_batch(h, cands)
    assert vecs.shape == (len(lists), 6, engine.dim)
    np.testing.assert_array_equal(vecs[3], engine.intent_vectors(lists[3], cands[3]))


def test_batch_input_errors(engine: Engine) -> None:
    h = Histories.from_lists([[1, 2], [3]])
    with pytest.raises(InputError, match="rows"):
        engine.score_batch(h, np.zeros((3, 2), np.int64))
    with pytest.raises(InputError, match="2-D"):
        engine.score_batch(h, np.zeros(4, np.int64))
    with pytest.raises(InputError, match="n_threads"):
        engine.score_batch(h, np.zeros((2, 2), np.int64), n_threads=0)
    with pytest.raises(InputError, match="offsets"):
        bad = Histories(np.array([0, 5]), np.array([1, 2]), np.zeros(2, np.int64), np.zeros(2))
        engine.score_batch(bad, np.zeros((1, 2), np.int64))
    with pytest.raises(InputTypeError):
        engine.score_batch([[1, 2]], np.zeros((1, 2), np.int64))  # type: ignore[arg-type]


def test_threads_share_one_engine_and_agree_with_serial(engine: Engine) -> None:
    rng = np.random.default_rng(11)
    jobs = [(rng.integers(0, 120, size=20), rng.integers(0, 120, size=30)) for _ in range(16)]
    serial = [engine.score(h, c) for h, c in jobs]
    results: dict[int, np.ndarray] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            for _ in range(20):
                results[k] = engine.score(*jobs[k])
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for k, want in enumerate(serial):
        np.testing.assert_array_equal(results[k], want)


def test_explanation_names_phrases_and_evidence(engine: Engine) -> None:
    history = [10, 11, 12, 13]
    e = engine.explain(history, 14)
    assert e.score == pytest.approx(float(engine.score(history, [14])[0]), abs=1e-5)
    np.testing.assert_allclose(e.intent_vector, engine.intent_vectors(history, [14])[0], atol=1e-6)
    for chain in e.chains:
        assert chain["phrases"] == [engine.phrase(n) for n in chain["nodes"]]
        assert " > ".join(chain["phrases"]) == engine.path_text(chain["nodes"][-1])
    assert all(0 <= ev["event"] < len(history) and ev["item"] == history[ev["event"]] for ev in e.evidence)
    # Chains share prefix nodes; each node is one attention slot.
    per_node = {n: a for c in e.chains for n, a in zip(c["nodes"], c["attention"])}
    total = sum(per_node.values()) + sum(ev["attention"] for ev in e.evidence) + e.null_attention
    assert total == pytest.approx(1.0, abs=1e-5)
    assert "candidate 14" in str(e)


def test_version_and_repr(engine: Engine) -> None:
    assert airrec.__version__ and airrec.FORMAT_VERSION == 3
    assert "Engine(" in repr(engine) and "UserTree(" in repr(engine.tree([1]))


def _live_threads() -> int:
    import os

    return len(os.listdir("/proc/self/task"))


def test_thread_counts_are_bounded_and_pools_do_not_pile_up(engine: Engine) -> None:
    h = Histories.from_lists([[1, 2, 3], [4, 5]])
    cands = np.array([[1, 2], [3, 4]])
    for bad in (0, 257, 2**63 - 1, 2**63, 2**64):
        with pytest.raises(InputError):
            engine.score_batch(h, cands, n_threads=bad)
    expected = engine.score_batch(h, cands, n_threads=1)
    before = _live_threads()
    for n in range(2, 22):  # 20 distinct counts: 230 threads if every pool were kept
        assert np.array_equal(engine.score_batch(h, cands, n_threads=n), expected)
    # The 4 pools kept hold at most 18 + 19 + 20 + 21 = 78 threads; evicted pools' threads
    # exit on their own schedule, so give them a moment.
    deadline = time.monotonic() + 5
    while _live_threads() - before > 90 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_threads() - before <= 90, _live_threads() - before


def test_huge_counts_are_typed_errors(engine: Engine) -> None:
    tree = engine.tree([1, 2])
    for call in (
        lambda: engine.retrieve(tree, 0, 2**63),
        lambda: engine.retrieve(tree, 0, 5, pool=2**64),
        lambda: engine.retrieve(tree, 2**63, 5),
        lambda: engine.nearest_intents(np.ones(engine.dim, np.float32), 2**70),
    ):
        with pytest.raises(InputError):
            call()
    # large but representable: capped at what exists, never an abort
    items, _ = engine.retrieve(tree, 0, 2**62, pool=2**62, rerank=False)
    assert 0 < len(items) <= engine.n_items


def test_add_follows_the_same_rules_as_tree(engine: Engine) -> None:
    tree = engine.tree([1])
    for item in (1.5, None, True, b"3"):
        with pytest.raises(InputTypeError):
            tree.add(item)  # type: ignore[arg-type]
        with pytest.raises(InputTypeError):
            engine.tree([item])
    # A str is an external id: "3" names no item of this bundle (its ids are sku-000000, ...).
    with pytest.raises(UnknownItemError, match='unknown item id "3"'):
        tree.add("3")
    with pytest.raises(UnknownItemError):
        engine.tree(["3"])
    with pytest.raises(InputError):
        tree.add(2**64)
    for stamp in (float("nan"), float("inf")):
        with pytest.raises(InputError):
            tree.add(2, 0, stamp)
    with pytest.raises(InputTypeError):
        tree.add(2, 0, "abc")  # type: ignore[arg-type]
    assert tree.n_events == 1  # nothing above was added
    tree.add(np.int64(2), np.int32(0), np.float32(5.0))
    assert tree.n_events == 2


def test_histories_offsets_are_checked(engine: Engine) -> None:
    for offsets in ([0, 5, 2], [1, 3], [0, 2], [], [0, 4]):
        with pytest.raises(InputError, match="offsets"):
            Histories.from_arrays(offsets, [1, 2, 3])
    assert Histories.from_arrays([0, 1, 3], [1, 2, 3]).n_users == 2


def test_vectors_that_would_give_non_finite_scores_are_refused(engine: Engine) -> None:
    tree = engine.tree([1, 2, 3])
    ok = np.full((1, engine.dim), 1.0 / np.sqrt(engine.dim), np.float32)
    assert np.isfinite(engine.score(tree, ok)).all()
    for value in (3e38, 1e39, np.nan, np.inf, -1e16):
        bad = ok.astype(np.float64).copy()
        bad[0, 0] = value
        with pytest.raises(InputError, match="finite"):
            engine.score(tree, bad)
        with pytest.raises(InputError, match="finite"):
            engine.intent_vectors(tree, bad)
        with pytest.raises(InputError, match="finite"):
            engine.nearest_intents(bad[0], 3)


def test_huge_behaviour_weights_are_refused(small_bundle: Path) -> None:
    with pytest.raises(ConfigError, match="behaviour_weights"):
        Engine.load(small_bundle, behaviour_weights=[1e308])


def test_adding_while_another_thread_scores_is_a_typed_error(engine: Engine) -> None:
    """Scoring reads the tree without the GIL; an add arriving meanwhile used to be PyO3's bare
    ``RuntimeError: Already borrowed``."""
    tree = engine.tree(list(range(1, 40)))
    candidates = np.arange(engine.n_items, dtype=np.int64).repeat(20)
    stop = threading.Event()
    errors: list[BaseException] = []

    def score() -> None:
        while not stop.is_set():
            engine.score(tree, candidates)

    reader = threading.Thread(target=score)
    reader.start()
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(errors) < 20:
            try:
                tree.add(1)
            except Exception as exc:  # collected: the test is about which type arrives
                errors.append(exc)
            time.sleep(0)
    finally:
        stop.set()
        reader.join()
    assert errors, "no add overlapped a score in 3 s"
    assert all(isinstance(e, airrec.TreeBusyError) for e in errors), {type(e) for e in errors}
    assert isinstance(errors[0], airrec.InputError) and "one owner" in str(errors[0])
