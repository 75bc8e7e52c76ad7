"""Knowledge-base embeddings on Ray Data: any :class:`~airrec.kb.embed.Embedder`, run in a pool
of Ray actors, behind the same interface.

:class:`RayEmbedder` wraps an embedder *factory* (a picklable callable, e.g. the
:class:`~airrec.kb.embed.SentenceTransformerEmbedder` class): the driver builds one instance
for its name, dimension and fingerprint (the embedding cache key, so a Ray build and a local
build share cached vectors), and each actor builds its own and embeds the batches Ray Data
sends it (``map_batches``). :func:`airrec.kb.build.build_bundle` takes it like any embedder;
only the texts missing from the embedding cache reach the cluster, in chunks of
:attr:`RayEmbedder.chunk_size` (each chunk is one Ray Dataset; its vectors are cached before
the next starts, so an interrupted build resumes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from airrec.errors import ConfigError
from airrec.kb.embed import F32, Embedder

__all__ = ["EmbedActor", "RayEmbedder"]


class EmbedActor:
    """One embedder per actor; batches are ``{"i": [...], "text": [...]}``."""

    def __init__(self, factory: Callable[[], Embedder], batch_size: int) -> None:
        self.embedder = factory()
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        vectors = self.embedder.embed([str(t) for t in batch["text"]], batch_size=self.batch_size)
        return {"i": batch["i"], "vector": np.asarray(vectors, dtype=np.float32)}


class RayEmbedder:
    """``factory()``'s embeddings, computed by ``actors`` Ray actors at ``address``."""

    #: Texts per Ray Dataset when called through :func:`airrec.kb.embed.embed_texts`.
    chunk_size = 16_384

    def __init__(self, factory: Callable[[], Embedder], *, address: str = "local", actors: int | None = None,
                 rows_per_batch: int = 256) -> None:
        if rows_per_batch < 1 or (actors is not None and actors < 1):
            raise ConfigError("rows_per_batch and actors must be >= 1")
        self.factory = factory
        self.address = address
        self.actors = actors
        self.rows_per_batch = rows_per_batch
        self._local = factory()  # name, dim, fingerprint; its model loads only if asked for dim

    @property
    def name(self) -> str:
        return self._local.name

    @property
    def dim(self) -> int:
        return self._local.dim

    @property
    def fingerprint(self) -> str:
        return self._local.fingerprint

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> F32:
        from airrec._ray import connect

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        ray = connect(self.address)
        blocks = max(1, -(-len(texts) // self.rows_per_batch))
        n = min(self.actors or max(1, int(ray.cluster_resources().get("CPU", 1))), blocks)
        ds = ray.data.from_items([{"i": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)
        out = ds.map_batches(EmbedActor, fn_constructor_args=(self.factory, batch_size), batch_size=self.rows_per_batch,
                             batch_format="numpy", concurrency=n, num_cpus=1)
        vectors: F32 | None = None
        for batch in out.iter_batches(batch_size=None, batch_format="numpy"):
            if vectors is None:
                vectors = np.zeros((len(texts), batch["vector"].shape[1]), dtype=np.float32)
            vectors[np.asarray(batch["i"], dtype=np.int64)] = batch["vector"]
        assert vectors is not None
        return vectors
