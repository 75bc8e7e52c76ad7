"""Hot reload: atomic under load, versioned, and a bad bundle never replaces a good one.

The two bundles are built with different seeds, so every score tells which bundle computed
it; a response is correct only if it equals the *serial* answer of the version it reports.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from airrec import BundleError, Engine
from airrec.serve import EngineRegistry, ReloadInProgressError
from airrec.serve.app import create_app
from airrec.serve.loadtest import free_port
from airrec.serve.server import synthetic_bundle


@pytest.fixture(scope="module")
def bundle_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same ids and domains as ``small_bundle`` (seed 1), other vectors (seed 2)."""
    return synthetic_bundle(tmp_path_factory.mktemp("serve-b"), seed=2)


@pytest.fixture
def corrupted(tmp_path: Path, small_bundle: Path) -> Path:
    """A copy of ``small_bundle`` with a few bytes of one array flipped (checksum mismatch)."""
    bad = Path(shutil.copytree(small_bundle, tmp_path / "corrupted"))
    data = bytearray((bad / "node_vectors.npy").read_bytes())
    data[-8:] = bytes(b ^ 0xFF for b in data[-8:])
    (bad / "node_vectors.npy").write_bytes(bytes(data))
    return bad


@contextmanager
def serve_in_thread(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server on 127.0.0.1 in a background thread (real sockets, real pool)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# ---- the registry on its own -------------------------------------------------------------------


def test_registry_versions_and_hashes(small_bundle: Path, bundle_b: Path) -> None:
    reg = EngineRegistry(small_bundle)
    first = reg.current
    assert first.version == 1 and first.path == str(small_bundle.resolve())
    second = reg.reload(bundle_b)
    assert reg.current is second and second.version == 2
    assert second.manifest_sha256 != first.manifest_sha256
    third = reg.reload(small_bundle)
    assert third.version == 3 and third.manifest_sha256 == first.manifest_sha256
    assert third.engine is not first.engine


def test_registry_failed_reload_keeps_the_old_engine(small_bundle: Path, corrupted: Path, tmp_path: Path) -> None:
    reg = EngineRegistry(small_bundle)
    before = reg.current
    for bad in (corrupted, tmp_path / "missing", tmp_path):
        with pytest.raises(BundleError):
            reg.reload(bad)
        assert reg.current is before  # not even the version moved
    assert reg.reload(small_bundle).version == 2  # failures consumed no version number


def test_registry_refuses_a_concurrent_reload_when_asked(small_bundle: Path) -> None:
    reg = EngineRegistry(small_bundle)
    with reg._reload_lock:  # as if another reload were running
        with pytest.raises(ReloadInProgressError):
            reg.reload(small_bundle, wait=False)
    assert reg.current.version == 1


def test_snapshot_outlives_a_reload(small_bundle: Path, bundle_b: Path) -> None:
    """A request holding the old snapshot still computes with it after the swap."""
    reg = EngineRegistry(small_bundle)
    snap = reg.current
    tree = snap.engine.tree([1, 2, 3])
    reg.reload(bundle_b)
    fresh = Engine.load(small_bundle)
    expected = fresh.score(fresh.tree([1, 2, 3]), [4, 5])
    assert snap.engine.score(tree, [4, 5]).tolist() == expected.tolist()


# ---- over HTTP -----------------------------------------------------------------------------------


TOKEN = {"x-admin-token": "s3cret"}


def admin_app(bundle: Path, *others: Path, **options: Any) -> FastAPI:
    """An app with reloads enabled, rooted where ``bundle`` and ``others`` all live."""
    root = os.path.commonpath([bundle.parent, *(p.parent for p in others)])
    return create_app(bundle, admin_token="s3cret", bundle_root=root, **options)


def test_bad_bundle_over_http_keeps_serving(small_bundle: Path, corrupted: Path, tmp_path: Path) -> None:
    with TestClient(admin_app(small_bundle, corrupted)) as client:
        before = client.post("/score", json={"items": [1, 2], "candidates": [3, 4]}).json()
        root = os.path.commonpath([small_bundle.parent, corrupted.parent])
        for bad in (corrupted, tmp_path / "missing"):
            r = client.post("/admin/reload", json={"path": str(bad)}, headers=TOKEN)
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["error"] == "bad_bundle" and body["version"] == 1
            assert "keeps serving" in body["detail"]
            assert root not in body["detail"]  # the reason, not where the files are
        assert client.get("/healthz").json()["version"] == 1
        assert client.post("/score", json={"items": [1, 2], "candidates": [3, 4]}).json() == before


def _rehash(bundle: Path, name: str) -> None:
    """A hostile bundle comes with a manifest that matches its files."""
    import hashlib
    import json

    manifest = json.loads((bundle / "manifest.json").read_text())
    data = (bundle / name).read_bytes()
    manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _hostile_copies(small_bundle: Path, tmp_path: Path) -> dict[str, Path]:
    """Copies of ``small_bundle`` broken in the ways that crashed, hung or fooled the engine,
    each with checksums recomputed so only the engine's own checks stand in the way."""
    out: dict[str, Path] = {}

    def copy(name: str) -> Path:
        out[name] = Path(shutil.copytree(small_bundle, tmp_path / name))
        return out[name]

    # A neighbour slot far past the node count in the leaf index (usearch segfaulted on the
    # first /retrieve after such a reload).
    b = copy("usearch-neighbour")
    data = bytearray((b / "index_leaves.usearch").read_bytes())
    rows, cols = int.from_bytes(data[0:4], "little"), int.from_bytes(data[4:8], "little")
    first_node = 8 + rows * cols + 64 + 40 + 2 * rows
    count_at = first_node + 10  # key u64 + level i16, then the level-0 neighbour count
    data[count_at + 4 : count_at + 8] = (10**9).to_bytes(4, "little")
    data[count_at : count_at + 4] = max(1, int.from_bytes(data[count_at : count_at + 4], "little")).to_bytes(4, "little")
    (b / "index_leaves.usearch").write_bytes(bytes(data))
    _rehash(b, "index_leaves.usearch")
    # Finite but huge weights: every score was NaN (served as null with 200).
    b = copy("huge-weight")
    wo = np.load(b / "compose_wo.npy")
    wo[0, 0] = 3.4e38
    np.save(b / "compose_wo.npy", wo)
    _rehash(b, "compose_wo.npy")
    # An array that is a FIFO, and one that is a link to /dev/zero: the load hung forever.
    b = copy("fifo")
    (b / "node_vectors.npy").unlink()
    os.mkfifo(b / "node_vectors.npy")
    b = copy("dev-zero")
    (b / "item_vectors.npy").unlink()
    (b / "item_vectors.npy").symlink_to("/dev/zero")
    # A config value that aborted the process on allocation (not covered by checksums).
    b = copy("huge-config")
    manifest = (b / "manifest.json").read_text().replace('"max_chains": 2', '"max_chains": 2147483648')
    assert "2147483648" in manifest
    (b / "manifest.json").write_text(manifest)
    return out


def test_hostile_bundles_are_refused_and_the_old_one_keeps_serving(
    small_bundle: Path, tmp_path: Path
) -> None:
    hostile = _hostile_copies(small_bundle, tmp_path / "hostile")
    with TestClient(admin_app(small_bundle, *hostile.values(), reload_timeout_s=60)) as client:
        query = {"items": [1, 2], "candidates": [3, 4]}
        before = client.post("/score", json=query).json()
        for name, bad in hostile.items():
            t0 = time.monotonic()
            r = client.post("/admin/reload", json={"path": str(bad)}, headers=TOKEN)
            assert r.status_code == 422, (name, r.text)
            assert r.json()["error"] == "bad_bundle", (name, r.text)
            assert time.monotonic() - t0 < 30, f"{name}: the refusal took too long (a hang?)"
            assert client.post("/score", json=query).json() == before
            r = client.post("/retrieve", json={"items": [1, 2], "domain": 0, "k": 3})
            assert r.status_code == 200, (name, r.text)
        assert client.get("/healthz").json()["version"] == 1


def test_reload_is_closed_by_default(small_bundle: Path) -> None:
    with TestClient(create_app(small_bundle)) as client:
        for headers in ({}, TOKEN):
            r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers=headers)
            assert r.status_code == 403 and r.json()["error"] == "reload_disabled"
        assert client.get("/healthz").json()["version"] == 1
    with pytest.raises(ValueError):
        create_app(small_bundle, admin_token="  ")


def test_reload_stays_under_the_bundle_root(small_bundle: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (small_bundle.parent / "escape").symlink_to(outside)
    try:
        with TestClient(create_app(small_bundle, admin_token="s3cret")) as client:
            answers = []
            for path in ("/etc/passwd", "/etc", "/nonexistent/x", str(outside), "../..",
                         "escape", str(small_bundle.parent), "."):
                r = client.post("/admin/reload", json={"path": path}, headers=TOKEN)
                assert r.status_code == 403, (path, r.text)
                answers.append(r.json())
            # the same answer whether or not the path exists: nothing to learn from it
            assert all(a == answers[0] for a in answers), answers
            assert answers[0]["error"] == "outside_bundle_root"
            # a path relative to the root works
            r = client.post("/admin/reload", json={"path": small_bundle.name}, headers=TOKEN)
            assert r.status_code == 200 and r.json()["version"] == 2
            for bad in ("a\x00b", "x" * 5000):
                r = client.post("/admin/reload", json={"path": bad}, headers=TOKEN)
                assert r.status_code == 422 and r.json()["error"] == "validation"
    finally:
        (small_bundle.parent / "escape").unlink()


def test_a_hanging_load_times_out_and_frees_the_lock(
    small_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine refuses FIFOs and devices up front now, so a load that hangs (a dead network
    # file system, say) is simulated: loading "stuck" blocks until released.
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    release = threading.Event()
    real_load = Engine.load

    def load(path: Any, **options: Any) -> Engine:
        if Path(path).name == "stuck":
            release.wait(30)
            raise BundleError("released")
        return real_load(path, **options)

    monkeypatch.setattr(Engine, "load", load)
    app = admin_app(small_bundle, stuck, reload_timeout_s=0.5)
    registry: EngineRegistry = app.state.registry
    try:
        with TestClient(app) as client:
            r = client.post("/admin/reload", json={"path": str(stuck)}, headers=TOKEN)
            assert r.status_code == 422 and "did not load within" in r.json()["detail"]
            assert not registry._reload_lock.locked()
            r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers=TOKEN)
            assert r.status_code == 200 and r.json()["version"] == 2
            # a second stuck load, then reloads wait for them instead of piling up threads
            client.post("/admin/reload", json={"path": str(stuck)}, headers=TOKEN)
            r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers=TOKEN)
            assert r.status_code == 409 and "still running" in r.json()["detail"]
    finally:
        release.set()
        for thread in registry._stuck:
            thread.join(timeout=5)


def test_admin_token(small_bundle: Path) -> None:
    with TestClient(admin_app(small_bundle)) as client:
        for headers in ({}, {"x-admin-token": "wrong"}):
            r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers=headers)
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
        r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers={"x-admin-token": "s3cret"})
        assert r.status_code == 200 and r.json()["version"] == 2


def test_reload_in_progress_is_409(small_bundle: Path) -> None:
    app = admin_app(small_bundle)
    registry: EngineRegistry = app.state.registry
    with TestClient(app) as client, registry._reload_lock:
        r = client.post("/admin/reload", json={"path": str(small_bundle)}, headers=TOKEN)
    assert r.status_code == 409 and r.json()["error"] == "reload_in_progress"


def _requests(n: int, n_items: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        items = rng.integers(0, n_items, size=int(rng.integers(1, 30))).tolist()
        if i % 3 == 2:
            out.append(("retrieve", {"items": items, "domain": int(rng.integers(2)), "k": 5, "pool": 30}))
        else:
            out.append(("score", {"items": items, "candidates": rng.integers(0, n_items, 12).tolist()}))
    return out


def _serial(engine: Engine, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
    tree = engine.tree(body["items"])
    if endpoint == "score":
        return {"scores": engine.score(tree, body["candidates"]).tolist()}
    items, scores = engine.retrieve(tree, body["domain"], body["k"], pool=body["pool"])
    return {"items": items.tolist(), "ids": engine.external_ids(items), "scores": scores.tolist()}


def test_hot_reload_under_concurrent_requests(small_bundle: Path, bundle_b: Path) -> None:
    """Threads hammer the service while another reloads A→B→A→...: every request succeeds and
    equals the serial answer of exactly the version it reports."""
    requests = _requests(40, 120, seed=7)
    engines = {"A": Engine.load(small_bundle), "B": Engine.load(bundle_b)}
    expected = {k: [_serial(e, ep, body) for ep, body in requests] for k, e in engines.items()}
    differ = sum(a != b for a, b in zip(expected["A"], expected["B"]))
    assert differ == len(requests)  # the versions are distinguishable by every answer

    n_reloads = 6
    results: list[tuple[int, int, dict[str, Any]]] = []  # (request index, status, body)
    lock = threading.Lock()
    stop = threading.Event()

    def hammer(worker: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as client:
            i = worker
            while not stop.is_set() or i < worker + 3 * len(requests):
                endpoint, body = requests[i % len(requests)]
                r = client.post(f"/{endpoint}", json=body)
                with lock:
                    results.append((i % len(requests), r.status_code, r.json()))
                i += 1
                if i > worker + 40 * len(requests):  # bounded whatever happens
                    return

    reload_answers: list[int] = []
    with serve_in_thread(admin_app(small_bundle, bundle_b)) as base_url:
        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        with httpx.Client(base_url=base_url, timeout=30, headers=TOKEN) as admin:
            for n in range(n_reloads):
                time.sleep(0.03)
                target = bundle_b if n % 2 == 0 else small_bundle
                r = admin.post("/admin/reload", json={"path": str(target)})
                assert r.status_code == 200, r.text
                reload_answers.append(r.json()["version"])
        stop.set()
        for t in threads:
            t.join(timeout=60)
        final = httpx.get(f"{base_url}/healthz").json()["version"]

    assert reload_answers == list(range(2, 2 + n_reloads)) and final == 1 + n_reloads
    assert all(status == 200 for _, status, _ in results), [r for r in results if r[1] != 200][:3]
    seen = set()
    for index, _, body in results:
        version = body.pop("version")
        seen.add(version)
        bundle = "A" if version % 2 == 1 else "B"  # v1 = A, then B, A, B, ...
        assert body == expected[bundle][index], (version, index)
    assert len(seen) >= 3, seen  # requests really did straddle several swaps
