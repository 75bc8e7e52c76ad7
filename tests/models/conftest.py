"""Fixtures for the torch-baseline tests (helpers live in models_fixtures.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from models_fixtures import cyclic_dataset, train_as_eval

from airrec.data import Dataset


@pytest.fixture(scope="session")
def cyclic() -> Dataset:
    """Cyclic two-domain sequences whose test lines are the train users' own next items."""
    return train_as_eval(cyclic_dataset())
