"""The bundle writer and the Python reader: round trip, validation, atomicity, manifest."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from usearch.index import Index

import airrec.bundle as bundle_module
from airrec import Engine
from airrec.bundle import (
    ARRAY_SPECS,
    DEFAULT_CONFIG,
    FORMAT_VERSION,
    MANIFEST,
    Composition,
    load_arrays,
    read_manifest,
    validate_config,
    write_bundle,
)
from airrec.errors import (
    BundleChecksumError,
    BundleError,
    BundleVersionError,
    ConfigError,
    InputError,
    InputTypeError,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_of(path: Path) -> dict[str, Any]:
    return json.loads((path / MANIFEST).read_text())


# ---- round trip ------------------------------------------------------------------------------


def test_round_trip_keeps_every_input(tiny_bundle: Path, tiny_inputs: dict[str, Any]) -> None:
    b = load_arrays(tiny_bundle)
    assert b.dims.to_json() == {
        "n_nodes": 5, "n_items": 4, "dim": 2, "attn_dim": 2, "n_heads": 1,
        "max_depth": 3, "path_slots": 1, "n_domains": 2,
    }
    np.testing.assert_array_equal(b.trie_parent, tiny_inputs["trie_parent"])
    np.testing.assert_array_equal(b.trie_depth, [1, 2, 3, 2, 1])
    assert [b.phrase(n) for n in range(5)] == tiny_inputs["trie_phrases"]
    np.testing.assert_array_equal(b.item_path_offsets, tiny_inputs["item_path_offsets"])
    np.testing.assert_array_equal(b.item_path_leaves, tiny_inputs["item_path_leaves"])
    np.testing.assert_allclose(b.node_vectors, tiny_inputs["node_vectors"], atol=1e-7)
    np.testing.assert_allclose(b.item_vectors, tiny_inputs["item_vectors"], atol=1e-7)
    np.testing.assert_array_equal(b.item_domain, [0, 0, 1, 1])
    assert b.domains == ["food", "kitchen"]
    assert b.config == DEFAULT_CONFIG


def test_arrays_have_the_documented_dtypes_and_are_memory_mapped(tiny_bundle: Path) -> None:
    b = load_arrays(tiny_bundle)
    for name, (dtype, _) in ARRAY_SPECS.items():
        array = getattr(b, name)
        assert array.dtype == np.dtype(dtype), name
        assert isinstance(array, np.memmap), name
        assert not array.flags.writeable, name


def test_npy_data_is_64_byte_aligned(tiny_bundle: Path) -> None:
    for name in ARRAY_SPECS:
        with (tiny_bundle / f"{name}.npy").open("rb") as f:
            np.lib.format.read_magic(f)
            np.lib.format.read_array_header_1_0(f)
            assert f.tell() % 64 == 0, name


def test_vectors_are_normalised(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    tiny_inputs["node_vectors"] = tiny_inputs["node_vectors"] * np.arange(1, 6)[:, None]
    tiny_inputs["item_vectors"] = tiny_inputs["item_vectors"] * 7.0
    b = load_arrays(write_bundle(tmp_path / "b", **tiny_inputs))
    np.testing.assert_allclose(np.linalg.norm(b.node_vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(b.item_vectors, axis=1), 1.0, rtol=1e-6)


def test_config_meta_and_composition_are_stored(
    tmp_path: Path, tiny_inputs: dict[str, Any]
) -> None:
    comp = Composition.init(2, 4, 2, 3, seed=9)
    del tiny_inputs["n_heads"]
    path = write_bundle(
        tmp_path / "b", **tiny_inputs, composition=comp,
        config={"beam_width": 7, "behaviour_weights": [1, 3]}, meta={"source": "test"},
    )
    b = load_arrays(path)
    assert b.config["beam_width"] == 7
    assert b.config["behaviour_weights"] == [1.0, 3.0]
    assert b.config["max_chains"] == DEFAULT_CONFIG["max_chains"]
    assert b.manifest["meta"] == {"source": "test"}
    assert (b.dims.attn_dim, b.dims.n_heads) == (4, 2)
    for name, array in comp.arrays().items():
        np.testing.assert_array_equal(getattr(b, name), array)


def test_path_slots_per_behaviour(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    tiny_inputs["item_path_offsets"] = np.array([0, 1, 1, 3, 3, 4, 4, 4, 4])  # 4 items x 2 slots
    path = write_bundle(
        tmp_path / "b", **tiny_inputs, path_slots=2, config={"behaviour_weights": [1.0, 2.0]}
    )
    assert load_arrays(path).item_path_offsets.shape == (9,)


# ---- manifest --------------------------------------------------------------------------------


def test_manifest_lists_every_file_with_its_sha256(tiny_bundle: Path) -> None:
    manifest = manifest_of(tiny_bundle)
    on_disk = {p.name for p in tiny_bundle.iterdir()} - {MANIFEST}
    assert set(manifest["files"]) == on_disk
    assert {f"{name}.npy" for name in ARRAY_SPECS} | {
        "fold_item_rows.npy", "fold_item_kv.npy", "fold_node_kv.npy",
        "index_items_0.usearch", "index_items_1.usearch", "index_leaves.usearch",
    } == on_disk
    for name, entry in manifest["files"].items():
        assert entry == {"sha256": sha256(tiny_bundle / name),
                         "bytes": (tiny_bundle / name).stat().st_size}


def test_manifest_header(tiny_bundle: Path) -> None:
    manifest = manifest_of(tiny_bundle)
    assert manifest["format"] == "airrec-bundle"
    assert manifest["format_version"] == FORMAT_VERSION == 3
    assert manifest["created_by"].startswith("airrec ")
    assert set(manifest["config"]) == set(DEFAULT_CONFIG)
    assert manifest["index"] == {
        "metric": "cos", "connectivity": 16, "expansion_add": 128, "expansion_search": 64,
    }
    assert manifest["meta"]["composition"] == {"init": "Composition.init", "seed": 0}
    assert read_manifest(tiny_bundle)["dims"] == manifest["dims"]


# ---- usearch indexes -------------------------------------------------------------------------


def test_indexes_hold_each_domain_and_the_leaves(tiny_bundle: Path) -> None:
    b = load_arrays(tiny_bundle)
    for domain, expected_keys in ((0, [0, 1]), (1, [2, 3])):
        index = Index.restore(str(tiny_bundle / f"index_items_{domain}.usearch"))
        assert sorted(int(k) for k in index.keys) == expected_keys
        assert index.ndim == 2 and index.connectivity == 16
        np.testing.assert_allclose(index.get(expected_keys[0]), b.item_vectors[expected_keys[0]])
    leaves = Index.restore(str(tiny_bundle / "index_leaves.usearch"))
    assert sorted(int(k) for k in leaves.keys) == [2, 3, 4]  # nodes without children
    nearest = leaves.search(b.node_vectors[3], 1)
    assert int(nearest.keys[0]) == 3


def test_writing_is_deterministic(tmp_path: Path, small_bundle: Path) -> None:
    from airrec.synthetic import make_synthetic_bundle

    again = make_synthetic_bundle(
        tmp_path / "again", n_nodes=300, n_items=120, dim=16, n_heads=2, depth=3,
        paths_per_item=2, seed=1,
    )
    assert manifest_of(again)["files"] == manifest_of(small_bundle)["files"]


def test_an_empty_domain_gets_an_empty_index(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    tiny_inputs["domain_names"] = ["food", "kitchen", "books"]
    path = write_bundle(tmp_path / "b", **tiny_inputs)
    assert len(Index.restore(str(path / "index_items_2.usearch"))) == 0
    assert load_arrays(path).dims.n_domains == 3


# ---- validation ------------------------------------------------------------------------------


def _set(key: str, value: Any) -> Any:
    return lambda inputs: inputs.__setitem__(key, value)


def _nan_node(inputs: dict[str, Any]) -> None:
    inputs["node_vectors"] = inputs["node_vectors"].copy()
    inputs["node_vectors"][2, 0] = np.nan


def _zero_item(inputs: dict[str, Any]) -> None:
    inputs["item_vectors"] = inputs["item_vectors"].copy()
    inputs["item_vectors"][1] = 0.0


INVALID = {
    "parent not before child": (_set("trie_parent", np.array([-1, 2, 1, 0, -1])), InputError),
    "parent below -1": (_set("trie_parent", np.array([-1, 0, 1, -2, -1])), InputError),
    "float parents": (_set("trie_parent", np.array([-1.0, 0, 1, 0, -1])), InputTypeError),
    "phrase count": (_set("trie_phrases", ["a", "b"]), InputError),
    "phrase type": (_set("trie_phrases", ["a", "b", 3, "d", "e"]), InputTypeError),
    "offsets decrease": (_set("item_path_offsets", np.array([0, 2, 1, 4, 4])), InputError),
    "offsets end early": (_set("item_path_offsets", np.array([0, 1, 3, 3, 3])), InputError),
    "offsets length": (_set("item_path_offsets", np.array([0, 1, 3, 4])), InputError),
    "leaf out of range": (_set("item_path_leaves", np.array([2, 3, 1, 5])), InputError),
    "negative leaf": (_set("item_path_leaves", np.array([2, -1, 1, 4])), InputError),
    "NaN node vector": (_nan_node, InputError),
    "zero item vector": (_zero_item, InputError),
    "node rows": (_set("node_vectors", np.ones((4, 2))), InputError),
    "item dim": (_set("item_vectors", np.ones((4, 3))), InputError),
    "domain out of range": (_set("item_domain", np.array([0, 0, 1, 2])), InputError),
    "domain count": (_set("item_domain", np.array([0, 0, 1])), InputError),
    "duplicate domains": (_set("domain_names", ["a", "a"]), InputError),
    "no domains": (_set("domain_names", []), InputError),
    "unknown config key": (_set("config", {"beam_with": 3}), ConfigError),
    "zero beam": (_set("config", {"beam_width": 0}), ConfigError),
    "negative decay": (_set("config", {"decay_lambda": -0.1}), ConfigError),
    "zero behaviour weight": (_set("config", {"behaviour_weights": [1.0, 0.0]}), ConfigError),
    "no behaviour weights": (_set("config", {"behaviour_weights": []}), ConfigError),
    "huge behaviour weight": (_set("config", {"behaviour_weights": [1e308]}), ConfigError),
    "bool as int": (_set("config", {"max_chains": True}), ConfigError),
    "chains too deep": (_set("config", {"max_chain_depth": 17}), ConfigError),
    "path slots vs behaviours": (_set("path_slots", 2), ConfigError),
    "heads do not divide": (_set("n_heads", 3), ConfigError),
    "bad index setting": (_set("index", {"connectivity": 1}), ConfigError),
    "unknown index key": (_set("index", {"threads": 4}), ConfigError),
    "meta not JSON": (_set("meta", {"when": object()}), InputError),
    "composition dim": (_set("composition", Composition.init(4, 4, 1, 3)), InputError),
    "composition depth": (_set("composition", Composition.init(2, 2, 1, 2)), InputError),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_input_is_refused_before_writing(
    tmp_path: Path, tiny_inputs: dict[str, Any], case: str
) -> None:
    mutate, error = INVALID[case]
    mutate(tiny_inputs)
    with pytest.raises(error):
        write_bundle(tmp_path / "b", **tiny_inputs)
    assert list(tmp_path.iterdir()) == []


def test_trie_deeper_than_the_engine_allows_is_refused(
    tmp_path: Path, tiny_inputs: dict[str, Any]
) -> None:
    n = 255
    tiny_inputs.update(
        trie_parent=np.arange(n) - 1, trie_phrases=["x"] * n,
        node_vectors=np.ones((n, 2)), item_path_leaves=np.zeros(4, dtype=np.int64),
    )
    with pytest.raises(InputError, match="deeper than 254"):
        write_bundle(tmp_path / "b", **tiny_inputs)


def test_composition_checks_shapes() -> None:
    arrays = Composition.init(4, 4, 2, 3).arrays()
    arrays["compose_wo"] = np.zeros((4, 3), dtype=np.float32)
    with pytest.raises(InputError, match="wo"):
        Composition.from_arrays(arrays)
    with pytest.raises(ConfigError):
        Composition.init(4, 6, 4, 3)


def test_composition_init_is_deterministic_and_seeded() -> None:
    a, b, c = (Composition.init(8, 8, 2, 3, seed) for seed in (1, 1, 2))
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, b.arrays()[name])
    assert not np.array_equal(a.wq, c.wq)


def test_composition_init_keeps_vectors_in_the_embedding_space() -> None:
    """wv @ wo ≈ I, so the intent vector is about a weighted mean of the slot vectors."""
    comp = Composition.init(64, 256, 4, 3, seed=0)
    product = comp.wv.astype(np.float64) @ comp.wo
    assert np.abs(np.diag(product) - 1).mean() < 0.15
    assert np.abs(product - np.diag(np.diag(product))).mean() < 0.1


def test_validate_config_fills_defaults() -> None:
    assert validate_config({"beam_width": 2}) == {**DEFAULT_CONFIG, "beam_width": 2}
    assert validate_config(None) == DEFAULT_CONFIG


# ---- atomic writes ---------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["_write_files", "_check_destination"])
def test_a_failure_mid_write_leaves_nothing(
    tmp_path: Path, tiny_inputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, failing, boom)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(tmp_path / "b", **tiny_inputs)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite(tiny_bundle: Path, tiny_inputs: dict[str, Any]) -> None:
    before = manifest_of(tiny_bundle)
    with pytest.raises(BundleError, match="overwrite=True"):
        write_bundle(tiny_bundle, **tiny_inputs, config={"beam_width": 1})
    assert manifest_of(tiny_bundle) == before


def test_overwrite_replaces_and_cleans_up(tiny_bundle: Path, tiny_inputs: dict[str, Any]) -> None:
    write_bundle(tiny_bundle, **tiny_inputs, config={"beam_width": 1}, overwrite=True)
    assert load_arrays(tiny_bundle).config["beam_width"] == 1
    assert [p.name for p in tiny_bundle.parent.iterdir()] == [tiny_bundle.name]


def test_a_failed_overwrite_keeps_the_old_bundle(
    tiny_bundle: Path, tiny_inputs: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(bundle_module, "_write_files", boom)
    with pytest.raises(OSError):
        write_bundle(tiny_bundle, **tiny_inputs, config={"beam_width": 1}, overwrite=True)
    assert load_arrays(tiny_bundle).config["beam_width"] == DEFAULT_CONFIG["beam_width"]
    assert [p.name for p in tiny_bundle.parent.iterdir()] == [tiny_bundle.name]


def test_overwrite_refuses_a_directory_that_is_not_a_bundle(
    tmp_path: Path, tiny_inputs: dict[str, Any]
) -> None:
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("precious")
    with pytest.raises(BundleError, match="not a bundle"):
        write_bundle(tmp_path / "home", **tiny_inputs, overwrite=True)
    assert (tmp_path / "home" / "notes.txt").read_text() == "precious"


# ---- the Python reader -----------------------------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_reader_detects_a_flipped_byte(tiny_bundle: Path) -> None:
    _flip(tiny_bundle / "item_vectors.npy", -4)  # lowest mantissa byte of the last value
    with pytest.raises(BundleChecksumError, match="item_vectors"):
        load_arrays(tiny_bundle)
    loaded = load_arrays(tiny_bundle, verify=False)  # same size, still well-formed
    assert loaded.item_vectors[3, 1] != np.float32(np.sin(np.radians(10)))


def test_reader_without_checksums_still_checks_values(tiny_bundle: Path) -> None:
    _flip(tiny_bundle / "item_vectors.npy", -1)  # the exponent byte: no longer a unit vector
    with pytest.raises(BundleError, match="not L2-normalised"):
        load_arrays(tiny_bundle, verify=False)


def test_reader_detects_truncation_even_without_checksums(tiny_bundle: Path) -> None:
    path = tiny_bundle / "node_vectors.npy"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(BundleChecksumError, match="bytes"):
        load_arrays(tiny_bundle, verify=False)


@pytest.mark.parametrize("version", [1, 2, 4])
def test_reader_and_engine_refuse_another_format_version(tiny_bundle: Path, version: int) -> None:
    manifest = manifest_of(tiny_bundle)
    manifest["format_version"] = version
    (tiny_bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleVersionError, match=f"version {version}"):
        load_arrays(tiny_bundle)
    with pytest.raises(BundleVersionError, match="rebuild"):
        Engine.load(tiny_bundle)


def test_reader_refuses_a_directory_without_manifest(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"manifest\.json"):
        read_manifest(tmp_path)


def test_reader_refuses_a_file_name_outside_the_bundle(tiny_bundle: Path) -> None:
    manifest = manifest_of(tiny_bundle)
    manifest["files"]["../escape"] = {"sha256": "0" * 64, "bytes": 0}
    (tiny_bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="invalid file name"):
        load_arrays(tiny_bundle)


def test_written_bundle_dir_is_readable_by_others(tiny_bundle: Path) -> None:
    assert os.stat(tiny_bundle).st_mode & 0o055 == 0o055


def test_extra_files_are_written_and_checksummed(tmp_path: Path, tiny_inputs: dict[str, Any]) -> None:
    path = write_bundle(tmp_path / "b", **tiny_inputs, extra_files={"projection.npz": b"payload"})
    assert (path / "projection.npz").read_bytes() == b"payload"
    entry = read_manifest(path)["files"]["projection.npz"]
    assert entry["bytes"] == 7 and len(entry["sha256"]) == 64
    (path / "projection.npz").write_bytes(b"PAYLOAD")
    with pytest.raises(BundleChecksumError):
        load_arrays(path)


@pytest.mark.parametrize("name", ["", "a/b", ".hidden", "manifest.json", "trie_parent.npy"])
def test_extra_file_names_must_be_plain_and_unreserved(
    tmp_path: Path, tiny_inputs: dict[str, Any], name: str
) -> None:
    with pytest.raises(InputError, match="extra file name"):
        write_bundle(tmp_path / "b", **tiny_inputs, extra_files={name: b"x"})
    assert not (tmp_path / "b").exists()


def test_an_edited_config_is_a_checksum_error(tiny_bundle: Path) -> None:
    # No file checksum covers the manifest: its config has its own, checked by both readers.
    manifest = manifest_of(tiny_bundle)
    assert len(manifest["config_sha256"]) == 64
    manifest["config"]["beam_width"] = manifest["config"]["beam_width"] + 1
    (tiny_bundle / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(BundleChecksumError, match="config"):
        load_arrays(tiny_bundle)
    with pytest.raises(BundleChecksumError, match="config"):
        Engine.load(tiny_bundle)
    assert load_arrays(tiny_bundle, verify=False).config["beam_width"] == manifest["config"]["beam_width"]
