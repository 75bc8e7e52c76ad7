"""Turn an LLM answer into clean intent paths, or say precisely why it cannot.

The grammar makes well-formed answers likely, not guaranteed (a user template may drop it,
a retry may run unconstrained, the naive baseline answers in JSON), so the parser accepts
both the compact form ``a > b > c | d > e`` and JSON (``{"paths": [[...], ...]}`` or a bare
list of lists), and never raises on bad input: it returns a :class:`ParsedIntents` whose
``paths`` may be empty and whose ``problems`` list what was dropped.

Normalisation rules (they decide what the knowledge base's vocabulary looks like):

* The knowledge base's canonical form first (NFKC, HTML entities, lowercase); a lone
  ``&`` becomes ``and``; characters other than letters, digits, spaces, ``'``, ``&`` and ``-`` become spaces (quotes, brackets, commas, stray JSON);
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
* Glued words: a function word run into the next word without a space (``organic fruits
  andberries``, ``recipes forummies``: the grammar lets a word continue, and the 0.5B model
  often does) is split when the rest is a known word or two or three of 4+ letters (``and
  berries``, ``and kitchen tools``) and otherwise cuts the phrase there (``recipes``), the way a dangling
  function word does. "Known" means in :func:`lexicon` (English words) or in the item's
  title (``andouille``), so real words that start with a function word (``android``,
  ``forest``, ``without``) stay. Only ``and``/``for``/``with``/``of`` are checked: ``to``,
  ``in``, ``the``, ``or`` begin too many product words (``toaster``, ``infuser``,
  ``thermos``, ``oregano``) that a general lexicon lacks. Words glued by a stray apostrophe
  lose the tail (``canteen'ry'ware'ry`` → ``canteen``; a possessive ``'s`` stays) and a
  function word's hyphen becomes a space (``for-decoration`` → ``for decoration``).
* Duplicate paths, and paths that are a prefix of another kept path (the intent tree has the
  prefix anyway), are dropped; at most :data:`MAX_PATHS` paths are kept, in answer order.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import itertools
import json
import re
import unicodedata
from collections.abc import Set
from dataclasses import dataclass, field

from airrec.kb.trie import normalise_phrase

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
    "is_glued",
    "lexicon",
    "clean_phrase",
    "parse_intents",
    "unglue",
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
#: A function word with 3+ letters run into it: ``andberries``, ``forummies``, ``oftea``.
_GLUE_HEADS = ("and", "for", "with", "of")
_GLUED = re.compile(r"(and|for|with|of)([a-z]{3,})")
#: A glued rest splits into at most this many known words (``utensilholders`` → 2).
_MAX_GLUED_PIECES = 3


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


def clean_phrase(text: str) -> str:
    """The parser's form of one phrase ('' if nothing is left): the knowledge base's
    canonical form (:func:`airrec.kb.trie.normalise_phrase`: NFKC, entities, lowercase),
    then punctuation to spaces, ``&`` to ``and`` and no dangling function word at the end.

    Stricter than the canonical form because it cleans what a small model wrote, not what a
    user curated: a phrase it returns is already canonical, so the trie keeps it as is.
    """
    text = _NOT_KEPT.sub(" ", normalise_phrase(text))
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


@functools.cache
def lexicon() -> frozenset[str]:
    """English words (21,719; the whole words of all-MiniLM-L6-v2's WordPiece vocabulary),
    shipped with the package so that parsing never depends on what else is installed."""
    data = importlib.resources.files("airrec.generate").joinpath("lexicon.txt.gz").read_bytes()
    lines = gzip.decompress(data).decode().splitlines()
    return frozenset(w for w in lines if w and not w.startswith("#"))


def _known(word: str, title_words: Set[str]) -> bool:
    """In the title, in the lexicon, or a plural of a lexicon word of 3+ letters."""
    if word in title_words:
        return True
    words = lexicon()
    if word in words:
        return True
    stems = [word[:-1]] if word.endswith("s") else []
    if word.endswith("es"):
        stems.append(word[:-2])
    return any(len(stem) >= 3 and stem in words for stem in stems)


def _segment(rest: str, title_words: Set[str]) -> list[str] | None:
    """``rest`` as one known word, or as the fewest known words of 4+ letters (at most
    three: short pieces are where a lexicon of 21k words finds spurious splits such as
    ``umm`` + ``ies``), or None."""
    if _known(rest, title_words):
        return [rest]
    best: list[list[str] | None] = [None] * (len(rest) + 1)
    best[0] = []
    for end in range(4, len(rest) + 1):
        for start in range(0, end - 3):
            head = best[start]
            if head is None or len(head) >= _MAX_GLUED_PIECES:
                continue
            piece = rest[start:end]
            if _known(piece, title_words):
                cand = [*head, piece]
                current = best[end]
                if current is None or len(cand) < len(current):
                    best[end] = cand
    return best[len(rest)]


def _marked_glue(word: str) -> list[str] | None:
    """Words glued by an apostrophe or a hyphen, unglued, or None if there are none:
    ``canteen'ry'ware'ry`` → ``canteen`` (an apostrophe tail other than a possessive ``s``
    is a loop, not English), ``for-decoration`` → ``for decoration``."""
    head, apostrophe, tail = word.partition("'")
    cut = bool(apostrophe and len(head) >= 3 and tail != "s")  # "d'oro", "o'clock" stay
    if cut:
        word = head
    first, hyphen, rest = word.partition("-")
    if hyphen and first in _GLUE_HEADS and rest:
        return [first, *(w for w in rest.split("-") if w)]
    return [word] if cut else None


def is_glued(word: str, title_words: Set[str] = frozenset()) -> bool:
    """Whether ``word`` runs words together: a function word run into the next word, or
    words joined by a stray apostrophe or a function word's hyphen (see the module doc)."""
    if word in title_words:
        return False
    return _marked_glue(word) is not None or (
        _GLUED.fullmatch(word) is not None and not _known(word, title_words)
    )


def unglue(phrase: str, title_words: Set[str] = frozenset()) -> tuple[str, bool]:
    """Split or cut glued words in a normalised phrase; returns (phrase, whether any was).

    ``fruits andberries`` → ``fruits and berries``; ``recipes forummies`` → ``recipes``
    (the rest is no word: the phrase is cut there, as an answer cut by the word limit is);
    ``canteen'ry'ware'ry`` → ``canteen``; ``pillows fortravelers'needs`` → ``pillows for
    travelers``. A split that would make the phrase longer than :data:`MAX_WORDS` words
    cuts the phrase there instead.
    """
    words: list[str] = []
    marked = False
    split = phrase.split()
    for i, word in enumerate(split):
        pieces = None if word in title_words else _marked_glue(word)
        if pieces is None:
            words.append(word)
            continue
        marked = True
        if len(pieces) > 1 and len(words) + len(pieces) + len(split) - i - 1 > MAX_WORDS:
            break  # a chain too long to split (``and-carefully-hand``): cut the phrase here
        words += pieces
    out: list[str] = []
    for i, word in enumerate(words):
        match = _GLUED.fullmatch(word)
        if match is None or _known(word, title_words):
            out.append(word)
            continue
        pieces = _segment(match.group(2), title_words)
        if pieces is not None and len(out) + 1 + len(pieces) + len(words) - i - 1 <= MAX_WORDS:
            out += [match.group(1), *pieces]
            continue
        while out and out[-1] in _DANGLING:
            out.pop()
        return " ".join(out), True
    while out and out[-1] in _DANGLING:
        out.pop()  # "bags for-" cut to "bags for": the dangling word goes as in clean_phrase
    return " ".join(out), marked or out != words


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
        glued = False
        for piece in candidate:
            phrase, cut = unglue(clean_phrase(piece), title_words)
            glued |= cut
            if phrase and (not phrases or phrases[-1] != phrase):
                phrases.append(phrase)
        if glued:
            problems.append("glued word")
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
