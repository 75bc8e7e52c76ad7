"""``airrec baselines`` pieces: flags, model list, train-then-evaluate into the shared report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from test_models_train import FAST

from airrec.data import Dataset
from airrec.errors import InputError
from airrec.evaluate.report import write_report
from airrec.models.cli import _config, add_baselines_arguments, parse_models, train_and_evaluate


def test_flags_and_models(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_baselines_arguments(parser)
    args = parser.parse_args(["--data-home", "d", "--out", str(tmp_path), "--models", "sasrec-mixed,gru4rec",
                              "--epochs", "3", "--seed", "2", "--checkpoint-dir", str(tmp_path / "ck")])
    assert parse_models(args.models) == ["sasrec-mixed", "gru4rec"]
    cfg = _config(args, "gru4rec")
    assert (cfg.epochs, cfg.seed, cfg.eval_seed, cfg.threads, cfg.dim) == (3, 2, 2, 1, 64)
    assert cfg.checkpoint == tmp_path / "ck" / "gru4rec.seed2.pt"
    with pytest.raises(InputError):
        parse_models("sasrec,gru4rec")


def test_train_and_evaluate_report(cyclic: Dataset, tmp_path: Path) -> None:
    kinds = ["sasrec-mixed", "gru4rec"]
    results, trained = train_and_evaluate(cyclic, kinds, [FAST, FAST])
    assert [r.model for r in results] == ["popularity", "SASRec (mixed)", "GRU4Rec"]
    assert all(r.n_negatives == 20 and r.split == "test" for r in results)
    paths = write_report(results, tmp_path, meta={"training": [t.to_dict() for t in trained]}, plots=False)
    data = json.loads(paths.json.read_text())
    assert "GRU4Rec" in json.dumps(data) and "SASRec (mixed)" in paths.markdown.read_text()
