"""Saving and loading :class:`~airrec.evaluate.protocol.EvalResult` (per-line ranks) on disk.

One ``.npz`` per result, written atomically, no pickles: the per-line arrays as arrays, the
scalar fields as a JSON string. Long experiments save every finished (model, seed) run this way,
so a crash loses at most the run in progress and reports can be rebuilt from the files.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from airrec._files import atomic_writer
from airrec.errors import DataError
from airrec.evaluate.protocol import EvalResult

__all__ = ["load_result", "save_result"]

_ARRAYS = ("ranks", "domains", "in_domain", "lengths", "tied")


def save_result(result: EvalResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` (``.npz``) atomically."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = {f.name: getattr(result, f.name) for f in fields(result) if f.name not in _ARRAYS}
    with atomic_writer(out) as f:
        np.savez(f, header=np.array(json.dumps(header)), **{k: getattr(result, k) for k in _ARRAYS})
    return out


def load_result(path: str | os.PathLike[str]) -> EvalResult:
    """Read a result written by :func:`save_result`; a damaged file is a :class:`DataError`."""
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            header = json.loads(str(z["header"]))
            arrays = {k: z[k] for k in _ARRAYS}
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"{path}: not a saved evaluation result ({e})") from None
    header["domain_names"] = tuple(header["domain_names"])
    header["metric_names"] = tuple(header["metric_names"])
    return EvalResult(**header, **arrays)
