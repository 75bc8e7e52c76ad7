"""Compares saved runs of two settings of a model, seed by seed: valid HR@10 and a paired
bootstrap on test (each line's metric averaged over the seeds first).

    python scripts/lever_compare.py --runs <work>/results/runs benches/results/food-kitchen-runs/runs \\
        --pair air-gru4rec@1a2b3c4d air-gru4rec@3edcfb0d --pair air-gru4rec@1a2b3c4d gru4rec@3edcfb0d \\
        --seeds 0 1 2 --out benches/results/food-kitchen-runs/levers/objective.json

A run is ``<runs>/<name>.seed<S>.json`` as :func:`airrec.models.suite.run_suite` saves it (the
name is the model plus the tag of its settings, :func:`airrec.models.suite.hyper_tag`); the
first directory holding a run is used. Only seeds that both sides of a pair finished count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from airrec._files import write_json_atomic
from airrec.evaluate.report import significance
from airrec.evaluate.store import load_result

METRICS = ("HR@10", "NDCG@10")


def _record(dirs: list[Path], name: str, seed: int) -> tuple[Path, dict[str, Any]] | None:
    for d in dirs:
        path = d / f"{name}.seed{seed}.json"
        if path.exists():
            return d, json.loads(path.read_text(encoding="utf-8"))
    return None


def _side(dirs: list[Path], name: str, seeds: list[int]) -> dict[int, tuple[Path, dict[str, Any]]]:
    return {s: r for s in seeds if (r := _record(dirs, name, s)) is not None}


def compare(dirs: list[Path], a: str, b: str, seeds: list[int]) -> dict[str, Any]:
    runs_a, runs_b = _side(dirs, a, seeds), _side(dirs, b, seeds)
    both = sorted(set(runs_a) & set(runs_b))
    if not both:
        return {"pair": [a, b], "seeds": [], "note": "no seed finished on both sides"}

    def valid(rec: dict[str, Any]) -> float:
        training = rec.get("training") or {}
        return float(training.get("best_valid_hr10", float("nan")))

    def epoch_seconds(rec: dict[str, Any]) -> float:
        epochs = (rec.get("training") or {}).get("epochs") or []
        return float(np.mean([e["train_seconds"] for e in epochs])) if epochs else float("nan")

    results = []
    for name, runs in ((a, runs_a), (b, runs_b)):
        for s in both:
            d, rec = runs[s]
            sampled = next(f for f in rec["results"] if f.endswith(".sampled.npz"))
            results.append(dataclasses.replace(load_result(d / sampled), model=name))
    tests = significance(results, [(a, b)], metrics=METRICS)
    cells = tests[f"{a} vs {b}"]["test"]
    cells = cells[next(iter(cells))]
    va = [valid(runs_a[s][1]) for s in both]
    vb = [valid(runs_b[s][1]) for s in both]
    return {
        "pair": [a, b], "seeds": both,
        "valid_hr10": {a: [round(v, 4) for v in va], b: [round(v, 4) for v in vb],
                       "mean_diff": round(float(np.mean(va) - np.mean(vb)), 4)},
        "mean_epoch_train_seconds": {a: round(float(np.mean([epoch_seconds(runs_a[s][1]) for s in both])), 1),
                                     b: round(float(np.mean([epoch_seconds(runs_b[s][1]) for s in both])), 1)},
        "test_paired_bootstrap": cells,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=Path, nargs="+", required=True, help="runs directories, searched in order")
    p.add_argument("--pair", nargs=2, action="append", required=True, metavar=("A", "B"), help="run names: A - B")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    out = {"protocol": "test, 999 sampled negatives (negatives seed 0); paired bootstrap over test lines, 10,000 "
                       "resamples, each line's metric averaged over the seeds both sides finished",
           "comparisons": [compare(args.runs, a, b, args.seeds) for a, b in args.pair]}
    write_json_atomic(args.out, out)
    for c in out["comparisons"]:
        print(f"{c['pair'][0]} - {c['pair'][1]} seeds {c['seeds']}: valid {c.get('valid_hr10', {}).get('mean_diff')}")
        for domain, by_metric in c.get("test_paired_bootstrap", {}).items():
            for metric, cell in by_metric.items():
                lo, hi = cell["ci95"]
                print(f"  {domain} {metric}: {cell['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] p={cell['p_value']:.4f}")


if __name__ == "__main__":
    main()
