"""The online path at the reference shape, Rust beside its baselines, as pytest-benchmark
groups. Run with ``pytest benches/`` (add ``--benchmark-json FILE`` to keep the figures).

Each benchmark cycles through users so caches see realistic, varied requests.
"""

from __future__ import annotations

import itertools
import os

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from conftest import N_USERS, Workload


def _cycle() -> itertools.cycle[int]:
    return itertools.cycle(range(N_USERS))


def test_request_rust(benchmark: BenchmarkFixture, workload: Workload) -> None:
    """One request: build the tree from 50 events, score 200 candidates."""
    benchmark.group = "request (tree + 200 candidates)"
    users = _cycle()

    def run() -> np.ndarray:
        u = next(users)
        return workload.engine.score(workload.events(u), workload.candidates[u])

    assert benchmark(run).shape == (200,)


def test_request_numpy_reference(benchmark: BenchmarkFixture, workload: Workload) -> None:
    benchmark.group = "request (tree + 200 candidates)"
    users = _cycle()
    ref = workload.reference

    def run() -> np.ndarray:
        u = next(users)
        return ref.scores(ref.tree(workload.events(u)), workload.candidates[u])

    assert benchmark.pedantic(run, rounds=10, iterations=1).shape == (200,)


def test_request_torch_peer(benchmark: BenchmarkFixture, workload: Workload) -> None:
    """The same request in vectorised PyTorch (1 thread): what a user would write instead."""
    from airrec.bench.torch_peer import TorchPeer

    benchmark.group = "request (tree + 200 candidates)"
    users = _cycle()
    peer = TorchPeer(workload.engine.path, threads=1)

    def run() -> np.ndarray:
        u = next(users)
        return peer.scores(workload.events(u), workload.candidates[u])

    assert benchmark.pedantic(run, rounds=20, iterations=1).shape == (200,)


def test_scoring_prebuilt_tree(benchmark: BenchmarkFixture, workload: Workload) -> None:
    benchmark.group = "parts"
    trees = workload.trees
    users = _cycle()

    def run() -> np.ndarray:
        u = next(users)
        return workload.engine.score(trees[u], workload.candidates[u])

    assert benchmark(run).shape == (200,)


def test_build_tree(benchmark: BenchmarkFixture, workload: Workload) -> None:
    benchmark.group = "parts"
    users = _cycle()
    tree = benchmark(lambda: workload.engine.tree(workload.events(next(users))))
    assert tree.n_events == 50


def test_intent_vectors(benchmark: BenchmarkFixture, workload: Workload) -> None:
    benchmark.group = "parts"
    trees = workload.trees
    users = _cycle()

    def run() -> np.ndarray:
        u = next(users)
        return workload.engine.intent_vectors(trees[u], workload.candidates[u])

    assert benchmark(run).shape == (200, 64)


def test_batch_one_thread(benchmark: BenchmarkFixture, workload: Workload) -> None:
    """256 users per call on one thread (divide by 256 for per-request cost)."""
    benchmark.group = "batch of 256 users"
    out = benchmark(lambda: workload.engine.score_batch(workload.histories, workload.candidates, n_threads=1))
    assert out.shape == (N_USERS, 200)


def test_batch_all_cores(benchmark: BenchmarkFixture, workload: Workload) -> None:
    benchmark.group = "batch of 256 users"
    n = os.cpu_count() or 1
    out = benchmark(lambda: workload.engine.score_batch(workload.histories, workload.candidates, n_threads=n))
    assert out.shape == (N_USERS, 200)


def test_retrieve(benchmark: BenchmarkFixture, workload: Workload) -> None:
    """Top-10 of a domain: usearch over 20k items for the profile vector, rerank 100."""
    benchmark.group = "parts"
    trees = workload.trees
    users = _cycle()
    ids, _ = benchmark(lambda: workload.engine.retrieve(trees[next(users)], 0, k=10, pool=100))
    assert len(ids) == 10
