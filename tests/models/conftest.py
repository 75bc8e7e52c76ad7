"""Fixtures for the torch-baseline tests (helpers live in models_fixtures.py)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from models_fixtures import cyclic_dataset, train_as_eval  # noqa: E402

from airrec.data import Dataset  # noqa: E402


@pytest.fixture(scope="session")
def cyclic() -> Dataset:
    """Cyclic two-domain sequences whose test lines are the train users' own next items."""
    return train_as_eval(cyclic_dataset())
