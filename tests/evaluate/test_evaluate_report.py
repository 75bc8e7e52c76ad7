"""Results JSON (seed aggregation), markdown tables, plots (or their warning), and the CLI."""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from airrec.errors import InputError
from airrec.evaluate.cli import add_evaluate_arguments, run_evaluate
from airrec.evaluate.protocol import EvalResult
from airrec.evaluate.report import markdown_report, markdown_table, plot_results, results_json, write_report


def _result(model: str, seed: int | None, ranks: list[int], protocol: str = "sampled") -> EvalResult:
    n = len(ranks)
    return EvalResult(
        model=model, dataset="tiny", split="test", protocol=protocol,  # type: ignore[arg-type]
        n_negatives=999 if protocol == "sampled" else None, seed=seed, domain_names=("Food", "Kitchen"),
        ranks=np.asarray(ranks, np.int64), domains=np.array([0, 1] * (n // 2), np.int64),
        in_domain=np.arange(n, dtype=np.int64), lengths=np.arange(n, dtype=np.int64) * 4,
        tied=np.zeros(n, bool),
    )


def test_evaluate_results_json_aggregates_seeds() -> None:
    runs = [_result("m", 0, [1, 1, 20, 20]), _result("m", 1, [20, 1, 20, 20]), _result("m", 2, [1, 20, 20, 20])]
    data = results_json(runs + [_result("m", None, [2, 3, 4, 5], "full")], meta={"note": "x"})
    entry = data["results"]["m"]["test"]["sampled-999"]
    assert entry["seeds"] == [0, 1, 2]
    food = entry["metrics"]["Food"]["HR@1"]  # per seed: 0.5, 0.0, 0.5
    assert food["values"] == [0.5, 0.0, 0.5]
    assert food["mean"] == pytest.approx(1 / 3) and food["std"] == pytest.approx(np.std([0.5, 0, 0.5], ddof=1))
    assert entry["lines"] == {"Food": 2, "Kitchen": 2, "all": 4}
    # in_domain = 0..3 -> bins 0, 1-2, 1-2, 3-5; the 6+ bin is empty: n = 0 and null metrics
    bins = entry["slices"]["in_domain_events"]
    assert bins["1-2"]["all"]["n"] == 2 and bins["6+"]["all"]["n"] == 0
    assert bins["6+"]["all"]["HR@1"]["mean"] is None
    assert data["results"]["m"]["test"]["full"]["metrics"]["all"]["HR@5"]["mean"] == 1.0
    json.dumps(data, allow_nan=False)  # strict JSON
    with pytest.raises(InputError, match="twice"):
        results_json([_result("m", 0, [1, 2]), _result("m", 0, [1, 2])])


def test_evaluate_markdown_table() -> None:
    data = results_json([_result("pop", 0, [1, 2, 3, 4]), _result("pop", 1, [1, 2, 3, 4]), _result("air", 0, [1, 1, 1, 1])])
    table = markdown_table(data, "test", "sampled-999").splitlines()
    assert table[0].startswith("| model | Food HR@1 | Food HR@5 |") and table[0].endswith("Kitchen MRR |")
    assert len(table) == 4 and table[0].count("|") == 14
    assert table[2].startswith("| pop | 0.5000 ± 0.0000 | 1.0000 ± 0.0000 |")  # Food ranks 1, 3
    assert table[3].startswith("| air | 1.0000 |")  # one seed: no ±
    report = markdown_report(data)
    assert "## test: 999 sampled negatives" in report and "cold start" in report


def test_evaluate_plots_or_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = results_json([_result("pop", 0, [1, 2, 3, 4])])
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    with pytest.warns(RuntimeWarning, match="matplotlib"):
        assert plot_results(data, tmp_path) == []
    monkeypatch.undo()
    pytest.importorskip("matplotlib")
    (png,) = plot_results(data, tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_evaluate_write_report(tmp_path: Path) -> None:
    paths = write_report([_result("pop", 0, [1, 2, 3, 4])], tmp_path / "out", plots=False)
    assert json.loads(paths.json.read_text())["format"] == "airrec-eval/1"
    assert "| pop |" in paths.markdown.read_text()


def _write_llmcdsr(root: Path) -> Path:
    """A Food–Kitchen-shaped directory with 2 Food (0, 1) and 2 Kitchen (2, 3) items."""
    d = root / "food-kitchen"
    d.mkdir(parents=True)
    files = {
        "num.txt": "2\n2\n", "instance_num.txt": "1\n1\n1\n", "train_A.txt": "1\t0,1\n",
        "train_B.txt": "1\t2,3,2\n", "train_overlap.txt": "1\t0,2,1\n", "valid.txt": "1\t0,2,1\n",
        "test.txt": "1\t0,2,3\n2\t2,1,0\n",
    }
    for name, text in files.items():
        (d / name).write_text(text, encoding="utf-8")
    for dom, ids in (("A", ("a0", "a1")), ("B", ("b0", "b1"))):
        (d / f"item_set_{dom}.pkl").write_bytes(pickle.dumps({x: i for i, x in enumerate(ids)}))
        (d / f"text_{dom}.pkl").write_bytes(pickle.dumps({x: f"title {x}" for x in ids}))
    return root


def test_evaluate_cli(tmp_path: Path, tiny_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = _write_llmcdsr(tmp_path / "data")
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args([
        "--data-home", str(home), "--bundle", str(tiny_bundle), "--negatives", "1", "--seed", "0", "1",
        "--full-ranking", "--out", str(tmp_path / "res"), "--negatives-cache", str(tmp_path / "neg"),
        "--no-plots", "--threads", "1",
    ])
    assert run_evaluate(args) == 0
    data = json.loads((tmp_path / "res" / "results.json").read_text())
    assert set(data["results"]) == {"popularity", "AIR zero-shot (untrained score head)"}
    pop = data["results"]["popularity"]["test"]
    assert set(pop) == {"sampled-1", "full"} and pop["sampled-1"]["seeds"] == [0, 1]
    # counts 0:4, 1:3, 2:6, 3:1; test targets 3 (Kitchen, below 2: rank 2) and 0 (Food, above 1)
    assert pop["full"]["metrics"]["Kitchen"]["MRR"]["mean"] == 0.5
    assert pop["full"]["metrics"]["Food"]["MRR"]["mean"] == 1.0
    assert len(list((tmp_path / "neg").glob("*.npz"))) == 2
    assert "| popularity |" in capsys.readouterr().out
    with pytest.raises(InputError):
        run_evaluate(parser.parse_args(["--data-home", str(home), "--no-sampled"]))


def test_evaluate_cli_refuses_a_foreign_bundle(tmp_path: Path, small_bundle: Path) -> None:
    home = _write_llmcdsr(tmp_path / "data")
    parser = argparse.ArgumentParser()
    add_evaluate_arguments(parser)
    args = parser.parse_args(["--data-home", str(home), "--bundle", str(small_bundle), "--out", str(tmp_path)])
    with pytest.raises(InputError, match="another dataset"):
        run_evaluate(args)


def test_significance_is_a_paired_bootstrap_per_domain() -> None:
    rng = np.random.default_rng(0)
    n = 400
    base = rng.integers(1, 40, size=n)
    # "air" wins on Food lines (even positions: rank 1 where the baseline had 5..39), ties on Kitchen
    better = np.where((np.arange(n) % 2 == 0) & (rng.random(n) < 0.3), 1, base)
    runs = [_result("air", s, better.tolist()) for s in (0, 1)] + [
        _result("gru4rec", s, base.tolist()) for s in (0, 1)
    ]
    data = results_json(runs)
    cell = data["significance"]["air vs gru4rec"]["test"]["sampled-999"]
    food, kitchen = cell["Food"]["HR@10"], cell["Kitchen"]["HR@10"]
    assert food["diff"] > 0 and food["ci95"][0] > 0 and food["p_value"] < 0.01
    assert kitchen["diff"] == 0 and kitchen["ci95"] == [0.0, 0.0] and kitchen["p_value"] == 1.0
    assert food["n_lines"] == n // 2 and food["n_boot"] == 10_000
    md = markdown_report(data)
    assert "| air vs gru4rec | Food | HR@10 |" in md
    # pairing needs the same lines
    with pytest.raises(InputError, match="different"):
        results_json([_result("air", 0, [1, 2, 3, 4]), _result("gru4rec", 0, [1, 2])])


def test_paired_bootstrap_rejects_bad_input() -> None:
    from airrec.evaluate.metrics import paired_bootstrap

    with pytest.raises(InputError):
        paired_bootstrap([1.0, 2.0], [1.0])
    with pytest.raises(InputError):
        paired_bootstrap([1.0, float("nan")], [1.0, 1.0])
    got = paired_bootstrap([1.0, 0.0, 1.0], [0.0, 0.0, 1.0], n_boot=2000)
    assert got.diff == pytest.approx(1 / 3) and 0.0 <= got.ci_low <= got.diff <= got.ci_high <= 1.0
    assert got.p_value > 0.05  # one differing line of three is no evidence
