"""The persistent generation cache: one SQLite file, one row per (model, prompt, behaviour, text).

Why SQLite: a transaction is atomic and durable on its own (WAL journal), so a run killed with
``kill -9`` at any instant leaves the file holding exactly the batches it committed, and the
primary key makes a re-run's ``INSERT OR IGNORE`` unable to duplicate work. Nothing else
(JSONL appends, pickles) gives that without hand-written recovery.

The key is a hash of (model sha256, prompt key, behaviour name, item-text hash) and *not* of
the item id: two items with the same title share one answer, and a cache stays valid when a
dataset is re-numbered. ``item_id`` is kept for reading only.

Sharding: :func:`shard_of` maps a key to one of ``n`` shards by its hash, so ``n`` processes
(or machines) can each fill their own cache file over the same item list, and
:func:`merge_caches` unions the files afterwards (an ``ok`` row beats a ``failed`` one).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from airrec._files import sha256_text
from airrec.errors import ConfigError, GenerationError

__all__ = [
    "CacheRow",
    "IntentCache",
    "cache_key",
    "merge_caches",
    "parse_shard",
    "shard_of",
    "text_hash",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intents (
    key TEXT PRIMARY KEY,
    model_sha TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    behaviour TEXT NOT NULL,
    item_text_hash TEXT NOT NULL,
    item_id INTEGER,
    paths_json TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    attempts INTEGER NOT NULL,
    error TEXT NOT NULL DEFAULT '',
    raw TEXT NOT NULL DEFAULT '',
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    seconds REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = (
    "key, model_sha, prompt_version, behaviour, item_text_hash, item_id, paths_json, status, "
    "attempts, error, raw, tokens_in, tokens_out, seconds, created_at"
)


def text_hash(text: str) -> str:
    """sha256 of the item text (UTF-8) — the cache never stores titles themselves."""
    return sha256_text(text)


def cache_key(model_sha: str, prompt_key: str, behaviour: str, item_text_hash: str) -> str:
    """The row key: sha256 over the four parts, separated so no two tuples collide."""
    joined = "\x1f".join((model_sha, prompt_key, behaviour, item_text_hash))
    return hashlib.sha256(joined.encode()).hexdigest()


def shard_of(key: str, n: int) -> int:
    """Shard index of a key: stable across processes and machines (not Python's hash())."""
    return int(key[:12], 16) % n


def parse_shard(spec: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` (0-based) or ``(i, n)`` → ``(i, n)``, validated."""
    if spec is None:
        return None
    if isinstance(spec, str):
        try:
            left, right = spec.split("/")
            spec = (int(left), int(right))
        except ValueError:
            raise ConfigError(f"shard must look like i/n (e.g. 0/4), got {spec!r}") from None
    i, n = spec
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"shard {i}/{n}: need n >= 1 and 0 <= i < n")
    return i, n


@dataclass(frozen=True)
class CacheRow:
    """One cached answer."""

    key: str
    model_sha: str
    prompt_version: str
    behaviour: str
    item_text_hash: str
    item_id: int | None
    paths: list[list[str]]
    status: str
    attempts: int
    error: str = ""
    raw: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    created_at: float = 0.0

    def values(self) -> tuple[object, ...]:
        return (
            self.key, self.model_sha, self.prompt_version, self.behaviour, self.item_text_hash,
            self.item_id, json.dumps(self.paths, ensure_ascii=False), self.status, self.attempts,
            self.error, self.raw[:500], self.tokens_in, self.tokens_out, self.seconds,
            self.created_at or time.time(),
        )


def _row(values: tuple[object, ...]) -> CacheRow:
    (key, model, prompt, beh, th, item, paths, status, attempts, err, raw, ti, to, sec, at) = (
        values
    )
    return CacheRow(
        str(key), str(model), str(prompt), str(beh), str(th),
        None if item is None else int(str(item)), json.loads(str(paths)), str(status),
        int(str(attempts)), str(err), str(raw), int(str(ti)), int(str(to)), float(str(sec)),
        float(str(at)),
    )


class IntentCache:
    """A cache file opened for reading and appending. One writer at a time per file (use
    one file per shard); readers may run concurrently (WAL)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            found = self._db.execute(
                "SELECT value FROM meta WHERE name='schema_version'"
            ).fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise GenerationError(f"{self.path} is not a usable intent cache: {exc}") from exc
        if int(found) != SCHEMA_VERSION:
            raise GenerationError(f"{self.path}: cache schema {found}, expected {SCHEMA_VERSION}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> IntentCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put_many(self, rows: Iterable[CacheRow]) -> int:
        """Insert rows in one transaction (all or none); existing keys are left alone.
        Returns how many rows were new."""
        batch = [r.values() for r in rows]
        if not batch:
            return 0
        with self._transaction():
            before = self._db.total_changes
            self._db.executemany(
                f"INSERT OR IGNORE INTO intents ({_COLUMNS}) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch,
            )
            return self._db.total_changes - before

    def _transaction(self) -> _Tx:
        return _Tx(self._db)

    def done_keys(self, keys: Iterable[str] | None = None) -> set[str]:
        """Keys already answered (ok or recorded as failed), optionally restricted to ``keys``."""
        if keys is None:
            return {k for (k,) in self._db.execute("SELECT key FROM intents")}
        wanted = list(keys)
        found: set[str] = set()
        for start in range(0, len(wanted), 900):
            chunk = wanted[start : start + 900]
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT key FROM intents WHERE key IN ({marks})"
            found.update(k for (k,) in self._db.execute(sql, chunk))
        return found

    def get(self, key: str) -> CacheRow | None:
        cur = self._db.execute(f"SELECT {_COLUMNS} FROM intents WHERE key = ?", (key,))
        found = cur.fetchone()
        return None if found is None else _row(found)

    def rows(self) -> Iterator[CacheRow]:
        for values in self._db.execute(f"SELECT {_COLUMNS} FROM intents ORDER BY key"):
            yield _row(values)

    def count(self, status: str | None = None) -> int:
        if status is None:
            return int(self._db.execute("SELECT COUNT(*) FROM intents").fetchone()[0])
        sql = "SELECT COUNT(*) FROM intents WHERE status = ?"
        return int(self._db.execute(sql, (status,)).fetchone()[0])

    def combos(self) -> list[tuple[str, str]]:
        """Distinct (model sha256, prompt key) pairs held in this file."""
        sql = "SELECT DISTINCT model_sha, prompt_version FROM intents ORDER BY 1, 2"
        return [(str(m), str(p)) for m, p in self._db.execute(sql)]


class _Tx:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def merge_caches(out: str | Path, *inputs: str | Path) -> int:
    """Union cache files into ``out`` (created if absent) in one transaction. Where both
    hold a key, an ``ok`` row replaces a ``failed`` one; otherwise the first seen stays.
    Returns the number of rows in ``out`` afterwards."""
    with IntentCache(out) as target:
        with target._transaction():
            for source in inputs:
                with IntentCache(source) as src:
                    rows = [r.values() for r in src.rows()]
                target._db.executemany(
                    f"INSERT INTO intents ({_COLUMNS}) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET "
                    "paths_json=excluded.paths_json, status=excluded.status, "
                    "attempts=excluded.attempts, error=excluded.error, raw=excluded.raw, "
                    "tokens_in=excluded.tokens_in, tokens_out=excluded.tokens_out, "
                    "seconds=excluded.seconds, created_at=excluded.created_at "
                    "WHERE intents.status != 'ok' AND excluded.status = 'ok'",
                    rows,
                )
        return target.count()
