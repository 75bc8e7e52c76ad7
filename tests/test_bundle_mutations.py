"""The deterministic mutation pass over hostile bundles (``scripts/fuzz_bundles.py``): a few
hundred corrupted copies of a small bundle, each loaded and used in a child process. Any
crash, hang, untyped error, NaN score or out-of-range id fails the run.

Before the engine validated usearch files itself, refused non-regular files and bounded
floats and config values, 1,000 of these mutations gave 16 crashes (segfaults in usearch
search), 1 hang (a link to /dev/zero) and 3 NaN answers (3.4e38 in a projection).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_bundles.py"


@pytest.mark.parametrize("seed", [0, 1])
def test_no_bundle_crashes_hangs_or_lies(tmp_path: Path, seed: int) -> None:
    pytest.importorskip("airrec._airrec", reason="the Rust extension is not built")
    out = tmp_path / "counts.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--mutations", "300", "--seed", str(seed), "--out", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    report = json.loads(out.read_text())
    outcomes = report["outcomes"]
    bad = {k: outcomes[k] for k in ("untyped", "wrong", "crash", "hang")}
    assert bad == dict.fromkeys(bad, 0), report["failures"]
    assert proc.returncode == 0, proc.stderr
    # The pass must exercise both sides: most mutations refused, some harmless ones loaded.
    assert outcomes["typed"] > 200 and outcomes["ok"] > 0, outcomes
    assert all(sum(c.values()) == 30 for c in report["by_class"].values()), report["by_class"]
