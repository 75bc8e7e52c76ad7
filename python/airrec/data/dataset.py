"""The one in-memory dataset type that every reader produces.

Readers differ (LLMCDSR text files, interaction tables, RecBole atomic files); everything
downstream (intent generation, training, evaluation) should not care which one ran. So each
reader returns a :class:`Dataset`: an item table plus three splits, each stored as CSR arrays
(one ``offsets`` array into flat per-event arrays) rather than per-user Python objects, because
Food–Kitchen alone has ~400k training events and the online engine takes the same flat layout.

Conventions
-----------
* Items have global ids ``0 .. n_items-1`` (int64); ``items.domains[i]`` is item ``i``'s domain
  index into :attr:`Dataset.domain_names`. Readers number items domain by domain, so each
  domain is a contiguous id range (LLMCDSR already does this: A first, then B).
* Behaviour ids index :attr:`Dataset.behaviour_names`; sources without behaviour types use one
  behaviour, id 0.
* Timestamps are float64. Sources without time use the event's position in its sequence
  (0, 1, 2, ...) and set :attr:`Dataset.timestamps_are_positions`.
* ``train`` lines are whole sequences (a trainer cuts next-item pairs out of them);
  ``valid``/``test`` lines are a history plus one target event (item, behaviour, timestamp).
* All arrays are read-only views, so a dataset can be shared between threads and pipeline
  stages without defensive copies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, Union

import numpy as np
import numpy.typing as npt

from airrec import _airrec
from airrec.errors import DataError, UnknownItemError

__all__ = [
    "Dataset",
    "DomainArray",
    "FloatArray",
    "History",
    "IntArray",
    "ItemTable",
    "Split",
    "SplitName",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
DomainArray = npt.NDArray[np.uint8]
UInt8Array = npt.NDArray[np.uint8]
SplitName = Literal["train", "valid", "test"]
SPLIT_NAMES: tuple[SplitName, ...] = ("train", "valid", "test")
#: The engine's limit (read from it), so any dataset that loads can be bundled.
MAX_DOMAINS: int = _airrec.MAX_DOMAINS


def _frozen(array: npt.ArrayLike, dtype: type[np.generic], what: str) -> npt.NDArray[np.generic]:
    """Return a read-only 1-D view of ``array`` as ``dtype``.

    A view (not ``setflags`` on the caller's array) so that freezing the dataset does not
    make the caller's own buffer read-only behind their back.
    """
    raw = np.asarray(array)
    if raw.ndim != 1:
        raise DataError(f"{what}: expected a 1-D array, got shape {raw.shape}")
    target = np.dtype(dtype)
    if raw.dtype != target:
        integer_target = target.kind in "iu"
        if raw.size and integer_target and raw.dtype.kind not in "iu":
            raise DataError(f"{what}: expected integers ({target}), got dtype {raw.dtype}")
        if raw.size and not integer_target and raw.dtype.kind not in "iuf":
            raise DataError(f"{what}: expected numbers ({target}), got dtype {raw.dtype}")
        raw = raw.astype(target)
    view: npt.NDArray[np.generic] = np.ascontiguousarray(raw).view()
    view.setflags(write=False)
    return view


class History(NamedTuple):
    """One line's history as views into its split's flat arrays (no copies)."""

    items: IntArray
    behaviours: IntArray
    timestamps: FloatArray


def hash_arrays(digest: Any, arrays: Sequence[npt.ArrayLike | None]) -> None:
    """Feed arrays into a hashlib ``digest``: each one's dtype and shape, then its bytes
    (``None`` as ``b"none"``), so equal digests mean equal arrays, not only equal bytes."""
    for arr in arrays:
        if arr is None:
            digest.update(b"none")
            continue
        a = np.ascontiguousarray(arr)
        digest.update(f"{a.dtype.str}:{a.shape}".encode())
        digest.update(a.tobytes())


@dataclass(frozen=True, eq=False, repr=False)
class Split:
    """One split (train, valid or test) as CSR arrays.

    Line ``i``'s history is ``items[offsets[i]:offsets[i+1]]`` (same slice of ``behaviours``
    and ``timestamps``), in time order. ``users[i]`` is its user id and ``sources[i]`` indexes
    ``source_names`` (which file or table the line came from, e.g. ``train_A``).
    ``targets``/``target_behaviours``/``target_timestamps`` are set for valid/test lines
    (the event to predict after the history) and ``None`` for train.
    """

    name: str
    offsets: IntArray
    items: IntArray
    behaviours: IntArray
    timestamps: FloatArray
    users: IntArray
    sources: UInt8Array
    source_names: tuple[str, ...]
    targets: IntArray | None = None
    target_behaviours: IntArray | None = None
    target_timestamps: FloatArray | None = None

    def __post_init__(self) -> None:
        name = self.name
        put = object.__setattr__
        put(self, "offsets", _frozen(self.offsets, np.int64, f"{name}.offsets"))
        put(self, "items", _frozen(self.items, np.int64, f"{name}.items"))
        put(self, "behaviours", _frozen(self.behaviours, np.int64, f"{name}.behaviours"))
        put(self, "timestamps", _frozen(self.timestamps, np.float64, f"{name}.timestamps"))
        put(self, "users", _frozen(self.users, np.int64, f"{name}.users"))
        put(self, "sources", _frozen(self.sources, np.uint8, f"{name}.sources"))
        put(self, "source_names", tuple(self.source_names))
        t, tb, tt = self.targets, self.target_behaviours, self.target_timestamps
        if t is not None and tb is not None and tt is not None:
            put(self, "targets", _frozen(t, np.int64, f"{name}.targets"))
            put(self, "target_behaviours", _frozen(tb, np.int64, f"{name}.target_behaviours"))
            put(self, "target_timestamps", _frozen(tt, np.float64, f"{name}.target_timestamps"))
        elif t is not None or tb is not None or tt is not None:
            raise DataError(f"{name}: targets, target_behaviours and target_timestamps go together")
        self._check_shapes()

    def _check_shapes(self) -> None:
        name, offsets = self.name, self.offsets
        if offsets.size == 0 or offsets[0] != 0:
            raise DataError(f"{name}.offsets must start with 0 (and have n_lines + 1 entries)")
        if np.any(np.diff(offsets) < 0):
            raise DataError(f"{name}.offsets must be non-decreasing")
        n_events = int(offsets[-1])
        for field in ("items", "behaviours", "timestamps"):
            size = getattr(self, field).size
            if size != n_events:
                raise DataError(f"{name}.{field} has {size} entries, offsets say {n_events}")
        n_lines = offsets.size - 1
        per_line = ["users", "sources", "targets", "target_behaviours", "target_timestamps"]
        for field in per_line:
            value = getattr(self, field)
            if value is not None and value.size != n_lines:
                raise DataError(f"{name}.{field} has {value.size} entries for {n_lines} lines")
        if self.sources.size and int(self.sources.max()) >= len(self.source_names):
            raise DataError(f"{name}.sources refers past source_names {self.source_names}")
        if not np.all(np.isfinite(self.timestamps)) or (
            self.target_timestamps is not None and not np.all(np.isfinite(self.target_timestamps))
        ):
            raise DataError(f"{name}: timestamps must be finite")

    def __len__(self) -> int:
        """Number of lines (sequences)."""
        return int(self.offsets.size - 1)

    def __repr__(self) -> str:
        kind = "with targets" if self.has_targets else "no targets"
        return f"Split({self.name!r}, lines={len(self)}, events={self.n_events}, {kind})"

    @property
    def n_events(self) -> int:
        """Number of history events over all lines (targets not included)."""
        return int(self.offsets[-1])

    @property
    def has_targets(self) -> bool:
        """Whether lines carry a target event (valid/test) or are whole sequences (train)."""
        return self.targets is not None

    @property
    def lengths(self) -> IntArray:
        """History length of each line."""
        return np.diff(self.offsets)

    def history(self, line: int) -> History:
        """Views of line ``line``'s history (items, behaviours, timestamps)."""
        if not 0 <= line < len(self):
            raise IndexError(f"{self.name}: line {line} out of range [0, {len(self)})")
        lo, hi = int(self.offsets[line]), int(self.offsets[line + 1])
        return History(self.items[lo:hi], self.behaviours[lo:hi], self.timestamps[lo:hi])

    def all_items(self) -> IntArray:
        """History items and targets, concatenated (what "appears in" this split)."""
        if self.targets is None:
            return self.items
        return np.concatenate([self.items, self.targets])


@dataclass(frozen=True, eq=False, repr=False)
class ItemTable:
    """Per-item columns, indexed by global item id ``0 .. n-1``.

    ``external_ids`` keeps the source's own id (an ASIN for Amazon data) so results can be
    joined back to the catalogue; ``texts`` is what the LLM and the text embedder read
    (an empty string where the source has no text).
    """

    domains: DomainArray
    texts: tuple[str, ...]
    external_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", _frozen(self.domains, np.uint8, "items.domains"))
        object.__setattr__(self, "texts", tuple(self.texts))
        object.__setattr__(self, "external_ids", tuple(self.external_ids))
        n = self.domains.size
        if len(self.texts) != n or len(self.external_ids) != n:
            raise DataError(
                f"item table columns disagree: {n} domains, {len(self.texts)} texts, "
                f"{len(self.external_ids)} external ids"
            )

    def __len__(self) -> int:
        return int(self.domains.size)

    def __repr__(self) -> str:
        return f"ItemTable(n={len(self)})"

    @property
    def ids(self) -> IntArray:
        """Global item ids, ``0 .. n-1``."""
        return np.arange(len(self), dtype=np.int64)


SplitRef = Union[SplitName, Split]


@dataclass(frozen=True, eq=False, repr=False)
class Dataset:
    """Items, domains, behaviours and the train/valid/test splits of one dataset.

    ``user_external_ids`` maps dense user ids to the source's ids when users are global
    (interaction tables, RecBole: the same user id means the same person in every split). It
    is ``None`` for LLMCDSR, whose user ids are numbered per file: there, ``(source, user)``
    identifies a line's user and valid/test users are different people from train users.
    """

    name: str
    items: ItemTable
    domain_names: tuple[str, ...]
    behaviour_names: tuple[str, ...]
    train: Split
    valid: Split
    test: Split
    user_external_ids: tuple[str, ...] | None = None
    timestamps_are_positions: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "domain_names", tuple(self.domain_names))
        object.__setattr__(self, "behaviour_names", tuple(self.behaviour_names))
        if self.user_external_ids is not None:
            object.__setattr__(self, "user_external_ids", tuple(self.user_external_ids))
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks, vectorised: a bad id here would crash the engine later."""
        if not 1 <= len(self.domain_names) <= MAX_DOMAINS:
            raise DataError(
                f"{self.name}: need 1..{MAX_DOMAINS} domains, got {len(self.domain_names)}"
            )
        if len(set(self.domain_names)) != len(self.domain_names):
            raise DataError(f"{self.name}: duplicate domain names {self.domain_names}")
        if not self.behaviour_names or len(set(self.behaviour_names)) != len(self.behaviour_names):
            raise DataError(f"{self.name}: behaviour names must be non-empty and distinct")
        domains = self.items.domains
        if domains.size and int(domains.max()) >= len(self.domain_names):
            raise DataError(f"{self.name}: item domain ids exceed domain_names {self.domain_names}")
        n_items, n_beh = len(self.items), len(self.behaviour_names)
        for split in (self.train, self.valid, self.test):
            ids = split.all_items()
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n_items):
                raise DataError(f"{self.name}.{split.name}: item ids outside [0, {n_items})")
            behaviours = split.behaviours
            if split.target_behaviours is not None:
                behaviours = np.concatenate([behaviours, split.target_behaviours])
            if behaviours.size and (int(behaviours.min()) < 0 or int(behaviours.max()) >= n_beh):
                raise DataError(f"{self.name}.{split.name}: behaviour ids outside [0, {n_beh})")
            if split.users.size and int(split.users.min()) < 0:
                raise DataError(f"{self.name}.{split.name}: negative user ids")
            if self.user_external_ids is not None and split.users.size:
                if int(split.users.max()) >= len(self.user_external_ids):
                    raise DataError(f"{self.name}.{split.name}: user ids exceed user_external_ids")
        for split, expected in ((self.train, False), (self.valid, True), (self.test, True)):
            if split.has_targets != expected:
                need = "needs" if expected else "must not have"
                raise DataError(f"{self.name}: the {split.name} split {need} targets")

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, items={self.n_items}, domains={self.domain_names}, "
            f"train={len(self.train)}, valid={len(self.valid)}, test={len(self.test)} lines)"
        )

    def fingerprint(self) -> str:
        """sha256 over the data (not the name): every split's arrays, the items' domains, texts
        and external ids, the domain and behaviour names. Caches key on it, so two datasets
        that share a name never share a cached bundle, and an edited file invalidates them."""
        import hashlib

        h = hashlib.sha256(b"airrec-dataset:1")
        for s in (self.train, self.valid, self.test):
            hash_arrays(h, (s.offsets, s.items, s.behaviours, s.timestamps, s.targets, s.target_behaviours,
                            s.target_timestamps))
        h.update(np.ascontiguousarray(self.items.domains).tobytes())
        for column in (self.items.texts, self.items.external_ids, self.domain_names, self.behaviour_names):
            h.update("\x1f".join(column).encode("utf-8", "surrogatepass") + b"\x1e")
        return h.hexdigest()

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_domains(self) -> int:
        return len(self.domain_names)

    @property
    def n_behaviours(self) -> int:
        return len(self.behaviour_names)

    def split(self, name: SplitRef) -> Split:
        """The split called ``name`` (a :class:`Split` is passed through)."""
        if isinstance(name, Split):
            return name
        if name == "train":
            return self.train
        if name == "valid":
            return self.valid
        if name == "test":
            return self.test
        raise KeyError(f"no split {name!r}; splits are {SPLIT_NAMES}")

    def domain_index(self, domain: int | str) -> int:
        """Index of a domain given by name or index."""
        if isinstance(domain, str):
            try:
                return self.domain_names.index(domain)
            except ValueError:
                raise KeyError(f"no domain {domain!r}; domains are {self.domain_names}") from None
        if not 0 <= domain < self.n_domains:
            raise KeyError(f"domain index {domain} out of range [0, {self.n_domains})")
        return int(domain)

    def items_in(self, split: SplitRef) -> IntArray:
        """Sorted distinct items in a split's histories and targets.

        An array rather than a Python ``set``: it is what ``np.isin``/negative sampling want,
        and ``len``/``in`` still work on it.
        """
        return np.unique(self.split(split).all_items())

    def items_of_domain(self, domain: int | str) -> IntArray:
        """Global ids of the items in ``domain`` (the pool to rank a target of that domain in)."""
        return np.flatnonzero(self.items.domains == self.domain_index(domain)).astype(np.int64)

    def bundle_item_ids(self) -> tuple[str, ...]:
        """Each item's id as a bundle stores it and the engine, the service and ``explain``
        accept it: its external id, qualified as ``"<domain>:<id>"`` where one external id
        names items of several domains (the tables reader keys items by domain and id), so
        every item has exactly one name."""
        ext, domains = self.items.external_ids, self.items.domains.tolist()
        seen: dict[str, set[int]] = {}
        for e, d in zip(ext, domains):
            seen.setdefault(e, set()).add(d)
        names = self.domain_names
        return tuple(e if len(seen[e]) == 1 else f"{names[d]}:{e}" for e, d in zip(ext, domains))

    def domain_of(self, items: npt.ArrayLike) -> DomainArray:
        """Domain index of each item id; raises :class:`UnknownItemError` for ids out of range."""
        ids = np.asarray(items)
        if ids.size and ids.dtype.kind not in "iu":
            raise UnknownItemError(f"item ids must be integers, got dtype {ids.dtype}")
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.n_items):
            raise UnknownItemError(f"item ids outside [0, {self.n_items})")
        result: DomainArray = self.items.domains[ids.astype(np.int64, copy=False)]
        return result

    def describe(self) -> dict[str, int | float]:
        """Summary counts as a flat ``{"key": number}`` dict (easy to log or dump as JSON).

        Keys: ``items``, ``items.<domain>``, ``items.<domain>.no_text``, ``behaviours``,
        ``users`` (global users only), and per split ``<split>.lines``, ``.events``,
        ``.events.<domain>``, ``.length.{min,mean,median,max}``, ``.lines.<source>``,
        ``.items`` (distinct items), and for valid/test ``.targets.<domain>`` and
        ``.targets.unseen_in_train`` (targets never seen in train: cold items).
        """
        out: dict[str, int | float] = {"items": self.n_items}
        domains = self.items.domains
        has_text = np.fromiter((bool(t) for t in self.items.texts), dtype=bool, count=self.n_items)
        for d, dname in enumerate(self.domain_names):
            in_domain = domains == d
            out[f"items.{dname}"] = int(in_domain.sum())
            out[f"items.{dname}.no_text"] = int((in_domain & ~has_text).sum())
        out["behaviours"] = self.n_behaviours
        if self.user_external_ids is not None:
            out["users"] = len(self.user_external_ids)
        train_items = self.items_in("train")
        for split in (self.train, self.valid, self.test):
            s = split.name
            lengths = split.lengths
            out[f"{s}.lines"] = len(split)
            out[f"{s}.events"] = split.n_events
            event_domains = np.bincount(domains[split.items], minlength=self.n_domains)
            for d, dname in enumerate(self.domain_names):
                out[f"{s}.events.{dname}"] = int(event_domains[d])
            if lengths.size:
                out[f"{s}.length.min"] = int(lengths.min())
                out[f"{s}.length.mean"] = round(float(lengths.mean()), 3)
                out[f"{s}.length.median"] = float(np.median(lengths))
                out[f"{s}.length.max"] = int(lengths.max())
            per_source = np.bincount(split.sources, minlength=len(split.source_names))
            for k, source in enumerate(split.source_names):
                out[f"{s}.lines.{source}"] = int(per_source[k])
            out[f"{s}.items"] = int(self.items_in(split).size)
            if split.targets is not None:
                per_domain = np.bincount(domains[split.targets], minlength=self.n_domains)
                for d, dname in enumerate(self.domain_names):
                    out[f"{s}.targets.{dname}"] = int(per_domain[d])
                unseen = ~np.isin(split.targets, train_items)
                out[f"{s}.targets.unseen_in_train"] = int(unseen.sum())
        return out

    def summary(self) -> str:
        """:meth:`describe` as aligned ``key  value`` lines, for logs and the CLI."""
        stats = self.describe()
        width = max(len(k) for k in stats)
        lines = [f"dataset {self.name}: domains {', '.join(self.domain_names)}"]
        lines += [f"  {key:<{width}}  {value}" for key, value in stats.items()]
        return "\n".join(lines)
