"""A PCA projection shared by node and item vectors.

Sentence embeddings are 384-d or more; the online path costs O(d) per node and slot, so the
bundle stores a smaller ``d`` (64 by default). One projection is fitted on the union of node
and item embeddings because the engine compares the two directly (walk similarities, cold
start): both must land in the same space. Centering also removes the common direction that
makes every cosine of a sentence embedder high (anisotropy), which sharpens the walk.

Deterministic: an SVD of the centred data has a sign ambiguity per component, fixed here by
making each component's largest-magnitude loading positive.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from airrec._files import write_atomic
from airrec.errors import ConfigError

__all__ = ["Projection"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Projection:
    """``y = normalise((x - mean) @ components)``; ``components`` is ``[input_dim, dim]``."""

    mean: F64
    components: F64
    explained_variance_ratio: F64

    @property
    def input_dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def dim(self) -> int:
        return int(self.components.shape[1])

    @classmethod
    def fit(cls, data: npt.ArrayLike, dim: int, *, max_rows: int = 200_000, seed: int = 0) -> Projection:
        """Fit on the rows of ``data`` (a seeded subsample of ``max_rows`` when larger)."""
        x = np.asarray(data, dtype=np.float64)
        if x.ndim != 2:
            raise ConfigError(f"PCA needs a 2-D array, got shape {x.shape}")
        if x.shape[0] > max_rows:
            rows = np.random.default_rng(seed).choice(x.shape[0], size=max_rows, replace=False)
            x = x[np.sort(rows)]
        rank = min(x.shape[0] - 1, x.shape[1])
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= rank:
            raise ConfigError(
                f"projection dim must be an integer in [1, {rank}] for {x.shape[0]} vectors of "
                f"dimension {x.shape[1]}, got {dim!r} (use dim=None to keep the embedder's)"
            )
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        components = vt[:dim].T.copy()
        signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(dim)])
        components *= np.where(signs == 0, 1.0, signs)
        variance = s**2
        ratio = variance[:dim] / variance.sum() if variance.sum() > 0 else np.zeros(dim)
        return cls(mean=mean, components=components, explained_variance_ratio=ratio)

    def __call__(self, vectors: npt.ArrayLike) -> F32:
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ConfigError(f"projection takes [n, {self.input_dim}] vectors, got {x.shape}")
        y = (x - self.mean) @ self.components
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return np.ascontiguousarray(y / np.where(norms == 0, 1.0, norms), dtype=np.float32)

    def to_bytes(self) -> bytes:
        """The ``.npz`` bytes (the bundle stores them as ``projection.npz``)."""
        buf = io.BytesIO()
        np.savez(buf, mean=self.mean, components=self.components,
                 explained_variance_ratio=self.explained_variance_ratio)
        return buf.getvalue()

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write an ``.npz`` (so vectors of items outside the bundle can be projected too)."""
        file = Path(path)
        return write_atomic(file, self.to_bytes())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Projection:
        with np.load(Path(path), allow_pickle=False) as z:
            return cls(mean=z["mean"], components=z["components"],
                       explained_variance_ratio=z["explained_variance_ratio"])
