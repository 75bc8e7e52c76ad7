"""Type stubs of the PyO3 extension (`rust/airrec-py`). The public API is `airrec.Engine`;
this module is its thin, strictly typed back end: arrays must already have the right dtype."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = ["Engine", "UserTree", "FORMAT_VERSION", "__version__"]

FORMAT_VERSION: int
__version__: str

@final
class UserTree:
    @property
    def n_events(self) -> int: ...
    @property
    def n_nodes(self) -> int: ...
    @property
    def t_ref(self) -> float: ...
    @property
    def total_mass(self) -> float: ...
    def nodes(self) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]: ...

@final
class Engine:
    @staticmethod
    def load(
        path: str | os.PathLike[str], overrides_json: str | None = None, verify_checksums: bool = True
    ) -> Engine: ...
    def with_overrides(self, overrides_json: str) -> Engine: ...
    @property
    def config_json(self) -> str: ...
    @property
    def dims_json(self) -> str: ...
    @property
    def meta_json(self) -> str: ...
    @property
    def domains(self) -> list[str]: ...
    @property
    def path(self) -> os.PathLike[str]: ...
    def build_tree(
        self,
        items: npt.NDArray[np.int64],
        behaviours: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.float64],
    ) -> UserTree: ...
    def add_event(self, tree: UserTree, item: int, behaviour: int, timestamp: float) -> None: ...
    def scores(self, tree: UserTree, candidates: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...
    def scores_for_vectors(self, tree: UserTree, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]: ...
    def intent_vectors(self, tree: UserTree, candidates: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]: ...
    def intent_vectors_for_vectors(
        self, tree: UserTree, vectors: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]: ...
    def contexts(
        self, tree: UserTree, candidates: npt.NDArray[np.int64]
    ) -> list[tuple[list[list[int]], list[int]]]: ...
    def explain(self, tree: UserTree, candidate: int) -> dict[str, Any]: ...
    def batch(
        self,
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        behaviours: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.float64],
        candidates: npt.NDArray[np.int64],
        vectors: bool = False,
        n_threads: int | None = None,
    ) -> npt.NDArray[np.float32]: ...
    @property
    def slot_width(self) -> int: ...
    def slots_batch(
        self,
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        behaviours: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.float64],
        candidates: npt.NDArray[np.int64],
        n_threads: int | None = None,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8], npt.NDArray[np.float32]]: ...
    def tree_slots_batch(
        self,
        offsets: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        behaviours: npt.NDArray[np.int64],
        timestamps: npt.NDArray[np.float64],
        width: int,
        n_threads: int | None = None,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]: ...
    def retrieve(
        self, tree: UserTree, domain: int, k: int, pool: int, rerank: bool
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def nearest_intents(
        self, vector: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]: ...
    def phrase(self, node: int) -> str: ...
    def path_text(self, node: int) -> str: ...
