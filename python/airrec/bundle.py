"""Bundles: the directory the online engine serves from (format version 2).

A bundle holds everything the online path needs and nothing it has to compute: the intent
trie, each item's cached intent paths, the node and item vectors, the composition weights,
one usearch index per item domain and one over the trie leaves. The arrays are ``.npy`` files
(little-endian, C order, data aligned to 64 bytes by ``np.save``) so the Rust engine can
memory-map them; version 2 also stores the folded arrays the hot path reads (per-item
candidate rows, item and node key/value rows), so every process serving a bundle shares their
pages. ``manifest.json`` records the format version, dimensions, configuration, index settings
and the sha256 of every file, so a truncated or corrupted bundle is refused at load time
instead of crashing (or silently misbehaving) at request time.

The arrays and their meaning are specified in ``docs/online-path.md`` §0. The engine crate owns
the format: its writer (``airrec_core::writer``, called through ``_airrec.write_bundle``)
writes every file, the manifest included; this module validates and converts arguments with
messages in Python's terms, stages the directory and renames it into place.
:func:`load_arrays` is the Python reader used by the NumPy reference and tests.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from airrec import _airrec
from airrec._files import sha256_file
from airrec.errors import (
    AirrecError,
    BundleChecksumError,
    BundleError,
    BundleVersionError,
    ConfigError,
    InputError,
    InputTypeError,
)

__all__ = [
    "ARRAY_SPECS",
    "DEFAULT_CONFIG",
    "DEFAULT_INDEX",
    "FORMAT",
    "FORMAT_VERSION",
    "FOLDED_ARRAYS",
    "CONFIG_LIMITS",
    "LEAVES_INDEX_FILE",
    "MANIFEST",
    "MAX_ABS_VALUE",
    "MAX_WIDTH",
    "MAX_CHAIN_DEPTH",
    "MAX_DEPTH",
    "MAX_DOMAINS",
    "BundleArrays",
    "Composition",
    "Dims",
    "array_file",
    "items_index_file",
    "load_arrays",
    "replace_composition",
    "read_manifest",
    "trie_depths",
    "trie_leaves",
    "validate_config",
    "write_bundle",
]

FORMAT: Final = "airrec-bundle"
FORMAT_VERSION: Final[int] = _airrec.FORMAT_VERSION
#: The folded arrays of format v2, derived from the weights and vectors by the engine's writer
#: (the engine recomputes and compares them at load; the Python reader does not need them).
FOLDED_ARRAYS: Final[tuple[str, ...]] = tuple(_airrec.FOLDED_ARRAYS)
MANIFEST: Final = "manifest.json"
# Limits of the engine, read from it: slot types (depth - 1, then D for evidence and D + 1 for
# the null slot) are uint8, so D <= 254; domains are uint8 ids; chains live in fixed arrays.
MAX_DEPTH: Final[int] = _airrec.MAX_DEPTH
MAX_DOMAINS: Final[int] = _airrec.MAX_DOMAINS
MAX_CHAIN_DEPTH: Final[int] = _airrec.MAX_CHAIN_DEPTH

#: The engine configuration of docs/online-path.md §6, with its defaults. The engine owns
#: it (``airrec_core::config``): defaults, bounds and validation are read from the binding,
#: not repeated here.
DEFAULT_CONFIG: Final[dict[str, Any]] = json.loads(_airrec.validate_config("{}"))

#: ``{setting: (low, high)}``, the inclusive range of every bounded config value.
CONFIG_LIMITS: Final[dict[str, tuple[float, float]]] = dict(_airrec.config_limits())

#: Largest magnitude of any float a bundle stores (the engine refuses larger ones: they make
#: scores overflow to NaN), and the widest ``dim`` / ``attn_dim``.
MAX_ABS_VALUE: Final[float] = _airrec.MAX_ABS_VALUE
MAX_WIDTH: Final[int] = _airrec.MAX_WIDTH

#: usearch HNSW settings. Indexes under 20,000 keys are built single-threaded, so the same
#: inputs give the same file byte for byte; ``expansion_search`` is not stored in the index
#: file, so readers apply it from the manifest.
DEFAULT_INDEX: Final[dict[str, Any]] = {
    "metric": "cos",
    "connectivity": 16,
    "expansion_add": 128,
    "expansion_search": 64,
}

_log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
U8 = npt.NDArray[np.uint8]


# --------------------------------------------------------------------------------------------
# Dimensions and the array table
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dims:
    """The sizes every array of a bundle is checked against (manifest ``dims``)."""

    n_nodes: int
    n_items: int
    dim: int
    attn_dim: int
    n_heads: int
    max_depth: int
    path_slots: int
    n_domains: int

    def to_json(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


_Shape = Callable[[Dims], tuple[int | None, ...]]  # None: any length

# name -> (dtype, shape). The order is the order files are written and listed.
ARRAY_SPECS: Final[dict[str, tuple[str, _Shape]]] = {
    "trie_parent": ("<i4", lambda d: (d.n_nodes,)),
    "trie_depth": ("|u1", lambda d: (d.n_nodes,)),
    "trie_phrase_offsets": ("<i8", lambda d: (d.n_nodes + 1,)),
    "trie_phrase_bytes": ("|u1", lambda d: (None,)),
    "item_path_offsets": ("<i8", lambda d: (d.n_items * d.path_slots + 1,)),
    "item_path_leaves": ("<i4", lambda d: (None,)),
    "node_vectors": ("<f4", lambda d: (d.n_nodes, d.dim)),
    "item_vectors": ("<f4", lambda d: (d.n_items, d.dim)),
    "item_domain": ("|u1", lambda d: (d.n_items,)),
    "item_ext_offsets": ("<i8", lambda d: (d.n_items + 1,)),
    "item_ext_bytes": ("|u1", lambda d: (None,)),
    "compose_wq": ("<f4", lambda d: (d.dim, d.attn_dim)),
    "compose_wk": ("<f4", lambda d: (d.dim, d.attn_dim)),
    "compose_wv": ("<f4", lambda d: (d.dim, d.attn_dim)),
    "compose_wo": ("<f4", lambda d: (d.attn_dim, d.dim)),
    "compose_bo": ("<f4", lambda d: (d.dim,)),
    "compose_type_key": ("<f4", lambda d: (d.max_depth + 2, d.attn_dim)),
    "compose_type_value": ("<f4", lambda d: (d.max_depth + 2, d.attn_dim)),
    "compose_weight_bias": ("<f4", lambda d: (d.n_heads,)),
    "score_w_out": ("<f4", lambda d: (d.dim,)),
    "score_w_inter": ("<f4", lambda d: (d.dim,)),
    "score_bias": ("<f4", lambda d: (1,)),
}


_COMPOSITION_ARRAYS: Final = tuple(n for n in ARRAY_SPECS if n.startswith(("compose_", "score_")))


def array_file(name: str) -> str:
    """The file name of bundle array ``name``."""
    return f"{name}.npy"


def items_index_file(domain: int) -> str:
    """The file name of the usearch index over the items of ``domain``."""
    return f"index_items_{domain}.usearch"


LEAVES_INDEX_FILE: Final = "index_leaves.usearch"


def _required_files(dims: Dims) -> list[str]:
    arrays = [array_file(name) for name in (*ARRAY_SPECS, *FOLDED_ARRAYS)]
    indexes = [items_index_file(k) for k in range(dims.n_domains)] + [LEAVES_INDEX_FILE]
    return arrays + indexes


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _json_value(key: str, value: object) -> object:
    """A config value as plain JSON, refusing what JSON would turn into something else (bools
    for numbers are refused by the engine; NumPy scalars become Python numbers)."""
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"config {key!r} must be finite, got {value!r}")
    if isinstance(value, (list, tuple)):
        return [_json_value(key, v) for v in value]
    return value


def validate_config(
    config: Mapping[str, Any] | None = None, *, path_slots: int | None = None
) -> dict[str, Any]:
    """Fill in :data:`DEFAULT_CONFIG` and check every key's type and range (the engine's own
    check, through the binding, so Python and Rust cannot disagree).

    ``path_slots`` (when known) must be 1 or the number of behaviour types, because the
    path slot of an event is its behaviour when there is more than one slot.
    Raises :class:`~airrec.errors.ConfigError`, naming the key.
    """
    config = dict(config or {})
    unknown = sorted(set(config) - set(DEFAULT_CONFIG))
    if unknown:
        raise ConfigError(f"unknown config keys {unknown}; known: {sorted(DEFAULT_CONFIG)}")
    plain = {key: _json_value(key, value) for key, value in config.items()}
    try:
        text = json.dumps(plain, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"config values must be numbers, lists of numbers or null: {e}") from e
    out: dict[str, Any] = json.loads(_airrec.validate_config(text))
    n_behaviours = len(out["behaviour_weights"])
    if path_slots is not None and path_slots not in (1, n_behaviours):
        raise ConfigError(
            f"the bundle has {path_slots} path slots per item, which must be 1 or the number "
            f"of behaviour types ({n_behaviours} behaviour_weights)"
        )
    return {key: out[key] for key in DEFAULT_CONFIG}


# --------------------------------------------------------------------------------------------
# Checks shared by the writer (bad input: InputError) and the reader (bad bundle: BundleError)
# --------------------------------------------------------------------------------------------


def trie_depths(parent: npt.ArrayLike, error: type[AirrecError] = InputError) -> U8:
    """Depth of every trie node (roots 1), checking the topological order ``parent[n] < n``.

    Vectorised by fixpoint iteration: after ``k`` rounds every node of depth ``<= k + 1`` is
    right, so it converges within ``max_depth`` rounds; deeper than :data:`MAX_DEPTH` is an
    error.
    """
    p = np.asarray(parent, dtype=np.int64)
    ids = np.arange(p.size, dtype=np.int64)
    bad = np.flatnonzero((p < -1) | (p >= ids))
    if bad.size:
        n = int(bad[0])
        raise error(f"trie_parent[{n}] = {int(p[n])}: parents must be -1 or < the node's id")
    is_root = p < 0
    safe_parent = np.where(is_root, 0, p)
    depth = np.ones(p.size, dtype=np.int64)
    for _ in range(MAX_DEPTH + 1):
        new = np.where(is_root, 1, depth[safe_parent] + 1)
        if np.array_equal(new, depth):
            return depth.astype(np.uint8)
        depth = new
        if depth.max(initial=0) > MAX_DEPTH:
            break
    raise error(f"the trie is deeper than {MAX_DEPTH} levels")


def trie_leaves(parent: npt.ArrayLike) -> I64:
    """Ids of the trie nodes without children, ascending."""
    p = np.asarray(parent, dtype=np.int64)
    has_child = np.zeros(p.size, dtype=bool)
    has_child[p[p >= 0]] = True
    return np.flatnonzero(~has_child).astype(np.int64)


def _check_offsets(name: str, offsets: npt.NDArray[Any], n_values: int,
                   error: type[AirrecError]) -> None:
    """CSR offsets start at 0, never decrease and end at the number of values."""
    if offsets.size == 0 or offsets[0] != 0 or offsets[-1] != n_values:
        raise error(f"{name} must start at 0 and end at {n_values} (the number of values)")
    drops = np.flatnonzero(np.diff(offsets) < 0)
    if drops.size:
        raise error(f"{name} decreases at row {int(drops[0])}")


def _check_ids(name: str, values: npt.NDArray[Any], upper: int,
               error: type[AirrecError]) -> None:
    out = np.flatnonzero((values < 0) | (values >= upper))
    if out.size:
        i = int(out[0])
        raise error(f"{name}[{i}] = {int(values[i])} is outside [0, {upper})")


def _check_finite(name: str, array: npt.NDArray[Any], error: type[AirrecError]) -> None:
    """Finite and within :data:`MAX_ABS_VALUE` (what the engine accepts)."""
    a = np.asarray(array)
    if not np.isfinite(a).all():
        raise error(f"{name} holds NaN or infinite values")
    if a.size and float(np.abs(a).max()) > MAX_ABS_VALUE:
        raise error(f"{name} holds values beyond ±{MAX_ABS_VALUE:g} (scores would overflow)")


def _check_unit_rows(name: str, vectors: npt.NDArray[Any], error: type[AirrecError]) -> None:
    _check_finite(name, vectors, error)
    norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
    bad = np.flatnonzero(np.abs(norms - 1.0) > 1e-3)
    if bad.size:
        raise error(f"{name} row {int(bad[0])} is not L2-normalised (norm {norms[bad[0]]:.6g})")


# --------------------------------------------------------------------------------------------
# Composition weights
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Composition:
    """The composition (multi-head attention) and score-head weights of docs/online-path.md §4.

    Shapes: ``wq, wk, wv`` [d, a]; ``wo`` [a, d]; ``bo`` [d]; ``type_key, type_value``
    [D+2, a]; ``weight_bias`` [H]; ``score_w_out, score_w_inter`` [d]; ``score_bias`` [1].
    Arrays are converted to C-contiguous float32 and checked on construction.
    """

    wq: F32
    wk: F32
    wv: F32
    wo: F32
    bo: F32
    type_key: F32
    type_value: F32
    weight_bias: F32
    score_w_out: F32
    score_w_inter: F32
    score_bias: F32

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            array = np.ascontiguousarray(value, dtype=np.float32)
            _check_finite(f"composition {f.name}", array, InputError)
            object.__setattr__(self, f.name, array)
        self._check_shapes()

    def _check_shapes(self) -> None:
        if self.wq.ndim != 2 or self.type_key.ndim != 2 or self.weight_bias.ndim != 1:
            raise InputError("composition wq and type_key must be 2-D, weight_bias 1-D")
        d, a, h = self.wq.shape[0], self.wq.shape[1], self.weight_bias.shape[0]
        if d == 0 or h == 0 or a % h:
            raise InputError(f"attn_dim {a} must be a positive multiple of n_heads {h} (d={d})")
        if max(d, a) > MAX_WIDTH:
            raise InputError(f"dim {d} and attn_dim {a} must be <= {MAX_WIDTH}")
        if self.type_key.shape[0] < 3:
            raise InputError("composition type_key needs max_depth + 2 >= 3 rows")
        rows = self.type_key.shape[0]
        expected = {
            "wq": (d, a), "wk": (d, a), "wv": (d, a), "wo": (a, d), "bo": (d,),
            "type_key": (rows, a), "type_value": (rows, a), "weight_bias": (h,),
            "score_w_out": (d,), "score_w_inter": (d,), "score_bias": (1,),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise InputError(f"composition {name} has shape {actual}, expected {shape}")

    @property
    def dim(self) -> int:
        return int(self.wq.shape[0])

    @property
    def attn_dim(self) -> int:
        return int(self.wq.shape[1])

    @property
    def n_heads(self) -> int:
        return int(self.weight_bias.shape[0])

    @property
    def max_depth(self) -> int:
        return int(self.type_key.shape[0]) - 2

    @classmethod
    def init(
        cls, dim: int, attn_dim: int, n_heads: int, max_depth: int, seed: int = 0
    ) -> Composition:
        """A deterministic random init under which an untrained bundle is already meaningful.

        Every matrix is a scaled normal (std ``1/sqrt(fan_in)``, the scale of torch's default
        linear init), but the projections share one random basis ``Q`` [d, a] with
        ``Q @ Q.T ≈ I``: ``wk = wv = Q``, ``wo = Q.T`` and ``wq = Q`` times a temperature.
        So ``q·k`` approximates the cosine of candidate and slot, and the intent vector
        approximates the attention-weighted mean of the slot vectors, in the item embedding
        space; the score head starts as ``u · x_c`` (``score_w_inter = 1``). Slot-type offsets
        are small (std 0.02) and ``weight_bias = 1`` makes attention proportional to weight.
        Training moves away from all of this; it only has to be a sensible start.
        """
        if min(dim, attn_dim, n_heads, max_depth) < 1 or attn_dim % n_heads:
            raise ConfigError(
                f"need dim, attn_dim, n_heads, max_depth >= 1 and attn_dim % n_heads == 0, got "
                f"{dim=}, {attn_dim=}, {n_heads=}, {max_depth=}"
            )
        rng = np.random.default_rng(seed)
        dk = attn_dim // n_heads
        basis = rng.normal(0.0, 1.0 / math.sqrt(attn_dim), size=(dim, attn_dim))
        # Per-head logits are ~ cos/H before the 1/sqrt(dk) scaling; undo both, then sharpen.
        temperature = 4.0 * n_heads * math.sqrt(dk)
        types = rng.normal(0.0, 0.02, size=(2, max_depth + 2, attn_dim))
        return cls(
            wq=(basis * temperature).astype(np.float32),
            wk=basis.astype(np.float32),
            wv=basis.astype(np.float32),
            wo=basis.T.astype(np.float32),
            bo=np.zeros(dim, dtype=np.float32),
            type_key=types[0].astype(np.float32),
            type_value=types[1].astype(np.float32),
            weight_bias=np.ones(n_heads, dtype=np.float32),
            score_w_out=np.zeros(dim, dtype=np.float32),
            score_w_inter=np.ones(dim, dtype=np.float32),
            score_bias=np.zeros(1, dtype=np.float32),
        )

    def arrays(self) -> dict[str, F32]:
        """The bundle arrays (``compose_*``, ``score_*``) keyed by bundle name."""
        return {
            ("compose_" + f.name if not f.name.startswith("score_") else f.name): getattr(
                self, f.name
            )
            for f in fields(self)
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.ArrayLike]) -> Composition:
        """The inverse of :meth:`arrays`."""
        kwargs = {
            f.name: arrays[f.name if f.name.startswith("score_") else "compose_" + f.name]
            for f in fields(cls)
        }
        return cls(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BundleArrays:
    """Every array of a bundle (memory-mapped, read-only) plus its parsed manifest."""

    path: Path
    manifest: dict[str, Any]
    dims: Dims
    config: dict[str, Any]
    domains: list[str]
    trie_parent: I32
    trie_depth: U8
    trie_phrase_offsets: I64
    trie_phrase_bytes: U8
    item_path_offsets: I64
    item_path_leaves: I32
    node_vectors: F32
    item_vectors: F32
    item_domain: U8
    item_ext_offsets: I64
    item_ext_bytes: U8
    compose_wq: F32
    compose_wk: F32
    compose_wv: F32
    compose_wo: F32
    compose_bo: F32
    compose_type_key: F32
    compose_type_value: F32
    compose_weight_bias: F32
    score_w_out: F32
    score_w_inter: F32
    score_bias: F32

    @property
    def composition(self) -> Composition:
        return Composition.from_arrays(
            {name: getattr(self, name) for name in _COMPOSITION_ARRAYS}
        )

    def phrase(self, node: int) -> str:
        """The intent phrase of trie node ``node``."""
        start, end = self.trie_phrase_offsets[node], self.trie_phrase_offsets[node + 1]
        return bytes(self.trie_phrase_bytes[start:end]).decode("utf-8")

    def external_ids(self) -> list[str]:
        """Every item's external id (the dataset's own), in internal-id order."""
        raw, offsets = bytes(self.item_ext_bytes), self.item_ext_offsets.tolist()
        return [raw[a:b].decode("utf-8") for a, b in itertools.pairwise(offsets)]


def _manifest_dims(manifest: Mapping[str, Any]) -> Dims:
    raw = manifest.get("dims")
    names = [f.name for f in fields(Dims)]
    if not isinstance(raw, dict) or set(raw) != set(names):
        raise BundleError(f"manifest 'dims' must hold exactly {names}")
    if not all(_is_int(raw[n]) and raw[n] >= 0 for n in names):
        raise BundleError(f"manifest 'dims' must be non-negative integers, got {raw}")
    dims = Dims(**{n: int(raw[n]) for n in names})
    positive = ("n_nodes", "dim", "attn_dim", "n_heads", "max_depth", "path_slots", "n_domains")
    if any(getattr(dims, n) == 0 for n in positive) or dims.attn_dim % dims.n_heads:
        raise BundleError(f"manifest 'dims' are inconsistent: {raw}")
    return dims


def _manifest_files(manifest: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise BundleError("manifest 'files' must be an object")
    for name, entry in files.items():
        if "/" in name or "\\" in name or name in ("", ".", "..", MANIFEST):
            raise BundleError(f"manifest lists an invalid file name {name!r}")
        ok = (
            isinstance(entry, dict)
            and isinstance(entry.get("sha256"), str)
            and len(entry["sha256"]) == 64
            and _is_int(entry.get("bytes"))
        )
        if not ok:
            raise BundleError(f"manifest entry of {name!r} needs 'sha256' (hex) and 'bytes'")
    return files


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Parse and check ``<path>/manifest.json`` (format, version, dims, domains, config, files).

    Raises :class:`~airrec.errors.BundleVersionError` for another format version and
    :class:`~airrec.errors.BundleError` for anything else that is wrong. The returned dict's
    ``config`` has every key of :data:`DEFAULT_CONFIG`.
    """
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BundleError(f"{path} is not a bundle: {MANIFEST} is missing") from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BundleError(f"cannot read {file}: {e}") from e
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{file} is not an {FORMAT} manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleVersionError(
            f"{path} has bundle format version {version!r}; this airrec reads {FORMAT_VERSION}: "
            "rebuild it with this airrec (`airrec build`, or `airrec train` to re-export)"
        )
    dims = _manifest_dims(manifest)
    domains = manifest.get("domains")
    if not (isinstance(domains, list) and len(domains) == dims.n_domains
            and all(isinstance(n, str) for n in domains)):
        raise BundleError(f"manifest 'domains' must list {dims.n_domains} names")
    try:
        manifest["config"] = validate_config(manifest.get("config"), path_slots=dims.path_slots)
    except ConfigError as e:
        raise BundleError(f"manifest config: {e}") from e
    index = manifest.get("index")
    if not isinstance(index, dict) or index.get("metric") != "cos" or not all(
        _is_int(index.get(k)) for k in ("connectivity", "expansion_add", "expansion_search")
    ):
        raise BundleError("manifest 'index' must give metric 'cos' and integer HNSW settings")
    _manifest_files(manifest)
    return manifest


def _verify_files(root: Path, files: Mapping[str, Mapping[str, Any]], verify: bool) -> None:
    for name, entry in files.items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"bundle file {name} is missing from {root}")
        size = file.stat().st_size
        if size != entry["bytes"]:
            raise BundleChecksumError(
                f"bundle file {name} has {size} bytes, the manifest says {entry['bytes']} "
                "(truncated or replaced)"
            )
        if verify and sha256_file(file) != entry["sha256"]:
            raise BundleChecksumError(f"bundle file {name} does not match its sha256 (corrupted)")


def _load_array(root: Path, name: str, dims: Dims) -> npt.NDArray[Any]:
    dtype, shape_of = ARRAY_SPECS[name]
    try:
        array: npt.NDArray[Any] = np.load(
            root / array_file(name), mmap_mode="r", allow_pickle=False
        )
    except (OSError, ValueError, EOFError) as e:
        raise BundleError(f"cannot read {array_file(name)}: {e}") from e
    expected = shape_of(dims)
    shape_ok = array.ndim == len(expected) and all(
        e is None or a == e for a, e in zip(array.shape, expected)
    )
    if array.dtype != np.dtype(dtype) or not shape_ok or not array.flags.c_contiguous:
        shown = tuple("*" if e is None else e for e in expected)
        raise BundleError(
            f"{array_file(name)} is {array.dtype.str}{list(array.shape)}; the manifest dims "
            f"require C-ordered {dtype}{list(shown)}"
        )
    return array


def _check_loaded(arrays: Mapping[str, npt.NDArray[Any]], dims: Dims) -> None:
    """The invariants of docs/online-path.md §0, so readers can index without surprises."""
    depth = trie_depths(arrays["trie_parent"], BundleError)
    if not np.array_equal(depth, arrays["trie_depth"]):
        raise BundleError("trie_depth disagrees with the depths trie_parent implies")
    if int(depth.max()) != dims.max_depth:
        raise BundleError(f"manifest max_depth {dims.max_depth} != the trie's {int(depth.max())}")
    for strings in ("trie_phrase", "item_ext"):  # UTF-8 strings as offsets + bytes
        _check_offsets(f"{strings}_offsets", arrays[f"{strings}_offsets"],
                       arrays[f"{strings}_bytes"].size, BundleError)
        try:
            bytes(arrays[f"{strings}_bytes"]).decode("utf-8")
        except UnicodeDecodeError as e:
            raise BundleError(f"{strings}_bytes is not UTF-8: {e}") from e
    _check_offsets("item_path_offsets", arrays["item_path_offsets"],
                   arrays["item_path_leaves"].size, BundleError)
    _check_ids("item_path_leaves", arrays["item_path_leaves"], dims.n_nodes, BundleError)
    _check_unit_rows("node_vectors", arrays["node_vectors"], BundleError)
    _check_unit_rows("item_vectors", arrays["item_vectors"], BundleError)
    if arrays["item_domain"].size and int(arrays["item_domain"].max()) >= dims.n_domains:
        raise BundleError(f"item_domain holds a domain >= n_domains ({dims.n_domains})")
    for name in _COMPOSITION_ARRAYS:
        _check_finite(name, arrays[name], BundleError)


def load_arrays(path: str | os.PathLike[str], verify: bool = True) -> BundleArrays:
    """Open a bundle: check the manifest, every file's size (and sha256 when ``verify``),
    every array's dtype and shape against the manifest dims, and the arrays' invariants.

    Arrays are memory-mapped read-only. Raises :class:`~airrec.errors.BundleChecksumError`
    (size or sha256 mismatch), :class:`~airrec.errors.BundleVersionError` or
    :class:`~airrec.errors.BundleError`.
    """
    root = Path(path)
    manifest = read_manifest(root)
    dims = _manifest_dims(manifest)
    files = _manifest_files(manifest)
    unlisted = [name for name in _required_files(dims) if name not in files]
    if unlisted:
        raise BundleError(f"the manifest of {root} does not list {unlisted}")
    _verify_files(root, files, verify)
    if verify and manifest.get("config_sha256") != _airrec.config_sha256(
        json.dumps(manifest["config"], allow_nan=False)
    ):
        raise BundleChecksumError(f"the config in {root / MANIFEST} does not match its config_sha256 (edited?)")
    arrays = {name: _load_array(root, name, dims) for name in ARRAY_SPECS}
    _check_loaded(arrays, dims)
    return BundleArrays(
        path=root,
        manifest=manifest,
        dims=dims,
        config=dict(manifest["config"]),
        domains=list(manifest["domains"]),
        **arrays,
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def _integers(name: str, values: npt.ArrayLike, ndim: int = 1) -> I64:
    array = np.asarray(values)
    if array.size == 0 and array.dtype == np.float64:  # an empty list
        array = array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.integer):
        raise InputTypeError(f"{name} must hold integers, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise InputError(f"{name} must be {ndim}-D, got shape {array.shape}")
    return array.astype(np.int64)


def _unit_rows(name: str, values: npt.ArrayLike, dim: int | None) -> F32:
    """``values`` as float32 [rows, dim] with every row L2-normalised (in float64)."""
    array = np.asarray(values)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InputTypeError(f"{name} must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[1] == 0 or (dim is not None and array.shape[1] != dim):
        want = "[rows, d]" if dim is None else f"[rows, {dim}]"
        raise InputError(f"{name} must have shape {want}, got {array.shape}")
    array = array.astype(np.float64)
    _check_finite(name, array, InputError)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        raise InputError(f"{name} row {int(zero[0])} is all zeros and cannot be normalised")
    return np.ascontiguousarray(array / norms, dtype=np.float32)


def _check_phrases(phrases: Sequence[str], n_nodes: int) -> list[str]:
    if isinstance(phrases, str) or len(phrases) != n_nodes:
        raise InputError(f"trie_phrases must be a sequence of {n_nodes} strings (one per node)")
    if not all(isinstance(p, str) for p in phrases):
        raise InputTypeError("trie_phrases must hold str")
    return list(phrases)


def _domains(domain_names: Sequence[str], item_domain: npt.ArrayLike, n_items: int) -> U8:
    names = list(domain_names)
    if isinstance(domain_names, str) or not 1 <= len(names) <= MAX_DOMAINS:
        raise InputError(f"domain_names must list 1 to {MAX_DOMAINS} names, got {domain_names!r}")
    if not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise InputError(f"domain_names must be distinct non-empty strings, got {names}")
    domain = _integers("item_domain", item_domain)
    if domain.size != n_items:
        raise InputError(f"item_domain has {domain.size} entries for {n_items} items")
    out = np.flatnonzero((domain < 0) | (domain >= len(names)))
    if out.size:
        i = int(out[0])
        raise InputError(f"item_domain[{i}] = {int(domain[i])} is outside [0, {len(names)})")
    return domain.astype(np.uint8)


def _external_ids(item_ids: Sequence[str] | None, n_items: int) -> list[str]:
    """The items' external ids (default: the internal ids in decimal); their content is checked
    by the engine's writer, the one owner of what an id may be."""
    if item_ids is None:
        return [str(i) for i in range(n_items)]
    if isinstance(item_ids, str) or len(item_ids) != n_items:
        raise InputError(f"item_ids must be a sequence of {n_items} strings (one per item)")
    ids = list(item_ids)
    if not all(isinstance(i, str) for i in ids):
        raise InputTypeError("item_ids must hold str")
    return ids


def _index_settings(index: Mapping[str, Any] | None) -> dict[str, Any]:
    settings = {**DEFAULT_INDEX, **(index or {})}
    unknown = sorted(set(settings) - set(DEFAULT_INDEX))
    if unknown or settings["metric"] != "cos":
        raise ConfigError(f"index settings take {sorted(DEFAULT_INDEX)} with metric 'cos'")
    for key in ("connectivity", "expansion_add", "expansion_search"):
        if not _is_int(settings[key]) or settings[key] < 2:
            raise ConfigError(f"index {key!r} must be an integer >= 2, got {settings[key]!r}")
        settings[key] = int(settings[key])
    return settings


def _composition_for(
    composition: Composition | None, dim: int, max_depth: int, n_heads: int | None,
    attn_dim: int | None, seed: int,
) -> Composition:
    if composition is None:
        return Composition.init(dim, attn_dim or dim, n_heads or 4, max_depth, seed)
    if composition.dim != dim or composition.max_depth != max_depth:
        raise InputError(
            f"the composition is for dim {composition.dim}, max_depth {composition.max_depth}; "
            f"the vectors have dim {dim} and the trie max_depth {max_depth}"
        )
    for name, given in (("n_heads", n_heads), ("attn_dim", attn_dim)):
        if given is not None and given != getattr(composition, name):
            raise ConfigError(f"{name}={given} disagrees with the composition's "
                              f"{getattr(composition, name)}")
    return composition


@dataclass(frozen=True)
class _Prepared:
    """Validated, converted bundle contents, ready to write."""

    dims: Dims
    arrays: dict[str, npt.NDArray[Any]]
    config: dict[str, Any]
    domains: list[str]
    #: One phrase per trie node; the engine's writer encodes them (UTF-8 offsets + bytes).
    phrases: list[str]
    #: One external id per item, encoded by the engine's writer like the phrases (which also
    #: checks them: unique, non-empty, short, no control characters).
    item_ids: list[str]


def _prepare(
    *, trie_parent: npt.ArrayLike, trie_phrases: Sequence[str], item_path_offsets: npt.ArrayLike,
    item_path_leaves: npt.ArrayLike, node_vectors: npt.ArrayLike, item_vectors: npt.ArrayLike,
    item_domain: npt.ArrayLike, domain_names: Sequence[str], item_ids: Sequence[str] | None,
    composition: Composition | None, config: Mapping[str, Any] | None, n_heads: int | None,
    attn_dim: int | None, path_slots: int, seed: int,
) -> _Prepared:
    if not _is_int(path_slots) or path_slots < 1:
        raise ConfigError(f"path_slots must be an integer >= 1, got {path_slots!r}")
    engine_config = validate_config(config, path_slots=int(path_slots))
    parent = _integers("trie_parent", trie_parent)
    if parent.size == 0:
        raise InputError("the trie needs at least one node")
    depth = trie_depths(parent)
    phrases = _check_phrases(trie_phrases, parent.size)
    nodes = _unit_rows("node_vectors", node_vectors, None)
    if nodes.shape[0] != parent.size:
        raise InputError(f"node_vectors has {nodes.shape[0]} rows for {parent.size} trie nodes")
    items = _unit_rows("item_vectors", item_vectors, nodes.shape[1])
    offsets = _integers("item_path_offsets", item_path_offsets)
    leaves = _integers("item_path_leaves", item_path_leaves)
    if offsets.size != items.shape[0] * path_slots + 1:
        raise InputError(
            f"item_path_offsets must have n_items * path_slots + 1 = "
            f"{items.shape[0] * path_slots + 1} entries, got {offsets.size}"
        )
    _check_offsets("item_path_offsets", offsets, leaves.size, InputError)
    _check_ids("item_path_leaves", leaves, parent.size, InputError)
    domains = _domains(domain_names, item_domain, items.shape[0])
    ext_ids = _external_ids(item_ids, items.shape[0])
    comp = _composition_for(composition, nodes.shape[1], int(depth.max()), n_heads, attn_dim, seed)
    dims = Dims(
        n_nodes=parent.size, n_items=items.shape[0], dim=nodes.shape[1], attn_dim=comp.attn_dim,
        n_heads=comp.n_heads, max_depth=comp.max_depth, path_slots=int(path_slots),
        n_domains=len(domain_names),
    )
    arrays: dict[str, npt.NDArray[Any]] = {
        "trie_parent": parent.astype(np.int32), "trie_depth": depth,
        "item_path_offsets": offsets, "item_path_leaves": leaves.astype(np.int32),
        "node_vectors": nodes, "item_vectors": items, "item_domain": domains,
        **comp.arrays(),
    }
    return _Prepared(
        dims=dims, arrays=arrays, config=engine_config,
        domains=list(domain_names), phrases=phrases, item_ids=ext_ids,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _airrec_version() -> str:
    try:
        return metadata.version("airrec")
    except metadata.PackageNotFoundError:
        return "unknown"


def _json_meta(meta: Mapping[str, Any] | None) -> dict[str, Any]:
    out = dict(meta or {})
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InputError(f"meta must be JSON-serialisable: {e}") from e
    return out


def _check_extra_files(extra: Mapping[str, bytes], dims: Dims) -> dict[str, bytes]:
    """Extra files ride along checksummed; their names must be plain and not clash."""
    reserved = set(_required_files(dims)) | {MANIFEST}
    out: dict[str, bytes] = {}
    for name, data in extra.items():
        if not name or "/" in name or "\\" in name or name.startswith(".") or name in reserved:
            raise InputError(f"extra file name {name!r} must be a plain, unreserved file name")
        if not isinstance(data, (bytes, bytearray)):
            raise InputTypeError(f"extra file {name!r} must be bytes")
        out[name] = bytes(data)
    return out


@contextmanager
def _staged(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary directory beside ``out`` to write a bundle into; renamed to ``out`` when the
    block succeeds (readers never see half a bundle), deleted when it fails."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is read by services too
        yield tmp
        _check_destination(out, overwrite)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_files(
    root: Path, prepared: _Prepared, index: Mapping[str, Any], meta: dict[str, Any],
    extra_files: Mapping[str, bytes] | None = None,
) -> None:
    """Write every file into ``root`` (an empty directory), the manifest last, through the
    engine's writer (which also folds the weights and builds the indexes)."""
    arrays = prepared.arrays
    _airrec.write_bundle(
        str(root),
        trie_parent=np.ascontiguousarray(arrays["trie_parent"], dtype=np.int32),
        trie_phrases=prepared.phrases,
        item_path_offsets=np.ascontiguousarray(arrays["item_path_offsets"], dtype=np.int64),
        item_path_leaves=np.ascontiguousarray(arrays["item_path_leaves"], dtype=np.int32),
        node_vectors=np.ascontiguousarray(arrays["node_vectors"], dtype=np.float32),
        item_vectors=np.ascontiguousarray(arrays["item_vectors"], dtype=np.float32),
        item_domain=np.ascontiguousarray(arrays["item_domain"], dtype=np.uint8),
        item_ext_ids=prepared.item_ids,
        domains=list(prepared.domains),
        path_slots=prepared.dims.path_slots,
        composition={name: np.ascontiguousarray(arrays[name], dtype=np.float32)
                     for name in _COMPOSITION_ARRAYS},
        config_json=json.dumps(prepared.config, allow_nan=False),
        index=(index["connectivity"], index["expansion_add"], index["expansion_search"]),
        meta_json=json.dumps(meta, allow_nan=False),
        extra_files=list((extra_files or {}).items()),
        created_by=f"airrec {_airrec_version()}",
    )


def _check_destination(out: Path, overwrite: bool) -> None:
    if not out.exists():
        return
    if not overwrite:
        raise BundleError(f"{out} already exists; pass overwrite=True to replace it")
    if not (out / MANIFEST).is_file():
        raise BundleError(f"refusing to overwrite {out}: it is not a bundle (no {MANIFEST})")


def _move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished bundle to ``out``; an old bundle there is swapped out, then deleted."""
    if not out.exists():
        os.replace(tmp, out)
        _fsync_dir(out.parent)
        return
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)
        raise
    _fsync_dir(out.parent)
    shutil.rmtree(old, ignore_errors=True)


def write_bundle(
    out_dir: str | os.PathLike[str],
    *,
    trie_parent: npt.ArrayLike,
    trie_phrases: Sequence[str],
    item_path_offsets: npt.ArrayLike,
    item_path_leaves: npt.ArrayLike,
    node_vectors: npt.ArrayLike,
    item_vectors: npt.ArrayLike,
    item_domain: npt.ArrayLike,
    domain_names: Sequence[str],
    item_ids: Sequence[str] | None = None,
    composition: Composition | None = None,
    config: Mapping[str, Any] | None = None,
    n_heads: int | None = None,
    attn_dim: int | None = None,
    path_slots: int = 1,
    index: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Validate the inputs and write a bundle directory atomically; returns its path.

    Inputs follow docs/online-path.md §0: ``trie_parent[n] < n`` (-1 for roots), one phrase per
    node, the CSR of each item's intent paths (row ``item * path_slots + slot``, each path given
    by its deepest node), node and item vectors (L2-normalised here; zero rows are an error),
    each item's domain index into ``domain_names``, each item's external id ``item_ids`` (the
    dataset's own names: unique, non-empty, at most 256 UTF-8 bytes, no control characters;
    default the internal ids in decimal). Without ``composition`` the weights are
    :meth:`Composition.init` with ``n_heads`` (default 4), ``attn_dim`` (default d) and
    ``seed``. ``config`` overrides :data:`DEFAULT_CONFIG`; ``index`` overrides
    :data:`DEFAULT_INDEX`; ``meta`` is free-form JSON provenance. ``extra_files`` (name → bytes)
    are written into the bundle and checksummed with it (e.g. the projection that maps new
    items' text embeddings into the bundle's vector space).

    Everything is written to a temporary directory beside ``out_dir``, fsynced, then renamed,
    so readers never see a half-written bundle and a failure leaves nothing behind. An
    existing bundle is replaced only with ``overwrite=True``.

    Raises :class:`~airrec.errors.InputError` / :class:`~airrec.errors.InputTypeError` for bad
    arrays, :class:`~airrec.errors.ConfigError` for bad settings and
    :class:`~airrec.errors.BundleError` when ``out_dir`` exists.
    """
    out = Path(out_dir).absolute()
    _check_destination(out, overwrite)
    prepared = _prepare(
        trie_parent=trie_parent, trie_phrases=trie_phrases, item_path_offsets=item_path_offsets,
        item_path_leaves=item_path_leaves, node_vectors=node_vectors, item_vectors=item_vectors,
        item_domain=item_domain, domain_names=domain_names, item_ids=item_ids, composition=composition,
        config=config, n_heads=n_heads, attn_dim=attn_dim, path_slots=path_slots, seed=seed,
    )
    settings = _index_settings(index)
    manifest_meta = _json_meta(meta)
    extras = _check_extra_files(extra_files or {}, prepared.dims)
    if composition is None:
        manifest_meta.setdefault("composition", {"init": "Composition.init", "seed": seed})
    with _staged(out, overwrite) as tmp:
        if progress:
            _log.info("writing bundle %s (%d nodes, %d items)", out, prepared.dims.n_nodes,
                      prepared.dims.n_items)
        _write_files(tmp, prepared, settings, manifest_meta, extras)
    return out


def replace_composition(
    src: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    composition: Composition,
    *,
    config: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """A copy of bundle ``src`` at ``out_dir`` with trained composition / score-head weights.

    This is how training exports into a bundle: the trie, vectors, index settings and extra
    files of ``src`` are kept, the ``compose_*``/``score_*`` arrays come from ``composition``
    (which must match the bundle's dims) and the folded arrays are recomputed from them;
    ``config`` overrides config values (e.g. the ones an ablation trained with), ``meta`` is
    merged into the manifest's ``meta`` (e.g. ``{"composition": {"trained": True, ...}}``).
    Written by the same writer as :func:`write_bundle`, to a temporary directory renamed
    into place.
    """
    source = load_arrays(src)  # validates the source first
    dims = source.dims
    expected = (dims.dim, dims.attn_dim, dims.n_heads, dims.max_depth)
    actual = (composition.dim, composition.attn_dim, composition.n_heads, composition.max_depth)
    if actual != expected:
        raise InputError(f"composition dims (dim, attn_dim, n_heads, max_depth) {actual} do not match the bundle's {expected}")
    manifest = source.manifest
    new_config = validate_config({**manifest["config"], **dict(config or {})}, path_slots=dims.path_slots)
    merged_meta = _json_meta({**manifest.get("meta", {}), **dict(meta or {})})
    out = Path(out_dir).absolute()
    _check_destination(out, overwrite)
    required = set(_required_files(dims))
    extras = {name: (source.path / name).read_bytes()
              for name in manifest["files"] if name not in required}
    arrays: dict[str, npt.NDArray[Any]] = {
        name: np.asarray(getattr(source, name)) for name in ARRAY_SPECS
        if name not in _COMPOSITION_ARRAYS
    }
    prepared = _Prepared(
        dims=dims, arrays={**arrays, **composition.arrays()}, config=new_config,
        domains=list(source.domains), phrases=[source.phrase(n) for n in range(dims.n_nodes)],
        item_ids=source.external_ids(),
    )
    settings = _index_settings(manifest["index"])
    with _staged(out, overwrite) as tmp:
        _write_files(tmp, prepared, settings, merged_meta, extras)
    return out
