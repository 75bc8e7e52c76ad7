"""The quality report of a generation run: the failure modes of small models, counted.

Sub-1B models fail in recognisable ways, and each has a rate here, so a prompt change is
judged by numbers rather than by reading a few answers:

* ``example_copy_rate``: items with a path identical to one of the few-shot examples' (the
  model pasting an example onto a look-alike item), and ``example_prefix_copy_rate``: items
  with a path starting with an example path's first two phrases (``pets > pet nutrition >
  milk powder`` on toddler formula: the example's frame with a new leaf);
* ``title_copy_rate``: paths whose leaf has 2+ words, all taken from the item's title (a
  product name, not an intent; one-word leaves such as ``tea`` are not counted);
* ``repetition_rate``: items with a degenerate phrase (``ical ical``, ``sizesizesize``) in
  their answer, whether the parser dropped it (new answers) or it is still there (answers
  parsed before the rule existed);
* ``glued_word_rate``: items whose answer ran a function word into the next word
  (``organic fruits andberries``), whether the parser split or cut it (new answers) or it is
  still there (answers parsed before the rule existed);
* ``top_first_phrase_share``: the share of paths starting with the most common first phrase
  (one generic root such as ``home`` on half the paths flattens the tree);
* ``paths_per_item``, ``distinct_phrases_per_level`` and ``failure_rate``.

:class:`QualityTally` counts as outcomes stream by (the runner feeds it); :func:`quality_of`
scores finished answers, e.g. a committed artefact against the dataset's titles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from airrec.generate.parse import MAX_PHRASES, clean_phrase, is_degenerate, is_glued

__all__ = ["WARN_ABOVE", "QualityTally", "agreement", "quality_of", "quality_warnings"]

#: Rates above which a run's report warns, with what to try. The default prompt on 500
#: Food–Kitchen items (docs/generate.md) is below every one: 0 % failures, 2.2 % whole example
#: copies, 10.2 % example frames, 17.7 % title leaves, 0 % repeats, 17.6 % top first phrase.
WARN_ABOVE: dict[str, tuple[float, str]] = {
    "failure_rate": (0.05, "answers failed the grammar or parser: see the log's failures; a larger model helps"),
    "example_copy_rate": (0.03, "the model pastes few-shot examples: give examples from your own domain "
                                "(a TOML prompt, docs/own-data.md)"),
    "example_prefix_copy_rate": (0.15, "the model reuses the examples' frames: examples from your own domain "
                                       "(docs/own-data.md), the last one least like your items"),
    "title_copy_rate": (0.25, "leaves copy the item titles: the prompt's strip_specs, or a larger model"),
    "repetition_rate": (0.01, "degenerate repeats (`ical ical`): a larger model, or fewer max_words"),
    "glued_word_rate": (0.15, "words run together (`andberries`): the parser cuts them; a larger model"),
    "top_first_phrase_share": (0.30, "one generic root holds many paths (a flat tree): an example set whose "
                                     "first phrases differ, none as generic as the catalogue's top one"),
}


def quality_warnings(report: dict[str, Any]) -> list[str]:
    """One line per rate of ``report`` above :data:`WARN_ABOVE`, naming the rate, its value,
    the threshold and what to try; empty when every rate is fine (or nothing was generated)."""
    if not report.get("items"):
        return []
    out = []
    for key, (limit, advice) in WARN_ABOVE.items():
        value = report.get(key)
        if isinstance(value, (int, float)) and value > limit:
            extra = f" ({report.get('top_first_phrase')!r})" if key == "top_first_phrase_share" else ""
            out.append(f"{key} {value:.1%}{extra} is above {limit:.0%} on {report['items']} items: {advice}")
    return out

_DEGENERATE = "degenerate repetition"
_GLUED = "glued word"


class QualityTally:
    """Running counts of the quality report over (title, paths, status, error) answers."""

    def __init__(self, example_paths: Iterable[Sequence[str]] = ()) -> None:
        self._examples = {tuple(clean_phrase(x) for x in p) for p in example_paths}
        self._example_heads = {p[:2] for p in self._examples}
        self.items = 0
        self.failed = 0
        self.paths = 0
        self.example_copies = 0
        self.example_prefix_copies = 0
        self.title_copies = 0
        self.repetitive = 0
        self.glued = 0
        self.first_phrases: Counter[str] = Counter()
        self.levels: list[set[str]] = [set() for _ in range(MAX_PHRASES)]

    def add(self, title: str, paths: Sequence[Sequence[str]], status: str = "ok",
            error: str = "") -> None:
        """Count one unit's answer (``error`` is the parser's problem list, if any)."""
        self.items += 1
        if _DEGENERATE in error or any(is_degenerate(x) for p in paths for x in p):
            self.repetitive += 1
        title_words = set(clean_phrase(title).split())
        if _GLUED in error or any(is_glued(w, title_words) for p in paths for x in p for w in x.split()):
            self.glued += 1
        if status != "ok" or not paths:
            self.failed += 1
            return
        self.paths += len(paths)
        if any(tuple(p) in self._examples for p in paths):
            self.example_copies += 1
        if any(tuple(p[:2]) in self._example_heads for p in paths):
            self.example_prefix_copies += 1
        for path in paths:
            leaf = path[-1].split()
            if len(leaf) >= 2 and all(w in title_words for w in leaf):
                self.title_copies += 1
            self.first_phrases[path[0]] += 1
            for level, phrase in enumerate(path[:MAX_PHRASES]):
                self.levels[level].add(phrase)

    def report(self) -> dict[str, Any]:
        """The figures as a JSON-ready dict (rates in [0, 1], rounded to 4 places)."""
        ok = self.items - self.failed
        top = self.first_phrases.most_common(1)
        return {
            "items": self.items,
            "failed": self.failed,
            "failure_rate": _rate(self.failed, self.items),
            "paths_per_item": _rate(self.paths, ok),
            "example_copy_rate": _rate(self.example_copies, ok),
            "example_prefix_copy_rate": _rate(self.example_prefix_copies, ok),
            "title_copy_rate": _rate(self.title_copies, self.paths),
            "repetition_rate": _rate(self.repetitive, self.items),
            "glued_word_rate": _rate(self.glued, self.items),
            "top_first_phrase": top[0][0] if top else "",
            "top_first_phrase_share": _rate(top[0][1], self.paths) if top else 0.0,
            "distinct_phrases_per_level": [len(s) for s in self.levels if s],
        }


def quality_of(
    answers: Iterable[tuple[str, Sequence[Sequence[str]]]],
    example_paths: Iterable[Sequence[str]] = (),
) -> dict[str, Any]:
    """The report for finished ``(title, paths)`` answers (an empty path list = failed)."""
    tally = QualityTally(example_paths)
    for title, paths in answers:
        tally.add(title, paths, "ok" if paths else "failed")
    return tally.report()


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def agreement(
    answers: Sequence[Sequence[Sequence[str]]],
    reference: Sequence[Sequence[Sequence[str]]],
    *,
    embedder: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """How far two answer sets for the same items agree (e.g. grouped vs single-item).

    Over the items both answered: ``same_top_level`` is the share whose first phrases
    overlap (any path of one starts like any path of the other), ``same_first_path_root``
    the share whose first paths share their first phrase; ``leaf_similarity`` is the mean,
    over items, of each leaf's best cosine similarity to the other answer's leaves (MiniLM
    by default), next to ``leaf_similarity_chance``: the same with the reference shuffled
    across items, i.e. what unrelated answers score."""
    import numpy as np

    pairs = [(a, b) for a, b in zip(answers, reference) if a and b]
    if not pairs:
        return {"items": 0}
    top = sum(bool({p[0] for p in a} & {p[0] for p in b}) for a, b in pairs)
    root = sum(a[0][0] == b[0][0] for a, b in pairs)
    if embedder is None:
        from airrec.kb.embed import SentenceTransformerEmbedder

        embedder = SentenceTransformerEmbedder()
    leaves = sorted({p[-1] for a, b in pairs for p in [*a, *b]})
    index = {leaf: i for i, leaf in enumerate(leaves)}
    vectors = np.asarray(embedder.embed(leaves), dtype=np.float32)

    def similarity(a: Sequence[Sequence[str]], b: Sequence[Sequence[str]]) -> float:
        va = vectors[[index[p[-1]] for p in a]]
        vb = vectors[[index[p[-1]] for p in b]]
        return float((va @ vb.T).max(axis=1).mean())

    shuffled = [b for _, b in pairs]
    np.random.default_rng(seed).shuffle(shuffled)
    n = len(pairs)
    return {
        "items": n,
        "same_top_level": round(top / n, 4),
        "same_first_path_root": round(root / n, 4),
        "leaf_similarity": round(sum(similarity(a, b) for a, b in pairs) / n, 4),
        "leaf_similarity_chance": round(
            sum(similarity(a, b) for (a, _), b in zip(pairs, shuffled)) / n, 4
        ),
    }
