"""The global intent trie: normalised phrases, shared prefixes, near-duplicate siblings merged.

An LLM writes the same intent many ways ("Kitchen Tools", "kitchen tools.", "kitchen tool",
"kitchen utensils"). Left alone, each spelling becomes its own trie node: the user intent
tree then splits one interest's weight over several siblings, and the walk sees several weak
nodes instead of one strong one. So phrases are normalised first (case, whitespace,
punctuation at the ends), paths are merged by shared prefix, and then siblings (same parent)
whose phrases mean the same are merged: a plural/singular pair always, and any pair whose
phrase embeddings have cosine >= a threshold. Only siblings are compared because a phrase's
meaning depends on its parent ("cases" under "phones" vs under "wine"), and because the
comparison stays local (no all-pairs search).

Node ids of the final trie are in breadth-first order (roots by phrase, then each level by
(parent id, phrase)), which is topological (parent < child) as the bundle requires and
independent of the order of lines in the intents file.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from airrec.errors import ConfigError

__all__ = [
    "FrozenTrie",
    "MergeReport",
    "TrieBuilder",
    "normalise_path",
    "normalise_phrase",
    "plural_key",
]

F32 = npt.NDArray[np.float32]
_SPACE = re.compile(r"\s+")


def _is_edge_junk(ch: str) -> bool:
    """Punctuation, symbols and separators are stripped at a phrase's ends (not inside)."""
    return unicodedata.category(ch)[0] in "PSZC"


def normalise_phrase(phrase: str) -> str:
    """Canonical form of one phrase: NFKC, HTML entities decoded, lowercase, single spaces,
    no punctuation or symbols at either end ("  Kitchen   Tools. " -> "kitchen tools").

    Inner punctuation is kept ("k-cups", "salt & pepper"); only the ends are noise.
    """
    text = unicodedata.normalize("NFKC", html.unescape(phrase)).lower()
    text = _SPACE.sub(" ", text)
    start, end = 0, len(text)
    while start < end and _is_edge_junk(text[start]):
        start += 1
    while end > start and _is_edge_junk(text[end - 1]):
        end -= 1
    return text[start:end]


def normalise_path(path: Iterable[str]) -> tuple[str, ...]:
    """Normalised phrases of a path; empty phrases dropped, a phrase repeating its parent
    collapsed ("coffee > coffee > beans" -> "coffee > beans"): neither adds information."""
    out: list[str] = []
    for phrase in path:
        norm = normalise_phrase(phrase)
        if norm and (not out or out[-1] != norm):
            out.append(norm)
    return tuple(out)


def plural_key(phrase: str) -> str:
    """The phrase with its last word crudely singularised ("knife sets" -> "knife set").

    English-only and deliberately conservative (``-ies``/``-ie`` -> ``-y``, ``-ches/-shes/-xes/-ses``
    -> drop ``es``, else drop one ``s`` but not ``ss``): two siblings with the same key are the
    same intent written twice, which an embedder scores below most thresholds
    (MiniLM: "snack"/"snacks" 0.89).
    """
    head, _, last = phrase.rpartition(" ")
    if len(last) > 3 and last.endswith("ies"):
        last = last[:-3] + "y"
    elif len(last) > 2 and last.endswith("ie"):  # "cookie"/"cookies" both key to "cooky"
        last = last[:-2] + "y"
    elif len(last) > 3 and last.endswith(("ches", "shes", "xes", "sses")):
        last = last[:-2]
    elif len(last) > 2 and last.endswith("s") and not last.endswith(("ss", "us", "is")):
        last = last[:-1]
    return f"{head} {last}" if head else last


@dataclass
class _Node:
    parent: int
    phrase: str
    support: int = 0
    children: dict[str, int] = field(default_factory=dict)
    alive: bool = True


@dataclass(frozen=True)
class MergeReport:
    """What sibling merging did. ``merge_rate`` = merged siblings / sibling phrases seen."""

    threshold: float | None
    nodes_before: int
    nodes_after: int
    sibling_phrases: int
    merged_similar: int
    merged_plural: int
    merged_children: int
    examples: tuple[tuple[str, str, float], ...]

    @property
    def merged(self) -> int:
        return self.merged_similar + self.merged_plural

    @property
    def merge_rate(self) -> float:
        return self.merged / self.sibling_phrases if self.sibling_phrases else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "threshold": self.threshold, "nodes_before": self.nodes_before,
            "nodes_after": self.nodes_after, "sibling_phrases": self.sibling_phrases,
            "merged_similar": self.merged_similar, "merged_plural": self.merged_plural,
            "merged_children": self.merged_children, "merge_rate": round(self.merge_rate, 6),
            "examples": [[a, b, round(c, 4)] for a, b, c in self.examples],
        }


@dataclass(frozen=True)
class FrozenTrie:
    """The final trie: ``parent[n] < n`` (-1 for roots), one phrase and support per node."""

    parent: npt.NDArray[np.int32]
    depth: npt.NDArray[np.uint8]
    phrases: tuple[str, ...]
    support: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.parent.size)

    def path_phrases(self, node: int) -> tuple[str, ...]:
        """Phrases from the root down to ``node``."""
        out: list[str] = []
        while node >= 0:
            out.append(self.phrases[node])
            node = int(self.parent[node])
        return tuple(reversed(out))

    def path_text(self, node: int, sep: str = " > ") -> str:
        return sep.join(self.path_phrases(node))

    @property
    def leaves(self) -> npt.NDArray[np.int64]:
        has_child = np.zeros(self.parent.size, dtype=bool)
        has_child[self.parent[self.parent >= 0]] = True
        return np.flatnonzero(~has_child).astype(np.int64)

    def nodes_per_level(self) -> list[int]:
        return [int(c) for c in np.bincount(self.depth)[1:]] if self.parent.size else []


class TrieBuilder:
    """A mutable trie: insert paths, merge siblings, then :meth:`freeze` to final ids.

    :meth:`insert` returns a handle (the path's deepest working node); after merging and
    freezing, :meth:`final_id` maps a handle to the final id of the node it ended up in.
    """

    def __init__(self) -> None:
        self._nodes: list[_Node] = []
        self._roots: dict[str, int] = {}
        self._alias: dict[int, int] = {}
        self._final: dict[int, int] | None = None

    def __len__(self) -> int:
        return sum(1 for n in self._nodes if n.alive)

    def insert(self, path: Sequence[str], support: int = 1) -> int:
        """Add one normalised path (every node on it gains ``support``); returns its handle."""
        if not path:
            raise ValueError("cannot insert an empty path")
        if self._final is not None:
            raise RuntimeError("the trie is frozen")
        level, parent = self._roots, -1
        for phrase in path:
            node = level.get(phrase)
            if node is None:
                node = len(self._nodes)
                self._nodes.append(_Node(parent=parent, phrase=phrase))
                level[phrase] = node
            self._nodes[node].support += support
            level, parent = self._nodes[node].children, node
        return parent

    def _find(self, node: int) -> int:
        root = node
        while root in self._alias:
            root = self._alias[root]
        while node in self._alias and self._alias[node] != root:  # path compression
            self._alias[node], node = root, self._alias[node]
        return root

    def _merge_into(self, src: int, dst: int) -> int:
        """Fold ``src``'s subtree into ``dst``; returns how many descendants were unified."""
        s, d = self._nodes[src], self._nodes[dst]
        d.support += s.support
        s.alive = False
        self._alias[src] = dst
        unified = 0
        for phrase, child in sorted(s.children.items()):
            existing = d.children.get(phrase)
            if existing is None:
                d.children[phrase] = child
                self._nodes[child].parent = dst
            else:
                unified += 1 + self._merge_into(child, existing)
        s.children = {}
        return unified

    def _keeper_order(self, node: int) -> tuple[int, int, str]:
        """Who survives a merge: more support, then the shorter (more general) phrase."""
        n = self._nodes[node]
        return (-n.support, len(n.phrase), n.phrase)

    def phrases(self) -> list[str]:
        """Distinct phrases of the live nodes, sorted (what sibling merging needs embedded)."""
        return sorted({n.phrase for n in self._nodes if n.alive})

    def merge_siblings(
        self, threshold: float | None, vectors: Callable[[Sequence[str]], F32] | None = None,
        *, plurals: bool = True, n_examples: int = 20,
    ) -> MergeReport:
        """Merge near-duplicate siblings, top-down, the less supported into the more supported.

        Siblings are visited by (support desc, phrase length, phrase); each either joins the most similar
        already-kept sibling (same :func:`plural_key`, or cosine >= ``threshold``) or is kept.
        Comparing only with kept siblings stops chains (a~b, b~c, but a !~ c) from collapsing
        a whole level. A merged node's children join the keeper's (same phrase: merged too),
        and levels are processed parent before child, so merged children are deduplicated in
        turn. ``threshold=None`` disables embedding merges; ``vectors`` maps phrases to
        L2-normalised rows (bare phrases: siblings share their context by construction).
        """
        if threshold is not None and not -1.0 <= threshold <= 1.0:
            raise ConfigError(f"merge threshold must be in [-1, 1] or None, got {threshold}")
        if threshold is not None and vectors is None:
            raise ConfigError("a merge threshold needs a phrase embedder")
        before = len(self)
        table: dict[str, int] = {}
        matrix = np.zeros((0, 1), dtype=np.float32)
        if threshold is not None and vectors is not None:
            phrases = self.phrases()
            table = {p: k for k, p in enumerate(phrases)}
            matrix = np.asarray(vectors(phrases), dtype=np.float32)
        similar = plural = unified = seen = 0
        examples: list[tuple[str, str, float]] = []
        queue: list[dict[str, int]] = [self._roots]
        while queue:
            level = queue.pop(0)
            order = sorted(level.values(), key=self._keeper_order)
            seen += len(order)
            kept: list[int] = []
            keys: dict[str, int] = {}
            for node in order:
                phrase = self._nodes[node].phrase
                target, score, by_plural = -1, -2.0, False
                if plurals and plural_key(phrase) in keys:
                    target, score, by_plural = keys[plural_key(phrase)], 1.0, True
                elif threshold is not None and kept:
                    sims = matrix[[table[self._nodes[k].phrase] for k in kept]] @ matrix[
                        table[phrase]
                    ]
                    best = int(np.argmax(sims))
                    if float(sims[best]) >= threshold:
                        target, score = kept[best], float(sims[best])
                if target < 0:
                    kept.append(node)
                    keys.setdefault(plural_key(phrase), node)
                    continue
                del level[phrase]
                unified += self._merge_into(node, target)
                plural += by_plural
                similar += not by_plural
                if len(examples) < n_examples:
                    examples.append((phrase, self._nodes[target].phrase, score))
            queue.extend(self._nodes[k].children for k in sorted(kept))
        return MergeReport(
            threshold=threshold, nodes_before=before, nodes_after=len(self),
            sibling_phrases=seen, merged_similar=similar, merged_plural=plural,
            merged_children=unified, examples=tuple(examples),
        )

    def freeze(self) -> FrozenTrie:
        """Final ids in breadth-first order (roots by phrase, then (parent, phrase))."""
        order: list[int] = []
        final: dict[int, int] = {}
        level = sorted(self._roots.values(), key=lambda n: self._nodes[n].phrase)
        while level:
            nxt: list[int] = []
            for node in level:
                final[node] = len(order)
                order.append(node)
                children = self._nodes[node].children
                nxt.extend(children[p] for p in sorted(children))
            level = nxt
        self._final = final
        parent = np.array(
            [final[self._nodes[n].parent] if self._nodes[n].parent >= 0 else -1 for n in order],
            dtype=np.int32,
        )
        depth = np.zeros(len(order), dtype=np.uint8)
        for k, p in enumerate(parent):
            depth[k] = 1 if p < 0 else depth[p] + 1
        return FrozenTrie(
            parent=parent, depth=depth, phrases=tuple(self._nodes[n].phrase for n in order),
            support=np.array([self._nodes[n].support for n in order], dtype=np.int64),
        )

    def final_id(self, handle: int) -> int:
        """The final node id a handle from :meth:`insert` ended up in (after :meth:`freeze`)."""
        if self._final is None:
            raise RuntimeError("freeze() the trie first")
        return self._final[self._find(handle)]
