"""What the intent channel carries on Food–Kitchen test lines, measured without training.

    python scripts/intent_analysis.py --data-home ../shared/data --work-dir <work> \
        --out benches/results/food-kitchen-runs/intent-analysis.json

``<work>`` is an ``airrec run`` work directory with the bundle (``<work>/bundle``), trained
exports (``<work>/results/bundles/air.seed<S>``) and saved runs (``<work>/results/runs``).

1. **Reach**: for each test line, whether the target's own intent nodes (its paths' nodes, as
   the engine serves them) meet the nodes of the user's tree (every history item's nodes), at
   any depth and at the leaf level, overall, per domain, and across domains (a Kitchen target
   reached only through Food history items: the bridge AIR claims).
2. **The intent channel alone**: the trained AIR composition's own score head (the engine's
   ``score_batch`` on the exported bundle, no backbone) ranked on the 999-negative protocol.
3. **Where AIR differs from its backbone**: HR@10 of AIR and of the same backbone without
   intents on the lines whose target shares a deeper-than-root node with the history and on
   the rest (per-line ranks of the saved runs, averaged over the seeds both have), with a
   paired bootstrap (10,000 resamples) of the difference on each slice.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from airrec._files import write_json_atomic
from airrec.bundle import load_arrays
from airrec.data import load_food_kitchen
from airrec.engine import Engine
from airrec.evaluate import EngineScorer, evaluate, get_negatives
from airrec.evaluate.metrics import paired_bootstrap
from airrec.evaluate.store import load_result
from airrec.models.air import item_intent_nodes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-home", default=None)
    p.add_argument("--work-dir", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--pair", nargs=2, action="append", metavar=("MODEL", "BACKBONE"),
                   help="saved runs to split by reach, e.g. air-gru4rec@1dd1b2d6 gru4rec@3edcfb0d (repeatable; "
                   "default: air sasrec-mixed, air-gru4rec gru4rec)")
    p.add_argument("--skip-channel", action="store_true",
                   help="leave out part 2 (scoring every exported bundle's channel alone)")
    args = p.parse_args()
    pairs = [tuple(x) for x in args.pair] if args.pair else [("air", "sasrec-mixed"), ("air-gru4rec", "gru4rec")]
    ds = load_food_kitchen(args.data_home, progress=False)
    arrays = load_arrays(args.work_dir / "bundle", verify=False)
    nodes = item_intent_nodes(arrays)
    depth = np.asarray(arrays.trie_depth)
    leaf_level = int(depth.max())
    item_domain = np.asarray(ds.items.domains)
    test = ds.test
    assert test.targets is not None
    names = list(ds.domain_names)
    rows = []
    for line in range(len(test)):
        hist = test.items[test.offsets[line]:test.offsets[line + 1]]
        target = int(test.targets[line])
        t_nodes = {int(n) for n in nodes[target] if n >= 0}
        by_domain = {d: {int(n) for i in hist[item_domain[hist] == d] for n in nodes[i] if n >= 0}
                     for d in range(len(names))}
        h_nodes = set().union(*by_domain.values())
        shared = t_nodes & h_nodes
        other = 1 - int(item_domain[target]) if len(names) == 2 else None
        rows.append({
            "domain": int(item_domain[target]),
            "any": bool(shared),
            "leaf": any(int(depth[n]) == leaf_level for n in shared),
            "deep": any(int(depth[n]) >= 2 for n in shared),
            "cross": other is not None and bool(t_nodes & by_domain[other]),
            "cross_only": other is not None and bool(t_nodes & by_domain[other])
            and not (t_nodes & by_domain[int(item_domain[target])]),
        })
    reach: dict[str, Any] = {}
    for d, name in [(-1, "all"), *enumerate(names)]:
        sel = [r for r in rows if d < 0 or r["domain"] == d]
        reach[name] = {"lines": len(sel), **{k: round(float(np.mean([r[k] for r in sel])), 4)
                                            for k in ("any", "deep", "leaf", "cross", "cross_only")}}
    reached = np.array([r["deep"] for r in rows])
    domains = np.array([r["domain"] for r in rows])

    neg = get_negatives(ds, "test", 999, 0)
    channel: dict[str, Any] = {}
    exports = [] if args.skip_channel else sorted((args.work_dir / "results" / "bundles").glob("air.seed*"))
    for export in exports:
        res = evaluate(EngineScorer(Engine.load(export), name=f"intent channel ({export.name})"), ds, "test", neg)
        channel[export.name] = {k: {m: round(v, 4) for m, v in vals.items() if m in ("HR@10", "NDCG@10")}
                                for k, vals in res.metrics().items()}

    runs = args.work_dir / "results" / "runs"
    split: dict[str, Any] = {}
    for model, backbone in pairs:
        seeds = sorted({int(f.name.split(".seed")[1].split(".")[0]) for f in runs.glob(f"{model}.seed*.sampled.npz")}
                       & {int(f.name.split(".seed")[1].split(".")[0]) for f in runs.glob(f"{backbone}.seed*.sampled.npz")})
        if not seeds:
            continue

        def hits(m: str, seeds: list[int] = seeds) -> np.ndarray:
            return np.mean([load_result(runs / f"{m}.seed{s}.sampled.npz").ranks <= 10 for s in seeds], axis=0)

        a, b = hits(model), hits(backbone)
        cells: dict[str, Any] = {"seeds": seeds}
        for d, name in [(-1, "all"), *enumerate(names)]:
            in_d = np.ones_like(reached) if d < 0 else domains == d
            for label, mask in (("reached (depth >= 2)", in_d & reached), ("not reached", in_d & ~reached)):
                diff = paired_bootstrap(a[mask], b[mask]).to_dict()
                cells[f"{name}, {label}"] = {"lines": int(mask.sum()), model: round(float(a[mask].mean()), 4),
                                             backbone: round(float(b[mask].mean()), 4),
                                             "diff": round(diff["diff"], 4),
                                             "ci95": [round(x, 4) for x in diff["ci95"]],
                                             "p_value": diff["p_value"]}
        split[f"{model} vs {backbone}"] = cells
    report = {"what": __doc__.split("\n\n")[0], "trie_leaf_level": leaf_level, "reach": reach,
              "intent_channel_alone": channel, "hr10_by_reach": split}
    write_json_atomic(args.out, report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
