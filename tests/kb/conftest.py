"""Fixtures of the knowledge-base tests: deterministic fake embedders, MiniLM, a small dataset."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

sys.path.insert(0, str(Path(__file__).parent))

import fk40

from airrec.data import Dataset
from airrec.errors import ModelError


class HashEmbedder:
    """A deterministic stand-in for a text model: a text's vector is seeded by its sha256.

    Random 32-d unit vectors are nearly orthogonal, so distinct texts have cosine ~0 ± 0.2;
    ``aliases`` maps a text to another whose vector it shares (plus ``jitter`` noise), which
    is how a test says "these two mean the same". Texts containing a word of ``topics`` get
    that topic's direction mixed in, so related texts (all the coffee ones) are similar.
    ``calls``/``texts_seen`` count the work done, for cache tests.
    """

    def __init__(self, aliases: dict[str, str] | None = None, jitter: float = 0.05,
                 topics: Sequence[str] = ()) -> None:
        self.aliases = aliases or {}
        self.jitter = jitter
        self.topics = list(topics)
        self.calls = 0
        self.texts_seen = 0

    dim = 32
    name = "hash"
    fingerprint = "hash-embedder-v1"

    @staticmethod
    def _seeded(text: str) -> npt.NDArray[np.float64]:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).normal(size=HashEmbedder.dim)

    def _one(self, text: str) -> npt.NDArray[np.float64]:
        base = self.aliases.get(text, text)
        v = self._seeded(base)
        v /= np.linalg.norm(v)
        if base != text:
            v = v + self.jitter * self._seeded(text) / np.sqrt(self.dim)
        for topic in self.topics:
            if topic in text.lower():
                t = self._seeded("topic:" + topic)
                v = v / np.linalg.norm(v) + 2.0 * t / np.linalg.norm(t)
        return v / np.linalg.norm(v)

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        self.calls += 1
        self.texts_seen += len(texts)
        return np.array([self._one(t) for t in texts], dtype=np.float32).reshape(-1, self.dim)


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder(topics=("coffee", "tea", "knife", "pasta", "spatula"))


@pytest.fixture(scope="session")
def minilm() -> object:
    from airrec.kb import SentenceTransformerEmbedder

    try:
        return SentenceTransformerEmbedder()
    except ModelError as e:
        pytest.skip(f"all-MiniLM-L6-v2 not installed: {e}")


@pytest.fixture
def fk40_dataset(tmp_path: Path) -> Dataset:
    return fk40.write_dataset(tmp_path / "fk40")


@pytest.fixture
def fk40_intents(tmp_path: Path) -> Path:
    return fk40.write_fk40_intents(tmp_path / "intents.jsonl")
