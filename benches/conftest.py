"""Fixtures for the pytest-benchmark suite: the reference-shape synthetic bundle (generated once
and cached under ~/.cache/airrec/bench), histories and candidates."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pytest

from airrec import Engine, Histories, UserTree
from airrec.bench.online import Shape, synthetic_bundle
from airrec.reference import Reference
from airrec.synthetic import make_candidates, make_synthetic_histories

SHAPE = Shape()  # 50 events, 3 paths/event, depth 3, 200 candidates, d=64, 4 heads, 100k nodes, 40k items
N_USERS = 256


@dataclass
class Workload:
    engine: Engine
    reference: Reference
    histories: Histories
    candidates: np.ndarray

    def events(self, u: int) -> np.ndarray:
        h = self.histories
        return h.items[h.offsets[u] : h.offsets[u + 1]]

    @cached_property
    def trees(self) -> list[UserTree]:
        """Every user's tree, built once for the benchmarks that score prebuilt trees."""
        return [self.engine.tree(self.events(u)) for u in range(N_USERS)]


@pytest.fixture(scope="session")
def workload() -> Workload:
    path = synthetic_bundle(SHAPE)
    h = make_synthetic_histories(N_USERS, SHAPE.events_per_user, SHAPE.n_items, seed=1)
    return Workload(
        engine=Engine.load(path),
        reference=Reference(path),
        histories=Histories.from_arrays(h.offsets, h.items),
        candidates=make_candidates(N_USERS, SHAPE.candidates, SHAPE.n_items, seed=2),
    )
