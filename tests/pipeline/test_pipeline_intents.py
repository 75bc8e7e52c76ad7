"""`airrec run`'s intents stage: committed intents merged with generated ones, counts of what
is covered and what falls back to cold start (no LLM needed when nothing is generated)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "evaluate"))
from evaluate_fixtures import make_dataset

from airrec.kb.intents import read_intents, write_intents
from airrec.pipeline import RunOptions, prepare_intents


@pytest.fixture
def dataset():  # type: ignore[no-untyped-def]
    # Items 0-3 Food, 4-7 Kitchen; valid/test histories and targets use items 0, 1, 2, 4, 5, 6.
    return make_dataset(
        4, 4,
        train=[[0, 3, 7], [3, 7]],
        valid=([[0, 1]], [4]),
        test=([[2, 5]], [6]),
    )


def test_seed_intents_are_merged_and_counted(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed = write_intents(tmp_path / "seed.jsonl.gz", [
        (0, 0, [["food", "snacks"]]),
        (5, 0, [["kitchen", "tools", "knives"]]),
        (7, 0, [["kitchen", "storage"]]),  # a train-only item: kept, not counted as needed
    ])
    opts = RunOptions(work_dir=tmp_path / "work", intents=[seed], max_generate=0)
    opts.work_dir.mkdir()
    merged, counts = prepare_intents(dataset, opts)
    assert counts == {"pairs": 3, "needed_items": 6, "covered_items": 2, "generated_now": 0,
                      "cold_start_items": 4}
    assert read_intents(merged).paths_by_key() == read_intents(seed).paths_by_key()


def test_no_seed_and_no_generation_gives_an_empty_file(dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    opts = RunOptions(work_dir=tmp_path, intents=[], max_generate=0)
    merged, counts = prepare_intents(dataset, opts)
    assert counts["covered_items"] == 0 and counts["cold_start_items"] == 6
    assert read_intents(merged).paths_by_key() == {}


def test_labels_follow_the_intents_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airrec.pipeline import DEFAULT_INTENTS, intents_label

    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the repository root, where the artifact is
    assert intents_label(RunOptions(work_dir=tmp_path)) == "Qwen"
    # Naming the committed artifact is the same as defaulting to it.
    assert intents_label(RunOptions(work_dir=tmp_path, intents=[DEFAULT_INTENTS])) == "Qwen"
    other = tmp_path / "mine.jsonl.gz"
    assert intents_label(RunOptions(work_dir=tmp_path, intents=[other])) == "LLM"
    assert intents_label(RunOptions(work_dir=tmp_path, intents=[], model="smollm2-135m")) == "SmolLM2"


@pytest.mark.parametrize(("models", "want"), [
    (["air", "gru4rec"], set()),
    (["air-random"], {"random"}),
    (["air-gru4rec-random", "air-gru4rec"], {"random"}),  # the GRU4Rec ablation needs it too
])
def test_ablation_bundles_follow_the_models_bundle_keys(dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                        models: list[str], want: set[str]) -> None:
    import airrec.pipeline as pipeline

    built: list[str] = []

    def fake_build(_dataset: object, intents: Path, _opts: object, name: str = "bundle") -> Path:
        built.append(name)
        assert intents.exists()  # the shuffled intents were written first
        return tmp_path / name

    monkeypatch.setattr(pipeline, "build", fake_build)
    seed = write_intents(tmp_path / "seed.jsonl.gz", [(0, 0, [["food", "snacks"]]), (5, 0, [["kitchen", "tools"]])])
    opts = RunOptions(work_dir=tmp_path / "work")
    opts.work_dir.mkdir()
    out = pipeline.ablation_bundles(dataset, seed, opts, models)
    assert set(out) == want and built == [f"bundle-{k}" for k in sorted(want)]
