"""Sampled negatives for the LLMCDSR/C2DSR protocol: drawn once, saved, reused by every model.

The published numbers on Food–Kitchen rank each valid/test target against 999 items drawn
uniformly, without replacement, from the target's own domain, excluding the target. Comparisons
between models are only fair when every model sees the *same* 999 items, so negatives are a
file (``.npz``) keyed by the dataset's content, the split, ``n`` and the seed, not something each
model re-draws. The file carries a header with a sha256 fingerprint of the split and of the item
domains; loading it against a different dataset (another split, an edited file, a different
item numbering) raises :class:`~airrec.errors.DataError` instead of silently scoring garbage.

Sampling is vectorised per domain: for a block of lines, draw ``pool_size - 1`` random keys per
line and keep the ``n`` smallest (``argpartition``), i.e. a uniform random ``n``-subset of the
pool without the target. The "without the target" part is a shift: sample positions in
``[0, pool_size - 1)`` and add one to every position at or after the target's own position, which
maps the ``pool_size - 1`` positions one-to-one onto the pool minus the target. Blocks of lines
bound memory (``_KEY_BUDGET`` keys at a time, ~32 MB), so 1k lines over a 27k-item domain take
a fraction of a second.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec._files import safe_name, write_atomic
from airrec.data.dataset import Dataset, Split, SplitRef, hash_arrays
from airrec.errors import DataError

__all__ = [
    "FORMAT_VERSION",
    "check_negatives",
    "dataset_fingerprint",
    "get_negatives",
    "load_negatives",
    "negatives_path",
    "sample_negatives",
    "save_negatives",
]

IntArray = npt.NDArray[np.int64]

#: Version of the ``.npz`` layout written by :func:`save_negatives`.
FORMAT_VERSION = 1
#: Random keys materialised at once while sampling (float64: 8 bytes each).
_KEY_BUDGET = 1 << 22
#: Stable numbers mixed into the seed so that valid and test draw independent streams.
_SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}


def _split_of(dataset: Dataset, split: SplitRef) -> Split:
    s = dataset.split(split)
    if s.targets is None:
        raise DataError(f"{dataset.name}.{s.name}: negatives need a split with targets (valid/test)")
    return s


def dataset_fingerprint(dataset: Dataset, split: SplitRef) -> str:
    """sha256 over everything the negatives of ``split`` depend on.

    That is the split's arrays (offsets, history items/behaviours/timestamps, targets and their
    behaviours/timestamps) and the item-to-domain table (the pools). Histories are included
    although sampling does not read them: a file of negatives belongs to one exact split, and a
    changed history means a changed dataset whose results must not be mixed with old ones.
    """
    s = _split_of(dataset, split)
    h = hashlib.sha256()
    h.update(f"airrec-negatives:{s.name}:{dataset.n_items}:{len(s)}".encode())
    # _split_of checked the targets, so no array is None here.
    hash_arrays(h, [s.offsets, s.items, s.behaviours, s.timestamps,
                    s.targets, s.target_behaviours, s.target_timestamps, dataset.items.domains])
    return h.hexdigest()


def _check_n_seed(n: int, seed: int) -> None:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise DataError(f"n (negatives per line) must be an integer >= 0, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be an integer >= 0, got {seed!r}")


def sample_negatives(dataset: Dataset, split: SplitRef, n: int = 999, seed: int = 0) -> IntArray:
    """``n`` negatives per line of ``split``: int64 ``[lines, n]``.

    Each row is a uniform random ``n``-subset (without replacement) of the items of the
    target's domain, excluding the target itself. Items of the user's history are *not*
    excluded (the published protocol does not exclude them either). Row order within a line
    is arbitrary: the metrics' tie rule does not depend on candidate order.

    Deterministic for ``(dataset, split, n, seed)``; each domain draws from its own stream
    (seeded by ``seed``, the split and the domain index), so a domain's negatives do not change
    when another domain's lines are added or removed.

    Raises :class:`DataError` when a domain has fewer than ``n + 1`` items.
    """
    _check_n_seed(n, seed)
    s = _split_of(dataset, split)
    targets = s.targets
    assert targets is not None
    out = np.empty((len(s), int(n)), dtype=np.int64)
    if len(s) == 0 or n == 0:
        return out
    target_domains = dataset.domain_of(targets)
    for d in np.unique(target_domains).tolist():
        lines = np.flatnonzero(target_domains == d)
        pool = dataset.items_of_domain(int(d))  # sorted ascending
        if pool.size - 1 < n:
            raise DataError(
                f"{dataset.name}: domain {dataset.domain_names[d]!r} has {pool.size} items, "
                f"cannot draw {n} negatives besides the target (ask for at most {pool.size - 1}: "
                "--negatives N, or --full-ranking)"
            )
        target_pos = np.searchsorted(pool, targets[lines])
        rng = np.random.default_rng([int(seed), _SPLIT_CODES.get(s.name, 3), int(d)])
        width = pool.size - 1
        block = max(1, _KEY_BUDGET // width)
        for start in range(0, lines.size, block):
            rows = slice(start, min(start + block, lines.size))
            m = rows.stop - rows.start
            if n == width:  # the whole pool: a permutation, argpartition would be pointless
                picks = np.argsort(rng.random((m, width)), axis=1)
            else:
                picks = np.argpartition(rng.random((m, width)), int(n) - 1, axis=1)[:, : int(n)]
            picks = picks + (picks >= target_pos[rows, None])
            out[lines[rows]] = pool[picks]
    return out


def negatives_path(
    cache_dir: str | os.PathLike[str], dataset_name: str, split: str, n: int, seed: int,
    fingerprint: str | None = None,
) -> Path:
    """Where the negatives of ``(dataset, split, n, seed)`` are cached: one file per key.

    The file name carries the key so that a directory listing says what is there; the header
    inside the file is what is actually checked on load. With ``fingerprint`` (what
    :func:`get_negatives` passes) the name carries its first 12 hex digits, so two datasets that
    share a name (two files ``interactions.csv``) get two files instead of refusing each other.
    """
    safe = safe_name(dataset_name)
    fp = f".{fingerprint[:12]}" if fingerprint else ""
    return Path(cache_dir) / f"{safe}{fp}.{split}.neg{int(n)}.seed{int(seed)}.npz"


def _header(dataset: Dataset, split: SplitRef, n: int, seed: int) -> dict[str, Any]:
    s = dataset.split(split)
    return {
        "format_version": FORMAT_VERSION,
        "dataset": dataset.name,
        "split": s.name,
        "lines": len(s),
        "n": int(n),
        "seed": int(seed),
        "fingerprint": dataset_fingerprint(dataset, s),
    }


def save_negatives(
    path: str | os.PathLike[str], negatives: npt.ArrayLike, dataset: Dataset, split: SplitRef, seed: int
) -> Path:
    """Write ``negatives`` (``[lines, n]``) with a header binding them to the dataset and seed.

    Written to a temporary file and renamed, so a crash never leaves a half-written file
    that a later run would load.
    """
    neg = np.ascontiguousarray(np.asarray(negatives), dtype=np.int64)
    s = dataset.split(split)
    if neg.ndim != 2 or neg.shape[0] != len(s):
        raise DataError(f"negatives must have shape ({len(s)}, n), got {neg.shape}")
    _check_n_seed(int(neg.shape[1]), seed)
    header = _header(dataset, s, int(neg.shape[1]), seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, negatives=neg, header=np.array(json.dumps(header, sort_keys=True)))
    write_atomic(target, buf.getvalue())
    return target


def load_negatives(
    path: str | os.PathLike[str], dataset: Dataset, split: SplitRef, n: int, seed: int
) -> IntArray:
    """Load negatives saved by :func:`save_negatives`, refusing any that belong elsewhere.

    The header must match ``(dataset fingerprint, split, n, seed)`` and the rows must be
    valid (in range, in the target's domain, never the target, no repeats); anything else
    raises :class:`DataError` naming what differs, so stale or edited files are never used.
    """
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            header = json.loads(str(z["header"][()]))
            neg = np.asarray(z["negatives"], dtype=np.int64)
    except FileNotFoundError:
        raise DataError(f"{p}: no such negatives file") from None
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{p}: not a negatives file ({exc})") from None
    if not isinstance(header, dict):
        raise DataError(f"{p}: malformed header")
    expected = _header(dataset, split, n, seed)
    diffs = [
        f"{key} is {header.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if header.get(key) != value
    ]
    if diffs:
        raise DataError(
            f"{p}: these negatives belong to another dataset, split or sampling "
            f"({'; '.join(diffs)}); delete the file or pass the matching dataset/seed"
        )
    s = _split_of(dataset, split)
    if neg.shape != (len(s), n):
        raise DataError(f"{p}: negatives have shape {neg.shape}, header says ({len(s)}, {n})")
    check_negatives(neg, dataset, s, where=str(p))
    return neg


def check_negatives(negatives: IntArray, dataset: Dataset, split: SplitRef, *, where: str = "negatives") -> None:
    """Raise :class:`DataError` unless every row is distinct in-domain items other than the target."""
    s = _split_of(dataset, split)
    targets = s.targets
    assert targets is not None
    if negatives.ndim != 2 or negatives.shape[0] != len(s):
        raise DataError(f"{where}: expected shape ({len(s)}, n), got {negatives.shape}")
    if negatives.size == 0:
        return
    if int(negatives.min()) < 0 or int(negatives.max()) >= dataset.n_items:
        raise DataError(f"{where}: item ids outside [0, {dataset.n_items})")
    domains = dataset.items.domains
    if np.any(domains[negatives] != domains[targets][:, None]):
        raise DataError(f"{where}: some negatives are outside their target's domain")
    if np.any(negatives == targets[:, None]):
        raise DataError(f"{where}: some negatives are the target itself")
    ordered = np.sort(negatives, axis=1)
    if np.any(ordered[:, 1:] == ordered[:, :-1]):
        raise DataError(f"{where}: some lines repeat a negative")


def get_negatives(
    dataset: Dataset,
    split: SplitRef,
    n: int = 999,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
) -> IntArray:
    """The negatives of ``(dataset, split, n, seed)``: loaded from ``cache_dir`` if there,
    else sampled (and saved there when ``cache_dir`` is given).

    A cached file that does not match raises rather than being overwritten: it is evidence
    that two runs disagree about the dataset, which a person should look at.
    """
    s = dataset.split(split)
    if cache_dir is None:
        return sample_negatives(dataset, s, n, seed)
    path = negatives_path(cache_dir, dataset.name, s.name, n, seed, dataset_fingerprint(dataset, s))
    if path.exists():
        return load_negatives(path, dataset, s, n, seed)
    neg = sample_negatives(dataset, s, n, seed)
    save_negatives(path, neg, dataset, s, seed)
    return neg
