"""Negative sampling: in-domain, never the target, distinct, reproducible, saved and checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evaluate_fixtures import REPO, make_dataset

from airrec.data import Dataset, SplitName, load_food_kitchen
from airrec.errors import DataError
from airrec.evaluate.negatives import (
    check_negatives,
    dataset_fingerprint,
    get_negatives,
    load_negatives,
    negatives_path,
    sample_negatives,
    save_negatives,
)


def _assert_valid(neg: np.ndarray, ds: Dataset, split: SplitName = "test") -> None:
    targets = ds.split(split).targets
    assert targets is not None
    dom = ds.items.domains
    assert neg.dtype == np.int64
    assert np.all(dom[neg] == dom[targets][:, None]), "a negative outside its target's domain"
    assert not np.any(neg == targets[:, None]), "the target among its own negatives"
    ordered = np.sort(neg, axis=1)
    assert not np.any(ordered[:, 1:] == ordered[:, :-1]), "a repeated negative"


def test_evaluate_negatives_in_domain_not_target(tiny: Dataset) -> None:
    neg = sample_negatives(tiny, "test", n=3, seed=0)
    assert neg.shape == (4, 3)
    _assert_valid(neg, tiny)
    check_negatives(neg, tiny, "test")


def test_evaluate_negatives_whole_pool_is_a_permutation(tiny: Dataset) -> None:
    # Food has 5 items, so n = 4 is every Food item but the target.
    neg = sample_negatives(tiny, "test", n=4, seed=3)
    assert sorted(neg[0].tolist()) == [0, 1, 3, 4]  # target 2
    assert sorted(neg[1].tolist()) == [0, 1, 2, 4]  # target 3
    with pytest.raises(DataError, match="cannot draw 5 negatives"):
        sample_negatives(tiny, "test", n=5)
    assert sample_negatives(tiny, "test", n=0).shape == (4, 0)
    with pytest.raises(DataError):
        sample_negatives(tiny, "test", n=-1)
    with pytest.raises(DataError, match="targets"):
        sample_negatives(tiny, "train", n=1)


def test_evaluate_negatives_reproducible_and_seed_dependent(wide: Dataset) -> None:
    a = sample_negatives(wide, "test", n=999, seed=0)
    _assert_valid(a, wide)
    assert np.array_equal(a, sample_negatives(wide, "test", n=999, seed=0))
    b = sample_negatives(wide, "test", n=999, seed=1)
    _assert_valid(b, wide)
    assert not np.array_equal(np.sort(a, axis=1), np.sort(b, axis=1))


def test_evaluate_negatives_uniform_over_the_pool() -> None:
    """Every non-target item of the domain is about equally likely (each draw takes 3 of 9)."""
    ds = make_dataset(10, 2, train=[[0]], valid=([[0]], [0]), test=([[1]] * 3000, [4] * 3000))
    neg = sample_negatives(ds, "test", n=3, seed=5)
    counts = np.bincount(neg.ravel(), minlength=12)
    assert counts[4] == 0 and counts[10:].sum() == 0
    others = np.delete(counts[:10], 4)
    expected = 3000 * 3 / 9  # 1000 each; binomial std ~ 27
    assert np.all(np.abs(others - expected) < 150)


def test_evaluate_negatives_real_food_kitchen() -> None:
    root = REPO.parent / "shared" / "data"
    if not (root / "food-kitchen" / "num.txt").is_file():
        pytest.skip("Food–Kitchen is not on this machine")
    ds = load_food_kitchen(root)
    neg = sample_negatives(ds, "test", n=999, seed=0)
    assert neg.shape == (937, 999)
    _assert_valid(neg, ds)


def test_evaluate_negatives_round_trip(tiny: Dataset, tmp_path: Path) -> None:
    neg = sample_negatives(tiny, "test", n=3, seed=2)
    path = negatives_path(tmp_path, tiny.name, "test", 3, 2)
    assert path.name == "tiny.test.neg3.seed2.npz"
    save_negatives(path, neg, tiny, "test", seed=2)
    assert np.array_equal(load_negatives(path, tiny, "test", n=3, seed=2), neg)


def test_evaluate_negatives_mismatch_is_refused(tiny: Dataset, tmp_path: Path) -> None:
    neg = sample_negatives(tiny, "test", n=3, seed=2)
    path = save_negatives(tmp_path / "n.npz", neg, tiny, "test", seed=2)
    with pytest.raises(DataError, match="seed is 2, expected 5"):
        load_negatives(path, tiny, "test", n=3, seed=5)
    with pytest.raises(DataError, match="n is 3, expected 2"):
        load_negatives(path, tiny, "test", n=2, seed=2)
    # Same shape, one target changed: only the fingerprint tells them apart.
    other = make_dataset(
        5, 7, train=[[0, 5, 0], [0, 6], [1, 5, 7]], valid=([[0, 5], [6]], [1, 7]),
        test=([[5, 6, 1], [0], [0, 1, 2, 5], [7]], [2, 3, 8, 10]),
    )
    assert dataset_fingerprint(other, "test") != dataset_fingerprint(tiny, "test")
    with pytest.raises(DataError, match="fingerprint"):
        load_negatives(path, other, "test", n=3, seed=2)
    with pytest.raises(DataError, match="split"):
        load_negatives(path, tiny, "valid", n=3, seed=2)


def test_evaluate_negatives_bad_files(tiny: Dataset, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such"):
        load_negatives(tmp_path / "missing.npz", tiny, "test", 3, 0)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a negatives file"):
        load_negatives(junk, tiny, "test", 3, 0)
    # A file whose header matches but whose rows were edited (a target slipped in).
    neg = sample_negatives(tiny, "test", n=3, seed=0)
    path = save_negatives(tmp_path / "n.npz", neg, tiny, "test", seed=0)
    with np.load(path) as z:
        header = z["header"]
    bad = neg.copy()
    bad[0, 0] = 2  # line 0's target
    np.savez(path, negatives=bad, header=header)
    with pytest.raises(DataError, match="target itself"):
        load_negatives(path, tiny, "test", 3, 0)
    with pytest.raises(DataError, match="shape"):
        save_negatives(tmp_path / "x.npz", neg[:2], tiny, "test", seed=0)


def test_datasets_sharing_a_name_get_their_own_negatives(tiny: Dataset, tmp_path: Path) -> None:
    # Two tables both called interactions.csv give two datasets named "interactions": each gets
    # its own cached file (keyed by the data's fingerprint) instead of refusing the other's.
    other = make_dataset(
        5, 7, train=[[0, 5, 0], [0, 6], [1, 5, 7]], valid=([[0, 5], [6]], [1, 7]),
        test=([[5, 6, 1], [0], [0, 1, 2, 5], [7]], [2, 3, 8, 10]),
    )
    import dataclasses

    other = dataclasses.replace(other, name=tiny.name)
    a = get_negatives(tiny, "test", 3, 1, tmp_path)
    b = get_negatives(other, "test", 3, 1, tmp_path)
    assert len(list(tmp_path.glob("*.npz"))) == 2
    check_negatives(a, tiny, "test")
    check_negatives(b, other, "test")


def test_evaluate_get_negatives_caches(tiny: Dataset, tmp_path: Path) -> None:
    first = get_negatives(tiny, "test", 3, 1, tmp_path)
    path = negatives_path(tmp_path, "tiny", "test", 3, 1, dataset_fingerprint(tiny, "test"))
    assert path.is_file() and path.name.startswith("tiny.") and ".test.neg3.seed1.npz" in path.name
    assert np.array_equal(get_negatives(tiny, "test", 3, 1, tmp_path), first)
    assert np.array_equal(get_negatives(tiny, "test", 3, 1), first)  # no cache: same draw
