"""The benchmark's vectorised torch peer computes the engine's scores (it is only a fair peer
if it does the same work)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from airrec import Engine
from airrec.synthetic import make_candidates, make_synthetic_bundle, make_synthetic_histories

pytest.importorskip("torch")


@pytest.mark.parametrize("config", [{}, {"decay_lambda": 0.05, "evidence_max_age": 20.0, "beam_width": 2,
                                         "max_evidence": 3, "node_evidence_cap": 2}])
def test_torch_peer_equals_the_engine(tmp_path: Path, config: dict[str, float]) -> None:
    from airrec.bench.torch_peer import TorchPeer

    bundle = make_synthetic_bundle(tmp_path / "b", n_nodes=3000, n_items=800, dim=32, n_heads=4, depth=3,
                                   paths_per_item=3, seed=4, config=config or None)
    engine, peer = Engine.load(bundle), TorchPeer(bundle)
    h = make_synthetic_histories(12, 40, 800, seed=5)
    cands = make_candidates(12, 100, 800, seed=6)
    rng = np.random.default_rng(0)
    for u in range(12):
        events = h.items[h.offsets[u]:h.offsets[u + 1]][: int(rng.integers(1, 41))]
        times = np.sort(rng.uniform(0, 60, events.size))
        want = engine.score(engine.tree(events, timestamps=times), cands[u])
        np.testing.assert_allclose(peer.scores(events, cands[u], times), want, rtol=0, atol=1e-5)
    empty = np.zeros(0, dtype=np.int64)
    np.testing.assert_allclose(peer.scores(empty, cands[0]), engine.score(empty, cands[0]), rtol=0, atol=1e-6)
