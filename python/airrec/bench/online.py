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
    torch_users: int = 200,
    instructions: bool = False,
) -> dict[str, Any]:
    """Measures the online path and writes the figures to `out` (JSON) if given.

    ``torch_users`` requests also go through the vectorised torch peer
    (:class:`airrec.bench.torch_peer.TorchPeer`, 1 thread, checked equal first; 0 skips it);
    ``instructions`` adds the engine's instructions per request under callgrind
    (:func:`instructions_per_request`), a figure that machine load does not move."""
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

    torch_figures = None
    if torch_users > 0:
        from airrec.bench.torch_peer import TorchPeer

        peer = TorchPeer(bundle, threads=1)
        # Same users, same candidates: the peer must give the engine's scores before it is timed.
        torch_diff = max(float(np.abs(engine.score(events(u), cands[u]) - peer.scores(events(u), cands[u])).max())
                         for u in range(min(torch_users, 20)))
        torch_times = _time_each(torch_users, lambda u: peer.scores(events(u), cands[u]), warmup=3)
        torch_figures = {**_percentiles(torch_times), "threads": 1, "max_abs_score_diff_vs_rust": torch_diff}

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
        **({"torch": torch_figures, "speedup_vs_torch_p50": torch_figures["p50_us"] / r["p50_us"]}
           if torch_figures is not None else {}),
        **({"instructions": instructions_per_request(bundle, shape, seed)} if instructions else {}),
        "batch": batch,
        "max_abs_score_diff_rust_vs_numpy": max_diff,
        "bundle_load_s": load_s,
        "machine": {"cpus": n_cores, "platform": platform.platform(), "processor": platform.processor()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if out is not None:
        write_json_atomic(out, result)
    return result


_CALLGRIND_CHILD = r"""
import collections
import sys
import numpy as np
from airrec.engine import Engine
from airrec.synthetic import make_candidates, make_synthetic_histories
bundle, n, events, n_items, n_cands, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
engine = Engine.load(bundle, verify_checksums=False)
h = make_synthetic_histories(max(n, 1) + 5, events, n_items, seed=seed + 1)
cands = make_candidates(max(n, 1) + 5, n_cands, n_items, seed=seed + 2)
ev = [h.items[h.offsets[u]:h.offsets[u + 1]] for u in range(max(n, 1) + 5)]
for u in range(5):  # warm: page faults, pools, lazy statics are not per-request costs
    engine.score(ev[u], cands[u])
# The timed requests run inside one C call, `deque(iterable)`, which callgrind is told to
# collect alone: the Python call, argument checks and the engine, nothing of the interpreter's
# start-up, imports or the bundle load (a whole-process count varied by up to ~1 M per request
# between runs of the same code). Nothing on the request path builds a deque (a nested call
# would toggle collection off for its duration).
collections.deque(map(lambda u: engine.score(ev[u], cands[u]), range(5, 5 + n)), maxlen=0)
"""


# `deque.__init__`'s C function: `deque_init` up to CPython 3.12, generated by Argument Clinic
# under this name from 3.13.
_DEQUE_INIT_SYMBOLS = ("deque_init", "_collections_deque___init__")


def _callgrind_total(args: list[str]) -> int:
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        *(f"--toggle-collect={symbol}" for symbol in _DEQUE_INIT_SYMBOLS),
                        sys.executable, "-c", _CALLGRIND_CHILD, *args], check=True, capture_output=True,
                       env={**os.environ, "RAYON_NUM_THREADS": "1", "PYTHONHASHSEED": "0"})
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no totals")


def instructions_per_request(bundle: Path, shape: Shape, seed: int = 0, n: int = 40) -> dict[str, Any]:
    """Instructions per request through the Python API (``Engine.score``: the tree from the
    events + every candidate scored), from callgrind collecting only inside the call that runs
    the requests: that count with ``n`` requests minus the same with none, divided by ``n``
    (within 0.01 % from run to run in one environment, ~2 % between environments: process
    layout moves allocator and copy paths). Needs ``valgrind`` on PATH (``None``
    figures without it)."""
    import shutil
    import sys

    if shutil.which("valgrind") is None:
        return {"per_request": None, "why": "valgrind is not installed"}
    common = [str(shape.events_per_user), str(shape.n_items), str(shape.candidates), str(seed)]
    with_n = _callgrind_total([str(bundle), str(n), *common])
    without = _callgrind_total([str(bundle), "0", *common])
    if with_n <= without:
        # Nothing collected inside the request loop: this Python names `deque.__init__`'s C
        # function otherwise. A figure of 0 would read as a measurement.
        raise RuntimeError(f"callgrind collected nothing inside the request loop ({with_n} vs {without} instructions); "
                           f"none of {_DEQUE_INIT_SYMBOLS} is deque.__init__ in {sys.version.split()[0]}")
    return {"per_request": (with_n - without) / n, "requests": n, "tool": "valgrind --tool=callgrind",
            "method": "callgrind collecting inside the call that runs n requests (Engine.score), minus the "
                      "same with none, / n"}


def summary(result: dict[str, Any]) -> str:
    r, n, b = result["rust"], result["numpy"], result["batch"]
    return (
        f"rust   p50 {r['p50_us']:8.1f} us  p99 {r['p99_us']:8.1f} us  ({r['n']} requests)\n"
        f"numpy  p50 {n['p50_us']:8.1f} us  p99 {n['p99_us']:8.1f} us  ({n['n']} requests)\n"
        f"speedup vs numpy (p50): {result['speedup_vs_numpy_p50']:.0f}x\n"
        + (f"torch  p50 {result['torch']['p50_us']:8.1f} us  (vectorised peer, 1 thread): "
           f"engine {result['speedup_vs_torch_p50']:.1f}x faster\n" if "torch" in result else "")
        + (f"instructions per request: {result['instructions']['per_request']:,.0f}\n"
           if result.get("instructions", {}).get("per_request") else "")
        + f"batch: {b['threads_1_requests_per_s']:.0f} req/s on 1 thread, "
        f"{b['threads_all_requests_per_s']:.0f} req/s on {b['cores']} ({b['scaling']:.2f}x)"
    )
