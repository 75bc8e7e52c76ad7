"""The bad-input probe of the Python API (``scripts/probe_api.py``): 319 cases in seven
classes (overflow, timestamps, non-integer ids, histories, non-finite scores, threads,
concurrency), each run in a child process. Any case that is not refused with a typed
``AirrecError`` (or, for valid inputs, answered with finite numbers) fails the run.

On the code before these checks the probe counted 31 such cases: 12 ``OverflowError`` (ids
past int64 in ``explain``, ``phrase``, ``path_text``, ``Histories.from_lists``), 14 bad ids
silently accepted (1.5, '3', True, b'1' in ``from_lists``/``phrase``/``path_text``), 3
``TypeError`` for ``None`` ids and 4 PyO3 ``TypeError`` for a directly built ``Histories``
with the wrong dtypes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "probe_api.py"


def test_every_bad_input_is_a_typed_error(tmp_path: Path) -> None:
    pytest.importorskip("airrec._airrec", reason="the Rust extension is not built")
    out = tmp_path / "probe.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, check=False)
    report = json.loads(out.read_text())
    totals = report["totals"]
    assert {k: totals.get(k, 0) for k in ("untyped", "nan", "crash", "hang", "leak")} == dict.fromkeys(
        ("untyped", "nan", "crash", "hang", "leak"), 0), proc.stdout
    bugs = [c for c in report["cases"] if c.get("bug")]
    assert bugs == [], bugs
    assert proc.returncode == 0, proc.stderr
    assert len(report["cases"]) >= 300 and totals["typed"] >= 300
