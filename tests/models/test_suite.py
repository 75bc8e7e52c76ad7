"""`run_suite` (what `airrec train` and `airrec run` call): one report over models and seeds,
every finished run saved and reused, the AIR export parity-checked."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from airrec import InputError
from airrec.data import Dataset
from airrec.evaluate.store import load_result, save_result
from airrec.models.suite import SuiteOptions, parse_models, run_suite
from airrec.synthetic import make_synthetic_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("suite") / "bundle"
    return make_synthetic_bundle(out, n_nodes=200, n_items=60, dim=16, n_heads=2, depth=3, paths_per_item=2, seed=4)


def test_parse_models() -> None:
    assert parse_models("air, sasrec-mixed,air") == ["air", "sasrec-mixed"]
    with pytest.raises(InputError, match="unknown"):
        parse_models("air,bert4rec")


def test_suite_report_resume_and_export(cyclic: Dataset, bundle: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    opts = SuiteOptions(models=("popularity", "sasrec-mixed", "air"), seeds=(0, 1), bundles={"main": bundle},
                        out_dir=tmp_path / "out", negatives=20, negatives_cache=tmp_path / "neg", epochs=2,
                        plots=True, progress=False)
    report = run_suite(cyclic, opts)
    data = json.loads(report.results.read_text())
    rows = data["results"]
    assert set(rows) == {"popularity", "SASRec (mixed)", "AIR (SASRec-mixed + Qwen intents)"}
    air = rows["AIR (SASRec-mixed + Qwen intents)"]["test"]["sampled-20"]
    assert air["seeds"] == [0, 1] and air["metrics"]["all"]["HR@10"]["n"] == 2
    assert "±" in report.markdown.read_text()
    assert len(report.exported) == 2 and all((p / "manifest.json").exists() for p in report.exported)
    for parity in data["meta"]["export_parity"].values():
        assert parity["max_abs_intent_vector"] <= 1e-5 and parity["max_abs_score"] <= 1e-5
    assert any(p.name == "training_curves.png" for p in report.plots)
    training = json.loads(report.training.read_text())
    assert {t["model"] for t in training} == {"SASRec (mixed)", "AIR (SASRec-mixed + Qwen intents)"}

    # A second call reuses every saved run: nothing is trained again.
    import airrec.models.air_train as air_train
    import airrec.models.train as train

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a saved run was trained again")

    monkeypatch.setattr(train, "train_model", refuse)
    monkeypatch.setattr(air_train, "train_air", refuse)
    again = run_suite(cyclic, opts)
    assert json.loads(again.results.read_text())["results"] == rows


@pytest.mark.parametrize("model", ["air-random", "air-gru4rec-random"])
def test_air_models_need_their_bundle(cyclic: Dataset, bundle: Path, tmp_path: Path, model: str) -> None:
    with pytest.raises(InputError, match="random"):
        run_suite(cyclic, SuiteOptions(models=(model,), bundles={"main": bundle}, out_dir=tmp_path))


def test_saved_results_round_trip(cyclic: Dataset, tmp_path: Path) -> None:
    from airrec.evaluate import PopularityScorer, evaluate, get_negatives

    r = evaluate(PopularityScorer(cyclic), cyclic, "test", get_negatives(cyclic, "test", 20, 0), seed=3)
    back = load_result(save_result(r, tmp_path / "r.npz"))
    assert back.metrics() == r.metrics() and back.seed == 3 and back.domain_names == r.domain_names
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    from airrec.errors import DataError

    with pytest.raises(DataError):
        load_result(tmp_path / "bad.npz")


def test_ablations_run_on_their_own_seeds(cyclic: Dataset, bundle: Path, tmp_path: Path) -> None:
    opts = SuiteOptions(models=("sasrec-mixed", "air-no-weights"), seeds=(0,), ablation_seeds=(1,),
                        bundles={"main": bundle}, out_dir=tmp_path / "out", negatives=20,
                        negatives_cache=tmp_path / "neg", epochs=1, plots=False, progress=False)
    run_suite(cyclic, opts)
    runs = sorted(p.name for p in (tmp_path / "out" / "runs").glob("*.json"))
    assert runs == ["air-no-weights.seed1.json", "sasrec-mixed.seed0.json"]


def test_labels_name_the_intents_source_and_saved_runs_follow(cyclic: Dataset, bundle: Path, tmp_path: Path) -> None:
    from airrec.models.suite import model_label

    assert model_label("air") == "AIR (SASRec-mixed + Qwen intents)"
    assert model_label("air-gru4rec", "SmolLM2") == "AIR (GRU4Rec + SmolLM2 intents)"
    assert model_label("sasrec-mixed", "SmolLM2") == "SASRec (mixed)"
    opts = SuiteOptions(models=("air",), seeds=(0,), bundles={"main": bundle}, out_dir=tmp_path / "out", negatives=20,
                        negatives_cache=tmp_path / "neg", epochs=1, plots=False, progress=False, export=False,
                        intents_label="SmolLM2")
    rows = json.loads(run_suite(cyclic, opts).results.read_text())["results"]
    assert set(rows) == {"AIR (SASRec-mixed + SmolLM2 intents)"}
    # The same saved run, reported for another intents label, is relabelled, not split in two.
    again = run_suite(cyclic, SuiteOptions(**{**opts.__dict__, "intents_label": "LLM"}))
    assert set(json.loads(again.results.read_text())["results"]) == {"AIR (SASRec-mixed + LLM intents)"}


def test_a_bundle_of_other_data_is_refused_before_any_training(cyclic: Dataset, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    other = make_synthetic_bundle(tmp_path / "other", n_nodes=50, n_items=cyclic.n_items + 7, dim=8, n_heads=2,
                                  depth=2, paths_per_item=1, seed=1)
    import airrec.models.train as train

    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("trained before checking the bundle")

    monkeypatch.setattr(train, "train_model", refuse)
    with pytest.raises(InputError, match="built for other data"):
        run_suite(cyclic, SuiteOptions(models=("sasrec-mixed", "air"), bundles={"main": other}, out_dir=tmp_path / "o",
                                       negatives=20, negatives_cache=tmp_path / "neg", progress=False))


def test_saved_runs_are_keyed_by_their_inputs(cyclic: Dataset, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    opts = SuiteOptions(models=("popularity", "sasrec-mixed"), seeds=(0,), out_dir=tmp_path / "out", negatives=20,
                        negatives_cache=tmp_path / "neg", epochs=1, plots=False, progress=False)
    run_suite(cyclic, opts)
    record = json.loads((tmp_path / "out" / "runs" / "sasrec-mixed.seed0.json").read_text())
    assert record["provenance"] == {"data_sha256": cyclic.fingerprint(), "negatives": 20, "negatives_seed": 0,
                                    "epochs": 1, "full_ranking": False}
    # Another epoch budget (or other data, negatives, intents) is another run: trained again.
    import airrec.models.train as train

    calls: list[str] = []
    real = train.train_model

    def counting(kind: str, *args: object, **kwargs: object) -> object:
        calls.append(kind)
        return real(kind, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(train, "train_model", counting)
    with caplog.at_level("WARNING", logger="airrec.models.suite"):
        run_suite(cyclic, dataclasses.replace(opts, epochs=2))
    assert calls == ["sasrec-mixed"]
    assert "was made with other epochs; running it again" in caplog.text
    assert json.loads((tmp_path / "out" / "runs" / "sasrec-mixed.seed0.json").read_text())["provenance"]["epochs"] == 2
