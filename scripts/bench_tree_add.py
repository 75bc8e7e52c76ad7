"""Incremental tree updates against a build from scratch, same events, same run.

`UserTree.add` with a later timestamp used to rescale every stored mass (O(events) per add:
extending a tree to 200k events took seconds where building it at once took a tenth of one).
Masses are now stored against a base time renormalised rarely, so an add is O(1) amortised.
This times, for N events with rising timestamps, `Engine.tree(all N)` and N `UserTree.add`
calls (median of 3), and writes the figures and their ratio.

    python scripts/bench_tree_add.py --out benches/results/tree-add.json --label after
"""

from __future__ import annotations

import argparse
import json
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np


def _median(f: Any, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[25_000, 50_000, 100_000, 200_000])
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (merged by label)")
    args = parser.parse_args()
    import airrec
    from airrec._files import write_json_atomic
    from airrec.bench.online import Shape, synthetic_bundle

    engine = airrec.Engine.load(synthetic_bundle(Shape()), decay_lambda=0.01)
    rng = np.random.default_rng(0)
    rows = []

    def build(items: Any, ts: Any) -> None:
        engine.tree(items, np.zeros(len(items), dtype=np.int64), ts)

    def extend(items: Any, ts: Any) -> None:
        tree = engine.tree()
        for item, t in zip(items.tolist(), ts.tolist()):
            tree.add(item, 0, t)

    for n in args.events:
        items = rng.integers(0, engine.n_items, n)
        ts = np.arange(n, dtype=np.float64)
        built = _median(partial(build, items, ts))
        added = _median(partial(extend, items, ts), repeats=1 if n > 50_000 else 3)
        rows.append({"events": n, "build_s": built, "add_one_by_one_s": added,
                     "add_per_event_us": 1e6 * added / n, "ratio_add_to_build": added / built})
        print(f"{n:>7} events: build {built:.3f} s, one by one {added:.3f} s "
              f"({1e6 * added / n:.1f} us/add, {added / built:.1f}x the build)")
    out: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    out[args.label or airrec.__version__] = {
        "airrec": airrec.__version__, "decay_lambda": 0.01, "runs": rows,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json_atomic(args.out, out)


if __name__ == "__main__":
    main()
