"""Memory of processes serving one bundle: resident, anonymous and file-backed, for 1 and N
processes loading the same bundle at once (issue: bundle format v2, "truly memory-mapped").

Each child process imports airrec, records ``/proc/self/smaps_rollup``, loads the bundle,
scores every item for a few synthetic users (so every item row and the nodes those users
reach are faulted in, as a long-running service would), records ``smaps_rollup`` again and
waits until all children have measured, so proportional figures (PSS) are taken while the
pages are shared. The figure that matters is the anonymous memory a load adds per process:
private heap copies cost it N times, mapped bundle pages once.

    python scripts/bundle_rss.py --out benches/results/bundle-rss.json --label v2

Also records the median load time (5 loads, page cache warm) with and without verification
(checksums, and in v2 the recomputation of the folded arrays).

Default bundle: the reference shape of ``airrec bench online`` (100k nodes, 40k items, d=64,
4 heads), generated and cached on first use. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def rollup(pid: str = "self") -> dict[str, int]:
    """``/proc/<pid>/smaps_rollup`` as {field: kB} (the one parser, children import it)."""
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == "kB":
            out[parts[0].rstrip(":")] = int(parts[1])
    return out


CHILD = r"""
import json, sys
import numpy as np

sys.path.insert(0, sys.argv[3])
from bundle_rss import rollup

import airrec
before = rollup()
engine = airrec.Engine.load(sys.argv[1])
rng = np.random.default_rng(int(sys.argv[2]))
candidates = np.arange(engine.n_items, dtype=np.int64)
for _ in range(4):
    tree = engine.tree(rng.integers(0, engine.n_items, 50), np.zeros(50, dtype=np.int64),
                       np.arange(50, dtype=np.float64))
    scores = engine.score(tree, candidates)
    assert np.isfinite(scores).all()
after = rollup()
print(json.dumps({"before": before, "after": after}), flush=True)
sys.stdin.readline()  # stay alive (pages shared) until every sibling has measured
"""

KEYS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Anonymous", "Shared_Clean", "Private_Clean",
        "Private_Dirty")


def measure(bundle: Path, n: int) -> dict[str, Any]:
    """Start ``n`` children on ``bundle``; returns their figures in MiB."""
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(bundle), str(k), str(Path(__file__).parent)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for k in range(n)
    ]
    # Children report in turn; PSS is read below once all of them hold the bundle.
    first = [json.loads(c.stdout.readline()) for c in children]  # type: ignore[union-attr]
    pss_all = [rollup(str(c.pid)) for c in children]
    for c in children:
        c.communicate("\n")
    mib = 1024.0
    per = [
        {
            "rss_mib": r["after"]["Rss"] / mib,
            "anonymous_mib": r["after"]["Anonymous"] / mib,
            "anonymous_added_by_load_mib": (r["after"]["Anonymous"] - r["before"]["Anonymous"]) / mib,
            "file_backed_rss_mib": (r["after"]["Rss"] - r["after"]["Anonymous"]) / mib,
            "file_backed_added_by_load_mib":
                ((r["after"]["Rss"] - r["after"]["Anonymous"])
                 - (r["before"]["Rss"] - r["before"]["Anonymous"])) / mib,
        }
        for r in first
    ]
    return {
        "processes": n,
        "per_process": per,
        "total_rss_mib": sum(p["rss_mib"] for p in per),
        "total_pss_mib": sum(f["Pss"] for f in pss_all) / mib,
        "total_pss_anon_mib": sum(f.get("Pss_Anon", 0) for f in pss_all) / mib,
        "total_pss_file_mib": sum(f.get("Pss_File", 0) for f in pss_all) / mib,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="default: the bench reference-shape bundle")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--label", default="", help="e.g. the format version measured")
    parser.add_argument("--out", type=Path, required=True, help="JSON file (merged by label)")
    args = parser.parse_args()
    import airrec
    from airrec._files import write_json_atomic
    from airrec.bench.online import Shape, synthetic_bundle

    bundle = args.bundle or synthetic_bundle(Shape())
    runs = [measure(bundle, n) for n in args.processes]
    load_s = []
    for verify in (True, False):  # median of 5 loads each, page cache warm
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            airrec.Engine.load(bundle, verify_checksums=verify)
            times.append(time.perf_counter() - t0)
        load_s.append(sorted(times)[2])
    one = runs[0]["per_process"][0]["anonymous_added_by_load_mib"]
    result = {
        "airrec": airrec.__version__,
        "format_version": json.loads((bundle / "manifest.json").read_text())["format_version"],
        "bundle": str(bundle),
        "bundle_mib": sum(p.stat().st_size for p in bundle.iterdir()) / 1024.0**2,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "anonymous_added_per_process_mib": one,
        "load_s_median": {"verified": load_s[0], "unverified": load_s[1]},
        "runs": runs,
    }
    merged: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    merged[args.label or f"v{result['format_version']}"] = result
    write_json_atomic(args.out, merged)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    for r in runs:
        print(f"{r['processes']} process(es): total RSS {r['total_rss_mib']:.0f} MiB, "
              f"PSS {r['total_pss_mib']:.0f} MiB (anon {r['total_pss_anon_mib']:.0f}, "
              f"file {r['total_pss_file_mib']:.0f})")


if __name__ == "__main__":
    main()
