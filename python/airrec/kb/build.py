"""Intents + dataset -> bundle: the knowledge-base half of the offline pipeline.

:func:`build_bundle` reads the intents file, builds and deduplicates the global trie, embeds
node phrases (with their path context, "pets > pet supplies > cat bed", because a bare "beds"
means little) and item texts through the cache, projects both into one ``dim``-d space,
lays out each item's paths as the CSR the engine reads, and writes the bundle with an
untrained composition (training replaces it later) and provenance in the manifest's ``meta``.

The projection is stored in the bundle (``projection.npz``, checksummed with it), because
vectors of items outside the bundle must be projected the same way before they can be scored;
the build report is kept beside the bundle (``<out_dir>.kb/build_report.json``).
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from airrec._files import write_json_atomic
from airrec.bundle import Composition, write_bundle
from airrec.data import Dataset
from airrec.errors import ConfigError, DataError
from airrec.kb.embed import Embedder, EmbeddingCache, embed_texts
from airrec.kb.intents import IntentLimits, Intents, read_intents
from airrec.kb.project import Projection
from airrec.kb.trie import MergeReport, TrieBuilder, normalise_path

__all__ = ["PROJECTION_FILE", "BuildReport", "build_bundle", "sidecar_dir"]

#: The PCA projection inside the bundle (checksummed with it): apply it to the text embedding
#: of an item outside the bundle before scoring it as a vector candidate.
PROJECTION_FILE = "projection.npz"

F32 = npt.NDArray[np.float32]
PATH_SEP = " > "


def sidecar_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Where the build keeps its report, beside the bundle."""
    out = Path(out_dir).absolute()
    return out.with_name(out.name + ".kb")


@dataclass
class BuildReport:
    """What a build produced, for logs, the CLI and tests (``to_json`` for files)."""

    out_dir: Path
    n_items: int
    n_nodes: int
    nodes_per_level: list[int]
    n_leaves: int
    path_slots: int
    dim: int
    embedder: str
    intents_lines: int
    intents_replaced: int
    dropped_paths: int
    items_with_intents: int
    items_without_intents: int
    items_without_text: int
    paths_per_item: dict[str, float]
    fallback_slots: int
    merge: MergeReport
    embedded: dict[str, int]
    explained_variance: float | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def merge_rate(self) -> float:
        return self.merge.merge_rate

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("merge", "out_dir")}
        out["out_dir"] = str(self.out_dir)
        out["merge"] = self.merge.to_json()
        out["timings"] = {k: round(v, 3) for k, v in self.timings.items()}
        return out

    def summary(self) -> str:
        m, p = self.merge, self.paths_per_item
        return "\n".join([
            f"bundle {self.out_dir}",
            f"  trie: {self.n_nodes} nodes (per level {self.nodes_per_level}), "
            f"{self.n_leaves} leaves",
            f"  merged {m.merged}/{m.sibling_phrases} sibling phrases "
            f"({100 * m.merge_rate:.2f}%: {m.merged_similar} similar at "
            f"{m.threshold}, {m.merged_plural} plural; {m.merged_children} children unified)",
            f"  items: {self.n_items}, with intents {self.items_with_intents}, without "
            f"{self.items_without_intents} (cold start), no text {self.items_without_text}",
            f"  paths per item (with intents): mean {p['mean']:.2f}, min {p['min']:.0f}, "
            f"max {p['max']:.0f}; path slots {self.path_slots}",
            f"  vectors: {self.dim}-d from {self.embedder}; embedded now {self.embedded}",
            "  timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()),
        ])


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _check_ids(intents: Intents, dataset: Dataset) -> None:
    from airrec.kb.intents import check_item_identity

    for record in intents.records:
        if record.item >= dataset.n_items:
            raise DataError(f"{intents.where(record)}: item {record.item} is outside the "
                            f"dataset's [0, {dataset.n_items})")
        if record.behaviour >= dataset.n_behaviours:
            raise DataError(f"{intents.where(record)}: behaviour {record.behaviour} is outside "
                            f"the dataset's {dataset.n_behaviours} behaviours "
                            f"{list(dataset.behaviour_names)}")
    check_item_identity(intents, dataset)


def _item_texts(dataset: Dataset, fallback: Mapping[int, str]) -> tuple[list[str], int]:
    """Item texts to embed; an item without text uses its intent paths, else its domain name
    (an all-zero vector would be rejected by the bundle and means nothing to a search)."""
    texts, missing = [], 0
    for item, raw in enumerate(dataset.items.texts):
        text = " ".join(html.unescape(raw).split())
        if not text:
            missing += 1
            domain = dataset.domain_names[int(dataset.items.domains[item])]
            text = fallback.get(item) or domain
        texts.append(text)
    return texts, missing


def _path_csr(
    per_item: dict[int, dict[int, list[int]]], n_items: int, n_behaviours: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int, int]:
    """CSR of final leaf ids; returns (offsets, leaves, path_slots, fallback_slots).

    One slot per item when every line is behaviour 0 or each item has the same paths for
    every behaviour it has; otherwise one slot per behaviour, where a behaviour without its
    own line borrows the paths of the item's lowest behaviour that has some (better than a
    cold start: those paths come from the item's own text).
    """
    shared = all(
        len({tuple(p) for p in slots.values()}) <= 1 for slots in per_item.values()
    )
    slots = 1 if shared or n_behaviours == 1 else n_behaviours
    rows: list[list[int]] = []
    fallback = 0
    for item in range(n_items):
        by_behaviour = per_item.get(item, {})
        if slots == 1:
            rows.append(next(iter(by_behaviour.values()), []))
            continue
        first = by_behaviour[min(by_behaviour)] if by_behaviour else []
        for b in range(slots):
            if b in by_behaviour:
                rows.append(by_behaviour[b])
            else:
                fallback += bool(first)
                rows.append(first)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    leaves = np.array([n for r in rows for n in r], dtype=np.int64)
    return offsets, leaves, slots, fallback


def _engine_config(config: Mapping[str, Any] | None, dataset: Dataset) -> dict[str, Any]:
    out = dict(config or {})
    out.setdefault("behaviour_weights", [1.0] * dataset.n_behaviours)
    if len(out["behaviour_weights"]) != dataset.n_behaviours:
        raise ConfigError(
            f"behaviour_weights has {len(out['behaviour_weights'])} entries; the dataset has "
            f"{dataset.n_behaviours} behaviours {list(dataset.behaviour_names)}"
        )
    return out


def build_bundle(
    dataset: Dataset,
    intents_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    embedder: Embedder,
    dim: int | None = 64,
    merge_threshold: float | None = 0.9,
    merge_plurals: bool = True,
    config: Mapping[str, Any] | None = None,
    n_heads: int = 4,
    attn_dim: int | None = None,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    batch_size: int = 64,
    limits: IntentLimits = IntentLimits(),
    overwrite: bool = False,
    progress: bool = False,
) -> BuildReport:
    """Build the bundle of ``dataset`` from an intents file; returns a :class:`BuildReport`.

    ``dim`` is the PCA dimension of node and item vectors (``None``: the embedder's own).
    ``merge_threshold`` is the cosine above which sibling phrases merge (``None``: only
    exact and plural duplicates). ``config`` overrides the engine defaults
    (docs/online-path.md §6; ``behaviour_weights`` defaults to 1 per dataset behaviour).
    ``cache_dir`` holds the embedding cache (none: embed everything every time).
    Raises :class:`~airrec.errors.DataError` for a bad intents file (file and line named).
    """
    timings: dict[str, float] = {}
    engine_config = _engine_config(config, dataset)
    cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
    embedded: dict[str, int] = {}
    try:
        with _timed(timings, "read_intents"):
            intents = read_intents(intents_path, limits=limits)
            _check_ids(intents, dataset)

        with _timed(timings, "trie"):
            builder = TrieBuilder()
            handles: list[tuple[int, int, list[int]]] = []
            dropped = 0
            for record in intents.records:
                paths = list(dict.fromkeys(normalise_path(p) for p in record.paths))
                dropped += sum(1 for p in paths if not p) + len(record.paths) - len(paths)
                handles.append((record.item, record.behaviour,
                                [builder.insert(p) for p in paths if p]))

        def phrase_vectors(phrases: Sequence[str]) -> F32:
            vectors, n = embed_texts(embedder, phrases, cache=cache, batch_size=batch_size,
                                     progress=progress, desc="embedding phrases")
            embedded["phrases"] = n
            return vectors

        with _timed(timings, "merge"):
            merge = builder.merge_siblings(
                merge_threshold, phrase_vectors if merge_threshold is not None else None,
                plurals=merge_plurals,
            )
            trie = builder.freeze()

        per_item: dict[int, dict[int, list[int]]] = {}
        for item, behaviour, item_handles in handles:
            item_leaves = list(dict.fromkeys(builder.final_id(h) for h in item_handles))
            per_item.setdefault(item, {})[behaviour] = item_leaves

        with _timed(timings, "embed_nodes"):
            node_texts = [trie.path_text(n, PATH_SEP) for n in range(len(trie))]
            node_raw, embedded["nodes"] = embed_texts(
                embedder, node_texts, cache=cache, batch_size=batch_size, progress=progress,
                desc="embedding nodes")
        with _timed(timings, "embed_items"):
            fallback = {i: "; ".join(node_texts[n] for n in next(iter(s.values())))
                        for i, s in per_item.items() if any(s.values())}
            item_texts, no_text = _item_texts(dataset, fallback)
            item_raw, embedded["items"] = embed_texts(
                embedder, item_texts, cache=cache, batch_size=batch_size, progress=progress,
                desc="embedding items")
    finally:
        if cache is not None:
            cache.close()

    with _timed(timings, "project"):
        projection: Projection | None = None
        if dim is None:
            node_vectors, item_vectors = node_raw, item_raw
        else:
            projection = Projection.fit(np.vstack([node_raw, item_raw]), dim, seed=seed)
            node_vectors, item_vectors = projection(node_raw), projection(item_raw)

    offsets, leaves, path_slots, fallback_slots = _path_csr(
        per_item, dataset.n_items, dataset.n_behaviours)
    counts = np.array([len({n for row in s.values() for n in row})
                       for s in per_item.values() if any(s.values())] or [0])
    with_intents = sum(1 for s in per_item.values() if any(s.values()))
    out_dim = int(node_vectors.shape[1])
    max_depth = int(trie.depth.max())
    merge_json = merge.to_json()
    meta = {
        "kb": {
            "dataset": dataset.name,
            "intents_file": intents.path.name,
            "intents_sha256": intents.sha256,
            "embedder": embedder.name,
            "embedder_fingerprint": embedder.fingerprint,
            "node_text": f"path from the root joined by {PATH_SEP!r}",
            "merge_threshold": merge_threshold,
            "merge_plurals": merge_plurals,
            "merge": merge_json,
            "projection": None if projection is None else {
                "kind": "pca", "input_dim": projection.input_dim, "dim": projection.dim,
                "file": PROJECTION_FILE,
                "explained_variance": round(float(projection.explained_variance_ratio.sum()), 6),
            },
            "seed": seed,
        },
        "composition": {"init": "Composition.init", "seed": seed, "trained": False},
    }
    with _timed(timings, "write"):
        out = write_bundle(
            out_dir, trie_parent=trie.parent, trie_phrases=list(trie.phrases),
            item_path_offsets=offsets, item_path_leaves=leaves, node_vectors=node_vectors,
            item_vectors=item_vectors, item_domain=dataset.items.domains,
            domain_names=list(dataset.domain_names), item_ids=dataset.bundle_item_ids(),
            composition=Composition.init(out_dim, attn_dim or out_dim, n_heads, max_depth, seed),
            config=engine_config, path_slots=path_slots, meta=meta, seed=seed,
            overwrite=overwrite, progress=progress,
            extra_files={} if projection is None else {PROJECTION_FILE: projection.to_bytes()},
        )
    report = BuildReport(
        out_dir=out, n_items=dataset.n_items, n_nodes=len(trie),
        nodes_per_level=trie.nodes_per_level(), n_leaves=int(trie.leaves.size),
        path_slots=path_slots, dim=out_dim, embedder=embedder.fingerprint,
        intents_lines=intents.n_lines, intents_replaced=intents.replaced, dropped_paths=dropped,
        items_with_intents=with_intents, items_without_intents=dataset.n_items - with_intents,
        items_without_text=no_text,
        paths_per_item={"mean": float(counts.mean()), "min": float(counts.min()),
                        "max": float(counts.max())},
        fallback_slots=fallback_slots, merge=merge, embedded=embedded,
        explained_variance=None if projection is None
        else float(projection.explained_variance_ratio.sum()),
        timings=timings,
    )
    _write_sidecar(out, report)
    return report


def _write_sidecar(out: Path, report: BuildReport) -> None:
    side = sidecar_dir(out)
    side.mkdir(parents=True, exist_ok=True)
    write_json_atomic(side / "build_report.json", report.to_json())

