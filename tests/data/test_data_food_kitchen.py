"""The real Food–Kitchen files (skipped where absent): the counts DESIGN.md §3 states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airrec.data import FOOD_KITCHEN, load_food_kitchen, read_llmcdsr, verify
from airrec.errors import DataError


def test_counts(food_kitchen_dir: Path) -> None:
    assert verify(FOOD_KITCHEN, food_kitchen_dir) == []
    ds = read_llmcdsr(food_kitchen_dir, domain_names=("Food", "Kitchen"))
    stats = ds.describe()
    assert stats["items.Food"] == 8661 and stats["items.Kitchen"] == 27637
    assert stats["items.Food.no_text"] == 0 and stats["items.Kitchen.no_text"] == 0
    assert stats["train.lines.train_A"] == 5472
    assert stats["train.lines.train_B"] == 38191
    assert stats["train.lines.train_overlap"] == 7501
    assert stats["valid.lines"] == 960 and stats["test.lines"] == 937
    assert stats["test.targets.Food"] == 300 and stats["test.targets.Kitchen"] == 637
    # train_A is Food only, train_B Kitchen only; valid/test histories mix both.
    sources = np.repeat(ds.train.sources, ds.train.lengths)
    assert np.all(ds.items.domains[ds.train.items[sources == 0]] == 0)
    assert np.all(ds.items.domains[ds.train.items[sources == 1]] == 1)
    assert set(np.unique(ds.domain_of(ds.test.items)).tolist()) == {0, 1}
    assert ds.items.external_ids[0] == "B000BIZT3E"


def test_load_from_data_home(food_kitchen_dir: Path, tmp_path: Path) -> None:
    ds = load_food_kitchen(food_kitchen_dir.parent, check_sums=True)
    assert ds.name == "food-kitchen" and ds.domain_names == ("Food", "Kitchen")
    with pytest.raises(DataError, match="airrec data fetch food-kitchen"):
        load_food_kitchen(tmp_path)
