"""`airrec bench llm-vs-air`: the paper's headline — asking the LLM at request time versus the
airrec online path — for the same users, on the same machine, in the same run.

The LLM path is what a system without AIR's offline cache must do per request: run the LLM over
the user's recent item texts (same model, same few-shot prompt and grammar as the offline stage,
its sequences decoded together — the fastest way to ask it), then compose. Decoding is greedy, so
the request-time answer for an item equals the cached one, and the composition that follows is
the engine's; the LLM path's latency is therefore *generation + the engine request*. The airrec
path is the engine request alone: build the tree from the cached intents, score the candidates.
"""

from __future__ import annotations

import os
import platform
import time
from typing import Any

import numpy as np

from airrec._files import write_json_atomic


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    a = np.asarray(samples_s)
    return {
        "n": int(a.size),
        "p50_ms": float(np.percentile(a, 50) * 1e3),
        "p99_ms": float(np.percentile(a, 99) * 1e3),
        "mean_ms": float(a.mean() * 1e3),
    }


def run_llm_vs_air(
    bundle: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    model: str = "qwen2.5-coder-0.5b",
    data_home: str | None = None,
    users: int = 5,
    recent: int = 10,
    candidates: int = 200,
    engine_repeats: int = 200,
    seed: int = 0,
    allow_install: bool = False,
) -> dict[str, Any]:
    """Measures both paths for `users` Food–Kitchen test users and writes JSON to `out`."""
    from airrec.data import load_food_kitchen
    from airrec.engine import Engine
    from airrec.generate import IntentGenerator, Unit

    dataset = load_food_kitchen(data_home, progress=False)
    engine = Engine.load(bundle)
    test = dataset.test
    assert test.targets is not None, "test lines carry targets"
    rng = np.random.default_rng(seed)
    lengths = np.diff(test.offsets)
    eligible = np.flatnonzero(lengths >= recent)
    chosen = rng.choice(eligible, size=min(users, eligible.size), replace=False)
    behaviour = dataset.behaviour_names[0]
    texts = dataset.items.texts

    t0 = time.perf_counter()
    generator = IntentGenerator(model, n_parallel=recent, allow_install=allow_install)
    model_load_s = time.perf_counter() - t0

    llm_s: list[float] = []
    air_s: list[float] = []
    examples: list[dict[str, Any]] = []
    for line in chosen.tolist():
        history = test.items[test.offsets[line] : test.offsets[line + 1]]
        last = history[-recent:]
        target = int(test.targets[line])
        domain = int(dataset.items.domains[target])
        pool = np.flatnonzero(dataset.items.domains == domain)
        cands = np.concatenate([[target], rng.choice(pool[pool != target], candidates - 1, replace=False)])

        units = [Unit(key=f"request-{line}-{k}", item_id=int(i), behaviour=behaviour, text=texts[int(i)])
                 for k, i in enumerate(last)]
        t = time.perf_counter()
        outcomes = list(generator.generate(units))
        engine.score(history, cands)
        llm_s.append(time.perf_counter() - t)

        for _ in range(engine_repeats):
            t = time.perf_counter()
            engine.score(history, cands)
            air_s.append(time.perf_counter() - t)
        examples.append({
            "line": line,
            "recent_items": [int(i) for i in last],
            "request_time_intents": [o.paths for o in outcomes][:3],
        })

    llm, air = _percentiles(llm_s), _percentiles(air_s)
    result: dict[str, Any] = {
        "benchmark": "LLM at request time vs airrec online path",
        "model": model,
        "users": len(llm_s),
        "recent_items_per_user": recent,
        "candidates_per_request": candidates,
        "llm_request_time": llm,
        "airrec_online": air,
        "ratio_p50": llm["p50_ms"] / air["p50_ms"],
        "airrec_p99_ms": air["p99_ms"],
        "model_load_s": model_load_s,
        "paper": {"llm_ms": 8000.0, "air_ms": 20.134, "ratio": 8000.0 / 20.134},
        "examples": examples,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(out, result)
    return result
