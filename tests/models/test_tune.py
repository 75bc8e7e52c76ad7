"""The equal-budget search: the same trials for every model, selected on valid, resumable, and
its choices fed back into the suite under their own run names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airrec import DataError, InputError
from airrec.data import Dataset
from airrec.models.suite import (
    SuiteOptions,
    check_hyper,
    effective_hyper,
    hyper_tag,
    run_suite,
    split_air_hyper,
)
from airrec.models.tune import (
    TUNING_GRID,
    TuningOptions,
    chosen_hyper,
    hyper_settings,
    parse_overrides,
    read_tuning,
    run_tuning,
    trial_settings,
)
from airrec.synthetic import make_synthetic_bundle


def test_trials_start_at_the_defaults_and_are_distinct_grid_points() -> None:
    trials = trial_settings(5, seed=0)
    assert trials[0] == {} and len(trials) == 5
    assert len({json.dumps(t, sort_keys=True) for t in trials}) == 5
    for t in trials[1:]:
        assert t and all(v in TUNING_GRID[k] for k, v in t.items())
    assert trial_settings(5, seed=0) == trials  # the same list for every model and call
    assert trial_settings(5, seed=1) != trials
    with pytest.raises(InputError):
        trial_settings(0)
    with pytest.raises(InputError, match="grid has"):
        trial_settings(10_000)


def test_hyper_tags_and_checks() -> None:
    assert hyper_tag({}) == "" and effective_hyper({"dim": 64, "lr": 1e-3}) == {}
    assert effective_hyper({"dim": 96, "lr": 1e-3}) == {"dim": 96}
    assert hyper_tag({"dim": 96, "lr": 2e-3}) == hyper_tag({"lr": 2e-3, "dim": 96}) != hyper_tag({"dim": 96})
    with pytest.raises(InputError, match="unknown model"):
        check_hyper({"bert4rec": {"dim": 32}})
    with pytest.raises(InputError, match="not tunable"):
        check_hyper({"gru4rec": {"dimension": 32}})
    with pytest.raises(InputError, match="not tunable"):
        check_hyper({"gru4rec": {"seed": 3}})  # the seed belongs to the protocol, not the search


def test_air_objective_settings_are_hyper_parameters_of_air_models_only() -> None:
    check_hyper({"air-gru4rec": {"dropout": 0.3, "air_positions": 0, "air_negatives": 63, "air_weight": 0.5,
                                 "air_engine": {"max_evidence": 16}, "air_backbone_grad": False,
                                 "air_select_on": "backbone"}})
    assert split_air_hyper({"air_backbone_grad": False}) == ({}, {"backbone_grad": False})
    assert effective_hyper({"air_backbone_grad": True}) == {}
    assert effective_hyper({"air_engine": {}}) == {}
    # The AIR keys' defaults are AIRTrainConfig's: at the defaults the run is the default run.
    assert effective_hyper({"air_positions": 1, "air_negatives": 15, "air_weight": 1.0}) == {}
    assert effective_hyper({"air_positions": 4, "max_len": 30}) == {"air_positions": 4, "max_len": 30}
    assert split_air_hyper({"air_positions": 4, "max_len": 30}) == ({"max_len": 30}, {"positions": 4})
    with pytest.raises(InputError, match="not tunable"):
        check_hyper({"gru4rec": {"air_positions": 4}})  # a baseline has no AIR objective
    for bad in [{"air_negatives": 0}, {"air_positions": -1}, {"air_positions": 2.5}, {"air_weight": float("nan")},
                {"air_weight": float("inf")}, {"air_weight": -1}, {"air_negatives": True}, {"air_weight": "1"},
                {"air_engine": [1]}, {"air_engine": "max_evidence=3"}, {"air_backbone_grad": 0},
                {"air_backbone_grad": "false"}, {"air_select_on": "test"}, {"air_select_on": 1}]:
        with pytest.raises(InputError, match="air_negatives: an int >= 1"):
            check_hyper({"air": bad})


def test_set_overrides_parse_and_stack_on_the_tuning_choice(tmp_path: Path) -> None:
    assert parse_overrides(["air-gru4rec.air_positions=4", "air-gru4rec.dropout=0.3", "gru4rec.loss=bce"]) == {
        "air-gru4rec": {"air_positions": 4, "dropout": 0.3}, "gru4rec": {"loss": "bce"}}
    for bad in ["air_positions=4", "air-gru4rec.air_positions", ".x=1", "air-gru4rec.=1"]:
        with pytest.raises(InputError, match=r"MODEL\.KEY=VALUE"):
            parse_overrides([bad])
    assert hyper_settings(None, {"air": {"air_negatives": 31}}) == {"air": {"air_negatives": 31}}
    with pytest.raises(InputError, match="unknown model"):
        hyper_settings(None, parse_overrides(["bert4rec.dim=32"]))
    path = tmp_path / "tuning.json"
    path.write_text(json.dumps({"format": "airrec-tuning", "models": {
        "air-gru4rec": {"chosen": {"dropout": 0.3, "max_len": 30}}}}), encoding="utf-8")
    assert hyper_settings(path, {"air-gru4rec": {"max_len": 50, "air_positions": 0}}) == {
        "air-gru4rec": {"dropout": 0.3, "max_len": 50, "air_positions": 0}}


def test_search_selects_on_valid_resumes_and_feeds_the_suite(cyclic: Dataset, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = make_synthetic_bundle(tmp_path / "bundle", n_nodes=200, n_items=60, dim=16, n_heads=2, depth=3,
                                   paths_per_item=2, seed=4)
    opts = TuningOptions(models=("sasrec-mixed", "air"), trials=2, bundles={"main": bundle},
                         out_dir=tmp_path / "tuning", negatives=20, negatives_cache=tmp_path / "neg", epochs=2,
                         progress=False)
    path = run_tuning(cyclic, opts)
    summary = read_tuning(path)
    assert summary["trials_done"] == 2 and (tmp_path / "tuning" / "tuning.md").exists()
    second = summary["settings"][1]
    for m in ("sasrec-mixed", "air"):
        rows = summary["models"][m]["trials"]
        assert [r["setting"] for r in rows] == [{}, second]  # equal budget, same points
        best = max(rows, key=lambda r: r["best_valid_hr10"])
        assert summary["models"][m]["chosen"] == best["setting"]
        assert 0.0 <= best["best_valid_hr10"] <= 1.0
        # Each trial trained with its own settings, under its own run name.
        record = json.loads((tmp_path / "tuning" / "runs" / f"{m}{hyper_tag(second)}.seed0.json").read_text())
        cfg = record["training"]["backbone_config" if m == "air" else "config"]
        assert {k: cfg[k] for k in second} == second

    # Resumed: nothing is trained again.
    import airrec.models.air_train as air_train
    import airrec.models.train as train

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setattr(train, "train_model", refuse)
    monkeypatch.setattr(air_train, "train_air", refuse)
    assert read_tuning(run_tuning(cyclic, opts))["models"] == summary["models"]

    # The chosen settings run under their tagged names in the suite (reused here).
    hyper = chosen_hyper(path)
    report = run_suite(cyclic, SuiteOptions(models=("sasrec-mixed",), seeds=(0,), out_dir=tmp_path / "tuning",
                                            negatives=20, negatives_cache=tmp_path / "neg", epochs=2, plots=False,
                                            progress=False, hyper=hyper))
    assert json.loads(report.results.read_text())["results"]


def test_a_bad_tuning_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "tuning.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="not a readable"):
        read_tuning(bad)
    bad.write_text(json.dumps({"format": "something-else", "models": {}}))
    with pytest.raises(DataError, match="not an airrec tuning"):
        read_tuning(bad)
    bad.write_text(json.dumps({"format": "airrec-tuning", "models": {"air": {"chosen": {"learning_rate": 1}}}}))
    with pytest.raises(InputError, match="not tunable"):
        chosen_hyper(bad)
