"""The example service and the load test, for real: uvicorn subprocesses on 127.0.0.1.

Bounded (a few hundred requests) and free of timing assertions: the machine may be slow or
shared; what must hold is zero errors, a reload that took, and figures with the expected keys.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
import httpx

from airrec.serve.loadtest import free_port, run_loadtest, serve_in_subprocess
from airrec.serve.server import synthetic_bundle

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "http_service.py"


def test_loadtest_against_a_subprocess_server(small_bundle: Path, tmp_path: Path) -> None:
    second = synthetic_bundle(tmp_path, seed=2)
    out = tmp_path / "load.json"
    root = os.path.commonpath([small_bundle, second])
    with serve_in_subprocess(small_bundle, admin_token="t0ken", bundle_root=root) as base_url:
        report = run_loadtest(base_url, out, levels=(1, 4), requests_per_level=120, time_cap_s=30,
                              reload_path=second, reload_level=4, warmup=5, admin_token="t0ken")
    assert json.loads(out.read_text()) == report
    assert {"machine", "settings", "levels", "reload", "total_requests", "total_errors",
            "version_before", "version_after", "version_regressions"} <= set(report)
    assert report["total_errors"] == 0 and report["version_regressions"] == 0
    assert report["reload"]["status"] == 200 and report["reload"]["concurrency"] == 4
    assert (report["version_before"], report["version_after"]) == (1, 2)
    for level in report["levels"]:
        assert {"concurrency", "requests", "errors", "throughput_rps", "latency_ms", "versions",
                "wall_s", "by_endpoint", "time_capped"} <= set(level)
        assert {"p50", "p99", "mean", "max"} <= set(level["latency_ms"])
        assert level["requests"] >= 120 and level["errors"] == 0 and not level["time_capped"]
    assert report["total_requests"] >= 240


def test_loadtest_refuses_non_loopback_targets(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        run_loadtest("http://10.0.0.1:8000", tmp_path / "x.json")


def test_example_service_runs(tmp_path: Path) -> None:
    """``python examples/http_service.py`` (synthetic bundle) serves the documented calls."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "the example exited"
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the example did not start"
            time.sleep(0.1)
        score = httpx.post(f"{base}/score", json={"items": [1, 2, 3], "candidates": [4, 5]}).json()
        assert score["version"] == 1 and len(score["scores"]) == 2
        top = httpx.post(f"{base}/retrieve", json={"items": [1, 2, 3], "domain": "d0", "k": 5}).json()
        assert len(top["items"]) == 5
        why = httpx.post(f"{base}/explain", json={"items": [1, 2, 3], "candidate": 4}).json()
        assert why["explanation"]["chains"]
        bad = httpx.post(f"{base}/score", json={"items": [999], "candidates": [4]})
        assert bad.status_code == 422 and bad.json()["error"] == "unknown_item"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
