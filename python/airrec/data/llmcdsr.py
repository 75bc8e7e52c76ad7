"""Reader for the LLMCDSR / C2DSR text format (the published Food–Kitchen split).

A directory holds::

    num.txt            item counts of domain A and B, one per line
    instance_num.txt   line counts of train_A, train_B, train_overlap, one per line
    train_A.txt        user<TAB>i1,i2,...   (A items only, time order)
    train_B.txt        same, B items only
    train_overlap.txt  same, users active in both domains (mixed items)
    valid.txt          same, mixed; the last item is the target, the rest the history
    test.txt           same
    item_set_A.pkl     {asin: index within A}     item_set_B.pkl   {asin: index within B}
    text_A.pkl         {asin: title}  (optional)  text_B.pkl       (optional)

Item ids in the text files are already global: A is ``0..nA-1`` and B is ``nA..nA+nB-1``.
User ids are numbered per file, so they do not identify a person across files.

Everything is validated against ``num.txt``/``instance_num.txt`` because a truncated
download or a mismatched mirror otherwise shows up much later as a silently wrong metric.
Errors are :class:`~airrec.errors.DataError` with ``path:line:`` prefixes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airrec.data._textio import read_lines
from airrec.data.dataset import Dataset, IntArray, ItemTable, Split
from airrec.data.safe_pickle import load_str_int_dict, load_str_str_dict
from airrec.errors import DataError

__all__ = ["LLMCDSR_FILES", "TRAIN_SOURCES", "read_llmcdsr"]

_log = logging.getLogger(__name__)

TRAIN_SOURCES = ("train_A", "train_B", "train_overlap")
#: Files the reader needs; ``text_{A,B}.pkl`` are optional (missing titles become "").
LLMCDSR_FILES = (
    "num.txt",
    "instance_num.txt",
    "train_A.txt",
    "train_B.txt",
    "train_overlap.txt",
    "valid.txt",
    "test.txt",
    "item_set_A.pkl",
    "item_set_B.pkl",
)
_LINE = re.compile(r"(\d+)\t(\d+(?:,\d+)*)", re.ASCII)


@dataclass(frozen=True)
class _Sequences:
    """One parsed ``user<TAB>items`` file: per-line users and CSR items."""

    users: IntArray
    offsets: IntArray
    items: IntArray


def _read_counts(path: Path, names: tuple[str, ...], minimum: int) -> tuple[int, ...]:
    """Read one integer per line (``num.txt``, ``instance_num.txt``), named for messages."""
    values: list[int] = []
    for lineno, raw in enumerate(read_lines(path), 1):
        text = raw.strip()
        if not text:
            continue
        if len(values) == len(names):
            raise DataError(f"{path}:{lineno}: expected {len(names)} counts ({', '.join(names)})")
        if not text.isascii() or not text.isdigit():
            raise DataError(
                f"{path}:{lineno}: {names[len(values)]} count {text!r} is not an integer"
            )
        value = int(text)
        if value < minimum:
            raise DataError(
                f"{path}:{lineno}: {names[len(values)]} count {value} is below {minimum}"
            )
        values.append(value)
    if len(values) != len(names):
        raise DataError(
            f"{path}: expected {len(names)} counts ({', '.join(names)}), found {len(values)}"
        )
    return tuple(values)


def _diagnose(path: Path, lineno: int, line: str) -> DataError:
    """Say precisely what is wrong with a line that failed the fast regex."""
    where = f"{path}:{lineno}"
    if not line.strip():
        return DataError(f"{where}: empty line (expected 'user<TAB>i1,i2,...')")
    user, tab, seq = line.partition("\t")
    if not tab:
        return DataError(f"{where}: no tab; expected 'user<TAB>i1,i2,...', got {line[:60]!r}")
    if not (user.isascii() and user.isdigit()):
        return DataError(f"{where}: user id {user!r} is not a non-negative integer")
    if "\t" in seq:
        return DataError(f"{where}: more than one tab; expected 'user<TAB>i1,i2,...'")
    for k, token in enumerate(seq.split(","), 1):
        if not token:
            return DataError(f"{where}: item {k} is empty (stray comma?)")
        if not (token.isascii() and token.isdigit()):
            return DataError(f"{where}: item {k} ({token[:30]!r}) is not a non-negative integer")
    return DataError(f"{where}: malformed line {line[:60]!r}")


def _read_sequences(path: Path, lo: int, hi: int, what: str, min_items: int) -> _Sequences:
    """Parse and validate a ``user<TAB>i1,i2,...`` file; items must lie in ``[lo, hi)``.

    The regex check and ``map(int, ...)`` run in C, so the ~270k ids of train_B parse in a
    fraction of a second; only a failing line takes the slow, descriptive path.
    """
    users: list[int] = []
    lengths: list[int] = []
    items: list[int] = []
    match = _LINE.fullmatch
    for lineno, line in enumerate(read_lines(path), 1):
        m = match(line)
        if m is None:
            raise _diagnose(path, lineno, line)
        ids = list(map(int, m.group(2).split(",")))
        if len(ids) < min_items:
            raise DataError(
                f"{path}:{lineno}: {len(ids)} item(s); need at least {min_items} "
                "(a history and the target)"
            )
        if min(ids) < lo or max(ids) >= hi:
            k, bad = next((k, v) for k, v in enumerate(ids, 1) if not lo <= v < hi)
            raise DataError(f"{path}:{lineno}: item {k} = {bad} is outside {what} [{lo}, {hi})")
        users.append(int(m.group(1)))
        lengths.append(len(ids))
        items.extend(ids)
    user_arr = np.array(users, dtype=np.int64)
    order = np.argsort(user_arr, kind="stable")
    repeated = np.flatnonzero(np.diff(user_arr[order]) == 0)
    if repeated.size:
        first, second = sorted((int(order[repeated[0]]), int(order[repeated[0] + 1])))
        raise DataError(
            f"{path}:{second + 1}: user {users[second]} already has a line (line {first + 1})"
        )
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return _Sequences(user_arr, offsets, np.array(items, dtype=np.int64))


def _positions(offsets: IntArray) -> IntArray:
    """Each event's position within its line (0, 1, 2, ...): the time axis when none is given."""
    lengths = np.diff(offsets)
    return np.arange(int(offsets[-1]), dtype=np.int64) - np.repeat(offsets[:-1], lengths)


def _train_split(parts: list[_Sequences]) -> Split:
    """train_A + train_B + train_overlap, in that order, remembering each line's file."""
    offsets = [np.zeros(1, dtype=np.int64)]
    shift = 0
    for part in parts:
        offsets.append(part.offsets[1:] + shift)
        shift += int(part.offsets[-1])
    all_offsets = np.concatenate(offsets)
    items = np.concatenate([p.items for p in parts])
    return Split(
        name="train",
        offsets=all_offsets,
        items=items,
        behaviours=np.zeros(items.size, dtype=np.int64),
        timestamps=_positions(all_offsets).astype(np.float64),
        users=np.concatenate([p.users for p in parts]),
        sources=np.concatenate(
            [np.full(p.users.size, k, dtype=np.uint8) for k, p in enumerate(parts)]
        ),
        source_names=TRAIN_SOURCES,
    )


def _target_split(name: str, seqs: _Sequences) -> Split:
    """Valid/test: the last item of each line is the target, the rest the history."""
    ends = seqs.offsets[1:] - 1
    keep = np.ones(seqs.items.size, dtype=bool)
    keep[ends] = False
    offsets = seqs.offsets - np.arange(seqs.offsets.size, dtype=np.int64)
    n = seqs.users.size
    return Split(
        name=name,
        offsets=offsets,
        items=seqs.items[keep],
        behaviours=np.zeros(int(offsets[-1]), dtype=np.int64),
        timestamps=_positions(offsets).astype(np.float64),
        users=seqs.users,
        sources=np.zeros(n, dtype=np.uint8),
        source_names=(name,),
        targets=seqs.items[ends],
        target_behaviours=np.zeros(n, dtype=np.int64),
        target_timestamps=np.diff(offsets).astype(np.float64),
    )


def _item_ids(path: Path, mapping: dict[str, int], count: int, num_path: Path) -> list[str]:
    """Invert ``{asin: index}`` into a list of asins by index, checking it is a bijection."""
    if len(mapping) != count:
        raise DataError(f"{path}: holds {len(mapping)} items but {num_path} says {count}")
    asins: list[str | None] = [None] * count
    for asin, index in mapping.items():
        if not 0 <= index < count:
            raise DataError(f"{path}: index {index} of {asin!r} is outside [0, {count})")
        if asins[index] is not None:
            raise DataError(f"{path}: index {index} is used by {asins[index]!r} and {asin!r}")
        asins[index] = asin
    return [a for a in asins if a is not None]


def _titles(path: Path, asins: list[str]) -> list[str]:
    """Titles by item index; items without one get "" (counted by ``Dataset.describe``)."""
    if not path.exists():
        _log.warning("%s not found: items of that domain get empty texts", path)
        return [""] * len(asins)
    titles = load_str_str_dict(path)
    unknown = len(titles.keys() - set(asins))
    if unknown:
        _log.warning("%s: %d titles for asins not in the item set (ignored)", path, unknown)
    return [titles.get(asin, "") for asin in asins]


def read_llmcdsr(
    directory: str | Path,
    *,
    name: str | None = None,
    domain_names: tuple[str, str] = ("A", "B"),
    behaviour_name: str = "purchase",
) -> Dataset:
    """Read an LLMCDSR-format directory into a :class:`Dataset`.

    ``train`` stacks train_A, train_B and train_overlap (``Split.sources`` says which);
    ``valid``/``test`` keep each line's last item as target. There are no timestamps or
    behaviour types in this format: timestamps are sequence positions, every event gets
    behaviour 0 (``behaviour_name``). ``name`` defaults to the directory's name.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise DataError(
            f"{root}: not a directory (expected the LLMCDSR files {', '.join(LLMCDSR_FILES)})"
        )
    missing = [f for f in LLMCDSR_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(f"{root}: missing {', '.join(missing)}")
    num_path = root / "num.txt"
    inst_path = root / "instance_num.txt"
    n_a, n_b = _read_counts(num_path, ("domain A items", "domain B items"), 1)
    instance_counts = _read_counts(inst_path, TRAIN_SOURCES, 0)
    n_items = n_a + n_b

    ranges = {
        "train_A": (0, n_a, "domain A"),
        "train_B": (n_a, n_items, "domain B"),
        "train_overlap": (0, n_items, "the item range"),
    }
    train_parts: list[_Sequences] = []
    for source, expected in zip(TRAIN_SOURCES, instance_counts):
        lo, hi, what = ranges[source]
        path = root / f"{source}.txt"
        part = _read_sequences(path, lo, hi, what, 1)
        if part.users.size != expected:
            raise DataError(f"{path}: has {part.users.size} lines but {inst_path} says {expected}")
        train_parts.append(part)
    valid = _read_sequences(root / "valid.txt", 0, n_items, "the item range", 2)
    test = _read_sequences(root / "test.txt", 0, n_items, "the item range", 2)

    asins_a = _item_ids(
        root / "item_set_A.pkl", load_str_int_dict(root / "item_set_A.pkl"), n_a, num_path
    )
    asins_b = _item_ids(
        root / "item_set_B.pkl", load_str_int_dict(root / "item_set_B.pkl"), n_b, num_path
    )
    texts = _titles(root / "text_A.pkl", asins_a) + _titles(root / "text_B.pkl", asins_b)
    domains = np.zeros(n_items, dtype=np.uint8)
    domains[n_a:] = 1

    return Dataset(
        name=name or root.name,
        items=ItemTable(domains=domains, texts=tuple(texts), external_ids=tuple(asins_a + asins_b)),
        domain_names=domain_names,
        behaviour_names=(behaviour_name,),
        train=_train_split(train_parts),
        valid=_target_split("valid", valid),
        test=_target_split("test", test),
        user_external_ids=None,
        timestamps_are_positions=True,
    )
