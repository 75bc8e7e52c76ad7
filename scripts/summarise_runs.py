"""Copies a suite's saved runs into the repo and writes their table + paired bootstrap (10,000 resamples) per domain:

    python scripts/summarise_runs.py <work>/results benches/results/food-kitchen-runs
"""
import json, sys, glob, shutil
from pathlib import Path
from airrec.evaluate.store import load_result
from airrec.evaluate.metrics import metric_values, paired_bootstrap
src = Path(sys.argv[1]); dst = Path(sys.argv[2])
(dst / "runs").mkdir(parents=True, exist_ok=True)
for f in glob.glob(str(src / "runs" / "*")):
    shutil.copy(f, dst / "runs")
res = {Path(f).name.split(".seed")[0]: load_result(f) for f in glob.glob(str(dst / "runs" / "*.sampled.npz"))}
table = {}
for m, r in sorted(res.items()):
    table[m] = {d: {k: round(v, 4) for k, v in vals.items() if k in ("HR@10", "NDCG@10")} for d, vals in r.metrics().items()}
pairs = [(a, b) for a, b in [("air", "sasrec-mixed"), ("air-item-intents", "sasrec-mixed"), ("sasrec-intents", "sasrec-mixed"),
         ("air-item-intents", "air"), ("air", "gru4rec"), ("air-item-intents", "gru4rec"), ("sasrec-intents", "gru4rec")]
         if a in res and b in res]
sig = {}
for a, b in pairs:
    ra, rb = res[a], res[b]
    for d, name in enumerate(ra.domain_names):
        mask = ra.domains == d
        for met in ("HR@10", "NDCG@10"):
            p = paired_bootstrap(metric_values(ra.ranks[mask], met), metric_values(rb.ranks[mask], met), n_boot=10_000)
            sig[f"{a} vs {b} | {name} | {met}"] = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in p.to_dict().items() if k != "ci95"} | {"ci95": [round(x, 4) for x in p.to_dict()["ci95"]]}
out = {"what": "seed 0, 999 sampled negatives (negatives seed 0), test split; intents artifact sha256 b52fc83b (commit df303e6 parser)",
       "metrics": table, "paired_bootstrap": sig}
(dst / "summary-seed0.json").write_text(json.dumps(out, indent=1) + "\n")
for m, t in table.items(): print(m, t)
for k, v in sig.items(): print(k, v["diff"], v["ci95"], v["p_value"])
