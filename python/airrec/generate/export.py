"""The committed artefact: ``intents.jsonl.gz``, one line per (item, behaviour).

Line format (the knowledge base reads exactly this)::

    {"item": 123, "behaviour": 0, "paths": [["pets", "pet supplies", "cat bed"], ...]}

Item ids are the dataset's global ids and behaviours index ``Dataset.behaviour_names``. No
titles are written (the file is committed; titles are third-party data). Lines are sorted by
(item, behaviour) and the gzip header carries no timestamp, so the same cache gives the same
bytes: diffs of the committed file show real changes only. Failed units are not written.
"""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

from airrec._files import write_atomic
from airrec.errors import DataError, GenerationError
from airrec.generate.cache import IntentCache, cache_key, text_hash
from airrec.generate.parse import MAX_PATHS, MAX_PHRASES, MIN_PHRASES

__all__ = ["export_intents", "import_intents"]


def export_intents(
    cache: str | Path | IntentCache,
    dataset: Any,
    out_path: str | Path,
    *,
    model_sha: str | None = None,
    prompt_key: str | None = None,
    fallback: str | Path | None = None,
) -> int:
    """Write the ok answers in ``cache`` for ``dataset``'s items to ``out_path`` (atomically).

    When the cache holds answers of several models or prompts, pick one with ``model_sha``
    and ``prompt_key``. ``fallback`` is an existing intents file whose lines are kept for
    the (item, behaviour) pairs the cache has no answer for: a partial regeneration (one
    shard of a catalogue run, a new prompt on some items) then extends or updates a
    committed file instead of truncating it. ``out_path`` may be ``fallback`` itself.
    Returns the number of lines written.
    """
    kept = import_intents(fallback) if fallback is not None and Path(fallback).exists() else {}
    own = not isinstance(cache, IntentCache)
    db = IntentCache(cache) if not isinstance(cache, IntentCache) else cache
    try:
        combos = [
            (m, p)
            for m, p in db.combos()
            if model_sha in (None, m) and prompt_key in (None, p)
        ]
        if len(combos) != 1:
            raise GenerationError(
                f"{db.path}: need exactly one (model, prompt) to export, found {combos or 'none'}; "
                "pass model_sha= and prompt_key="
            )
        sha, pkey = combos[0]
        texts = dataset.items.texts
        rows: dict[tuple[int, int], list[list[str]]] = {}
        hashes = [text_hash(t) for t in texts]
        for b, behaviour in enumerate(dataset.behaviour_names):
            for item, th in enumerate(hashes):
                row = db.get(cache_key(sha, pkey, behaviour, th))
                if row is not None and row.status == "ok" and row.paths:
                    rows[(item, b)] = row.paths
    finally:
        if own:
            db.close()
    n_behaviours = len(dataset.behaviour_names)
    for (item, b), paths in kept.items():
        if (item, b) not in rows and item < len(texts) and b < n_behaviours:
            rows[(item, b)] = paths
    lines = [
        json.dumps(
            {"item": item, "behaviour": b, "paths": rows[(item, b)]},
            ensure_ascii=False, separators=(", ", ": "),
        )
        for item, b in sorted(rows)
    ]
    _write_gz(Path(out_path), "".join(line + "\n" for line in lines).encode())
    return len(lines)


def _write_gz(path: Path, payload: bytes) -> None:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
        gz.write(payload)
    write_atomic(path, buf.getvalue())


def import_intents(path: str | Path) -> dict[tuple[int, int], list[list[str]]]:
    """Read an ``intents.jsonl.gz`` (or plain ``.jsonl``), validating every line:
    non-negative int ids, 1–3 paths of 2–4 non-empty lowercase-string phrases, no duplicate
    (item, behaviour). Raises :class:`~airrec.errors.DataError` naming the line."""
    p = Path(path)
    opener: Any = gzip.open if p.suffix == ".gz" else open
    out: dict[tuple[int, int], list[list[str]]] = {}
    try:
        with opener(p, "rt", encoding="utf-8") as handle:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                where = f"{p}:{n}"
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    raise DataError(f"{where}: not JSON ({exc})") from None
                key, paths = _check(row, where)
                if key in out:
                    raise DataError(f"{where}: duplicate item {key[0]} behaviour {key[1]}")
                out[key] = paths
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {p}: {exc}") from exc
    return out


def _check(row: Any, where: str) -> tuple[tuple[int, int], list[list[str]]]:
    if not isinstance(row, dict) or set(row) != {"item", "behaviour", "paths"}:
        raise DataError(f"{where}: need exactly the keys item, behaviour, paths")
    item, beh, paths = row["item"], row["behaviour"], row["paths"]
    for name, value in (("item", item), ("behaviour", beh)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise DataError(f"{where}: {name} must be a non-negative integer, got {value!r}")
    if not isinstance(paths, list) or not 1 <= len(paths) <= MAX_PATHS:
        raise DataError(f"{where}: paths must be a list of 1..{MAX_PATHS} paths")
    for path in paths:
        if (
            not isinstance(path, list)
            or not MIN_PHRASES <= len(path) <= MAX_PHRASES
            or not all(isinstance(x, str) and x.strip() and x == x.lower() for x in path)
        ):
            raise DataError(f"{where}: bad path {path!r} (2..4 non-empty lowercase phrases)")
    return (item, beh), [list(p) for p in paths]
