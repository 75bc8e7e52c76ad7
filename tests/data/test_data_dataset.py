"""The Dataset/Split types, the leave-one-out split's invariants, and the data-home setting."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airrec.data import (
    Dataset,
    ItemTable,
    LeaveOneOut,
    Split,
    data_home,
    dataset_dir,
    leave_one_out,
)
from airrec.data.home import ENV_VAR
from airrec.errors import DataError, UnknownItemError


def split(
    name: str, offsets: list[int], items: list[int], targets: list[int] | None = None
) -> Split:
    n, m = len(offsets) - 1, len(items)
    with_targets = targets is not None
    return Split(
        name=name,
        offsets=np.array(offsets),
        items=np.array(items),
        behaviours=np.zeros(m, dtype=np.int64),
        timestamps=np.arange(m, dtype=np.float64),
        users=np.arange(n),
        sources=np.zeros(n, dtype=np.uint8),
        source_names=(name,),
        targets=np.array(targets, dtype=np.int64) if with_targets else None,
        target_behaviours=np.zeros(n, dtype=np.int64) if with_targets else None,
        target_timestamps=np.zeros(n) if with_targets else None,
    )


def tiny() -> Dataset:
    return Dataset(
        name="tiny",
        items=ItemTable(
            np.array([0, 0, 1, 1], dtype=np.uint8), ("a", "", "c", "d"), ("A", "B", "C", "D")
        ),
        domain_names=("x", "y"),
        behaviour_names=("view",),
        train=split("train", [0, 2, 3], [0, 1, 2]),
        valid=split("valid", [0, 1], [0], [2]),
        test=split("test", [0, 2], [0, 2], [3]),
    )


def test_helpers() -> None:
    ds = tiny()
    assert ds.items_in("train").tolist() == [0, 1, 2]
    assert ds.items_in(ds.test).tolist() == [0, 2, 3]
    assert ds.items_of_domain("y").tolist() == [2, 3] and ds.items_of_domain(0).tolist() == [0, 1]
    assert ds.domain_of([3, 0]).tolist() == [1, 0]
    assert ds.items.ids.tolist() == [0, 1, 2, 3]
    with pytest.raises(UnknownItemError):
        ds.domain_of([4])
    with pytest.raises(UnknownItemError):
        ds.domain_of([0.5])
    with pytest.raises(KeyError):
        ds.split("dev")  # type: ignore[arg-type]
    stats = ds.describe()
    assert stats["items.x.no_text"] == 1 and stats["test.targets.unseen_in_train"] == 1
    assert "Dataset('tiny'" in repr(ds) and len(repr(ds)) < 200
    with pytest.raises(IndexError):
        ds.train.history(2)


def test_caller_arrays_stay_writable() -> None:
    items = np.array([0, 1], dtype=np.int64)
    s = Split(
        "train",
        np.array([0, 2]),
        items,
        np.zeros(2, np.int64),
        np.zeros(2),
        np.zeros(1, np.int64),
        np.zeros(1, np.uint8),
        ("train",),
    )
    items[0] = 1  # the Split holds a read-only view, the caller's buffer is untouched
    assert not s.items.flags.writeable


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: split("s", [1, 2], [0, 1]), "must start with 0"),
        (lambda: split("s", [0, 2, 1], [0, 1]), "non-decreasing"),
        (lambda: split("s", [0, 3], [0, 1]), "items has 2 entries, offsets say 3"),
        (lambda: split("s", [0, 2], [0.5, 1]), "expected integers"),  # type: ignore[list-item]
    ],
)
def test_split_validation(make: object, fragment: str) -> None:
    with pytest.raises(DataError, match=fragment):
        make()  # type: ignore[operator]


def test_dataset_validation() -> None:
    good = tiny()
    with pytest.raises(DataError, match=r"item ids outside \[0, 4\)"):
        Dataset(
            "bad",
            good.items,
            good.domain_names,
            good.behaviour_names,
            split("train", [0, 1], [9]),
            good.valid,
            good.test,
        )
    with pytest.raises(DataError, match="needs targets"):
        Dataset(
            "bad",
            good.items,
            good.domain_names,
            good.behaviour_names,
            good.train,
            good.train,
            good.test,
        )
    with pytest.raises(DataError, match="duplicate domain names"):
        Dataset(
            "bad", good.items, ("x", "x"), good.behaviour_names, good.train, good.valid, good.test
        )


@settings(max_examples=60, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 7), min_size=1, max_size=12),
    valid=st.integers(0, 2),
    test=st.integers(0, 2),
    min_train=st.integers(1, 3),
)
def test_leave_one_out_invariants(
    lengths: list[int], valid: int, test: int, min_train: int
) -> None:
    users = np.repeat(np.arange(len(lengths)), lengths).astype(np.int64)
    items = np.arange(users.size, dtype=np.int64)  # event k is item k: easy to trace
    train, va, te = leave_one_out(
        users,
        items,
        np.zeros_like(items),
        items.astype(np.float64),
        LeaveOneOut(valid, test, min_train),
    )
    held = [t for s in (va, te) for t in (s.targets if s.targets is not None else [])]
    # Every event is in train or is exactly one held-out target.
    assert sorted(train.items.tolist() + held) == items.tolist()
    for s in (va, te):
        assert s.targets is not None
        for line in range(len(s)):
            start = int(np.flatnonzero(users == s.users[line])[0])
            # The history is everything of that user before the target.
            assert s.history(line).items.tolist() == list(range(start, int(s.targets[line])))
            assert len(s.history(line).items) >= min_train
    eligible = sum(n >= min_train + valid + test for n in lengths)
    assert len(va) == eligible * valid and len(te) == eligible * test


def test_data_home_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_home() == tmp_path / "xdg" / "airrec" / "data"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_home() == Path.home() / ".cache" / "airrec" / "data"
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "env"))
    assert data_home() == tmp_path / "env"
    assert data_home(tmp_path / "flag") == tmp_path / "flag"
    assert data_home("") == tmp_path / "env"  # an empty flag counts as unset
    monkeypatch.setenv(ENV_VAR, "~/d")
    assert data_home() == Path.home() / "d"
    assert dataset_dir("food-kitchen", tmp_path) == tmp_path / "food-kitchen"
    with pytest.raises(ValueError):
        dataset_dir("../etc")
