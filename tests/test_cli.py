"""The `airrec` command line: the documented subcommands run and fail with clear messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from airrec.cli import main


def test_help_lists_every_stage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "generate", "build", "evaluate", "info", "explain", "bench"):
        assert command in out


def test_info_and_explain(small_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(small_bundle)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["dims"]["n_items"] == 120 and info["config"]["beam_width"] >= 1
    assert main(["explain", str(small_bundle), "--history", "1,2,3", "--candidate", "4", "--internal-ids"]) == 0
    by_id = capsys.readouterr().out
    assert "candidate 4 (sku-000004): score" in by_id
    ext = ["explain", str(small_bundle), "--history", "sku-000001, sku-000002,sku-000003", "--candidate", "sku-000004"]
    assert main(ext) == 0
    assert capsys.readouterr().out == by_id
    # Unknown ids, and non-integers with --internal-ids, are typed errors (exit 2), not tracebacks.
    assert main([*ext[:3], "sku-000001,99999", *ext[4:]]) == 2
    assert 'UnknownItemError: unknown item id "99999"' in capsys.readouterr().err
    assert main([*ext, "--internal-ids"]) == 2
    assert "InputError: --internal-ids takes integers" in capsys.readouterr().err


def test_errors_exit_2_with_the_error_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "BundleError" in capsys.readouterr().err


def test_bench_online_quick_writes_figures(tmp_path: Path) -> None:
    out = tmp_path / "online.json"
    env_home = tmp_path / "cache"
    run = subprocess.run(
        [sys.executable, "-m", "airrec", "bench", "online", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "XDG_CACHE_HOME": str(env_home)},
    )
    assert run.returncode == 0, run.stderr
    figures = json.loads(out.read_text())
    for key in ("shape", "rust", "numpy", "speedup_vs_numpy_p50", "batch"):
        assert key in figures
    assert figures["rust"]["p50_us"] > 0 and figures["numpy"]["p50_us"] > 0
    assert figures["batch"]["threads_1_requests_per_s"] > 0
    # Same run, same users: the engine and the reference agree.
    assert figures["max_abs_score_diff_rust_vs_numpy"] < 1e-4
    # The vectorised torch peer, checked equal to the engine before it is timed.
    assert figures["torch"]["p50_us"] > 0 and figures["speedup_vs_torch_p50"] > 0
    assert figures["torch"]["max_abs_score_diff_vs_rust"] < 1e-4


def test_serve_and_bench_load_are_in_the_one_parser_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from airrec.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["serve", "--port", "9001", "--reload-timeout", "5", "--bundle", "b"])
    assert args.port == 9001 and args.reload_timeout == 5.0 and str(args.bundle) == "b"
    args = parser.parse_args(["bench", "load", "--out", str(tmp_path / "x.json"), "--requests", "7"])
    assert args.requests == 7 and callable(args.handler)
    # a typo is the tree's usage error (exit 2), not a stray traceback
    with pytest.raises(SystemExit) as e:
        main(["serve", "--prot", "1"])
    assert e.value.code == 2 and "unrecognized arguments: --prot" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["serve", "--help"])
    assert e.value.code == 0 and "--admin-token-file" in capsys.readouterr().out
    # an empty token file is refused before anything binds a port
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(SystemExit) as e:
        main(["serve", "--admin-token-file", str(empty)])
    assert e.value.code == 2 and "is empty" in capsys.readouterr().err


def test_bad_selections_fail_before_any_expensive_stage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    inter = tmp_path / "interactions.csv"
    inter.write_text("user,item\nu1,a\nu1,b\nu1,c\nu2,a\nu2,c\nu2,b\n")
    base = ["--interactions", str(inter)]
    # An unreadable item range is refused before a model is looked for (none is installed here).
    assert main(["generate", *base, "--cache", str(tmp_path / "c.sqlite"), "--item-range", "5"]) == 2
    assert "--item-range '5': expected LO:HI" in capsys.readouterr().err
    # An empty tuning budget is refused before intents are generated or a bundle is built.
    assert main(["tune", *base, "--trials", "0", "--work-dir", str(tmp_path / "w")]) == 2
    assert "at least one trial" in capsys.readouterr().err
    assert not (tmp_path / "w" / "intents-cache.sqlite").exists()
    assert main(["train", *base, "--items", str(tmp_path / "missing.csv"), "--bundle", str(tmp_path)]) == 2
    assert "missing.csv: file not found" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_instructions_per_request_count_only_the_requests(tmp_path: Path) -> None:
    # The figure counts instructions inside the call that runs the requests, not the whole
    # process (start-up, imports and the bundle load moved a whole-process count by up to ~1 M
    # per request between runs of the same code): two runs agree to a few instructions.
    from airrec.bench.online import Shape, instructions_per_request
    from airrec.synthetic import make_synthetic_bundle

    shape = Shape(events_per_user=20, candidates=50, dim=32, n_nodes=3000, n_items=800)
    bundle = make_synthetic_bundle(tmp_path / "b", n_nodes=3000, n_items=800, dim=32, n_heads=4, depth=3,
                                   paths_per_item=3, seed=4)
    first, again = (instructions_per_request(bundle, shape, n=4)["per_request"] for _ in range(2))
    assert first is not None and again is not None
    assert 10_000 < first < 10_000_000
    assert abs(first - again) <= 1e-3 * first
