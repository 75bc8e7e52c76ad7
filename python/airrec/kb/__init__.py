"""The intent knowledge base: intents file -> global trie -> vectors -> bundle.

* :func:`read_intents` — the generation stage's JSONL(.gz) output, validated.
* :class:`TrieBuilder` / :func:`normalise_phrase` — the global trie and sibling merging.
* :class:`SentenceTransformerEmbedder`, :class:`LlamaCppEmbedder`, :class:`EmbeddingCache`.
* :func:`build_bundle` — everything above, then :func:`airrec.bundle.write_bundle`.
"""

from __future__ import annotations

from airrec.kb.build import BuildReport, build_bundle, sidecar_dir
from airrec.kb.embed import (
    Embedder,
    EmbeddingCache,
    LlamaCppEmbedder,
    SentenceTransformerEmbedder,
    embed_texts,
    minilm_model_dir,
)
from airrec.kb.intents import IntentLimits, IntentRecord, Intents, read_intents, write_intents
from airrec.kb.project import Projection
from airrec.kb.synthetic import synthetic_intents
from airrec.kb.trie import FrozenTrie, MergeReport, TrieBuilder, normalise_path, normalise_phrase

__all__ = [
    "BuildReport",
    "EmbeddingCache",
    "Embedder",
    "FrozenTrie",
    "IntentLimits",
    "IntentRecord",
    "Intents",
    "LlamaCppEmbedder",
    "MergeReport",
    "Projection",
    "SentenceTransformerEmbedder",
    "TrieBuilder",
    "build_bundle",
    "embed_texts",
    "minilm_model_dir",
    "normalise_path",
    "normalise_phrase",
    "read_intents",
    "sidecar_dir",
    "synthetic_intents",
    "write_intents",
]
