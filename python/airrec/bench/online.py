"""`airrec bench online`: latency and throughput of the Rust online path beside the NumPy
reference, on the same synthetic bundle, in the same run.

Figures go to a JSON file; nothing here asserts on time. The bundle is generated once per shape
and cached (it takes ~10 s at the reference shape).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airrec._files import write_json_atomic
from airrec.engine import Engine, Histories
from airrec.reference import Reference
from airrec.synthetic import make_candidates, make_synthetic_bundle, make_synthetic_histories


@dataclass(frozen=True)
class Shape:
    """The request shape; defaults are the reference shape of the engine issue."""

    events_per_user: int = 50
    paths_per_event: int = 3
    depth: int = 3
    candidates: int = 200
    dim: int = 64
    heads: int = 4
    n_nodes: int = 100_000
    n_items: int = 40_000
    n_domains: int = 2

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airrec" / "bench"


def synthetic_bundle(shape: Shape, seed: int = 0, directory: Path | None = None) -> Path:
    """The synthetic bundle of `shape`, generated on first use and reused afterwards."""
    from airrec.bundle import FORMAT_VERSION

    path = (directory or cache_dir()) / f"synthetic-{shape.key()}-s{seed}"
    manifest = path / "manifest.json"
    # A bundle cached by another airrec version is regenerated (the engine refuses it).
    if not manifest.exists() or json.loads(manifest.read_text()).get("format_version") != FORMAT_VERSION:
        path.parent.mkdir(parents=True, exist_ok=True)
        make_synthetic_bundle(
            path,
            n_nodes=shape.n_nodes,
            n_items=shape.n_items,
            dim=shape.dim,
            n_heads=shape.heads,
            depth=shape.depth,
            paths_per_item=shape.paths_per_event,
            n_domains=shape.n_domains,
            seed=seed,
            overwrite=True,
        )
    return path


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    us = np.asarray(samples_s) * 1e6
    return {
        "n": int(us.size),
        "p50_us": float(np.percentile(us, 50)),
        "p90_us": float(np.percentile(us, 90)),
        "p99_us": float(np.percentile(us, 99)),
        "mean_us": float(us.mean()),
        "min_us": float(us.min()),
    }


def _time_each(n: int, call: Callable[[int], object], warmup: int = 5) -> list[float]:
    for u in range(min(warmup, n)):
        call(u)
    out = []
    for u in range(n):
        t0 = time.perf_counter()
        call(u)
        out.append(time.perf_counter() - t0)
    return out


def run_online_bench(
    out: str | os.PathLike[str] | None = None,
    *,
    shape: Shape = Shape(),
    users: int = 1000,
    numpy_users: int = 40,
    batch_users: int = 2000,
    seed: int = 0,
    bundle_dir: Path | None = None,
) -> dict[str, Any]:
    """Measures the online path and writes the figures to `out` (JSON) if given."""
    bundle = synthetic_bundle(shape, seed, bundle_dir)
    t0 = time.perf_counter()
    engine = Engine.load(bundle)
    load_s = time.perf_counter() - t0
    n_users = max(users, batch_users)
    h = make_synthetic_histories(n_users, shape.events_per_user, shape.n_items, seed=seed + 1)
    cands = make_candidates(n_users, shape.candidates, shape.n_items, seed=seed + 2)

    def events(u: int) -> np.ndarray:
        return h.items[h.offsets[u] : h.offsets[u + 1]]

    # One request = build the tree from the user's events + score every candidate.
    rust = _time_each(users, lambda u: engine.score(events(u), cands[u]))
    trees = [engine.tree(events(u)) for u in range(users)]
    rust_scoring = _time_each(users, lambda u: engine.score(trees[u], cands[u]))
    rust_tree = _time_each(users, lambda u: engine.tree(events(u)))

    ref = Reference(bundle)
    numpy_times = _time_each(numpy_users, lambda u: ref.scores(ref.tree(events(u)), cands[u]), warmup=1)
    # Same run, same users: the two implementations must agree.
    max_diff = max(
        float(np.abs(engine.score(events(u), cands[u]) - ref.scores(ref.tree(events(u)), cands[u])).max())
        for u in range(min(numpy_users, 10))
    )

    hist = Histories.from_arrays(h.offsets[: batch_users + 1], h.items[: h.offsets[batch_users]])
    batch_cands = cands[:batch_users]
    n_cores = os.cpu_count() or 1
    batch: dict[str, Any] = {"users": batch_users, "cores": n_cores}
    for label, threads in (("threads_1", 1), ("threads_all", n_cores)):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            engine.score_batch(hist, batch_cands, n_threads=threads)
            best = min(best, time.perf_counter() - t)
        batch[f"{label}_requests_per_s"] = batch_users / best
    batch["scaling"] = batch["threads_all_requests_per_s"] / batch["threads_1_requests_per_s"]

    r, npy = _percentiles(rust), _percentiles(numpy_times)
    result: dict[str, Any] = {
        "benchmark": "airrec online path",
        "shape": asdict(shape),
        "rust": r,
        "rust_scoring_prebuilt_tree": _percentiles(rust_scoring),
        "rust_build_tree": _percentiles(rust_tree),
        "numpy": npy,
        "speedup_vs_numpy_p50": npy["p50_us"] / r["p50_us"],
        "batch": batch,
        "max_abs_score_diff_rust_vs_numpy": max_diff,
        "bundle_load_s": load_s,
        "machine": {"cpus": n_cores, "platform": platform.platform(), "processor": platform.processor()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out is not None:
        write_json_atomic(out, result)
    return result


def summary(result: dict[str, Any]) -> str:
    r, n, b = result["rust"], result["numpy"], result["batch"]
    return (
        f"rust   p50 {r['p50_us']:8.1f} us  p99 {r['p99_us']:8.1f} us  ({r['n']} requests)\n"
        f"numpy  p50 {n['p50_us']:8.1f} us  p99 {n['p99_us']:8.1f} us  ({n['n']} requests)\n"
        f"speedup vs numpy (p50): {result['speedup_vs_numpy_p50']:.0f}x\n"
        f"batch: {b['threads_1_requests_per_s']:.0f} req/s on 1 thread, "
        f"{b['threads_all_requests_per_s']:.0f} req/s on {b['cores']} ({b['scaling']:.2f}x)"
    )
