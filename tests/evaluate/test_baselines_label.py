"""The engine scorer's default label says what the bundle's score head is."""

from __future__ import annotations

from airrec.evaluate.baselines import engine_label


def test_labels_from_the_bundle_provenance() -> None:
    assert engine_label({}) == "AIR zero-shot (untrained score head)"
    assert engine_label({"composition": {"init": "Composition.init", "seed": 0}}) == "AIR zero-shot (untrained score head)"
    trained = engine_label({"composition": {"trained": True, "model": "air", "seed": 3}})
    assert trained == "air intent channel alone (trained composition, seed 3, no backbone)"
    assert "zero-shot" not in trained
