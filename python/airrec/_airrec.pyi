"""Type stubs of the PyO3 extension (`rust/airrec-py`). The public API is `airrec.Engine`;
this module is its thin, strictly typed back end: arrays must already have the right dtype."""

import os
from typing import Any, final

import numpy as np
import numpy.typing as npt

__all__ = [
    "Engine", "UserTree", "FOLDED_ARRAYS", "FORMAT_VERSION", "MAX_ABS_FOLDED", "MAX_ABS_VALUE",
    "MAX_CHAIN_DEPTH", "MAX_DEPTH", "MAX_DOMAINS", "MAX_WIDTH",
    "__version__", "config_limits", "config_sha256", "validate_config", "write_bundle",
]

#: The bundle format version this build reads and writes.
FORMAT_VERSION: int
#: Names (without ``.npy``) of the folded arrays a v2 bundle stores.
FOLDED_ARRAYS: list[str]
#: Largest magnitude of a folded value.
MAX_ABS_FOLDED: float
__version__: str
#: Largest magnitude of any float in a bundle (larger ones are refused at load).
MAX_ABS_VALUE: float
#: Widest ``dim`` / ``attn_dim`` a bundle may declare.
MAX_WIDTH: int
#: Deepest trie a bundle may hold (slot types are uint8: depth - 1, then D and D + 1).
MAX_DEPTH: int
#: Most domains a bundle may name (domain ids are uint8).
MAX_DOMAINS: int
#: Longest chain ``max_chain_depth`` may ask for.
MAX_CHAIN_DEPTH: int

def validate_config(overrides: str) -> str:
    """The engine config as JSON, with defaults filled in for keys ``overrides`` (a JSON
    object) lacks; unknown keys, wrong types and out-of-range values raise ``ConfigError``."""

def config_sha256(config: str) -> str:
    """The ``config_sha256`` a manifest records for ``config`` (a JSON object): the sha256 of the
    engine's canonical serialisation of the validated config."""

def config_limits() -> dict[str, tuple[float, float]]:
    """``{setting: (low, high)}``: the inclusive range of every bounded config value."""

def write_bundle(
    dir: str | os.PathLike[str],
    *,
    trie_parent: npt.NDArray[np.int32],
    trie_phrases: list[str],
    item_path_offsets: npt.NDArray[np.int64],
    item_path_leaves: npt.NDArray[np.int32],
    node_vectors: npt.NDArray[np.float32],
    item_vectors: npt.NDArray[np.float32],
    item_domain: npt.NDArray[np.uint8],
    item_ext_ids: list[str],
    domains: list[str],
    path_slots: int,
    composition: dict[str, npt.NDArray[np.float32]],
    config_json: str,
    index: tuple[int, int, int],
    meta_json: str,
    extra_files: list[tuple[str, bytes]],
    created_by: str,
) -> None:
    """Write a bundle into ``dir`` with the engine's one writer: every array, the folded arrays
    of format v2 and later, the usearch indexes (connectivity, expansion_add, expansion_search), the
    extra files and the manifest last, each fsynced. Arrays must be C-contiguous with these
    dtypes; ``composition`` maps the ``compose_*``/``score_*`` bundle names to arrays. Bad
    inputs raise ``InputError``/``ConfigError``; I/O failures ``BundleError``. Releases the
    GIL. Use ``airrec.bundle.write_bundle``, which validates, stages and renames."""

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
    def with_composition(self, composition: dict[str, npt.NDArray[np.float32]]) -> Engine:
        """The same bundle and config with these composition weights, folded now."""
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
    @property
    def manifest_sha256(self) -> str:
        """sha256 of the ``manifest.json`` bytes the bundle was loaded and verified from."""
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
    def item_ids(self, external: list[str]) -> npt.NDArray[np.int64]:
        """Internal ids of items named by their external ids; an unknown id is an
        ``UnknownItemError`` naming it."""
    def external_ids(self, items: npt.NDArray[np.int64]) -> list[str]:
        """External ids of internal item ids (range-checked)."""
    def phrase(self, node: int) -> str: ...
    def path_text(self, node: int) -> str: ...
