"""AIR features (``airrec features``): Parquet in, the engine's scores and intent vectors out,
locally and on a local Ray cluster, equal to ``Engine.score_batch`` / ``intent_vectors_batch``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from airrec import Engine, Histories, InputError, InputTypeError
from airrec.features import compute_features, read_features
from airrec.synthetic import make_synthetic_bundle

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

N_ITEMS = 80


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synthetic_bundle(tmp_path_factory.mktemp("feat") / "bundle", n_nodes=400, n_items=N_ITEMS, dim=16,
                                 n_heads=2, depth=3, paths_per_item=2, seed=5)


def _requests(tmp: Path, n_users: int = 40, seed: int = 0) -> tuple[Path, Path, list[list[int]], list[list[int]],
                                                                        list[list[float]]]:
    """Random histories (some users without any) and 1-12 candidates per user, shuffled rows."""
    rng = np.random.default_rng(seed)
    hist = [rng.integers(0, N_ITEMS, int(rng.integers(0, 20))).tolist() for _ in range(n_users)]
    times = [sorted(rng.uniform(0, 100, len(h)).tolist()) for h in hist]
    cands = [rng.integers(0, N_ITEMS, int(rng.integers(1, 13))).tolist() for _ in range(n_users)]
    users = [u * 7 + 3 for u in range(n_users)]  # sparse external-looking user ids
    h_rows = [(users[u], i, 0, t) for u in range(n_users) for i, t in zip(hist[u], times[u])]
    c_rows = [(users[u], c) for u in range(n_users) for c in cands[u]]
    # Interleave users' rows (file order within a user is kept by a stable sort).
    h_rows = sorted(h_rows, key=lambda r: r[0] % 5)
    c_rows = sorted(c_rows, key=lambda r: r[0] % 3)
    hp, cp = tmp / "histories.parquet", tmp / "candidates.parquet"
    pq.write_table(pa.table({"user": [r[0] for r in h_rows], "item": [r[1] for r in h_rows],
                             "behaviour": [r[2] for r in h_rows], "timestamp": [r[3] for r in h_rows]}), hp)
    pq.write_table(pa.table({"user": [r[0] for r in c_rows], "candidate": [r[1] for r in c_rows]}), cp)
    return hp, cp, hist, cands, times


def _expected(bundle: Path, hist: list[list[int]], cands: list[list[int]], times: list[list[float]]) -> dict:
    engine = Engine.load(bundle)
    offsets = np.zeros(len(hist) + 1, np.int64)
    np.cumsum([len(h) for h in hist], out=offsets[1:])
    flat = np.array([i for h in hist for i in h], np.int64)
    ts = np.array([t for tt in times for t in tt], np.float64)
    h = Histories.from_arrays(offsets, flat, None, ts)
    scores, vectors = [], []
    for u, c in enumerate(cands):
        one = Histories.from_arrays(np.array([0, len(hist[u])]), flat[offsets[u]:offsets[u + 1]], None,
                                    ts[offsets[u]:offsets[u + 1]])
        grid = np.array([c], np.int64)
        scores.append(engine.score_batch(one, grid)[0])
        vectors.append(engine.intent_vectors_batch(one, grid)[0])
    assert h.n_users == len(cands)
    return {"score": np.concatenate(scores), "intent": np.concatenate(vectors),
            "candidate": np.array([c for cc in cands for c in cc])}


def test_local_features_equal_the_engine(bundle: Path, tmp_path: Path) -> None:
    hp, cp, hist, cands, times = _requests(tmp_path)
    # Small batches: users cut across several batches and parts.
    report = compute_features(bundle, hp, cp, tmp_path / "out", batch_users=7)
    assert report.users == len(cands) and report.rows == sum(map(len, cands)) and report.dim == 16
    assert len(list((tmp_path / "out").glob("part-*.parquet"))) == 6
    got = read_features(tmp_path / "out")
    want = _expected(bundle, hist, cands, times)
    np.testing.assert_array_equal(got["user"], np.repeat([u * 7 + 3 for u in range(len(cands))], list(map(len, cands))))
    np.testing.assert_array_equal(got["candidate"], want["candidate"])
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["intent"], want["intent"], rtol=0, atol=1e-6)
    assert np.isfinite(got["score"]).all()
    with pytest.raises(InputError, match="already exists"):
        compute_features(bundle, hp, cp, tmp_path / "out")
    compute_features(bundle, hp, cp, tmp_path / "out", overwrite=True)


def test_skewed_candidate_lists_are_cut_into_small_engine_calls(bundle: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """One user with many candidates beside many with few: the engine is called on runs of
    users whose padded rectangle stays under max_cells, and the answers do not change."""
    from airrec.features import FeatureWorker

    hp, cp, hist, cands, times = _requests(tmp_path, n_users=30, seed=3)
    want = _expected(bundle, hist, cands, times)
    calls: list[tuple[int, int]] = []
    original = Engine.score_batch

    def spy(self: Engine, h: Histories, grid: np.ndarray, **kw: object) -> np.ndarray:
        calls.append(grid.shape)
        return original(self, h, grid, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Engine, "score_batch", spy)
    monkeypatch.setattr(FeatureWorker, "max_cells", 24)
    compute_features(bundle, hp, cp, tmp_path / "out", batch_users=100)
    assert len(calls) > 1 and all(u * c <= 24 or u == 1 for u, c in calls), calls
    got = read_features(tmp_path / "out")
    np.testing.assert_array_equal(got["candidate"], want["candidate"])
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(got["intent"], want["intent"], rtol=0, atol=1e-6)


def test_bad_inputs_are_typed_errors(bundle: Path, tmp_path: Path) -> None:
    hp, cp, *_ = _requests(tmp_path, n_users=5)
    bad = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"user": [1], "candidate": [N_ITEMS + 5]}), bad)
    with pytest.raises(InputError, match="not in the bundle"):
        compute_features(bundle, hp, bad, tmp_path / "o1")
    pq.write_table(pa.table({"user": [1], "candidate": [1.5]}), bad)
    with pytest.raises(InputTypeError, match="integers"):
        compute_features(bundle, hp, bad, tmp_path / "o2")
    pq.write_table(pa.table({"user": [1], "item": [2]}), bad)
    with pytest.raises(InputError, match="no column 'candidate'"):
        compute_features(bundle, hp, bad, tmp_path / "o3")
    pq.write_table(pa.table({"user": [1], "item": [2], "timestamp": [float("nan")]}), bad)
    with pytest.raises(InputError, match="non-finite"):
        compute_features(bundle, bad, cp, tmp_path / "o4")
    (tmp_path / "junk.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet"):
        compute_features(bundle, tmp_path / "junk.parquet", cp, tmp_path / "o5")
    with pytest.raises(InputError, match="does not exist"):
        compute_features(bundle, tmp_path / "missing.parquet", cp, tmp_path / "o6")
    assert not any(p.name.startswith("o") for p in tmp_path.iterdir()), "a failed run leaves nothing"


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="the ray extra is not installed")
def test_ray_features_equal_local(bundle: Path, tmp_path: Path, ray_local: object) -> None:
    hp, cp, *_ = _requests(tmp_path, n_users=60, seed=1)
    local = compute_features(bundle, hp, cp, tmp_path / "local", batch_users=16)
    remote = compute_features(bundle, hp, cp, tmp_path / "ray", ray_address="local", actors=2, batch_users=16)
    assert remote.rows == local.rows and remote.runner.startswith("ray")
    a, b = read_features(tmp_path / "local"), read_features(tmp_path / "ray")
    for k in ("user", "candidate"):
        np.testing.assert_array_equal(a[k], b[k])
    np.testing.assert_allclose(a["score"], b["score"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(a["intent"], b["intent"], rtol=0, atol=1e-6)


def test_cli_writes_features_and_reports(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from airrec.cli import main

    hp, cp, _, cands, _ = _requests(tmp_path, n_users=12)
    args = ["features", "--bundle", str(bundle), "--histories", str(hp), "--candidates", str(cp),
            "--out", str(tmp_path / "f"), "--batch-users", "5"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"] == sum(map(len, cands)) and out["runner"] == "local" and out["dim"] == 16
    assert read_features(tmp_path / "f")["score"].shape == (out["rows"],)
    assert main(args) == 2 and "already exists" in capsys.readouterr().err
