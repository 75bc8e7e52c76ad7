"""Which dataset a command works on: one definition shared by every ``airrec`` command.

A :class:`DataSource` is one of a known dataset under the data home (``--dataset
food-kitchen``), an interactions table with an optional items table (``--interactions F
[--items F]``, :func:`~airrec.data.read_tables`) or RecBole atomic files (``--recbole P``),
optionally renamed (``--name``); a ``[dataset]`` table of a TOML config says the same
(:meth:`DataSource.from_config`). :func:`add_dataset_arguments` adds the flags and
:func:`source_from_args` reads them back, so ``generate``, ``build``, ``train``, ``baselines``,
``evaluate``, ``run`` and ``tune`` accept the same data the same way.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airrec.data.dataset import Dataset
from airrec.errors import ConfigError

__all__ = ["KNOWN_DATASETS", "DataSource", "add_dataset_arguments", "source_from_args"]

#: Datasets found (and downloaded) by name under the data home.
KNOWN_DATASETS = ("food-kitchen",)
_CONFIG_KEYS = {"dataset": str, "interactions": str, "items": str, "recbole": str, "name": str, "data_home": str}


@dataclass(frozen=True)
class DataSource:
    """Where a dataset comes from; exactly one of ``dataset``, ``interactions``, ``recbole``."""

    dataset: str | None = None
    interactions: Path | None = None
    items: Path | None = None
    recbole: Path | None = None
    #: The dataset's name (results, caches, the bundle); default: the known name or file stem.
    name: str | None = None
    data_home: str | Path | None = None

    def __post_init__(self) -> None:
        given = [k for k in ("dataset", "interactions", "recbole") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ConfigError(f"give exactly one of --dataset, --interactions, --recbole (got {given or 'none'})")
        if self.dataset is not None and self.dataset not in KNOWN_DATASETS:
            raise ConfigError(f"unknown dataset {self.dataset!r}; known: {', '.join(KNOWN_DATASETS)} "
                              "(or --interactions/--items, --recbole for your own)")
        if self.items is not None and self.interactions is None:
            raise ConfigError("--items is the items table of --interactions; give --interactions too")
        if self.name is not None and not self.name.strip():
            raise ConfigError("--name must not be empty")

    @property
    def is_food_kitchen(self) -> bool:
        """The published Food–Kitchen split (its committed intents artifact applies)."""
        return self.dataset == "food-kitchen" and self.name in (None, "food-kitchen")

    @property
    def label(self) -> str:
        """A short name for directories before the data is read (the name, else the stem)."""
        if self.name:
            return self.name
        if self.dataset is not None:
            return self.dataset
        path = self.interactions if self.interactions is not None else self.recbole
        assert path is not None
        return Path(path).name.split(".")[0]

    def load(self, *, download: bool = False, progress: bool = True) -> Dataset:
        """Reads the dataset (``download``: fetch a known dataset that is missing)."""
        from dataclasses import replace

        from airrec import data

        if self.dataset == "food-kitchen":
            ds = data.load_food_kitchen(self.data_home, download=download, progress=progress)
            return ds if self.name is None else replace(ds, name=self.name)
        if self.interactions is not None:
            return data.read_tables(self.interactions, self.items, name=self.name)
        assert self.recbole is not None
        return data.read_recbole(self.recbole, name=self.name)

    @classmethod
    def from_config(cls, table: Mapping[str, Any], base: Path | None = None) -> DataSource:
        """A ``[dataset]`` TOML table (keys as the flags: ``dataset``, ``interactions``, ``items``,
        ``recbole``, ``name``, ``data_home``); relative paths are relative to ``base``."""
        for key, value in table.items():
            if key not in _CONFIG_KEYS:
                raise ConfigError(f"unknown [dataset] key {key!r}; keys: {sorted(_CONFIG_KEYS)}")
            if not isinstance(value, _CONFIG_KEYS[key]):
                raise ConfigError(f"[dataset] {key} must be a string, got {value!r}")

        def path(key: str) -> Path | None:
            if key not in table:
                return None
            p = Path(table[key]).expanduser()
            return p if p.is_absolute() or base is None else base / p

        return cls(dataset=table.get("dataset"), interactions=path("interactions"), items=path("items"),
                   recbole=path("recbole"), name=table.get("name"), data_home=table.get("data_home"))


def add_dataset_arguments(parser: argparse.ArgumentParser, *, default: str | None = "food-kitchen") -> None:
    """The dataset flags; without any, ``default`` (``None``: one of them is required)."""
    g = parser.add_argument_group("dataset (one of; default: " + (default or "none, one is required") + ")")
    g.add_argument("--dataset", choices=list(KNOWN_DATASETS), help="a known dataset under the data home")
    g.add_argument("--interactions", type=Path, metavar="FILE",
                   help="your interactions table (CSV/TSV/Parquet: user, item, timestamp[, domain, behaviour])")
    g.add_argument("--items", type=Path, metavar="FILE", help="the items table of --interactions (item, text[, domain])")
    g.add_argument("--recbole", type=Path, metavar="PATH", help="RecBole dataset directory or .inter file")
    g.add_argument("--name", help="the dataset's name in results and caches (default: the file stem)")
    g.add_argument("--data-home", help="data directory of known datasets (default: $AIRREC_DATA_HOME or "
                   "~/.cache/airrec/data)")
    parser.set_defaults(_dataset_default=default)


def source_from_args(args: argparse.Namespace) -> DataSource:
    """The :class:`DataSource` the flags of :func:`add_dataset_arguments` describe."""
    dataset = getattr(args, "dataset", None)
    interactions, recbole = getattr(args, "interactions", None), getattr(args, "recbole", None)
    if dataset is None and interactions is None and recbole is None:
        dataset = getattr(args, "_dataset_default", None)
    return DataSource(dataset=dataset, interactions=interactions, items=getattr(args, "items", None),
                      recbole=recbole, name=getattr(args, "name", None), data_home=getattr(args, "data_home", None))
