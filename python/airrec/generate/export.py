"""The committed artefact: the cache's answers as an intents file, one line per (item, behaviour).

The format and its one reader/writer live in :mod:`airrec.kb.intents`. Item ids are the
dataset's global ids and behaviours index ``Dataset.behaviour_names``. No titles are written
(the file is committed; titles are third-party data): each line carries the item's external id
and a hash prefix of its text instead, so the knowledge base can tell intents of other data
apart (:mod:`airrec.kb.intents`). Lines are sorted by (item, behaviour),
so the same cache gives the same bytes. Failed units are not written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airrec.errors import GenerationError
from airrec.generate.cache import IntentCache, cache_key, text_hash
from airrec.generate.parse import format_paths, parse_intents
from airrec.kb.intents import read_intents, write_intents

__all__ = ["export_intents"]


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
    committed file instead of truncating it. ``out_path`` may be ``fallback`` itself. Cached
    answers are parsed again from their raw text and kept lines pass through today's parser
    again (with their item's title), so a parser rule added after they were generated (e.g.
    glued words) reaches them too; the parser leaves a clean line as it is, and a line it
    empties is dropped (the item is then missing and
    ``--missing-from`` regenerates it). Returns the number of lines written.
    """
    kept = (
        read_intents(fallback).paths_by_key()
        if fallback is not None and Path(fallback).exists() else {}
    )
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
                    # Today's parser over the raw answer: a rule added after generation
                    # reaches cached answers as it reaches kept lines.
                    paths = parse_intents(row.raw, texts[item]).paths if row.raw else row.paths
                    if paths:
                        rows[(item, b)] = paths
    finally:
        if own:
            db.close()
    n_behaviours = len(dataset.behaviour_names)
    for (item, b), paths in kept.items():
        if (item, b) not in rows and item < len(texts) and b < n_behaviours:
            reparsed = parse_intents(format_paths(paths), texts[item]).paths
            if reparsed:
                rows[(item, b)] = reparsed
    write_intents(out_path, ((item, b, rows[(item, b)]) for item, b in sorted(rows)), identity=dataset)
    return len(rows)
