"""Fixtures for the evaluation tests: tiny hand-made datasets (see evaluate_fixtures.py)."""

from __future__ import annotations

import numpy as np
import pytest
from evaluate_fixtures import make_dataset

from airrec.data import Dataset


@pytest.fixture
def tiny() -> Dataset:
    """Food 0..4, Kitchen 5..11; 4 test lines (2 Food, 2 Kitchen targets), 2 valid lines.

    Train counts: 0:3, 1:1, 2:0, 3:0, 4:0, 5:2, 6:1, 7:1, 8..11:0.
    """
    return make_dataset(
        5, 7,
        train=[[0, 5, 0], [0, 6], [1, 5, 7]],
        valid=([[0, 5], [6]], [1, 7]),
        test=([[5, 6, 1], [0], [0, 1, 2, 5], [7]], [2, 3, 8, 9]),
    )


@pytest.fixture
def wide() -> Dataset:
    """1,200 Food and 1,500 Kitchen items, 1,000 test lines with random histories."""
    rng = np.random.default_rng(7)
    n_a, n_b = 1200, 1500
    hist = [rng.integers(0, n_a + n_b, size=int(rng.integers(0, 12))).tolist() for _ in range(1000)]
    targets = np.where(rng.random(1000) < 0.4, rng.integers(0, n_a, 1000), rng.integers(n_a, n_a + n_b, 1000))
    return make_dataset(n_a, n_b, train=[[0, 1]], valid=([[0]], [1]), test=(hist, targets.tolist()))
