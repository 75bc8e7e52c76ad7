"""Reader for plain tables: interactions (user, item, domain, behaviour, timestamp) + items.

This is the format most users already have (a warehouse export, a pandas frame saved to
Parquet or CSV), so it asks for as little as possible:

* ``interactions``: columns (names case-insensitive) ``user`` and ``item`` are required;
  ``domain``, ``behaviour`` (or ``behavior``) and ``timestamp`` are optional. Other columns
  are ignored.
* ``items`` (optional): ``item`` required, ``domain`` and ``text`` optional. Items listed
  here but never interacted with are kept (they can still be ranked and get intents).
* Timestamps are numbers (any unit, only their order matters to the split) or ISO-8601
  date/times (naive ones are read as UTC). Without a timestamp column, the file order of each
  user's rows is their time order.
* The split is leave-one-out by time per user (:class:`~airrec.data.split.LeaveOneOut`):
  last event → test target, second last → valid target, the rest → train; configurable.
  An optional ``split`` column gives a pre-made split instead
  (:func:`~airrec.data.split.premade_split`): ``train`` rows are training events, each
  ``valid``/``test`` row is a target whose history is every earlier event of its user, and
  ``history`` rows are context only (in later lines' histories, never trained on, never a
  target) — the layout of published splits whose test users are not training users.
* Id and domain rules are those of :mod:`airrec.data.assemble` (an item is a (domain, item)
  pair; a missing domain is inferred from the items table).

CSV is read with the standard library (``.csv``, ``.tsv``/``.tab`` for tabs, optionally
``.gz``-compressed; UTF-8, a BOM is fine). Parquet (``.parquet``/``.pq``) needs ``pyarrow``,
which is optional: without it the error says how to install it. A bad row raises
:class:`~airrec.errors.DataError` naming the file and line (CSV, header = line 1) or the
1-based data row (Parquet).
"""

from __future__ import annotations

import csv
import gzip
import importlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from airrec.data._parse import parse_id, parse_label, parse_split, parse_timestamp
from airrec.data.assemble import EventRows, ItemRows, assemble
from airrec.data.dataset import Dataset
from airrec.data.split import LeaveOneOut
from airrec.errors import DataError

__all__ = ["read_tables"]

_T = TypeVar("_T")
_PARQUET = (".parquet", ".pq")
_TAB = (".tsv", ".tab")
_ALIASES = {"behavior": "behaviour"}


@dataclass
class _Table:
    """A file's columns (raw cell values) and the line/row number of each row."""

    path: Path
    row_label: str
    lines: list[int]
    columns: dict[str, list[Any]]

    def where(self, k: int) -> str:
        if self.row_label == "line":
            return f"{self.path}:{self.lines[k]}"
        return f"{self.path}: row {self.lines[k]}"

    def header_where(self) -> str:
        return f"{self.path}:1" if self.row_label == "line" else str(self.path)

    def convert(self, column: str, parse: Callable[[Any], _T]) -> list[_T]:
        """Parse one column, turning the first ValueError into a DataError at its row."""
        out: list[_T] = []
        try:
            for value in self.columns[column]:
                out.append(parse(value))
        except ValueError as exc:
            raise DataError(f"{self.where(len(out))}: {exc}") from None
        return out


def _suffixes(path: Path) -> list[str]:
    suffixes = [s.lower() for s in path.suffixes]
    return suffixes[:-1] if suffixes and suffixes[-1] == ".gz" else suffixes


def _bad_utf8_line(path: Path) -> int:
    """The line of the first invalid UTF-8 byte (text I/O decodes ahead, so it cannot say)."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return raw[: exc.start].count(b"\n") + 1
    return 1


def _read_csv(path: Path, delimiter: str | None) -> _Table:
    """Read a CSV/TSV file (optionally gzipped) column-wise, checking every row's width."""
    suffixes = _suffixes(path)
    sep = delimiter or ("\t" if suffixes and suffixes[-1] in _TAB else ",")
    line_num = 0
    try:
        opener = gzip.open if path.suffix.lower() == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=sep, strict=True)
            header = next(reader, None)
            if header is None:
                raise DataError(f"{path}: empty file (expected a header line)")
            names = [_ALIASES.get(h.strip().lower(), h.strip().lower()) for h in header]
            for k, name in enumerate(names):
                if name in names[:k]:
                    raise DataError(f"{path}:1: column {name!r} appears twice")
            columns: list[list[Any]] = [[] for _ in names]
            lines: list[int] = []
            for row in reader:
                line_num = reader.line_num
                if not row:
                    continue  # blank line
                if len(row) != len(names):
                    raise DataError(
                        f"{path}:{line_num}: {len(row)} fields, the header has {len(names)}"
                    )
                for column, value in zip(columns, row):
                    column.append(value)
                lines.append(line_num)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except csv.Error as exc:
        raise DataError(f"{path}:{line_num + 1}: malformed CSV ({exc})") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}:{_bad_utf8_line(path)}: not UTF-8 text") from None
    except zlib.error as exc:  # a corrupt deflate stream inside a valid gzip header
        raise DataError(f"{path}:{line_num + 1}: corrupt gzip data ({exc})") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    return _Table(path, "line", lines, dict(zip(names, columns)))


def _read_parquet(path: Path) -> _Table:
    """Read a Parquet file with pyarrow (optional dependency) into Python cell values."""
    try:
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise DataError(
            f"{path}: reading Parquet needs pyarrow, which is not installed; "
            "install it with `pip install pyarrow`, or convert the file to CSV"
        ) from None
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        table = parquet.read_table(path)
    except Exception as exc:
        raise DataError(f"{path}: cannot read Parquet: {exc}") from None
    columns: dict[str, list[Any]] = {}
    for name in table.column_names:
        key = _ALIASES.get(str(name).lower(), str(name).lower())
        if key in columns:
            raise DataError(f"{path}: column {key!r} appears twice")
        try:
            columns[key] = _python_values(table.column(name))
        except (OverflowError, ValueError, ArithmeticError) as exc:
            raise DataError(f"{path}: column {key!r}: cannot convert its values ({exc})") from None
    return _Table(path, "row", list(range(1, table.num_rows + 1)), columns)


#: Arrow timestamp units per second.
_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}


def _python_values(column: Any) -> list[Any]:
    """Cell values of an Arrow column; timestamps and dates as seconds since the epoch.

    Going through Python ``datetime`` (``to_pylist``) fails for times outside years 1–9999,
    which Arrow stores happily; the epoch integer Arrow keeps is what the dataset wants
    anyway (naive timestamps count as UTC there, as in :func:`parse_timestamp`)."""
    pa = importlib.import_module("pyarrow")
    kind = column.type
    if pa.types.is_timestamp(kind):
        per_second = _PER_SECOND[kind.unit]
        ticks = column.cast(pa.int64()).to_pylist()
        return [None if t is None else t / per_second for t in ticks]
    if pa.types.is_date32(kind):
        return [None if d is None else d * 86_400.0 for d in column.cast(pa.int32()).to_pylist()]
    if pa.types.is_date64(kind):
        return [None if d is None else d / 1_000 for d in column.cast(pa.int64()).to_pylist()]
    values: list[Any] = column.to_pylist()
    return values


def _read_any(path: str | Path, delimiter: str | None = None) -> _Table:
    """Read a CSV/TSV/Parquet file by its suffix (``.gz`` allowed for text)."""
    path = Path(path).expanduser()
    suffixes = _suffixes(path)
    if suffixes and suffixes[-1] in _PARQUET:
        if path.suffix.lower() == ".gz":
            raise DataError(f"{path}: Parquet compresses internally; do not gzip it")
        return _read_parquet(path)
    if suffixes and suffixes[-1] in (".csv", *_TAB, ".txt"):
        return _read_csv(path, delimiter)
    raise DataError(f"{path}: unknown table format; use .csv, .tsv, .parquet (or .csv.gz)")


def _require(table: _Table, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in table.columns]
    if missing:
        have = ", ".join(table.columns) or "none"
        raise DataError(
            f"{table.header_where()}: missing column(s) {', '.join(missing)} (has: {have})"
        )


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _event_rows(table: _Table) -> EventRows:
    _require(table, ("user", "item"))
    has = table.columns.__contains__
    return EventRows(
        path=table.path,
        row_label=table.row_label,
        lines=table.lines,
        users=table.convert("user", lambda v: parse_id(v, "user")),
        items=table.convert("item", lambda v: parse_id(v, "item")),
        domains=(
            table.convert("domain", lambda v: parse_label(v, "domain")) if has("domain") else None
        ),
        behaviours=(
            table.convert("behaviour", lambda v: parse_label(v, "behaviour"))
            if has("behaviour")
            else None
        ),
        timestamps=table.convert("timestamp", parse_timestamp) if has("timestamp") else None,
        splits=table.convert("split", parse_split) if has("split") else None,
    )


def _item_rows(table: _Table) -> ItemRows:
    _require(table, ("item",))
    has = table.columns.__contains__
    return ItemRows(
        path=table.path,
        row_label=table.row_label,
        lines=table.lines,
        items=table.convert("item", lambda v: parse_id(v, "item")),
        domains=(
            table.convert("domain", lambda v: parse_label(v, "domain")) if has("domain") else None
        ),
        texts=table.convert("text", _text) if has("text") else None,
    )


def read_tables(
    interactions: str | Path,
    items: str | Path | None = None,
    *,
    name: str | None = None,
    split: LeaveOneOut = LeaveOneOut(),
    domains: Sequence[str] | None = None,
    behaviours: Sequence[str] | None = None,
    default_domain: str = "default",
    default_behaviour: str = "interaction",
    delimiter: str | None = None,
) -> Dataset:
    """Read an interactions table (and optionally an items table) into a :class:`Dataset`.

    ``domains``/``behaviours`` pin the id order of those names (e.g. behaviours
    ``("click", "cart", "order")`` so behaviour 2 is always "order"); a name outside the
    list is then an error at its row. Without them ids follow first appearance.
    ``default_domain``/``default_behaviour`` name the single domain/behaviour of data
    without those columns. ``delimiter`` overrides the CSV delimiter chosen by suffix.
    ``name`` defaults to the interactions file's stem.
    """
    events = _event_rows(_read_any(interactions, delimiter))
    item_rows = [_item_rows(_read_any(items, delimiter))] if items is not None else []
    stem = Path(interactions).name.split(".")[0]
    return assemble(
        name or stem,
        [events],
        item_rows,
        split=split,
        domains=domains,
        behaviours=behaviours,
        default_domain=default_domain,
        default_behaviour=default_behaviour,
    )
