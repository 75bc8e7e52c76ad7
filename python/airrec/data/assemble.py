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

from airrec.data.dataset import MAX_DOMAINS, Dataset, ItemTable
from airrec.data.split import LeaveOneOut, leave_one_out, premade_split
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
    #: Per row an index into :data:`airrec.data._parse.SPLIT_LABELS` (a pre-made split).
    splits: list[int] | None = None


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

    def encode(self, names: Sequence[str], rows: _Rows) -> list[int]:
        """Ids of a column of names; an unknown name under a fixed list is an error at its row."""
        ids = self.ids
        out: list[int] = []
        for name in names:
            found = ids.get(name)
            if found is None:
                if self.fixed:
                    known = ", ".join(repr(n) for n in ids)
                    raise DataError(
                        f"{rows.where(len(out))}: unknown {self.what} {name!r} "
                        f"(expected one of {known})"
                    )
                found = ids[name] = len(ids)
            out.append(found)
        return out

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


def _domain_column(
    rows: EventRows | ItemRows, hints: dict[str, set[str]], default: str
) -> list[str]:
    """Each row's domain name: its own column, else inferred from its item (module rules)."""
    if rows.domains is not None:
        return rows.domains
    all_domains = {d for found in hints.values() for d in found}
    fallback = next(iter(all_domains), default) if len(all_domains) <= 1 else None
    out: list[str] = []
    for item in rows.items:
        found = hints.get(item)
        if found is not None and len(found) == 1:
            out.append(next(iter(found)))
        elif found:
            names = ", ".join(sorted(found))
            raise DataError(
                f"{rows.where(len(out))}: item {item!r} is in several domains ({names}); "
                "add a domain column"
            )
        elif fallback is not None:
            out.append(fallback)
        else:
            raise DataError(
                f"{rows.where(len(out))}: cannot tell the domain of item {item!r}; "
                "add a domain column"
            )
    return out


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
    labelled = [rows.splits is not None for rows in events]
    if any(labelled) and not all(labelled):
        without = next(rows.path for rows in events if rows.splits is None)
        raise DataError(f"{without}: has no split column while the other files do")

    # Hints are only needed (and only built) when some file has no domain column.
    needs_hints = any(e.domains is None for e in events) or any(t.domains is None for t in items)
    hints = _domain_hints(events, items) if needs_hints else {}
    domain_vocab = _Vocabulary("domain", domains)
    behaviour_vocab = _Vocabulary("behaviour", behaviours)

    # Item keys (domain id, external id) in first-appearance order, and their texts.
    keys: dict[tuple[int, str], int] = {}
    texts: dict[tuple[int, str], str] = {}
    defined_at: dict[tuple[int, str], tuple[ItemRows, int]] = {}
    for table in items:
        domain_ids = domain_vocab.encode(_domain_column(table, hints, default_domain), table)
        for k, key in enumerate(zip(domain_ids, table.items)):
            if key in defined_at:
                first, j = defined_at[key]
                raise DataError(
                    f"{table.where(k)}: item {key[1]!r} is already listed at {first.where(j)}"
                )
            defined_at[key] = (table, k)
            keys.setdefault(key, len(keys))
            texts[key] = table.texts[k] if table.texts is not None else ""

    users: dict[str, int] = {}
    event_keys: list[int] = []
    event_users: list[int] = []
    event_behaviours: list[int] = []
    event_times: list[float] = []
    event_splits: list[int] = []
    for log in events:
        domain_ids = domain_vocab.encode(_domain_column(log, hints, default_domain), log)
        add_key, add_user = keys.setdefault, users.setdefault
        event_keys.extend(add_key(key, len(keys)) for key in zip(domain_ids, log.items))
        event_users.extend(add_user(user, len(users)) for user in log.users)
        behaviour_names = log.behaviours or [default_behaviour] * len(log.items)
        event_behaviours.extend(behaviour_vocab.encode(behaviour_names, log))
        if log.timestamps is not None:
            event_times.extend(log.timestamps)
        if log.splits is not None:
            event_splits.extend(log.splits)

    domain_names = domain_vocab.names()
    if len(domain_names) > MAX_DOMAINS:
        raise DataError(f"{name}: {len(domain_names)} domains; at most {MAX_DOMAINS} are supported")
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
    if all(labelled):
        user_names = list(users)
        train, valid, test = premade_split(
            user_arr[sort], item_arr[sort], behaviour_arr[sort], time_arr,
            np.array(event_splits, dtype=np.int64)[sort], user_names=user_names,
        )
    else:
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
