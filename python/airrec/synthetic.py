"""Synthetic bundles, histories and candidates: for tests, benchmarks and trying the engine.

The data is random but structured like the real thing, so the online path has something to
find: a trie whose children's vectors lie near their parent's, items whose vectors lie near the
leaf of their first intent path and whose other paths go to nearby leaves, item ids ordered
along the trie (so a window of ids is a coherent interest), and users whose histories mix a few
such interests. A small share of items has no cached paths, which exercises cold start.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec.bundle import MAX_DEPTH, MAX_DOMAINS, Composition, trie_leaves, write_bundle
from airrec.engine import Histories
from airrec.errors import ConfigError

__all__ = ["make_candidates", "make_synthetic_bundle", "make_synthetic_histories"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Noise norm added to a parent's vector to make a child's (before normalising).
CHILD_SPREAD = 0.6
#: Noise norm added to a leaf's vector to make its item's.
ITEM_SPREAD = 0.3
#: Share of items with no cached paths.
COLD_ITEM_SHARE = 0.02
#: Largest step (in leaf order) from one of an item's paths to the next.
PATH_STEP = 8


def _level_sizes(n_nodes: int, depth: int) -> list[int]:
    """Nodes per depth: about ``n_nodes ** (1/depth)`` roots, growing geometrically below."""
    roots = max(1, round(n_nodes ** (1.0 / depth)))
    lo, hi = 1.0, float(n_nodes)  # the branching factor b: roots * Σ_k b^k = n_nodes
    for _ in range(64):
        mid = (lo + hi) / 2
        if roots * sum(mid**k for k in range(depth)) < n_nodes:
            lo = mid
        else:
            hi = mid
    sizes = [max(1, round(roots * lo**k)) for k in range(depth)]
    sizes[-1] = n_nodes - sum(sizes[:-1])
    while sizes[-1] < 1:  # rounding overshot on a tiny trie: take nodes back from above
        largest = max(range(depth - 1), key=lambda k: sizes[k])
        sizes[largest] -= 1
        sizes[-1] += 1
    return sizes


def _noisy_unit(rng: np.random.Generator, centres: F64, spread: float) -> F64:
    """Rows of ``centres`` plus Gaussian noise of expected norm ``spread``, L2-normalised."""
    dim = centres.shape[1]
    rows = centres + rng.normal(0.0, spread / math.sqrt(dim), size=centres.shape)
    out: F64 = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def _synthetic_trie(
    rng: np.random.Generator, n_nodes: int, depth: int, dim: int
) -> tuple[I64, list[str], F64]:
    """Parents, phrases and vectors of a random trie laid out level by level.

    Each level's nodes pick a random parent on the level above and are sorted by it, so
    siblings are contiguous and ids follow the trie (nearby ids share ancestors).
    """
    sizes = _level_sizes(n_nodes, depth)
    parent = np.full(n_nodes, -1, dtype=np.int64)
    vectors = np.empty((n_nodes, dim), dtype=np.float64)
    phrases: list[str] = []
    vectors[: sizes[0]] = _noisy_unit(rng, np.zeros((sizes[0], dim)), 1.0)
    phrases += [f"r{i}" for i in range(sizes[0])]
    start = sizes[0]
    for level in range(1, depth):
        above = start - sizes[level - 1]
        ids = slice(start, start + sizes[level])
        parents = np.sort(rng.integers(above, start, size=sizes[level]))
        parent[ids] = parents
        vectors[ids] = _noisy_unit(rng, vectors[parents], CHILD_SPREAD)
        sibling = np.arange(parents.size) - np.searchsorted(parents, parents, side="left")
        letter = "l" if level == depth - 1 else "c"
        phrases += [f"{letter}{s}" for s in sibling.tolist()]
        start += sizes[level]
    return parent, phrases, vectors


def _synthetic_items(
    rng: np.random.Generator, leaves: I64, node_vectors: F64, n_items: int, paths_per_item: int
) -> tuple[I64, I64, F64]:
    """The path CSR and vectors of items laid out along the leaves (ids follow the trie)."""
    first = np.sort(rng.integers(0, leaves.size, size=n_items))
    steps = rng.integers(1, PATH_STEP + 1, size=(n_items, max(paths_per_item - 1, 0)))
    positions = np.concatenate([first[:, None], first[:, None] + np.cumsum(steps, axis=1)], axis=1)
    item_leaves = leaves[positions[:, :paths_per_item] % leaves.size]
    cold = rng.random(n_items) < COLD_ITEM_SHARE
    lengths = np.where(cold, 0, paths_per_item)
    offsets = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    vectors = _noisy_unit(rng, node_vectors[leaves[first]], ITEM_SPREAD)
    return offsets, item_leaves[~cold].ravel().astype(np.int64), vectors


def make_synthetic_bundle(
    out_dir: str | os.PathLike[str],
    *,
    n_nodes: int = 100_000,
    n_items: int = 40_000,
    dim: int = 64,
    n_heads: int = 4,
    depth: int = 3,
    paths_per_item: int = 3,
    n_domains: int = 2,
    seed: int = 0,
    config: Mapping[str, Any] | None = None,
    index: Mapping[str, Any] | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Write a random, structured bundle (see the module docstring) and return its path.

    Domains split the item range into ``n_domains`` contiguous blocks (named ``d0``, ``d1``,
    ...), their external ids are ``sku-000000``, ``sku-000001``, .... About 2% of items have no
    paths. The composition is :meth:`Composition.init`.
    ``config`` and ``index`` go to :func:`~airrec.bundle.write_bundle` unchanged.
    """
    if not 1 <= depth <= MAX_DEPTH or n_nodes < depth or n_items < 1 or dim < 1:
        raise ConfigError(
            f"need 1 <= depth <= {MAX_DEPTH}, n_nodes >= depth, n_items >= 1, dim >= 1; got "
            f"{depth=}, {n_nodes=}, {n_items=}, {dim=}"
        )
    if paths_per_item < 0 or not 1 <= n_domains <= min(n_items, MAX_DOMAINS):
        raise ConfigError(
            f"need paths_per_item >= 0, 1 <= n_domains <= min(n_items, {MAX_DOMAINS}); got "
            f"{paths_per_item=}, {n_domains=}"
        )
    rng = np.random.default_rng(seed)
    parent, phrases, node_vectors = _synthetic_trie(rng, n_nodes, depth, dim)
    offsets, path_leaves, item_vectors = _synthetic_items(
        rng, trie_leaves(parent), node_vectors, n_items, paths_per_item
    )
    return write_bundle(
        out_dir,
        trie_parent=parent,
        trie_phrases=phrases,
        item_path_offsets=offsets,
        item_path_leaves=path_leaves,
        node_vectors=node_vectors,
        item_vectors=item_vectors,
        item_domain=np.arange(n_items) * n_domains // n_items,
        domain_names=[f"d{k}" for k in range(n_domains)],
        item_ids=[f"sku-{i:06d}" for i in range(n_items)],
        composition=Composition.init(dim, dim, n_heads, depth, seed),
        config=config,
        index=index,
        meta={"synthetic": {"seed": seed, "depth": depth, "paths_per_item": paths_per_item}},
        overwrite=overwrite,
        progress=progress,
    )


def make_synthetic_histories(
    n_users: int,
    events_per_user: int,
    n_items: int,
    seed: int = 0,
    *,
    n_behaviours: int = 1,
    n_interests: int = 3,
) -> Histories:
    """``events_per_user`` events for each of ``n_users`` users, time-ordered.

    Each user has ``n_interests`` interests, each a centre in item-id order (which follows the
    trie for synthetic bundles); an event picks an interest and an item near its centre.
    Behaviours are uniform over ``n_behaviours``; timestamps increase by exponential gaps
    (mean 1), so the default decay works at about the scale of sequence positions.
    """
    if min(n_users, events_per_user) < 0 or min(n_items, n_behaviours, n_interests) < 1:
        raise ConfigError(
            "need n_users, events_per_user >= 0 and n_items, n_behaviours, n_interests >= 1"
        )
    rng = np.random.default_rng(seed)
    shape = (n_users, events_per_user)
    centres = rng.integers(0, n_items, size=(n_users, n_interests))
    chosen = np.take_along_axis(centres, rng.integers(0, n_interests, size=shape), axis=1)
    spread = max(1.0, n_items / 500)
    items = np.clip(chosen + np.rint(rng.normal(0.0, spread, size=shape)), 0, n_items - 1)
    timestamps = np.cumsum(rng.exponential(1.0, size=shape), axis=1)
    return Histories(
        offsets=np.arange(n_users + 1, dtype=np.int64) * events_per_user,
        items=items.astype(np.int64).ravel(),
        behaviours=rng.integers(0, n_behaviours, size=shape, dtype=np.int64).ravel(),
        timestamps=timestamps.astype(np.float64).ravel(),
    )


def make_candidates(n_users: int, n_candidates: int, n_items: int, seed: int = 0) -> I64:
    """``n_candidates`` uniformly random item ids per user, int64 ``[n_users, n_candidates]``."""
    if n_users < 0 or n_candidates < 0 or n_items < 1:
        raise ConfigError("counts must be non-negative and n_items >= 1")
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_items, size=(n_users, n_candidates), dtype=np.int64)
