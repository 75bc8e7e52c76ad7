"""What AIR's per-epoch validation costs, per line, composing in the engine or in torch.

Scores every line of the given splits (Food–Kitchen: valid 960 + test 937 = 1,897 lines, each
against its 999 saved negatives) with an untrained AIR model through the same
:class:`~airrec.models.air_train.AIRScorer` that ``train_air`` validates with, both ways:
``compose_in="engine"`` (the current weights folded into the engine, which composes) and
``compose_in="torch"`` (the engine's slots, cached after the first pass, composed in torch).
Validation cost does not depend on the weights, so an untrained model measures it; the two
ways' HR@10 are reported side by side. Writes medians to ``--out``::

    python scripts/validation_cost.py --data-home "$AIRREC_DATA_HOME" --bundle <work>/bundle \\
        --out benches/results/validation-cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from airrec._files import write_json_atomic
from airrec.data.source import DataSource
from airrec.engine import Engine
from airrec.evaluate.cli import default_negatives_cache
from airrec.evaluate.negatives import get_negatives
from airrec.evaluate.protocol import evaluate
from airrec.models.air_train import AIRScorer, AIRTrainConfig, build_air_model
from airrec.models.base import SequentialScorer
from airrec.models.train import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-home", required=True)
    parser.add_argument("--bundle", required=True, help="the run's bundle (<work>/bundle)")
    parser.add_argument("--splits", default="valid,test")
    parser.add_argument("--repeats", type=int, default=3, help="cached passes after the first")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    dataset = DataSource(dataset="food-kitchen", data_home=args.data_home).load()
    engine = Engine.load(args.bundle)
    config = AIRTrainConfig()
    model = build_air_model(engine, dataset, TrainConfig(seed=0, progress=False))
    backbone = SequentialScorer(model.backbone, dataset.items.domains, view="mixed", max_len=50, name="backbone")
    model.eval()
    cache = default_negatives_cache()
    splits = args.splits.split(",")
    negatives = {s: get_negatives(dataset, s, config.eval_negatives, config.eval_seed, cache) for s in splits}
    lines = sum(len(dataset.split(s)) for s in splits)
    report: dict[str, object] = {
        "what": "AIR validation through AIRScorer, untrained weights", "splits": splits, "lines": lines,
        "candidates_per_line": config.eval_negatives + 1, "threads": {"torch": 1, "engine": "all cores"},
        "machine": {"cpus": os.cpu_count(), "load_note": "another training run shared the 2 cores"},
    }
    scores = {}
    for way in ("engine", "torch"):
        scorer = AIRScorer(model, engine, backbone, chunk=config.score_chunk, slot_cache_mib=1024.0, compose_in=way)

        def one_pass(scorer: AIRScorer = scorer, way: str = way, keep: bool = False) -> float:
            started = time.perf_counter()
            for s in splits:
                r = evaluate(scorer, dataset, s, negatives[s])
                if keep:
                    scores[(way, s)] = r.metrics()["all"]["HR@10"]
            return time.perf_counter() - started

        first = one_pass(keep=True)
        repeats = [one_pass() for _ in range(args.repeats)]
        warm = statistics.median(repeats)
        report[way] = {"first_pass_s": round(first, 2), "repeat_pass_s": [round(c, 2) for c in repeats],
                       "repeat_median_s": round(warm, 2),
                       "per_2000_lines_s": {"first": round(first / lines * 2000, 1),
                                            "repeat": round(warm / lines * 2000, 1)}}
    report["hr10_engine_vs_torch"] = {s: [scores[("engine", s)], scores[("torch", s)]] for s in splits}
    report["speedup_repeat"] = round(report["torch"]["repeat_median_s"] / report["engine"]["repeat_median_s"], 2)  # type: ignore[index]
    write_json_atomic(Path(args.out), report)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
