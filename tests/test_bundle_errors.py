"""Broken bundles are refused with typed errors, never a crash.

Every corruption runs against both readers: the engine's ``Engine.load`` and the Python
``load_arrays`` (used by the reference). With checksums off, corrupted-but-well-formed files
are loaded and queried in a subprocess, so a segfault shows up as a failed test, not a dead run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airrec.bundle import ARRAY_SPECS, MANIFEST, load_arrays
from airrec.errors import BundleChecksumError, BundleError, BundleVersionError

Loader = Callable[..., Any]


def load_with_engine(path: Path, verify: bool = True) -> Any:
    pytest.importorskip("airrec._airrec", reason="the Rust extension is not built")
    from airrec import Engine

    return Engine.load(path, verify_checksums=verify)


def load_with_python(path: Path, verify: bool = True) -> Any:
    return load_arrays(path, verify=verify)


@pytest.fixture(params=["engine", "python"])
def load(request: pytest.FixtureRequest) -> Loader:
    return load_with_engine if request.param == "engine" else load_with_python


# ---- editing a bundle ------------------------------------------------------------------------


def edit_manifest(bundle: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    manifest = json.loads((bundle / MANIFEST).read_text())
    edit(manifest)
    (bundle / MANIFEST).write_text(json.dumps(manifest))


def rehash(bundle: Path, name: str) -> None:
    """Make the manifest agree with the file again, so only its content is wrong."""
    data = (bundle / name).read_bytes()
    entry = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    edit_manifest(bundle, lambda m: m["files"].__setitem__(name, entry))


def replace_array(bundle: Path, name: str, array: np.ndarray) -> None:
    np.save(bundle / f"{name}.npy", array, allow_pickle=False)
    rehash(bundle, f"{name}.npy")


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def set_dim(manifest: dict[str, Any], key: str, value: int) -> None:
    manifest["dims"][key] = value


# ---- checksums, versions, files --------------------------------------------------------------


def test_truncated_file(tiny_bundle: Path, load: Loader) -> None:
    path = tiny_bundle / "node_vectors.npy"
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(BundleChecksumError):
        load(tiny_bundle)
    with pytest.raises(BundleChecksumError):  # sizes are checked even without checksums
        load(tiny_bundle, verify=False)


@pytest.mark.parametrize("name", ["trie_parent.npy", "compose_wq.npy", "index_leaves.usearch"])
def test_one_flipped_byte(tiny_bundle: Path, load: Loader, name: str) -> None:
    flip_byte(tiny_bundle / name, -1)
    with pytest.raises(BundleChecksumError):
        load(tiny_bundle)


def test_wrong_format_version(tiny_bundle: Path, load: Loader) -> None:
    edit_manifest(tiny_bundle, lambda m: m.__setitem__("format_version", 1))
    with pytest.raises(BundleVersionError):
        load(tiny_bundle)


def test_not_a_bundle(tmp_path: Path, load: Loader) -> None:
    with pytest.raises(BundleError):
        load(tmp_path)


def test_manifest_is_not_json(tiny_bundle: Path, load: Loader) -> None:
    (tiny_bundle / MANIFEST).write_text("{ not json")
    with pytest.raises(BundleError):
        load(tiny_bundle)


def test_missing_file(tiny_bundle: Path, load: Loader) -> None:
    (tiny_bundle / "item_domain.npy").unlink()
    with pytest.raises(BundleError) as info:
        load(tiny_bundle)
    assert not isinstance(info.value, BundleChecksumError)


def test_required_file_not_listed(tiny_bundle: Path, load: Loader) -> None:
    edit_manifest(tiny_bundle, lambda m: m["files"].pop("compose_wo.npy"))
    with pytest.raises(BundleError, match="compose_wo"):
        load(tiny_bundle)


@pytest.mark.parametrize(
    ("key", "value"), [("dim", 3), ("n_nodes", 6), ("n_items", 3), ("max_depth", 2),
                       ("n_heads", 2), ("attn_dim", 4)],
)
def test_manifest_dim_disagrees_with_arrays(
    tiny_bundle: Path, load: Loader, key: str, value: int
) -> None:
    edit_manifest(tiny_bundle, lambda m: set_dim(m, key, value))  # file hashes stay right
    with pytest.raises(BundleError):
        load(tiny_bundle)


# ---- well-hashed files with bad content ------------------------------------------------------


def _nan_node_vectors(b: Path) -> None:
    vectors = np.load(b / "node_vectors.npy")
    vectors[1, 0] = np.nan
    replace_array(b, "node_vectors", vectors)


BAD_CONTENT: dict[str, Callable[[Path], None]] = {
    "NaN node vector": _nan_node_vectors,
    "parent after child": lambda b: replace_array(
        b, "trie_parent", np.array([-1, 2, 1, 0, -1], dtype="<i4")),
    "parent below -1": lambda b: replace_array(
        b, "trie_parent", np.array([-1, 0, 1, -7, -1], dtype="<i4")),
    "depth inconsistent": lambda b: replace_array(
        b, "trie_depth", np.array([1, 2, 2, 2, 1], dtype="u1")),
    "path leaf out of range": lambda b: replace_array(
        b, "item_path_leaves", np.array([2, 3, 1, 5], dtype="<i4")),
    "path offsets decrease": lambda b: replace_array(
        b, "item_path_offsets", np.array([0, 3, 1, 4, 4], dtype="<i8")),
    "phrase offsets past the end": lambda b: replace_array(
        b, "trie_phrase_offsets", np.array([0, 4, 10, 15, 21, 99], dtype="<i8")),
    "domain out of range": lambda b: replace_array(
        b, "item_domain", np.array([0, 0, 1, 2], dtype="u1")),
    "float64 vectors": lambda b: replace_array(
        b, "item_vectors", np.load(b / "item_vectors.npy").astype("<f8")),
    "big-endian vectors": lambda b: replace_array(
        b, "item_vectors", np.load(b / "item_vectors.npy").astype(">f4")),
    "Fortran-ordered weights": lambda b: replace_array(
        b, "compose_wo", np.asfortranarray(np.eye(2, dtype="<f4") + np.triu(np.ones((2, 2))))),
    "infinite weight": lambda b: replace_array(
        b, "compose_weight_bias", np.array([np.inf], dtype="<f4")),
    "wrong shape": lambda b: replace_array(b, "score_bias", np.zeros(2, dtype="<f4")),
    "not an npy file": lambda b: ((b / "compose_bo.npy").write_bytes(b"\x00" * 200),
                                  rehash(b, "compose_bo.npy")),
}


@pytest.mark.parametrize("case", sorted(BAD_CONTENT))
def test_bad_content_with_valid_checksums(tiny_bundle: Path, load: Loader, case: str) -> None:
    BAD_CONTENT[case](tiny_bundle)
    with pytest.raises(BundleError):
        load(tiny_bundle)


def test_index_of_another_dimension(tiny_bundle: Path) -> None:
    from usearch.index import Index

    index = Index(ndim=3, metric="cos", dtype="f32")
    index.add(np.arange(3, dtype=np.uint64), np.eye(3, dtype=np.float32))
    index.save(str(tiny_bundle / "index_leaves.usearch"))
    rehash(tiny_bundle, "index_leaves.usearch")
    with pytest.raises(BundleError):  # the Python reader does not open usearch indexes
        load_with_engine(tiny_bundle)


# ---- checksums off: corrupted but well-formed files never crash the engine -------------------

PROBE = """
import sys
from airrec import AirrecError, Engine
try:
    engine = Engine.load(sys.argv[1], verify_checksums=False)
    tree = engine.tree([0, 1, 2, 3, 7, 50, 99])
    engine.score(tree, list(range(0, 120, 3)))
    engine.intent_vectors(tree, [4, 5])
    engine.contexts(tree, [6])
    engine.retrieve(tree, 0, k=5)
    engine.nearest_intents([1.0] + [0.0] * (engine.dim - 1), 3)
    print("served")
except AirrecError as e:
    print("refused", type(e).__name__, e)
"""


def _data_start(path: Path) -> int:
    if path.suffix != ".npy":
        return 64  # past the usearch file header
    with path.open("rb") as f:
        np.lib.format.read_magic(f)
        np.lib.format.read_array_header_1_0(f)
        return f.tell()


CORRUPTIONS = [pytest.param(f"{n}.npy", 0, id=n) for n in ARRAY_SPECS] + [
    # seed 2 hits the graph: usearch trusts its file, so the engine hashes index files even
    # with verify_checksums=False and refuses them
    pytest.param(name, seed, id=f"{name}-{seed}")
    for name in ("index_items_0.usearch", "index_leaves.usearch")
    for seed in range(3)
]


@pytest.mark.parametrize(("name", "seed"), CORRUPTIONS)
def test_corrupted_files_without_checksums_do_not_crash(
    small_bundle: Path, tmp_path: Path, name: str, seed: int
) -> None:
    pytest.importorskip("airrec._airrec", reason="the Rust extension is not built")
    bundle = Path(shutil.copytree(small_bundle, tmp_path / "b"))
    path = bundle / name
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    start = _data_start(path)
    if len(data) > start:
        for offset in rng.integers(start, len(data), size=16):
            data[offset] = int(rng.integers(0, 256))
    path.write_bytes(bytes(data))
    run = subprocess.run([sys.executable, "-c", PROBE, str(bundle)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, f"exit {run.returncode} (negative: a signal)\n{run.stderr}"
    assert run.stdout.startswith(("served", "refused")), run.stdout + run.stderr
