"""docs/own-data.md, run as written: two generated CSV tables -> intents with the real tiny LLM
-> bundle with the real MiniLM -> trained and evaluated -> explained and served."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from airrec.cli import main

BOOKS = ["a paperback mystery novel", "a hardcover cookbook of italian pasta", "a children's picture book about dogs",
         "a travel guide to japan", "a science fiction trilogy box set", "a watercolor painting handbook",
         "a field guide to garden birds", "a vegan baking cookbook", "a history of the roman empire",
         "a poetry collection about the sea"]
HOME = ["a cordless drill with two batteries", "a set of stainless steel measuring cups", "a bamboo cutting board",
        "a watercolor paint set with brushes", "a pair of garden pruning shears", "a cast iron skillet",
        "a dog leash with a padded handle", "a japanese chef knife", "a bird feeder for the garden",
        "a silicone baking mat"]


def write_tables(root: Path, users: int = 60, events: int = 8) -> tuple[Path, Path]:
    """Users with a favourite theme (book k goes with home item k), in two domains."""
    rng = random.Random(0)
    items = root / "items.csv"
    items.write_text("item,domain,text\n" + "".join(f"B{i:03d},books,{t}\n" for i, t in enumerate(BOOKS))
                     + "".join(f"T{i:03d},home,{t}\n" for i, t in enumerate(HOME)))
    rows = ["user,item,domain,timestamp"]
    for u in range(users):
        for k in range(events):
            i = (u % 10 + (0 if k % 2 == 0 else rng.randint(0, 2))) % 10 if rng.random() < 0.6 else rng.randrange(10)
            books = rng.random() < 0.5
            rows.append(f"user{u},{'B' if books else 'T'}{i:03d},{'books' if books else 'home'},{k}")
    inter = root / "interactions.csv"
    inter.write_text("\n".join(rows) + "\n")
    return inter, items


@pytest.mark.llm
@pytest.mark.embedder
def test_walk_through(tmp_path: Path, smollm2: str, capsys: pytest.CaptureFixture[str]) -> None:
    inter, items = write_tables(tmp_path)
    data = ["--interactions", str(inter), "--items", str(items), "--name", "shop"]
    intents = tmp_path / "intents.jsonl.gz"
    assert main(["generate", *data, "--model", smollm2, "--workers", "1", "--cache", str(tmp_path / "i.sqlite"),
                 "--export", str(intents), "--no-progress"]) == 0
    assert intents.stat().st_size > 0
    bundle = tmp_path / "bundle"
    assert main(["build", *data, "--intents", str(intents), "--out", str(bundle), "--quiet",
                 "--cache-dir", str(tmp_path / "emb")]) == 0
    out = tmp_path / "results"
    assert main(["train", *data, "--bundle", str(bundle), "--models", "sasrec-mixed,air", "--epochs", "2",
                 "--negatives", "5", "--out", str(out), "--no-plots"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["meta"]["dataset"] == "shop"
    assert set(results["results"]) == {"SASRec (mixed)", "AIR (SASRec-mixed + LLM intents)"}
    exported = out / "bundles" / "air.seed0"
    parity = results["meta"]["export_parity"]["seed0"]
    assert parity["max_abs_score"] <= 1e-5
    assert main(["evaluate", *data, "--bundle", str(exported), "--negatives", "5", "--out", str(tmp_path / "eval"),
                 "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["explain", str(exported), "--history", "B000,T001,B003", "--candidate", "T002"]) == 0
    explained_text = capsys.readouterr().out
    assert "(T002): score" in explained_text and "evidence event" in explained_text

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from airrec.serve.app import create_app

    with TestClient(create_app(exported)) as client:
        history = ["B000", "T001", "B003"]
        scored = client.post("/score", json={"items": history, "candidates": ["T002", "B004", "T007"]})
        assert scored.status_code == 200 and len(scored.json()["scores"]) == 3
        explained = client.post("/explain", json={"items": history, "candidate": "T002"})
        assert explained.status_code == 200 and explained.json()["explanation"]["chains"]
        assert explained.json()["explanation"]["candidate_ext"] == "T002"
        top = client.post("/retrieve", json={"items": history, "domain": "home", "k": 3}).json()
        assert len(top["ids"]) == 3 and all(i.startswith("T") for i in top["ids"])
