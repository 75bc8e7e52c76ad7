"""Turn parsed interaction and item rows into a :class:`Dataset` (ids, domains, split).

The table reader (CSV/Parquet) and the RecBole reader only differ in how they read cells.
Everything after that is here, once: mapping external ids to dense ids, deciding each item's
domain, building the behaviour vocabulary, sorting by time and splitting leave-one-out.

Identity rules (documented for users in :func:`airrec.data.read_tables`):

* An item is the pair (domain, external item id): two domains' files may both number their
  items from 1, and those are different items.
* A row without a domain (no domain column) takes its item's domain from the rows that do
  name one (an item table, other files). If nothing anywhere names a domain, everything is
  in one domain, ``default_domain``.
* Domains and behaviours get ids in order of first appearance (item tables first, then
  interactions), unless the caller pins the order (the order matters: behaviour ids index the
  engine's behaviour weights).
* Global item ids run domain by domain, each domain a contiguous range, items in order of
  first appearance within it. Users get dense ids in order of first appearance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airrec.data.dataset import Dataset, ItemTable
from airrec.data.split import LeaveOneOut, leave_one_out
from airrec.errors import DataError

__all__ = ["EventRows", "ItemRows", "assemble"]


@dataclass
class _Rows:
    path: Path
    #: "line" for text files (1-based, header = line 1), "row" for Parquet (1-based data row).
    row_label: str
    lines: list[int]

    def where(self, k: int) -> str:
        """``path:line`` (text) or ``path: row N`` (Parquet) of row ``k``, for messages."""
        if self.row_label == "line":
            return f"{self.path}:{self.lines[k]}"
        return f"{self.path}: {self.row_label} {self.lines[k]}"


@dataclass
class EventRows(_Rows):
    """Interaction rows of one file; an optional column absent from the file is ``None``."""

    users: list[str]
    items: list[str]
    domains: list[str] | None = None
    behaviours: list[str] | None = None
    timestamps: list[float] | None = None


@dataclass
class ItemRows(_Rows):
    """Item rows of one file; ``texts`` is ``None`` when the file has no text column."""

    items: list[str]
    domains: list[str] | None = None
    texts: list[str] | None = None


class _Vocabulary:
    """Names → ids in first-appearance order, or a fixed list that rejects unknown names."""

    def __init__(self, what: str, fixed: Sequence[str] | None) -> None:
        self.what = what
        self.fixed = fixed is not None
        self.ids: dict[str, int] = {}
        for name in fixed or ():
            if name in self.ids:
                raise DataError(f"{what} {name!r} is listed twice")
            self.ids[name] = len(self.ids)

    def id(self, name: str, where: str) -> int:
        found = self.ids.get(name)
        if found is not None:
            return found
        if self.fixed:
            known = ", ".join(repr(n) for n in self.ids)
            raise DataError(f"{where}: unknown {self.what} {name!r} (expected one of {known})")
        self.ids[name] = len(self.ids)
        return self.ids[name]

    def names(self) -> tuple[str, ...]:
        return tuple(self.ids)


def _domain_hints(events: Sequence[EventRows], items: Sequence[ItemRows]) -> dict[str, set[str]]:
    """Item id → the domains that rows naming a domain give it (to fill in rows without one)."""
    hints: dict[str, set[str]] = {}
    columns = [(t.items, t.domains) for t in items] + [(e.items, e.domains) for e in events]
    for item_column, domain_column in columns:
        if domain_column is not None:
            for item, domain in zip(item_column, domain_column):
                hints.setdefault(item, set()).add(domain)
    return hints


def _resolve_domain(
    item: str, hints: dict[str, set[str]], all_domains: set[str], default: str, where: str
) -> str:
    """The domain of ``item`` in a row that does not name one (see the module rules)."""
    found = hints.get(item)
    if found is not None and len(found) == 1:
        return next(iter(found))
    if found:
        names = ", ".join(sorted(found))
        raise DataError(f"{where}: item {item!r} is in several domains ({names}); add a domain column")
    if len(all_domains) <= 1:
        return next(iter(all_domains), default)
    raise DataError(f"{where}: cannot tell the domain of item {item!r}; add a domain column")


def assemble(
    name: str,
    events: Sequence[EventRows],
    items: Sequence[ItemRows] = (),
    *,
    split: LeaveOneOut = LeaveOneOut(),
    domains: Sequence[str] | None = None,
    behaviours: Sequence[str] | None = None,
    default_domain: str = "default",
    default_behaviour: str = "interaction",
) -> Dataset:
    """Build a :class:`Dataset` from parsed rows (see the module docstring for the rules)."""
    if not events or not any(rows.users for rows in events):
        where = ", ".join(str(rows.path) for rows in events) or "no interaction files"
        raise DataError(f"{where}: no interactions")
    timed = [rows.timestamps is not None for rows in events]
    if any(timed) and not all(timed):
        without = next(rows.path for rows in events if rows.timestamps is None)
        raise DataError(f"{without}: has no timestamp column while the other files do")

    hints = _domain_hints(events, items)
    all_domains = {d for found in hints.values() for d in found}
    domain_vocab = _Vocabulary("domain", domains)
    behaviour_vocab = _Vocabulary("behaviour", behaviours)

    # Item keys (domain id, external id) in first-appearance order, and their texts.
    keys: dict[tuple[int, str], int] = {}
    texts: dict[tuple[int, str], str] = {}
    defined_at: dict[tuple[int, str], str] = {}
    for table in items:
        for k, item in enumerate(table.items):
            where = table.where(k)
            if table.domains is not None:
                dname = table.domains[k]
            else:
                dname = _resolve_domain(item, hints, all_domains, default_domain, where)
            key = (domain_vocab.id(dname, where), item)
            if key in defined_at:
                raise DataError(f"{where}: item {item!r} is already listed at {defined_at[key]}")
            defined_at[key] = where
            keys.setdefault(key, len(keys))
            texts[key] = table.texts[k] if table.texts is not None else ""

    users: dict[str, int] = {}
    event_keys: list[int] = []
    event_users: list[int] = []
    event_behaviours: list[int] = []
    event_times: list[float] = []
    for log in events:
        for k, item in enumerate(log.items):
            where = log.where(k)
            if log.domains is not None:
                dname = log.domains[k]
            else:
                dname = _resolve_domain(item, hints, all_domains, default_domain, where)
            key = (domain_vocab.id(dname, where), item)
            event_keys.append(keys.setdefault(key, len(keys)))
            event_users.append(users.setdefault(log.users[k], len(users)))
            behaviour = log.behaviours[k] if log.behaviours is not None else default_behaviour
            event_behaviours.append(behaviour_vocab.id(behaviour, where))
        if log.timestamps is not None:
            event_times.extend(log.timestamps)

    domain_names = domain_vocab.names()
    if len(domain_names) > 256:
        raise DataError(f"{name}: {len(domain_names)} domains; at most 256 are supported")
    # Global ids: by domain, then first appearance (a stable sort keeps that order).
    key_list = list(keys)
    key_domains = np.fromiter((d for d, _ in key_list), dtype=np.int64, count=len(key_list))
    order = np.argsort(key_domains, kind="stable")
    global_of_key = np.empty(len(key_list), dtype=np.int64)
    global_of_key[order] = np.arange(len(key_list), dtype=np.int64)
    item_table = ItemTable(
        domains=key_domains[order].astype(np.uint8),
        texts=tuple(texts.get(key_list[i], "") for i in order),
        external_ids=tuple(key_list[i][1] for i in order),
    )

    user_arr = np.array(event_users, dtype=np.int64)
    item_arr = global_of_key[np.array(event_keys, dtype=np.int64)]
    behaviour_arr = np.array(event_behaviours, dtype=np.int64)
    row_order = np.arange(user_arr.size, dtype=np.int64)
    if all(timed):
        time_arr = np.array(event_times, dtype=np.float64)
        sort = np.lexsort((row_order, time_arr, user_arr))
        time_arr = time_arr[sort]
    else:
        sort = np.lexsort((row_order, user_arr))
        sorted_users = user_arr[sort]
        starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
        counts = np.diff(np.r_[starts, sorted_users.size])
        time_arr = (row_order - np.repeat(starts, counts)).astype(np.float64)
    train, valid, test = leave_one_out(
        user_arr[sort], item_arr[sort], behaviour_arr[sort], time_arr, split
    )
    return Dataset(
        name=name,
        items=item_table,
        domain_names=domain_names,
        behaviour_names=behaviour_vocab.names() or (default_behaviour,),
        train=train,
        valid=valid,
        test=test,
        user_external_ids=tuple(users),
        timestamps_are_positions=not all(timed),
    )
