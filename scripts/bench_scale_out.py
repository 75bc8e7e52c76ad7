"""Scale-out figures on this machine: the Ray runners with 1 and 2 actors beside the local
runners, same inputs, same run.

    python scripts/bench_scale_out.py --out benches/results/scale-out.json

* generation: SmolLM2-135M (the model the tests use) on ``--items`` Food–Kitchen-like titles,
  local runner (1 and 2 worker processes) and Ray runner (1 and 2 actors), each into a fresh
  cache; items/s with model loads inside the clock (the local cluster is started before);
* features: ``airrec features`` on a synthetic bundle (``--nodes``/``--items-in-bundle``) for
  ``--users`` users × ``--candidates`` candidates, local (all cores) and Ray (1 and 2 actors);
  rows/s, and the outputs checked equal.

Each figure is the median of ``--repeats`` runs. On a 2-core VM two actors can at best double
one; the local runner is the baseline to read the Ray overhead against.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from airrec._files import write_json_atomic

TITLES = ["Twinings Earl Grey Tea", "Cuisinart Stainless Steel Cookware Set", "Planters Dry Roasted Peanuts",
          "Pyrex Oblong Baking Dish", "French Roast Whole Bean Coffee", "OXO Salad Spinner", "Old Fashioned Oats",
          "Two-Slice Toaster", "Crunchy Granola Bars", "Classic Chef's Knife", "Spaghetti Pasta Box",
          "Food Storage Containers", "Dark Chocolate Bar", "Stand Mixer", "Tomato Ketchup", "Water Filter Pitcher"]


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def generation(n_items: int, repeats: int) -> dict[str, Any]:
    from airrec.generate import generate_intents, generate_intents_ray, resolve_model

    model = resolve_model("smollm2-135m")
    items = [(i, f"{TITLES[i % len(TITLES)]}, pack of {i + 1}") for i in range(n_items)]
    out: dict[str, Any] = {"model": model.name, "items": n_items}
    for label, run in [
        ("local, 1 worker", lambda c: generate_intents(items, c, model=model, progress=False, workers=1, n_parallel=16)),
        ("local, 2 workers", lambda c: generate_intents(items, c, model=model, progress=False, workers=2, n_parallel=16)),
        ("ray, 1 actor", lambda c: generate_intents_ray(items, c, model=model, actors=1, batch_size=16)),
        ("ray, 2 actors", lambda c: generate_intents_ray(items, c, model=model, actors=2, batch_size=16)),
    ]:
        rates = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                t = time.perf_counter()
                s = run(Path(tmp) / "c.sqlite")
                rates.append((s.ok + s.failed) / (time.perf_counter() - t))
        out[label] = {"items_per_s": _median(rates), "runs": [round(r, 3) for r in rates]}
    return out


def features(n_users: int, n_candidates: int, n_nodes: int, n_items: int, repeats: int) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airrec.features import compute_features, read_features
    from airrec.synthetic import make_synthetic_bundle

    tmp = Path(tempfile.mkdtemp(prefix="airrec-scale-"))
    bundle = make_synthetic_bundle(tmp / "bundle", n_nodes=n_nodes, n_items=n_items, seed=0)
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 51, n_users)
    users = np.repeat(np.arange(n_users), lengths)
    pq.write_table(pa.table({"user": users, "item": rng.integers(0, n_items, users.size)}), tmp / "h.parquet")
    pq.write_table(pa.table({"user": np.repeat(np.arange(n_users), n_candidates),
                             "candidate": rng.integers(0, n_items, n_users * n_candidates)}), tmp / "c.parquet")
    out: dict[str, Any] = {"users": n_users, "candidates_per_user": n_candidates, "rows": n_users * n_candidates,
                           "bundle": {"nodes": n_nodes, "items": n_items, "dim": 64}}
    reference = None
    for label, kwargs in [("local", {}), ("ray, 1 actor", {"ray_address": "local", "actors": 1}),
                          ("ray, 2 actors", {"ray_address": "local", "actors": 2})]:
        rates = []
        for _ in range(repeats):
            r = compute_features(bundle, tmp / "h.parquet", tmp / "c.parquet", tmp / "out", overwrite=True,
                                 **kwargs)  # type: ignore[arg-type]
            rates.append(r.rows / r.seconds)
        got = read_features(tmp / "out")
        if reference is None:
            reference = got
        else:
            assert np.array_equal(reference["candidate"], got["candidate"])
            assert np.allclose(reference["score"], got["score"], atol=1e-6)
        out[label] = {"rows_per_s": round(statistics.median(rates), 1), "runs": [round(x, 1) for x in rates]}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--items", type=int, default=64)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--nodes", type=int, default=20_000)
    p.add_argument("--items-in-bundle", type=int, default=10_000)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from airrec._ray import connect

    ray = connect("local", num_cpus=2)
    report = {"machine_cpus": int(ray.cluster_resources().get("CPU", 0)),
              "features": features(args.users, args.candidates, args.nodes, args.items_in_bundle, args.repeats),
              "generation": generation(args.items, args.repeats)}
    write_json_atomic(args.out, report)
    print(report)


if __name__ == "__main__":
    main()
