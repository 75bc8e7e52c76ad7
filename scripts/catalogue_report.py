"""The whole catalogue run in one report: throughput over every shard, coverage and quality of
the committed artifact, and the trie its bundle builds (nodes per level, sibling merges).

    python scripts/catalogue_report.py --data-home ../shared/data \
        --bundle-report <work>/bundle.report.json \
        --out benches/results/generate/catalogue/whole-run.json

Shard figures are the ``airrec generate --report`` summaries under
``benches/results/generate/catalogue/`` (``shard-*``: train-only items; ``regen-*``: the
valid/test items regenerated with the final prompt). The bundle report is what
``airrec build --report`` (or ``airrec run``, as ``<work>/bundle.report.json``) writes for the
artifact. Quality is :func:`airrec.generate.quality.quality_of` over the artifact's lines,
with the default prompt's examples, overall and per item group.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from airrec._files import write_json_atomic
from airrec.data import load_food_kitchen
from airrec.generate.prompts import DEFAULT_PROMPT
from airrec.generate.quality import quality_of
from airrec.kb.intents import read_intents

ARTIFACT = Path("benches/data/intents-food-kitchen-qwen2.5-coder-0.5b.jsonl.gz")
SUMMARIES = Path("benches/results/generate/catalogue")
ADDED = ("units", "cached", "ok", "failed", "retries", "tokens_in", "tokens_out", "seconds")


def throughput(summaries: list[Path]) -> dict[str, Any]:
    """Totals over the shard summaries and the spread of their items/s."""
    total = dict.fromkeys(ADDED, 0.0)
    rates = []
    for path in summaries:
        s = json.loads(path.read_text(encoding="utf-8"))
        for k in ADDED:
            total[k] += s[k]
        rates.append(round(s["items_per_s"], 3))
    done = total["ok"] + total["failed"]
    return {
        "shards": len(summaries), **{k: round(v, 1) if k == "seconds" else int(v) for k, v in total.items()},
        "items_per_s": round(done / total["seconds"], 3) if total["seconds"] else 0.0,
        "shard_items_per_s": sorted(rates),
        "tokens_per_item": {"prompt": round(total["tokens_in"] / done, 2), "answer": round(total["tokens_out"] / done, 2)}
        if done else {},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-home", default=None)
    p.add_argument("--artifact", type=Path, default=ARTIFACT)
    p.add_argument("--bundle-report", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    dataset = load_food_kitchen(args.data_home, progress=False)
    texts = dataset.items.texts
    paths = {item: ps for (item, behaviour), ps in read_intents(args.artifact).paths_by_key().items() if behaviour == 0}
    evaluated = {int(i) for i in dataset.items_in("valid")} | {int(i) for i in dataset.items_in("test")}
    examples = DEFAULT_PROMPT.example_paths
    groups = {"all": range(len(texts)), "valid/test items": sorted(evaluated),
              "train-only items": [i for i in range(len(texts)) if i not in evaluated]}
    quality = {name: {"catalogue_items": len(ids), "with_intents": sum(1 for i in ids if paths.get(i)),
                      **quality_of(((texts[i], paths[i]) for i in ids if i in paths), examples)}
               for name, ids in groups.items()}
    bundle = json.loads(args.bundle_report.read_text(encoding="utf-8"))
    report = {
        "artifact": str(args.artifact),
        "generation": {"train-only shards": throughput(sorted(SUMMARIES.glob("shard-*.json"))),
                       "valid/test regeneration": throughput(sorted(SUMMARIES.glob("regen-*.json"))),
                       "whole run": throughput(sorted([*SUMMARIES.glob("shard-*.json"), *SUMMARIES.glob("regen-*.json")]))},
        "quality": quality,
        "bundle": {k: bundle[k] for k in ("n_items", "n_nodes", "nodes_per_level", "n_leaves", "merge",
                                          "paths_per_item", "items_with_intents", "items_without_intents",
                                          "dropped_paths") if k in bundle},
    }
    write_json_atomic(args.out, report)
    print(json.dumps({"generation": report["generation"]["whole run"], "all": quality["all"],
                      "bundle": report["bundle"]}, indent=1))


if __name__ == "__main__":
    main()
