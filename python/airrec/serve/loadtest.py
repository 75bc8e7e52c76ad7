"""A bounded load test of the HTTP service on loopback, with a hot reload in the middle.

``python -m airrec.serve.loadtest --out FILE`` builds two synthetic bundles (different seeds),
starts the service on a free 127.0.0.1 port in a subprocess, runs :func:`run_loadtest` with a
reload to the second bundle half-way through one concurrency level, stops the server and writes
the figures (JSON) to ``FILE``, together with the in-process thread scaling of one engine
(:mod:`airrec.serve.scaling`). It exits non-zero if any request failed.

Bounded on purpose: each level sends at most ``requests_per_level`` requests and stops at
``time_cap_s`` seconds, so a slow machine gives fewer samples, not a hung job. Only loopback
addresses are accepted as targets. Client and server share the machine's cores, so figures
measure the pair: read them as relative (levels against each other), not as capacity.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import platform
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

__all__ = ["run_loadtest", "serve_in_subprocess", "main"]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DEFAULT_LEVELS = (1, 2, 4, 8, 16)
#: Share of each endpoint in the request mix.
DEFAULT_MIX = (("score", 0.7), ("retrieve", 0.2), ("explain", 0.1))


def _check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"the load test only targets loopback (127.0.0.1), not {host!r}")


def _payloads(n: int, n_items: int, domains: Sequence[str], mix: Sequence[tuple[str, float]],
              seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` requests drawn from ``mix``: histories of 5-50 items, 20 candidates, k = 10."""
    rng = np.random.default_rng(seed)
    names = [m[0] for m in mix]
    weights = np.array([m[1] for m in mix], dtype=np.float64)
    kinds = rng.choice(len(names), size=n, p=weights / weights.sum())
    out: list[tuple[str, dict[str, Any]]] = []
    for kind in kinds.tolist():
        items = rng.integers(0, n_items, size=int(rng.integers(5, 51))).tolist()
        name = names[kind]
        if name == "score":
            body: dict[str, Any] = {"items": items, "candidates": rng.integers(0, n_items, 20).tolist()}
        elif name == "retrieve":
            body = {"items": items, "domain": domains[int(rng.integers(len(domains)))], "k": 10}
        else:
            body = {"items": items, "candidate": int(rng.integers(n_items))}
        out.append((name, body))
    return out


@dataclass
class _Sample:
    endpoint: str
    latency_s: float
    status: int  # 0: no answer (connection error, timeout)
    version: int | None
    worker: int


@dataclass
class _Level:
    concurrency: int
    samples: list[_Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: Set by the worker that takes the middle ticket: the reload thread's cue.
    half_way: threading.Event = field(default_factory=threading.Event)
    #: Set once the reload (if any) answered; until then workers go on past ``n``.
    reloaded: threading.Event = field(default_factory=threading.Event)


def _worker(base_url: str, level: _Level, worker: int, payloads: Sequence[tuple[str, dict[str, Any]]],
            ticket: Iterator[int], n: int, deadline: float, timeout_s: float) -> None:
    import httpx  # the serve extra: imported on use, so the CLI parses without it
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        while time.perf_counter() < deadline:
            i = next(ticket)  # itertools.count: atomic under the GIL
            if i == n // 2:
                level.half_way.set()
            # Past n only while a reload is pending, so requests are in flight across the swap
            # even on a machine where the reload takes longer than the rest of the level.
            if i >= 4 * n or (i >= n and level.reloaded.is_set()):
                return
            endpoint, body = payloads[i % len(payloads)]
            t0 = time.perf_counter()
            try:
                r = client.post(f"/{endpoint}", json=body)
                status, version = r.status_code, r.json().get("version")
            except (httpx.HTTPError, ValueError):
                status, version = 0, None
            sample = _Sample(endpoint, time.perf_counter() - t0, status, version, worker)
            with level.lock:
                level.samples.append(sample)


def _reload_when_half_done(base_url: str, level: _Level, n: int, path: str, deadline: float,
                           timeout_s: float, record: dict[str, Any], t_start: float,
                           admin_token: str | None) -> None:
    import httpx  # the serve extra: imported on use, so the CLI parses without it
    level.half_way.wait(timeout=max(0.0, deadline - time.perf_counter()))
    at_request = len(level.samples)
    t0 = time.perf_counter()
    headers = {"X-Admin-Token": admin_token} if admin_token is not None else {}
    try:
        r = httpx.post(f"{base_url}/admin/reload", json={"path": path}, timeout=timeout_s,
                       headers=headers)
        record.update(status=r.status_code, answer=r.json())
    except (httpx.HTTPError, ValueError) as e:
        record.update(status=0, answer=str(e))
    level.reloaded.set()
    record.update(
        at_request=at_request, at_s=round(t0 - t_start, 4),
        latency_ms=round((time.perf_counter() - t0) * 1e3, 3),
    )


def _summary(level: _Level, wall_s: float, n: int, capped: bool) -> dict[str, Any]:
    lat = np.array([s.latency_s for s in level.samples]) * 1e3
    ok = [s for s in level.samples if s.status == 200]
    # Per worker, in completion order, a version may only go up: the swap is atomic and each
    # worker's requests are sequential, so going back would mean an old engine answered late.
    regressions = 0
    last: dict[int, int] = {}
    for s in ok:
        if s.version is not None:
            if s.version < last.get(s.worker, s.version):
                regressions += 1
            last[s.worker] = max(s.version, last.get(s.worker, s.version))
    statuses = Counter(str(s.status) for s in level.samples if s.status != 200)
    return {
        "concurrency": level.concurrency,
        "requests": len(level.samples),
        "requests_planned": n,
        "time_capped": capped,
        "errors": len(level.samples) - len(ok),
        "error_statuses": dict(statuses),
        "wall_s": round(wall_s, 4),
        "throughput_rps": round(len(level.samples) / wall_s, 1) if wall_s > 0 else 0.0,
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
            "p99": round(float(np.percentile(lat, 99)), 3) if len(lat) else None,
            "mean": round(float(lat.mean()), 3) if len(lat) else None,
            "max": round(float(lat.max()), 3) if len(lat) else None,
        },
        "by_endpoint": dict(Counter(s.endpoint for s in level.samples)),
        "versions": {str(v): c for v, c in sorted(Counter(s.version for s in ok).items(), key=str)},
        "version_regressions": regressions,
    }


def run_loadtest(
    base_url: str,
    out_path: str | os.PathLike[str] | None,
    *,
    levels: Sequence[int] = DEFAULT_LEVELS,
    requests_per_level: int = 400,
    time_cap_s: float = 20.0,
    reload_path: str | os.PathLike[str] | None = None,
    reload_level: int | None = None,
    mix: Sequence[tuple[str, float]] = DEFAULT_MIX,
    warmup: int = 20,
    timeout_s: float = 10.0,
    seed: int = 0,
    admin_token: str | None = None,
) -> dict[str, Any]:
    """Loads a running service at each concurrency in ``levels``; returns (and writes) figures.

    ``reload_path``: a second valid bundle (same item ids) to ``/admin/reload`` once half of
    the requests of level ``reload_level`` (default: the middle level) are sent; that level
    goes on past ``requests_per_level`` until the reload has answered (at most 4x, and within
    the time cap), so requests are always in flight across the swap; ``admin_token`` is sent
    with it. Errors are counted, never raised: a non-200 answer or no answer at all is an error.
    """
    import httpx  # the serve extra: imported on use, so the CLI parses without it
    _check_loopback(base_url)
    base_url = base_url.rstrip("/")
    if reload_level is None:
        reload_level = levels[len(levels) // 2]
    health = httpx.get(f"{base_url}/healthz", timeout=timeout_s).json()
    payloads = _payloads(max(requests_per_level, warmup), health["n_items"], health["domains"], mix, seed)
    with httpx.Client(base_url=base_url, timeout=timeout_s) as client:
        for endpoint, body in payloads[:warmup]:
            client.post(f"/{endpoint}", json=body)

    results: list[dict[str, Any]] = []
    reload_record: dict[str, Any] = {}
    for c in levels:
        level = _Level(c)
        ticket = itertools.count()
        t_start = time.perf_counter()
        deadline = t_start + time_cap_s
        threads = [
            threading.Thread(target=_worker, args=(base_url, level, w, payloads, ticket, requests_per_level,
                                                   deadline, timeout_s))
            for w in range(c)
        ]
        if reload_path is not None and c == reload_level and not reload_record:
            reload_record["concurrency"] = c
            threads.append(threading.Thread(
                target=_reload_when_half_done,
                args=(base_url, level, requests_per_level, os.fspath(reload_path), deadline, timeout_s,
                      reload_record, t_start, admin_token),
            ))
        else:
            level.reloaded.set()  # nothing to wait for
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t_start
        results.append(_summary(level, wall, requests_per_level, time.perf_counter() >= deadline))

    final = httpx.get(f"{base_url}/healthz", timeout=timeout_s).json()
    report: dict[str, Any] = {
        "base_url": base_url,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "settings": {
            "levels": list(levels), "requests_per_level": requests_per_level, "time_cap_s": time_cap_s,
            "mix": dict(mix), "warmup": warmup, "seed": seed,
            "request_shape": "histories of 5-50 items; /score 20 candidates; /retrieve k=10 pool=100",
        },
        "version_before": health["version"],
        "version_after": final["version"],
        "reload": reload_record or None,
        "levels": results,
        "total_requests": sum(r["requests"] for r in results),
        "total_errors": sum(r["errors"] for r in results),
        "version_regressions": sum(r["version_regressions"] for r in results),
    }
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve_in_subprocess(bundle: str | os.PathLike[str], *, port: int | None = None,
                        ready_timeout_s: float = 60.0, admin_token: str | None = None,
                        bundle_root: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """Runs ``python -m airrec.serve.server`` on 127.0.0.1; yields its base URL; stops it.

    ``admin_token`` enables ``/admin/reload`` (passed in the environment, not on the command
    line, where other users' ``ps`` would see it); ``bundle_root`` is ``--bundle-root``.
    Waits until ``/healthz`` answers. The server is stopped (SIGTERM, then SIGKILL after 10 s)
    however the block exits.
    """
    import httpx  # the serve extra: imported on use, so the CLI parses without it
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "airrec.serve.server", "--bundle", os.fspath(bundle),
           "--host", "127.0.0.1", "--port", str(port)]
    if bundle_root is not None:
        cmd += ["--bundle-root", os.fspath(bundle_root)]
    env = {k: v for k, v in os.environ.items() if k != "AIRREC_ADMIN_TOKEN"}
    if admin_token is not None:
        env["AIRREC_ADMIN_TOKEN"] = admin_token
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"the server exited with {proc.returncode}: {err[-2000:]}")
            try:
                if httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer on {base_url} within {ready_timeout_s} s")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The load test's options, on ``airrec bench load``'s sub-parser or this module's own."""
    p.add_argument("--out", type=Path, required=True, help="where to write the JSON figures")
    p.add_argument("--levels", default=",".join(map(str, DEFAULT_LEVELS)), help="concurrency levels")
    p.add_argument("--requests", type=int, default=400, help="requests per level (at most)")
    p.add_argument("--time-cap", type=float, default=20.0, help="seconds per level (at most)")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m airrec.serve.loadtest --out FILE``: the whole run, server included."""
    p = argparse.ArgumentParser(prog="python -m airrec.serve.loadtest", description=__doc__.split("\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """The load test for parsed ``args`` (see :func:`add_arguments`)."""
    from airrec.engine import Engine
    from airrec.serve.scaling import engine_thread_scaling
    from airrec.serve.server import synthetic_bundle

    levels = [int(x) for x in args.levels.split(",") if x]

    with tempfile.TemporaryDirectory(prefix="airrec-loadtest-") as tmp:
        first, second = synthetic_bundle(tmp, seed=1), synthetic_bundle(tmp, seed=2)
        token = secrets.token_hex(16)
        with serve_in_subprocess(first, admin_token=token) as base_url:
            report = run_loadtest(base_url, None, levels=levels, requests_per_level=args.requests,
                                  time_cap_s=args.time_cap, reload_path=second, admin_token=token)
        # After the server stopped, so the two measurements do not share the cores.
        report["engine_threads"] = engine_thread_scaling(Engine.load(first))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"{'conc':>5} {'reqs':>5} {'err':>4} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8}  versions")
    for r in report["levels"]:
        lat = r["latency_ms"]
        print(f"{r['concurrency']:>5} {r['requests']:>5} {r['errors']:>4} {r['throughput_rps']:>8} "
              f"{lat['p50']:>8} {lat['p99']:>8}  {r['versions']}")
    print(f"reload: {report['reload']}")
    for row in report["engine_threads"]["rows"]:
        print(f"engine, {row['threads']} threads: {row['calls_per_s']} calls/s "
              f"(speed-up {row['speedup']}, parallelism {row['parallelism']}; control, Rust batch: "
              f"{row['control_rust_batch']['calls_per_s']} calls/s, "
              f"parallelism {row['control_rust_batch']['parallelism']})")
    print(f"figures written to {args.out}")
    reload_ok = report["reload"] is not None and report["reload"].get("status") == 200
    return 0 if report["total_errors"] == 0 and reload_ok and report["version_regressions"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
