"""The AIR model: engine slots, torch composition = engine composition, training, export."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from airrec import Engine, Histories, InputError, InputTypeError, UnknownItemError
from airrec.bundle import load_arrays, read_manifest, replace_composition
from airrec.data import Dataset
from airrec.evaluate import PopularityScorer, evaluate, get_negatives
from airrec.models.air import AIRVariant, IntentComposition
from airrec.models.air_train import AIRTrainConfig, train_air
from airrec.models.suite import check_export_parity
from airrec.models.train import TrainConfig
from airrec.synthetic import make_synthetic_bundle

BACKBONE = TrainConfig(dim=32, batch_size=16, lr=5e-3, dropout=0.0, n_negatives=20, progress=False)
AIR_FAST = AIRTrainConfig(epochs=6, n_negatives=10, eval_negatives=20, eval_from=1, min_epochs=1, patience=6,
                          progress=False)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 items in two blocks of 30, like the cyclic dataset's two domains."""
    out = tmp_path_factory.mktemp("air") / "bundle"
    return make_synthetic_bundle(out, n_nodes=300, n_items=60, dim=16, n_heads=2, depth=3, paths_per_item=2, seed=3)


@pytest.fixture(scope="module")
def engine(bundle: Path) -> Engine:
    return Engine.load(bundle)


def _histories(n_users: int, n_items: int, seed: int) -> Histories:
    rng = np.random.default_rng(seed)
    return Histories.from_lists([rng.integers(0, n_items, int(rng.integers(0, 25))).tolist() for _ in range(n_users)])


def _perturbed(bundle: Path, tmp: Path, seed: int = 0) -> Path:
    """The bundle with random (non-init) composition weights, as training would leave them."""
    comp = load_arrays(bundle).composition
    rng = np.random.default_rng(seed)
    arrays = {k: v + rng.normal(0, 0.3, v.shape).astype(np.float32) for k, v in comp.arrays().items()}
    from airrec.bundle import Composition

    return replace_composition(bundle, tmp / "perturbed", Composition.from_arrays(arrays))


def test_slots_are_what_the_engine_composes(engine: Engine) -> None:
    hist = _histories(7, engine.n_items, 1)
    cands = np.random.default_rng(2).integers(0, engine.n_items, (7, 9))
    slots = engine.slots_batch(hist, cands)
    width = engine.slot_width
    assert slots.ids.shape == slots.types.shape == slots.ln_w.shape == (7, 9, width)
    assert (slots.ids.dtype, slots.types.dtype, slots.ln_w.dtype) == (np.int32, np.uint8, np.float32)
    depth = engine.dims["max_depth"]
    filled = 0
    for u in range(7):
        lo, hi = hist.offsets[u], hist.offsets[u + 1]
        tree = engine.tree(hist.items[lo:hi])
        for k, ctx in enumerate(engine.contexts(tree, cands[u])):
            nodes = list(dict.fromkeys(n for chain in ctx.chains for n in chain))
            items = [int(hist.items[lo + e]) for e in ctx.evidence]
            n = len(nodes) + len(items)
            assert slots.ids[u, k, :n].tolist() == nodes + items
            assert (slots.types[u, k, len(nodes):n] == depth).all()
            assert (slots.types[u, k, :len(nodes)] < depth).all()
            assert (slots.ids[u, k, n:] == -1).all() and (slots.types[u, k, n:] == 255).all()
            assert np.isfinite(slots.ln_w[u, k, :n]).all() and (slots.ln_w[u, k, :n] <= 1e-6).all()
            filled += n
    assert filled > 0


def test_slots_bad_input_is_typed(engine: Engine) -> None:
    hist = _histories(2, engine.n_items, 3)
    with pytest.raises(InputTypeError):
        engine.slots_batch([[1, 2]], np.zeros((1, 3), np.int64))  # type: ignore[arg-type]
    with pytest.raises(UnknownItemError):
        engine.slots_batch(hist, np.full((2, 3), engine.n_items))
    with pytest.raises(InputError):
        engine.slots_batch(hist, np.zeros((3, 3), np.int64))  # 3 rows for 2 users
    with pytest.raises(InputError):
        engine.tree_slots_batch(hist, -1)


def test_tree_slots_are_the_heaviest_nodes(engine: Engine) -> None:
    hist = _histories(5, engine.n_items, 4)
    ids, ln_w = engine.tree_slots_batch(hist, 6)
    assert ids.shape == ln_w.shape == (5, 6)
    for u in range(5):
        tree = engine.tree(hist.items[hist.offsets[u] : hist.offsets[u + 1]])
        order = sorted(zip(-tree.node_weights, tree.node_ids))[:6]
        expected = [int(n) for _, n in order]
        assert ids[u, : len(expected)].tolist() == expected
        assert (ids[u, len(expected):] == -1).all()


def test_torch_composition_equals_the_engine(bundle: Path, tmp_path: Path) -> None:
    """Same slots, same weights: intent vectors and scores to 1e-5 (non-init weights)."""
    path = _perturbed(bundle, tmp_path)
    engine = Engine.load(path)
    arrays = load_arrays(path)
    comp = IntentComposition(arrays.composition, arrays.node_vectors, arrays.item_vectors)
    hist = _histories(12, engine.n_items, 5)
    cands = np.random.default_rng(6).integers(0, engine.n_items, (12, 15))
    slots = engine.slots_batch(hist, cands)
    with torch.no_grad():
        x = comp.candidate_vectors(torch.from_numpy(cands))
        u = comp(x, torch.from_numpy(slots.ids), torch.from_numpy(slots.types), torch.from_numpy(slots.ln_w))
        s = comp.score(u, x)
    np.testing.assert_allclose(u.numpy(), engine.intent_vectors_batch(hist, cands), atol=1e-5, rtol=0)
    np.testing.assert_allclose(s.numpy(), engine.score_batch(hist, cands), atol=1e-5, rtol=0)
    # And the export round-trips the weights exactly.
    back = comp.to_composition()
    for name, value in arrays.composition.arrays().items():
        np.testing.assert_array_equal(back.arrays()[name], value)


def test_replace_composition_checks_and_records(bundle: Path, tmp_path: Path) -> None:
    comp = load_arrays(bundle).composition
    out = replace_composition(bundle, tmp_path / "b", comp, config={"walk_alpha": 0.0},
                              meta={"composition": {"trained": True}})
    m = read_manifest(out)
    assert m["config"]["walk_alpha"] == 0.0 and m["meta"]["composition"]["trained"] is True
    assert Engine.load(out).config["walk_alpha"] == 0.0
    with pytest.raises(Exception, match="exists"):
        replace_composition(bundle, out, comp)
    from airrec.bundle import Composition

    small = Composition.init(8, 8, 2, 3)
    with pytest.raises(InputError, match="do not match"):
        replace_composition(bundle, tmp_path / "c", small)


@pytest.fixture(scope="module")
def trained(cyclic: Dataset, engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> object:
    cache = tmp_path_factory.mktemp("neg")
    return train_air(cyclic, engine, dataclasses.replace(AIR_FAST, negatives_cache=cache), BACKBONE)


def test_air_learns_and_beats_popularity_on_its_training_users(trained: object, cyclic: Dataset) -> None:
    neg = get_negatives(cyclic, "test", 20, 0)
    pop = evaluate(PopularityScorer(cyclic), cyclic, "test", neg).metrics()["all"]["HR@10"]
    air = evaluate(trained.scorer, cyclic, "test", neg).metrics()["all"]["HR@10"]  # type: ignore[attr-defined]
    assert air > pop + 0.2, (air, pop)
    assert trained.best_epoch >= 1 and all(e.train_seconds > 0 for e in trained.epochs)  # type: ignore[attr-defined]


def test_trained_air_exports_with_parity(trained: object, cyclic: Dataset, bundle: Path, tmp_path: Path) -> None:
    comp = trained.scorer.model.composition  # type: ignore[attr-defined]
    init = load_arrays(bundle).composition
    assert not np.array_equal(comp.to_composition().wq, init.wq), "training must move the composition"
    out = replace_composition(bundle, tmp_path / "air", comp.to_composition())
    parity = check_export_parity(trained.scorer, out, cyclic, n_lines=20)  # type: ignore[attr-defined]
    assert parity["max_abs_intent_vector"] <= 1e-5 and parity["max_abs_score"] <= 1e-5, parity


def test_same_seed_same_model(cyclic: Dataset, engine: Engine, tmp_path: Path) -> None:
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path)
    a = train_air(cyclic, engine, cfg, BACKBONE)
    b = train_air(cyclic, engine, cfg, BACKBONE)
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    assert np.array_equal(a.scorer.score(hist, cand), b.scorer.score(hist, cand))


@pytest.mark.parametrize("switches", [{"use_weights": False}, {"target_aware": False}, {"item_intents": True},
                                      {"backbone": "gru4rec"}])
def test_ablations_train_and_score(cyclic: Dataset, engine: Engine, tmp_path: Path, switches: dict[str, object]) -> None:
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path)
    r = train_air(cyclic, engine, cfg, BACKBONE, variant=AIRVariant(**switches))
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    scores = r.scorer.score(hist, cand)
    assert scores.shape == cand.shape and np.isfinite(scores).all()
    if not switches.get("use_weights", True):
        assert float(r.scorer.model.composition.weight_bias.abs().max()) == 0.0
    if switches.get("backbone") == "gru4rec":
        from airrec.models.gru4rec import GRU4Rec

        assert isinstance(r.scorer.model.backbone, GRU4Rec)


def test_air_positions_draw_distinct_positions_with_a_history() -> None:
    from airrec.models.air_train import _air_positions

    lengths = np.array([5, 1, 3, 0, 4], dtype=np.int64)
    starts = np.array([0, 0, 7, 0, 2], dtype=np.int64)  # rows 0, 1, 3 begin their sequence
    for per_row in (0, 1, 2, 3, 10):
        rows, pos = _air_positions(lengths, starts, np.random.default_rng(per_row), per_row)
        assert rows.dtype == pos.dtype == np.int64 and rows.shape == pos.shape
        pairs = set(zip(rows.tolist(), pos.tolist(), strict=True))
        assert len(pairs) == rows.size  # no position twice
        low = (starts == 0).astype(np.int64)
        assert ((pos >= low[rows]) & (pos < lengths[rows])).all()  # a history, inside the row
        counts = np.bincount(rows, minlength=lengths.size)
        span = np.maximum(lengths - low, 0)
        want = span if per_row == 0 else np.minimum(span, per_row)
        assert counts.tolist() == want.tolist()  # rows 1 and 3 have no usable position
    rows, pos = _air_positions(lengths, starts, np.random.default_rng(0), 0)
    assert sorted(zip(rows.tolist(), pos.tolist(), strict=True)) == [
        (0, 1), (0, 2), (0, 3), (0, 4), (2, 0), (2, 1), (2, 2), (4, 0), (4, 1), (4, 2), (4, 3)]


def test_more_positions_and_negatives_train(cyclic: Dataset, engine: Engine, tmp_path: Path) -> None:
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path)
    one = train_air(cyclic, engine, cfg, BACKBONE)
    every = train_air(cyclic, engine, dataclasses.replace(cfg, positions=0, n_negatives=25), BACKBONE)
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    a, b = one.scorer.score(hist, cand), every.scorer.score(hist, cand)
    assert np.isfinite(b).all() and not np.allclose(a, b)  # the objective saw other examples
    with pytest.raises(InputError, match="positions must be >= 0"):
        train_air(cyclic, engine, dataclasses.replace(cfg, positions=-1), BACKBONE)


def test_engine_settings_train_serve_and_survive_the_checkpoint(cyclic: Dataset, engine: Engine,
                                                                 tmp_path: Path) -> None:
    from airrec import ConfigError
    from airrec.models.air_train import load_air_scorer, save_air_checkpoint

    settings = {"max_chains": 1, "max_evidence": 1}
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path, engine=settings)
    r = train_air(cyclic, engine, cfg, BACKBONE)
    assert {k: r.scorer.engine.config[k] for k in settings} == settings
    assert r.scorer.engine.slot_width < engine.slot_width  # the composition saw fewer slots
    path = save_air_checkpoint(r, BACKBONE, tmp_path / "air.pt")
    again = load_air_scorer(path, engine, cyclic)  # the bundle's engine: the checkpoint re-applies them
    assert {k: again.engine.config[k] for k in settings} == settings
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    np.testing.assert_array_equal(again.score(hist, cand), r.scorer.score(hist, cand))
    with pytest.raises(ConfigError):
        train_air(cyclic, engine, dataclasses.replace(cfg, engine={"max_evidnce": 3}), BACKBONE)


@pytest.mark.parametrize("backbone", ["gru4rec", "sasrec-mixed"])
def test_plugin_backbone_trains_exactly_as_its_baseline(cyclic: Dataset, engine: Engine, tmp_path: Path,
                                                         backbone: str) -> None:
    """``backbone_grad=False``: the AIR objective never reaches the backbone and draws from its
    own stream, so after an epoch the backbone holds the baseline's weights bit for bit (and
    with the default joint objective it does not)."""
    from airrec.models.train import train_model

    base = train_model(backbone, cyclic, dataclasses.replace(BACKBONE, epochs=1, min_epochs=0,
                                                             eval_negatives=20, negatives_cache=tmp_path))
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path)
    want = base.scorer.model.state_dict()
    for grad in (False, True):
        r = train_air(cyclic, engine, dataclasses.replace(cfg, backbone_grad=grad), BACKBONE,
                      variant=AIRVariant(backbone=backbone))
        got = r.scorer.model.backbone.state_dict()
        assert got.keys() == want.keys()
        same = all(torch.equal(got[k], want[k]) for k in want)
        assert same is not grad, f"backbone_grad={grad}"
        if not grad:  # the intent part still learned
            init = load_arrays(engine.path).composition
            assert not np.array_equal(r.scorer.model.composition.to_composition().wq, init.wq)
            assert float(r.scorer.model.interaction.detach().abs().max()) > 0


@pytest.mark.parametrize("backbone", ["gru4rec", "sasrec-mixed"])
def test_plugin_selected_on_its_backbone_keeps_the_baselines_epoch(cyclic: Dataset, engine: Engine, tmp_path: Path,
                                                                   backbone: str) -> None:
    """``select_on="backbone"``: the kept epoch and the stop are the baseline's, so with
    ``backbone_grad=False`` AIR holds the baseline's selected backbone exactly."""
    from airrec.models.train import train_model

    bcfg = dataclasses.replace(BACKBONE, epochs=4, min_epochs=0, patience=1, eval_negatives=20,
                               negatives_cache=tmp_path)
    base = train_model(backbone, cyclic, bcfg)
    cfg = dataclasses.replace(AIR_FAST, epochs=4, negatives_cache=tmp_path, backbone_grad=False, select_on="backbone")
    r = train_air(cyclic, engine, cfg, bcfg, variant=AIRVariant(backbone=backbone))
    assert r.best_epoch == base.best_epoch and len(r.epochs) == len(base.epochs)
    assert [e.valid_hr10 for e in r.epochs] == [e.valid_hr10 for e in base.epochs]  # the backbone's, every epoch
    want, got = base.scorer.model.state_dict(), r.scorer.model.backbone.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)
    assert 0.0 <= r.best_valid_hr10 <= 1.0  # the AIR score's valid at the kept epoch
    with pytest.raises(InputError, match="select_on"):
        train_air(cyclic, engine, dataclasses.replace(cfg, select_on="test"), bcfg)


def test_air_backbone_is_checked(cyclic: Dataset, engine: Engine, tmp_path: Path) -> None:
    cfg = dataclasses.replace(AIR_FAST, epochs=1, negatives_cache=tmp_path)
    with pytest.raises(InputError, match="choose sasrec-mixed or gru4rec"):
        train_air(cyclic, engine, cfg, BACKBONE, variant=AIRVariant(backbone="lstm"))
    with pytest.raises(InputError, match="need the sasrec-mixed backbone"):
        train_air(cyclic, engine, cfg, BACKBONE, variant=AIRVariant(backbone="gru4rec", item_intents=True))


def test_slot_cache_reuses_the_engines_slots_and_changes_nothing(trained: object, cyclic: Dataset) -> None:
    """Valid is scored every epoch from cached slots: same scores as without the cache, the
    engine asked once per distinct chunk, the budget respected."""
    scorer = trained.scorer  # type: ignore[attr-defined]
    scorer.compose_in = "torch"  # the cache serves composition in torch
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    scorer.cache_slots(0.0)
    plain = scorer.score(hist, cand)
    scorer.cache_slots(64.0)
    first = scorer.score(hist, cand)
    stored = dict(scorer._slots.entries)
    assert stored and scorer._slots.used <= 64 * 2**20
    again = scorer.score(hist, cand)
    assert scorer._slots.entries.keys() == stored.keys(), "a second pass must only hit the cache"
    np.testing.assert_array_equal(first, plain)
    np.testing.assert_array_equal(again, plain)
    other = scorer.score(hist, cand[:, ::-1].copy())  # other candidates: other keys
    assert len(scorer._slots.entries) == 2 * len(stored)
    np.testing.assert_array_equal(other, plain[:, ::-1])
    scorer.cache_slots(1e-6)  # a budget smaller than one entry stores nothing
    np.testing.assert_array_equal(scorer.score(hist, cand), plain)
    assert not scorer._slots.entries
    scorer.cache_slots(0.0)
    scorer.compose_in = "engine"


def test_scoring_composes_in_the_engine_like_torch(trained: object, cyclic: Dataset) -> None:
    """Validation folds the current weights into the engine and composes there: the same
    scores as composing in torch (the export parity bound), refolded only when weights move."""
    scorer = trained.scorer  # type: ignore[attr-defined]
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    assert scorer.compose_in == "engine"
    in_engine = scorer.score(hist, cand)
    folded = scorer._folded
    assert folded is not None and scorer.score(hist, cand) is not None and scorer._folded is folded
    scorer.compose_in = "torch"
    in_torch = scorer.score(hist, cand)
    scorer.compose_in = "engine"
    np.testing.assert_allclose(in_engine, in_torch, atol=1e-5, rtol=0)
    with torch.no_grad():
        scorer.model.composition.score_bias += 1.0
    try:
        moved = scorer.score(hist, cand)
        assert scorer._folded is not folded  # the weights changed: folded again
        np.testing.assert_allclose(moved, in_engine + 1.0, atol=1e-4, rtol=0)
    finally:
        with torch.no_grad():
            scorer.model.composition.score_bias -= 1.0
    with pytest.raises(InputError, match="compose_in"):
        type(scorer)(scorer.model, scorer.engine, scorer.backbone, compose_in="gpu")


def test_with_composition_checks_the_weights(engine: Engine, bundle: Path, tmp_path: Path) -> None:
    """In-memory weights give exactly what a bundle written with them gives; weights of other
    dims or non-finite ones are typed errors."""
    perturbed = _perturbed(bundle, tmp_path)
    comp = load_arrays(perturbed).composition
    hist = _histories(5, engine.n_items, 4)
    cands = np.random.default_rng(5).integers(0, engine.n_items, (5, 11))
    np.testing.assert_array_equal(engine.with_composition(comp).score_batch(hist, cands),
                                  Engine.load(perturbed).score_batch(hist, cands))
    arrays = comp.arrays()
    from airrec.bundle import Composition

    # The engine checks values itself (Composition refuses non-finite ones earlier).
    bad = {**arrays, "score_w_out": np.full_like(arrays["score_w_out"], np.inf)}
    with pytest.raises(InputError, match="finite"):
        engine._engine.with_composition(bad)
    other = Composition.init(engine.dim, engine.dim, 1, 3, seed=0)  # 1 head: not this bundle's 2
    with pytest.raises(InputError, match="does not fit"):
        engine.with_composition(other)
    with pytest.raises(InputTypeError):
        engine.with_composition(arrays)  # type: ignore[arg-type]


def test_checkpoint_round_trip(trained: object, cyclic: Dataset, engine: Engine, tmp_path: Path) -> None:
    from airrec.models.air_train import load_air_scorer, save_air_checkpoint

    path = save_air_checkpoint(trained, BACKBONE, tmp_path / "air.pt")  # type: ignore[arg-type]
    again = load_air_scorer(path, engine, cyclic)
    hist = Histories.from_arrays(cyclic.test.offsets, cyclic.test.items)
    cand = np.tile(np.arange(12, dtype=np.int64), (len(cyclic.test), 1))
    np.testing.assert_array_equal(again.score(hist, cand), trained.scorer.score(hist, cand))  # type: ignore[attr-defined]
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(InputError):
        load_air_scorer(tmp_path / "bad.pt", engine, cyclic)


def test_item_intent_nodes_are_the_engines_event_nodes(bundle: Path) -> None:
    from airrec.models.air import item_intent_nodes
    from airrec.reference import Reference

    arrays = load_arrays(bundle)
    nodes = item_intent_nodes(arrays)
    ref = Reference(arrays)
    assert nodes.shape[0] == arrays.dims.n_items and nodes.dtype == np.int64
    for item in (0, 17, 59):
        row = nodes[item]
        assert tuple(row[row >= 0].tolist()) == ref.event_nodes(item)
        assert (row[len(ref.event_nodes(item)):] == -1).all()


def test_item_intents_tie_items_that_share_nodes() -> None:
    from airrec.models.sasrec import SASRec

    # items 0 and 1 share both nodes, item 2 has another, item 3 has none
    nodes = np.array([[0, 1], [1, 0], [2, -1], [-1, -1]])
    model = SASRec(4, dim=8, max_len=5, dropout=0.0, item_nodes=nodes)
    with torch.no_grad():
        model.item_emb.weight.zero_()  # only the intent part is left
    v = model.item_vectors(torch.arange(4))
    assert torch.allclose(v[0], v[1]) and not torch.allclose(v[0], v[2])
    assert torch.count_nonzero(v[3]) == 0  # no intents: nothing added (the padding row is 0)
    # a gradient through item 0 moves item 1 too: the cross-item tie
    v[0].sum().backward()
    assert model.node_emb is not None and model.node_emb.weight.grad is not None
    assert torch.count_nonzero(model.node_emb.weight.grad[:2]) > 0
    assert torch.count_nonzero(model.node_emb.weight.grad[2:]) == 0
    with pytest.raises(InputError):
        SASRec(4, dim=8, item_nodes=np.zeros((3, 2), np.int64))
