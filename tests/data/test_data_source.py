"""One dataset specification for every command: flags, a [dataset] TOML table, and the
fingerprint caches key on."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import pytest

from airrec.data.source import DataSource, add_dataset_arguments, source_from_args
from airrec.errors import ConfigError

ROWS = ["user,item,domain,timestamp"] + [
    f"u{u},i{(u * 3 + k) % 11},{'books' if (u + k) % 2 else 'music'},{k}" for u in range(6) for k in range(5)
]


def _tables(root: Path, rows: list[str] = ROWS) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    inter, items = root / "interactions.csv", root / "items.csv"
    inter.write_text("\n".join(rows) + "\n")
    seen = {(r.split(",")[1], r.split(",")[2]) for r in rows[1:]}
    items.write_text("item,domain,text\n" + "".join(f"{i},{d},the {i} of {d}\n" for i, d in sorted(seen)))
    return inter, items


def _parse(argv: list[str], default: str | None = "food-kitchen") -> DataSource:
    p = argparse.ArgumentParser()
    add_dataset_arguments(p, default=default)
    return source_from_args(p.parse_args(argv))


def test_flags_give_one_source(tmp_path: Path) -> None:
    assert _parse([]) == DataSource(dataset="food-kitchen")
    assert _parse([]).is_food_kitchen
    inter, items = _tables(tmp_path)
    src = _parse(["--interactions", str(inter), "--items", str(items), "--name", "shop"])
    assert src.interactions == inter and src.items == items and src.label == "shop" and not src.is_food_kitchen
    assert _parse(["--interactions", str(inter)]).label == "interactions"
    assert not _parse(["--dataset", "food-kitchen", "--name", "fk-copy"]).is_food_kitchen
    with pytest.raises(ConfigError, match="exactly one"):
        _parse(["--dataset", "food-kitchen", "--interactions", str(inter)])
    with pytest.raises(ConfigError, match="exactly one"):
        _parse([], default=None)
    with pytest.raises(ConfigError, match="--items is the items table"):
        _parse(["--recbole", str(tmp_path), "--items", str(items)])
    with pytest.raises(ConfigError, match="unknown dataset"):
        DataSource(dataset="movielens")
    with pytest.raises(ConfigError, match="empty"):
        DataSource(dataset="food-kitchen", name=" ")


def test_tables_load_under_their_name(tmp_path: Path) -> None:
    inter, items = _tables(tmp_path)
    ds = DataSource(interactions=inter, items=items, name="shop").load()
    pairs = {tuple(r.split(",")[1:3]) for r in ROWS[1:]}  # an item is a (domain, item) pair
    assert ds.name == "shop" and set(ds.domain_names) == {"books", "music"} and ds.n_items == len(pairs)
    assert all(t.startswith("the ") for t in ds.items.texts)


def test_config_table(tmp_path: Path) -> None:
    inter, items = _tables(tmp_path)
    src = DataSource.from_config({"interactions": "interactions.csv", "items": "items.csv", "name": "shop"},
                                 base=tmp_path)
    assert src == DataSource(interactions=inter, items=items, name="shop")
    with pytest.raises(ConfigError, match="unknown \\[dataset\\] key 'interaction'"):
        DataSource.from_config({"interaction": "x.csv"})
    with pytest.raises(ConfigError, match="must be a string"):
        DataSource.from_config({"interactions": 3})


def test_fingerprint_follows_the_data_not_the_name(tmp_path: Path) -> None:
    a = DataSource(interactions=_tables(tmp_path / "a")[0]).load()
    renamed = dataclasses.replace(a, name="other")
    assert renamed.fingerprint() == a.fingerprint()
    rows = list(ROWS)
    rows[3] = rows[3].rsplit(",", 1)[0] + ",9"  # one timestamp moved: another dataset
    b = DataSource(interactions=_tables(tmp_path / "b", rows)[0]).load()
    assert a.name == b.name == "interactions"
    assert b.fingerprint() != a.fingerprint()
