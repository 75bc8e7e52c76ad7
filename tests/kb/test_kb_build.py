"""build_bundle end to end: the bundle loads in the engine and serves the intents it was given."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import fk40
import numpy as np
import pytest

import airrec
from airrec.bundle import load_arrays, read_manifest
from airrec.data import Dataset, read_tables
from airrec.errors import ConfigError, DataError
from airrec.kb import Projection, build_bundle, normalise_path, sidecar_dir, synthetic_intents
from airrec.kb.cli import main
from conftest import HashEmbedder

COFFEE = [0, 1, 2, 3]  # ground coffees in fk40


def _intent_texts(k: int) -> set[str]:
    return {" > ".join(normalise_path(p)) for p in fk40.ITEMS[k][3]}


def _check_paths(engine: airrec.Engine, bundle: Path) -> None:
    arrays = load_arrays(bundle)
    for item in range(len(fk40.ITEMS)):
        lo, hi = arrays.item_path_offsets[item], arrays.item_path_offsets[item + 1]
        assert hi > lo
        for leaf in arrays.item_path_leaves[lo:hi]:
            text = engine.path_text(int(leaf))
            # after merging, a path may end in its merged sibling; the root is always kept
            assert text in _intent_texts(item) or text.split(" > ")[0] in {
                t.split(" > ")[0] for t in _intent_texts(item)}


def test_build_with_fake_embedder(tmp_path: Path, fk40_dataset: Dataset, fk40_intents: Path,
                                  hash_embedder: HashEmbedder) -> None:
    report = build_bundle(fk40_dataset, fk40_intents, tmp_path / "b", embedder=hash_embedder,
                          dim=16, merge_threshold=0.95, cache_dir=tmp_path / "cache", seed=3)
    assert report.n_items == 42 and report.items_without_intents == 0
    assert report.path_slots == 1 and report.dim == 16
    assert report.merge.merged_plural >= 3  # ground coffees, french presses, travel mugs ...
    assert sum(report.nodes_per_level) == report.n_nodes and len(report.nodes_per_level) == 3
    assert report.paths_per_item["min"] == 1 and report.paths_per_item["max"] == 2
    engine = airrec.Engine.load(report.out_dir)
    assert engine.n_items == 42 and engine.dim == 16 and engine.n_nodes == report.n_nodes
    _check_paths(engine, report.out_dir)
    meta = read_manifest(report.out_dir)["meta"]["kb"]
    assert meta["embedder_fingerprint"] == "hash-embedder-v1" and meta["merge_threshold"] == 0.95
    assert len(meta["intents_sha256"]) == 64 and meta["merge"]["merged_plural"] >= 3
    # The projection travels inside the bundle, checksummed like every other file.
    assert read_manifest(report.out_dir)["files"]["projection.npz"]["bytes"] > 0
    projection = Projection.load(report.out_dir / "projection.npz")
    assert projection.dim == 16 and projection.input_dim == 32
    saved = json.loads((sidecar_dir(report.out_dir) / "build_report.json").read_text())
    assert saved["n_nodes"] == report.n_nodes

    # a rerun (new threshold) embeds nothing new but the nodes that changed
    again = build_bundle(fk40_dataset, fk40_intents, tmp_path / "b", embedder=hash_embedder,
                         dim=16, merge_threshold=0.95, cache_dir=tmp_path / "cache", seed=3,
                         overwrite=True)
    assert again.embedded == {"phrases": 0, "nodes": 0, "items": 0}
    a, b = load_arrays(report.out_dir), load_arrays(again.out_dir)
    np.testing.assert_array_equal(a.node_vectors, b.node_vectors)  # deterministic


def test_items_without_intents_get_empty_rows(tmp_path: Path, fk40_dataset: Dataset,
                                              hash_embedder: HashEmbedder) -> None:
    intents = tmp_path / "some.jsonl"
    fk40.write_intents(intents, [(k, 0, fk40.ITEMS[k][3]) for k in range(0, 42, 2)])
    report = build_bundle(fk40_dataset, intents, tmp_path / "b", embedder=hash_embedder,
                          dim=None, merge_threshold=None)
    assert report.items_without_intents == 21 and report.dim == 32
    arrays = load_arrays(report.out_dir)
    assert np.all(np.diff(arrays.item_path_offsets)[1::2] == 0)
    engine = airrec.Engine.load(report.out_dir)
    assert engine.tree([1, 3]).n_nodes > 0  # cold start maps them to the nearest leaves


def test_bad_ids_name_the_line(tmp_path: Path, fk40_dataset: Dataset,
                               hash_embedder: HashEmbedder) -> None:
    bad = tmp_path / "bad.jsonl"
    fk40.write_intents(bad, [(0, 0, [["a", "b"]]), (42, 0, [["a", "c"]])])
    with pytest.raises(DataError, match=rf"{bad}:2: item 42 is outside"):
        build_bundle(fk40_dataset, bad, tmp_path / "b", embedder=hash_embedder)
    fk40.write_intents(bad, [(0, 1, [["a", "b"]])])
    with pytest.raises(DataError, match=rf"{bad}:1: behaviour 1 is outside"):
        build_bundle(fk40_dataset, bad, tmp_path / "b", embedder=hash_embedder)
    bad.write_text('{"item": 0, "behaviour": 0, "paths": [["a"]]}\n')
    with pytest.raises(DataError, match=rf"{bad}:1: path 0 has 1 phrases"):
        build_bundle(fk40_dataset, bad, tmp_path / "b", embedder=hash_embedder)
    assert not (tmp_path / "b").exists()


def _behaviour_dataset(root: Path) -> Dataset:
    root.mkdir()
    with (root / "inter.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item", "behaviour", "timestamp"])
        for user in range(4):
            for t, item in enumerate(range(user, user + 5)):
                w.writerow([user, item, ["click", "cart", "order"][t % 3], t])
    with (root / "items.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["item", "text"])
        for item in range(9):
            w.writerow([item, f"product {item}" if item != 8 else ""])
    return read_tables(root / "inter.csv", root / "items.csv",
                       behaviours=["click", "cart", "order"])


def test_path_slots_per_behaviour(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    ds = _behaviour_dataset(tmp_path / "data")
    shared = tmp_path / "shared.jsonl"
    fk40.write_intents(shared, [(i, b, [["food", f"thing {i}"]]) for i in range(9) for b in (0, 2)])
    report = build_bundle(ds, shared, tmp_path / "s", embedder=hash_embedder, dim=None,
                          merge_threshold=None, config={"behaviour_weights": [1.0, 2.0, 4.0]})
    assert report.path_slots == 1 and report.items_without_text == 1
    differ = tmp_path / "differ.jsonl"
    fk40.write_intents(differ, [(0, 0, [["food", "seen"]]), (0, 2, [["food", "bought"]]),
                                (1, 1, [["home", "carted"]])])
    report = build_bundle(ds, differ, tmp_path / "d", embedder=hash_embedder, dim=None,
                          merge_threshold=None)
    assert report.path_slots == 3 and report.fallback_slots == 1 + 2
    engine = airrec.Engine.load(report.out_dir)
    arrays = load_arrays(report.out_dir)
    rows = [[engine.path_text(int(n)) for n in arrays.item_path_leaves[
        arrays.item_path_offsets[s]:arrays.item_path_offsets[s + 1]]] for s in range(6)]
    assert rows == [["food > seen"], ["food > seen"], ["food > bought"],
                    ["home > carted"], ["home > carted"], ["home > carted"]]
    assert engine.config["behaviour_weights"] == [1.0, 1.0, 1.0]
    with pytest.raises(ConfigError, match="behaviour_weights has 1 entries"):
        build_bundle(ds, differ, tmp_path / "x", embedder=hash_embedder,
                     config={"behaviour_weights": [1.0]})


def test_synthetic_intents_scale(tmp_path: Path, hash_embedder: HashEmbedder) -> None:
    root = tmp_path / "data"
    root.mkdir()
    with (root / "inter.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["user", "item"])
        for item in range(400):
            w.writerow([item % 50, item])
    ds = read_tables(root / "inter.csv")
    intents = synthetic_intents(tmp_path / "syn.jsonl.gz", ds.n_items, seed=5)
    assert intents.read_bytes() == synthetic_intents(tmp_path / "again.jsonl.gz", 400,
                                                     seed=5).read_bytes()
    report = build_bundle(ds, intents, tmp_path / "b", embedder=hash_embedder, dim=24,
                          merge_threshold=0.9)
    assert 0 < report.items_without_intents < 60
    assert report.merge.merged_plural > 0 and 0 < report.merge_rate < 0.5
    assert max(report.nodes_per_level) > 50 and len(report.nodes_per_level) == 4
    airrec.Engine.load(report.out_dir)


def test_cli(tmp_path: Path, fk40_dataset: Dataset, fk40_intents: Path,
             monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("airrec.kb.cli.make_embedder", lambda spec, **ray: HashEmbedder())
    config = tmp_path / "build.toml"
    config.write_text('[build]\ndim = 8\nmerge_threshold = 0.97\n\n[engine]\nbeam_width = 2\n')
    root = tmp_path / "fk40"
    args = ["--interactions", str(root / "interactions.csv"), "--items", str(root / "items.csv"),
            "--intents", str(fk40_intents), "--out", str(tmp_path / "b"), "--config", str(config),
            "--cache-dir", str(tmp_path / "cache"), "--seed", "2", "--quiet",
            "--report", str(tmp_path / "r.json")]
    assert main(args) == 0
    assert "trie:" in capsys.readouterr().out
    engine = airrec.Engine.load(tmp_path / "b")
    assert engine.dim == 8 and engine.config["beam_width"] == 2
    assert json.loads((tmp_path / "r.json").read_text())["merge"]["threshold"] == 0.97
    assert main(args) == 2  # exists, no --overwrite
    assert main(args + ["--overwrite", "--dim", "native", "--merge-threshold", "off"]) == 0
    assert airrec.Engine.load(tmp_path / "b").dim == 32
    config.write_text("[build]\nbogus = 1\n")
    assert main(args + ["--overwrite"]) == 2
    assert "unknown [build] key 'bogus'" in capsys.readouterr().err


@pytest.mark.embedder
def test_build_with_minilm_end_to_end(tmp_path: Path, fk40_dataset: Dataset, fk40_intents: Path,
                                      minilm: object) -> None:
    report = build_bundle(fk40_dataset, fk40_intents, tmp_path / "b", embedder=minilm,  # type: ignore[arg-type]
                          dim=32, merge_threshold=0.9, cache_dir=tmp_path / "cache")
    engine = airrec.Engine.load(report.out_dir)
    _check_paths(engine, report.out_dir)
    arrays = load_arrays(report.out_dir)
    # item 0's first path survives unchanged
    leaf = int(arrays.item_path_leaves[arrays.item_path_offsets[0]])
    assert engine.path_text(leaf) == "beverages > coffee > ground coffee"

    tree = engine.tree(COFFEE)
    scores = engine.score(tree, np.arange(42))
    assert scores.shape == (42,) and np.all(np.isfinite(scores))
    explanation = engine.explain(tree, 4)  # whole bean coffee: a coffee chain explains it
    assert any("coffee" in " > ".join(c["phrases"]) for c in explanation.chains)

    food, _ = engine.retrieve(tree, "Food", k=6)
    coffee_like = {0, 1, 2, 3, 4, 5}
    assert len(coffee_like & set(food.tolist())) >= 5
    kitchen, _ = engine.retrieve(tree, "Kitchen", k=4)
    assert {23, 24} <= set(kitchen.tolist())  # the French presses
    # coffee items outrank pasta, hot sauce and knives for a coffee drinker
    coffee_mean = scores[[4, 5]].mean()
    assert coffee_mean > scores[[15, 16, 18, 19, 33, 34]].max()


@pytest.mark.embedder
@pytest.mark.ray
def test_ray_embeddings_build_the_same_bundle(tmp_path: Path, fk40_dataset: Dataset, fk40_intents: Path,
                                              minilm: object, ray_local: object) -> None:
    """MiniLM in two Ray actors (Ray Data map_batches) gives the local vectors, so the
    bundle is the same to float tolerance; both share the embedding cache's key."""
    from airrec.kb import SentenceTransformerEmbedder
    from airrec.kb.cli import make_embedder
    from airrec.kb.ray_embed import RayEmbedder

    ray_embedder = make_embedder("minilm", ray="local", actors=2)
    assert isinstance(ray_embedder, RayEmbedder) and ray_embedder.fingerprint == minilm.fingerprint  # type: ignore[attr-defined]
    texts = [f"item {i}: stainless steel pan number {i}" for i in range(300)]
    np.testing.assert_allclose(ray_embedder.embed(texts), SentenceTransformerEmbedder().embed(texts), atol=2e-6)
    local = build_bundle(fk40_dataset, fk40_intents, tmp_path / "local", embedder=minilm, dim=16,  # type: ignore[arg-type]
                         merge_threshold=0.9)
    remote = build_bundle(fk40_dataset, fk40_intents, tmp_path / "ray", embedder=ray_embedder, dim=16,
                          merge_threshold=0.9)
    assert remote.embedded == local.embedded and remote.nodes_per_level == local.nodes_per_level
    a, b = load_arrays(local.out_dir), load_arrays(remote.out_dir)
    np.testing.assert_array_equal(a.trie_parent, b.trie_parent)
    np.testing.assert_allclose(a.node_vectors, b.node_vectors, atol=1e-4)
    np.testing.assert_allclose(a.item_vectors, b.item_vectors, atol=1e-4)
