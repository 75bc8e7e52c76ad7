"""Copies a suite's saved runs into the repository and writes their table and paired bootstraps.

    python scripts/summarise_runs.py <work>/results benches/results/food-kitchen-runs

Runs are the ``runs/<model>.seed<S>.*`` files of :func:`airrec.models.suite.run_suite`; the
summary (``summary-seed<S>.json``) holds HR@10 / NDCG@10 per domain and, for the pairs below
that are present, a paired bootstrap over test lines (10,000 resamples) per domain and metric.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from airrec._files import write_json_atomic
from airrec.evaluate.report import significance
from airrec.evaluate.store import load_result
from airrec.models.suite import MODEL_NAMES

#: (model, against): the levers against the backbone and the strongest baseline.
PAIRS = (
    ("air", "sasrec-mixed"), ("air-item-intents", "sasrec-mixed"), ("sasrec-intents", "sasrec-mixed"),
    ("air-item-intents", "air"), ("air", "gru4rec"), ("air-item-intents", "gru4rec"),
    ("air-gru4rec", "gru4rec"), ("air-gru4rec", "sasrec-mixed"),
)
METRICS = ("HR@10", "NDCG@10")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("src", type=Path, help="a suite's output directory (holding runs/)")
    p.add_argument("dst", type=Path, help="where runs/ and the summary go")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    (args.dst / "runs").mkdir(parents=True, exist_ok=True)
    for f in sorted((args.src / "runs").glob("*")):
        shutil.copy(f, args.dst / "runs")
    results = {f.name.split(".seed")[0]: load_result(f)
               for f in sorted((args.dst / "runs").glob(f"*.seed{args.seed}.sampled.npz"))}
    table = {m: {d: {k: round(v, 4) for k, v in vals.items() if k in METRICS} for d, vals in r.metrics().items()}
             for m, r in results.items()}
    # Results carry the suite's row labels as model names; the one significance routine
    # (what results.json holds) pairs them line by line.
    present = [(MODEL_NAMES[a], MODEL_NAMES[b]) for a, b in PAIRS if a in results and b in results]
    tests = significance(list(results.values()), present, metrics=METRICS)
    pairs = {pair: by_split["test"][next(iter(by_split["test"]))] for pair, by_split in tests.items()}
    write_json_atomic(args.dst / f"summary-seed{args.seed}.json",
                      {"seed": args.seed, "protocol": "999 sampled negatives (negatives seed 0), test",
                       "metrics": table, "paired_bootstrap": pairs})
    for model, row in table.items():
        print(model, row)
    for pair, cells in pairs.items():
        for domain, by_metric in cells.items():
            for metric, c in by_metric.items():
                lo, hi = c["ci95"]
                print(f"{pair} | {domain} {metric}: {c['diff']:+.4f} [{lo:+.4f}, {hi:+.4f}] p={c['p_value']:.4f}")


if __name__ == "__main__":
    main()
