"""Turn an LLM answer into clean intent paths, or say precisely why it cannot.

The grammar makes well-formed answers likely, not guaranteed (a user template may drop it,
a retry may run unconstrained, the naive baseline answers in JSON), so the parser accepts
both the compact form ``a > b > c | d > e`` and JSON (``{"paths": [[...], ...]}`` or a bare
list of lists), and never raises on bad input: it returns a :class:`ParsedIntents` whose
``paths`` may be empty and whose ``problems`` list what was dropped.

Normalisation rules (they decide what the knowledge base's vocabulary looks like):

* NFKC, lowercase; a lone ``&`` becomes ``and``; characters other than letters, digits,
  spaces, ``'``, ``&`` and ``-`` become spaces (quotes, brackets, commas, stray JSON);
  whitespace collapses; trailing function words go (``decorative items for`` → ``decorative
  items``: the word limit cut the phrase, and the stem is what was meant).
* A phrase has 1–:data:`MAX_WORDS` words and at most :data:`MAX_PHRASE_CHARS` characters.
  A longer phrase is not truncated (a cut phrase is a different, usually meaningless one):
  its path is dropped.
* Immediately repeated phrases collapse (``breads > breads`` is ``breads``): small models loop.
* Paths shorter than :data:`MIN_PHRASES` phrases are dropped (a lone phrase is no hierarchy);
  paths longer than :data:`MAX_PHRASES` are *truncated* to the first four, because paths go
  coarse to fine and the deep tail is the part that drifts into copying the title.
* Title copies: a path is dropped if one of its phrases covers more than
  :data:`TITLE_OVERLAP` of the title's distinct words, for titles of at least
  :data:`TITLE_MIN_WORDS` words (``green tea`` for "Green Tea Bags" is a fine intent).
  "Cast iron skillet" for "Lodge 10.25 Inch Cast Iron Skillet, Pre-Seasoned" covers 3/9
  and stays.
* Degenerate repeats: a path is dropped if a phrase repeats a word (``ical ical``) or a
  word loops on a chunk of two or more letters three times or more (``scalesizesizesize``),
  or on one letter four times or more. Small models fall into such loops; a dropped path
  sends the unit to a sampled retry instead of into the vocabulary. ``couscous`` and
  ``bonbon`` (a chunk twice) stay.
* Duplicate paths, and paths that are a prefix of another kept path (the intent tree has the
  prefix anyway), are dropped; at most :data:`MAX_PATHS` paths are kept, in answer order.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "MAX_INPUT_CHARS",
    "MAX_PATHS",
    "MAX_PHRASES",
    "MAX_PHRASE_CHARS",
    "MAX_WORDS",
    "MIN_PHRASES",
    "TITLE_MIN_WORDS",
    "TITLE_OVERLAP",
    "ParsedIntents",
    "format_paths",
    "is_degenerate",
    "normalise_phrase",
    "parse_intents",
]

MIN_PHRASES = 2
MAX_PHRASES = 4
MAX_PATHS = 3
MAX_WORDS = 4
MAX_PHRASE_CHARS = 40
TITLE_OVERLAP = 0.6
TITLE_MIN_WORDS = 4
#: Answers are cut here before parsing: a runaway generation must not cost a regex over MBs.
MAX_INPUT_CHARS = 8192

_NOT_KEPT = re.compile(r"[^\w\s'&-]|_", re.UNICODE)
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_PATH_SPLIT = re.compile(r"\s*(?:\||;|\n)\s*")
#: Function words that cannot end a phrase; a phrase ending in one was cut off mid-thought.
#: Not "a", "in", "on": "vitamin a", "built in", "slip on" are whole phrases.
_DANGLING = frozenset("and at by for from of or the to with".split())
_PHRASE_SPLIT = re.compile(r"\s*(?:>|→|/)\s*")
#: A word looping on a chunk: ``sizesizesize`` (2+ letters, 3+ times) or ``aaaa``.
_LOOP = re.compile(r"([^\W\d_]{2,}?)\1{2,}|([^\W\d_])\2{3,}", re.UNICODE)


@dataclass
class ParsedIntents:
    """Clean paths plus the reasons anything was dropped (empty ``paths`` = failure)."""

    paths: list[list[str]]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.paths)

    @property
    def error(self) -> str:
        """One line for the cache's ``error`` column."""
        return "; ".join(self.problems) if self.problems else ""


def normalise_phrase(text: str) -> str:
    """Lowercase, punctuation-free, single-spaced form of one phrase ('' if nothing left)."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NOT_KEPT.sub(" ", text)
    words = ["and" if w == "&" else w.strip("'&-") for w in _SPACES.split(text)]
    words = [w for w in words if w]
    while words and words[-1] in _DANGLING:
        words.pop()  # "decorative items for": an answer cut by the word limit
    return " ".join(words)


def is_degenerate(phrase: str) -> bool:
    """Whether a normalised phrase is a decoding loop: a word said twice in a row
    (``ical ical``) or a word that repeats a chunk of itself (``scalesizesizesize``)."""
    words = phrase.split()
    # _LOOP's chunks are letters only, so one search over the phrase never spans two words.
    return any(a == b for a, b in itertools.pairwise(words)) or _LOOP.search(phrase) is not None


def format_paths(paths: list[list[str]]) -> str:
    """The compact answer form the prompts use: ``a > b | c > d``."""
    return " | ".join(" > ".join(p) for p in paths)


def _words(text: str) -> set[str]:
    return set(_WORD.findall(unicodedata.normalize("NFKC", text).lower()))


def _raw_paths(text: str) -> tuple[list[list[str]], list[str]]:
    """Candidate paths (unnormalised) from JSON or the compact form."""
    problems: list[str] = []
    stripped = text.strip()
    start = min((i for i in (stripped.find("{"), stripped.find("[")) if i >= 0), default=-1)
    if start >= 0:
        try:
            data: object = json.loads(stripped[start:])
        except ValueError:
            data = None
        if isinstance(data, dict):
            data = data.get("paths", data.get("intents"))
        if isinstance(data, list):
            paths: list[list[str]] = []
            for entry in data:
                if isinstance(entry, list) and all(isinstance(x, str) for x in entry):
                    paths.append([str(x) for x in entry])
                elif isinstance(entry, str):
                    paths.append(_PHRASE_SPLIT.split(entry))
                else:
                    problems.append("non-string path entry in JSON")
            return paths, problems
        if start == 0:
            problems.append("malformed JSON")
            # fall through: a truncated JSON answer may still hold complete inner lists
            inner = re.findall(r"\[([^\[\]]*)\]", stripped)
            found = [re.findall(r'"((?:[^"\\]|\\.)*)"', chunk) for chunk in inner]
            return [p for p in found if p], problems
    paths = []
    for chunk in _PATH_SPLIT.split(stripped):
        if ">" in chunk or "→" in chunk:
            # "1: a > b" or "- a > b": drop list markers before the first phrase
            chunk = re.sub(r"^\s*(?:\d+\s*[:.)]|[-*•])\s*", "", chunk)
            paths.append(_PHRASE_SPLIT.split(chunk))
    if not paths:
        problems.append("no intent path found")
    return paths, problems


def parse_intents(text: str, title: str = "") -> ParsedIntents:
    """Parse and normalise an answer for the item called ``title`` (used for copy checks)."""
    problems: list[str] = []
    if len(text) > MAX_INPUT_CHARS:
        problems.append(f"answer of {len(text)} chars cut to {MAX_INPUT_CHARS}")
        text = text[:MAX_INPUT_CHARS]
    raw, raw_problems = _raw_paths(text)
    problems += raw_problems
    title_words = _words(title)
    kept: list[list[str]] = []
    for candidate in raw:
        phrases: list[str] = []
        for piece in candidate:
            phrase = normalise_phrase(piece)
            if phrase and (not phrases or phrases[-1] != phrase):
                phrases.append(phrase)
        if any(len(p.split()) > MAX_WORDS or len(p) > MAX_PHRASE_CHARS for p in phrases):
            problems.append("phrase too long")
            continue
        if any(is_degenerate(p) for p in phrases):
            problems.append("degenerate repetition")
            continue
        if len(phrases) < MIN_PHRASES:
            problems.append("path shorter than 2 phrases")
            continue
        if len(phrases) > MAX_PHRASES:
            problems.append("path truncated to 4 phrases")
            phrases = phrases[:MAX_PHRASES]
        if len(title_words) >= TITLE_MIN_WORDS and any(
            len(_words(p) & title_words) > TITLE_OVERLAP * len(title_words) for p in phrases
        ):
            problems.append("path copies the title")
            continue
        kept.append(phrases)
    unique: list[list[str]] = []
    for path in kept:
        if path in unique:
            continue
        unique.append(path)
    final = [
        p for p in unique if not any(q != p and q[: len(p)] == p for q in unique)
    ]
    if len(final) > MAX_PATHS:
        problems.append(f"{len(final)} paths cut to {MAX_PATHS}")
        final = final[:MAX_PATHS]
    if not final and not problems:
        problems.append("empty answer")
    return ParsedIntents(final, problems)
