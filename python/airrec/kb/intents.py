"""Reading (and writing) the intents file that the generation stage produces.

One JSON object per line, one line per (item, behaviour) event kind::

    {"item": 17, "behaviour": 0, "paths": [["pets", "pet supplies", "cat bed"], ...],
     "ext": "B00X4WHP5E", "text": "9f2c51d0a8e4b7c3"}

``item`` is the dataset's dense id; the optional ``ext`` (the item's id in the user's tables)
and ``text`` (the first 16 hex digits of the sha256 of the item's text, :func:`item_text_key`)
say *which* item that was, so the knowledge base can refuse intents made for another dataset
or an edited catalogue instead of attaching them to whatever item now has that id. Files
written before these keys existed (the committed Food–Kitchen artifact) are read unchecked.

The file may be gzip-compressed (``.gz``). This module is the file's one owner: the
generation stage writes it with :func:`write_intents` and reads it back (a committed artifact
to extend, a baseline to compare) with :func:`read_intents`, as the knowledge base does. The
file is the contract between the two stages, so a malformed line fails loudly here (as
:class:`~airrec.errors.DataError` naming file and line) instead of becoming a silent hole in
the trie.

Generation is resumable and may append a line for an (item, behaviour) that is already in the
file (a retry, a regeneration); the later line wins, as a re-run would, and the number of such
replaced lines is reported.
"""

from __future__ import annotations

import gzip
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from airrec._files import sha256_file, sha256_text, write_atomic
from airrec.errors import DataError

__all__ = [
    "IntentLimits", "IntentRecord", "Intents", "check_item_identity", "item_text_key", "read_intents", "write_intents",
]

#: Hex digits of the item-text sha256 kept per line (64 bits: collisions are not a concern for
#: telling one catalogue from another).
TEXT_KEY_CHARS = 16


def item_text_key(text: str) -> str:
    """The ``text`` key of an intents line: a prefix of the sha256 of the item's text (the hash
    the generation cache keys its answers on)."""
    return sha256_text(text)[:TEXT_KEY_CHARS]


@dataclass(frozen=True)
class IntentLimits:
    """Shape limits of an intents line; the defaults are the generation stage's contract."""

    max_paths: int = 3
    min_phrases: int = 2
    max_phrases: int = 4
    max_phrase_chars: int = 200


@dataclass(frozen=True)
class IntentRecord:
    """The intent paths of one (item, behaviour), as written (not yet normalised)."""

    item: int
    behaviour: int
    paths: tuple[tuple[str, ...], ...]
    line: int
    #: The item's external id and text key, when the file says which item it was.
    ext: str | None = None
    text: str | None = None


@dataclass(frozen=True)
class Intents:
    """All records of one intents file, keyed by (item, behaviour), in first-seen order."""

    path: Path
    sha256: str
    records: tuple[IntentRecord, ...]
    n_lines: int
    replaced: int

    def __len__(self) -> int:
        return len(self.records)

    def paths_by_key(self) -> dict[tuple[int, int], list[list[str]]]:
        """``{(item, behaviour): paths}`` (lists, as JSON gives them)."""
        return {(r.item, r.behaviour): [list(p) for p in r.paths] for r in self.records}

    def where(self, record: IntentRecord) -> str:
        """``file:line`` of a record, for error messages."""
        return f"{self.path}:{record.line}"


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def _int_field(obj: dict[str, Any], key: str, where: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: {key!r} must be an integer, got {value!r}")
    if value < 0:
        raise DataError(f"{where}: {key!r} must be >= 0, got {value}")
    return value


def _paths_field(obj: dict[str, Any], where: str, limits: IntentLimits) -> tuple[tuple[str, ...], ...]:
    paths = obj.get("paths")
    if not isinstance(paths, list):
        raise DataError(f"{where}: 'paths' must be a list of paths, got {type(paths).__name__}")
    if len(paths) > limits.max_paths:
        raise DataError(f"{where}: {len(paths)} paths, at most {limits.max_paths} allowed")
    out: list[tuple[str, ...]] = []
    for k, path in enumerate(paths):
        if not isinstance(path, list) or not all(isinstance(p, str) for p in path):
            raise DataError(f"{where}: path {k} must be a list of strings, got {path!r}")
        if not limits.min_phrases <= len(path) <= limits.max_phrases:
            raise DataError(
                f"{where}: path {k} has {len(path)} phrases, expected "
                f"{limits.min_phrases} to {limits.max_phrases}: {path!r}"
            )
        for phrase in path:
            if not phrase.strip():
                raise DataError(f"{where}: path {k} has an empty phrase: {path!r}")
            if len(phrase) > limits.max_phrase_chars:
                raise DataError(
                    f"{where}: path {k} has a phrase longer than {limits.max_phrase_chars} "
                    f"characters: {phrase[:40]!r}..."
                )
        out.append(tuple(path))
    return tuple(out)


def _records(path: Path, lines: Iterable[str], limits: IntentLimits) -> Iterator[IntentRecord]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{path}:{number}"
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        unknown = sorted(set(obj) - {"item", "behaviour", "paths", "ext", "text"})
        if unknown:
            raise DataError(f"{where}: unknown keys {unknown} (expected item, behaviour, paths[, ext, text])")
        for key in ("ext", "text"):
            if key in obj and (not isinstance(obj[key], str) or not obj[key] or len(obj[key]) > 1000):
                raise DataError(f"{where}: {key!r} must be a non-empty string")
        yield IntentRecord(
            item=_int_field(obj, "item", where),
            behaviour=_int_field(obj, "behaviour", where),
            paths=_paths_field(obj, where, limits),
            line=number,
            ext=obj.get("ext"),
            text=obj.get("text"),
        )


def read_intents(path: str | os.PathLike[str], *, limits: IntentLimits = IntentLimits()) -> Intents:
    """Read and validate an intents JSONL(.gz) file.

    Every line is checked (JSON object with exactly ``item``, ``behaviour``, ``paths``;
    non-negative integer ids; at most ``limits.max_paths`` paths of ``min_phrases`` to
    ``max_phrases`` non-empty strings). Blank lines are skipped. Ids are checked against a
    dataset later (:func:`airrec.kb.build.build_bundle`), which names the line too.
    """
    file = Path(path)
    try:
        with _open_text(file) as f:
            by_key: dict[tuple[int, int], IntentRecord] = {}
            n_lines = replaced = 0
            for record in _records(file, f, limits):
                n_lines += 1
                key = (record.item, record.behaviour)
                if key in by_key:
                    replaced += 1
                    del by_key[key]  # re-insert: keep the order of the latest line
                by_key[key] = record
    except FileNotFoundError:
        raise DataError(f"{file}: intents file not found") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{file}: not UTF-8 ({e.reason})") from None
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise DataError(f"{file}: cannot read ({e})") from None
    return Intents(
        path=file, sha256=sha256_file(file), records=tuple(by_key.values()),
        n_lines=n_lines, replaced=replaced,
    )


def check_item_identity(intents: Intents, dataset: Any) -> int:
    """Refuse lines whose ``ext``/``text`` keys name another item than ``dataset``'s item of
    that id (ids are dense positions: intents of other data would attach silently to whatever
    item has the id now). Returns the number of lines checked (those carrying keys)."""
    ext_ids, texts = dataset.items.external_ids, dataset.items.texts
    checked = 0
    for record in intents.records:
        if record.ext is None and record.text is None:
            continue
        if record.item >= len(ext_ids):
            raise DataError(f"{intents.where(record)}: item {record.item} is outside the dataset's [0, {len(ext_ids)})")
        if record.ext is not None and record.ext != ext_ids[record.item]:
            raise DataError(f"{intents.where(record)}: item {record.item} is {record.ext!r} in the intents file "
                            f"but {ext_ids[record.item]!r} in dataset {dataset.name!r}: these intents were made "
                            "for other data")
        if record.text is not None and record.text != item_text_key(texts[record.item]):
            raise DataError(f"{intents.where(record)}: item {record.item}'s text differs from the text its intents "
                            f"were generated from (dataset {dataset.name!r}); regenerate them for the new text")
        checked += 1
    return checked


def write_intents(
    path: str | os.PathLike[str], rows: Iterable[tuple[int, int, Iterable[Iterable[str]]]],
    *, identity: Any = None,
) -> Path:
    """Write ``(item, behaviour, paths)`` rows in the intents format (gzip for ``.gz``),
    atomically and in the order given. The gzip header carries no name or timestamp, so the
    same rows give the same bytes (diffs of a committed file show real changes only).

    ``identity`` (a :class:`~airrec.data.Dataset`) adds each item's ``ext`` and ``text`` keys."""
    file = Path(path)

    def line(i: int, b: int, paths: Iterable[Iterable[str]]) -> dict[str, Any]:
        obj: dict[str, Any] = {"item": int(i), "behaviour": int(b), "paths": [list(p) for p in paths]}
        if identity is not None:
            obj["ext"] = identity.items.external_ids[int(i)]
            obj["text"] = item_text_key(identity.items.texts[int(i)])
        return obj

    lines = [json.dumps(line(i, b, paths), ensure_ascii=False, separators=(", ", ": ")) for i, b, paths in rows]
    data = ("\n".join(lines) + "\n").encode("utf-8") if lines else b""
    write_atomic(file, gzip.compress(data, mtime=0) if file.suffix == ".gz" else data)
    return file


def shuffle_intents(
    src: str | os.PathLike[str], dst: str | os.PathLike[str], *, seed: int = 0,
    limits: IntentLimits = IntentLimits(),
) -> Path:
    """The "random intents" control: every (item, behaviour) keeps *some* LLM answer, but
    another item's, drawn by a seeded permutation of the answers among the file's records.

    The vocabulary, the trie, paths per item and the cold-start set stay exactly those of
    ``src``; only the link between an item and its intents is destroyed. A model that does as
    well with these as with the real ones is not using the LLM's semantics.
    """
    intents = read_intents(src, limits=limits)
    records = intents.records
    perm = np.random.default_rng(seed).permutation(len(records))
    rows = [(r.item, r.behaviour, records[int(p)].paths) for r, p in zip(records, perm)]
    return write_intents(dst, rows)
