"""How the engine's cost grows with candidates and events: instructions per request (callgrind,
a figure machine load does not move) and wall time (median of many requests, on one thread),
at the reference bundle (100k-node trie, 40k items, d = 64, 4 heads, 3 paths per item).

    cargo build --release -p airrec-core --example profile_request
    python scripts/engine_scaling.py --out benches/results/engine-scaling.json

Shapes: candidates 50 / 200 / 1000 at 50 events, events 10 / 50 / 200 at 200 candidates.
Instructions of a request = (callgrind total with n requests − total with none) / n; the tree
is built from the events inside each request, as in ``airrec bench online``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SHAPES = [(50, 50), (50, 200), (50, 1000), (10, 200), (200, 200)]  # (events, candidates)


def _example(target_dir: Path) -> Path:
    exe = target_dir / "release" / "examples" / "profile_request"
    if not exe.exists():
        raise SystemExit(f"{exe} is missing: cargo build --release -p airrec-core --example profile_request")
    return exe


def _callgrind(exe: Path, bundle: Path, n: int, events: int, cands: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out", str(exe),
                              str(bundle), str(n), str(events), str(cands)],
                             check=True, capture_output=True, text=True, env={**os.environ, "RAYON_NUM_THREADS": "1"})
    m = re.search(r"Collected : ([\d,]+)", out.stderr)
    if m is None:
        raise RuntimeError(f"callgrind printed no total:\n{out.stderr[-2000:]}")
    return int(m.group(1).replace(",", ""))


def _timed(exe: Path, bundle: Path, n: int, events: int, cands: int) -> dict[str, Any]:
    out = subprocess.run([str(exe), str(bundle), str(n), str(events), str(cands)], check=True, capture_output=True,
                         text=True, env={**os.environ, "RAYON_NUM_THREADS": "1"})
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--bundle", type=Path, help="reference bundle (default: written into a temp dir)")
    p.add_argument("--target-dir", type=Path,
                   default=Path(os.environ.get("CARGO_TARGET_DIR", "target")), help="cargo target dir")
    p.add_argument("--requests", type=int, default=20, help="requests under callgrind per shape (default 20)")
    p.add_argument("--timed-requests", type=int, default=500, help="requests timed per shape (default 500)")
    p.add_argument("--baseline", type=Path,
                   help="an earlier output of this script (e.g. `git show REV:benches/results/engine-scaling.json`): "
                   "its instructions per request are kept beside the new ones, with the ratio")
    args = p.parse_args()
    baseline = {}
    if args.baseline is not None:
        old = json.loads(args.baseline.read_text(encoding="utf-8"))
        baseline = {(r["events"], r["candidates"]): r["instructions_per_request"] for r in old["rows"]}
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed")
    exe = _example(args.target_dir)
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or Path(tmp) / "bundle"
        if args.bundle is None:
            subprocess.run([str(exe), "write", str(bundle)], check=True)
        rows = []
        for events, cands in SHAPES:
            total = _callgrind(exe, bundle, args.requests, events, cands)
            base = _callgrind(exe, bundle, 0, events, cands)
            per = (total - base) / args.requests
            timed = _timed(exe, bundle, args.timed_requests, events, cands)
            rows.append({"events": events, "candidates": cands, "instructions_per_request": round(per),
                         "instructions_per_candidate": round(per / cands), "p50_us": timed["p50_us"],
                         "p90_us": timed["p90_us"], "timed_requests": timed["requests"]})
            if (events, cands) in baseline:
                rows[-1]["baseline_instructions_per_request"] = baseline[(events, cands)]
                rows[-1]["instructions_vs_baseline"] = round(per / baseline[(events, cands)], 3)
            print(f"events {events:4d} candidates {cands:5d}: {per / 1e6:6.2f} M instructions "
                  f"({per / cands:7.0f} per candidate), p50 {timed['p50_us']:8.1f} us", flush=True)
    result = {"benchmark": "airrec engine scaling (examples/profile_request.rs)",
              "bundle": "synthetic reference (SyntheticSpec::default)" if args.bundle is None else str(args.bundle),
              "method": "instructions: callgrind total with n requests minus with none, / n; time: median of "
                        "timed requests on one thread (machine load moves it, instructions do not)",
              "rows": rows}
    if args.baseline is not None:
        result["baseline"] = str(args.baseline)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
