"""Versioned prompt templates and the output grammar that goes with them.

A template is data (system text, a user-message pattern, few-shot examples, output limits),
so users can override it from a TOML or JSON file without touching code (:func:`load_prompt`).
Its :attr:`PromptTemplate.key` — the declared version plus a hash of the content — goes into
the generation cache key: editing an example without bumping the version still gives new
cache entries, never stale answers under a changed prompt.

Few-shot examples matter a lot for sub-1B models (zero-shot, Qwen2.5-0.5B copies the title
back), and they sit in the shared prefix, so they cost prompt-evaluation time once per run,
not per item. Answers use the compact form ``a > b > c | d > e``: about half the tokens of the
equivalent JSON, and decoding tokens is what a CPU run pays for.

Several items per prompt (``items_per_prompt`` > 1): the user turn lists ``1. <title>`` …
``k. <title>`` under one behaviour line and the answer has exactly ``k`` numbered lines (the
grammar fixes the count, so answers cannot shift between items). The chat-template tokens and
the behaviour line are then paid once per ``k`` items instead of once per item. The few-shot
examples are shown the same way, in turns of :data:`EXAMPLES_PER_TURN`.

The default examples are deliberately *not* from the benchmark's domains (food, kitchen), nor
next to them: a 0.5B model copies examples onto look-alike items (with a dog-food example,
``pets > pet nutrition`` landed on toddler formula and beef jerky), so examples from or near
the evaluation domain leak their phrases into its vocabulary. Their first phrases all
differ, so no single broad need (``home``) is suggested as the default.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airrec._files import parse_toml
from airrec.errors import ConfigError
from airrec.generate.parse import MAX_PATHS, MAX_PHRASES, MAX_WORDS, MIN_PHRASES, format_paths

__all__ = [
    "DEFAULT_PROMPT",
    "EXAMPLES_PER_TURN",
    "MAX_ITEMS_PER_PROMPT",
    "PROMPTS",
    "PROMPT_V1",
    "Example",
    "PromptTemplate",
    "load_prompt",
]

#: Most items one grouped prompt may carry (the answer grammar numbers lines 1..this).
MAX_ITEMS_PER_PROMPT = 16
#: Few-shot examples per user turn in a grouped prompt: several turns of a few items show the
#: model that the number of answer lines follows the number of items.
EXAMPLES_PER_TURN = 3


@dataclass(frozen=True)
class Example:
    """One few-shot demonstration: a behaviour on an item and the answer we want."""

    behaviour: str
    item: str
    paths: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class PromptTemplate:
    """Everything that decides what the model is asked; ``user`` has ``{behaviour}`` and
    ``{item}`` placeholders.

    ``max_paths`` (1–3), ``max_phrases`` (2–4) and ``max_words`` (1–4) bound the grammar.
    :data:`DEFAULT_PROMPT` uses 2 paths of 2–3 phrases of 1–3 words, which is what its
    examples show: small models otherwise fill every allowed slot, and the extra third path
    / fourth phrase was mostly drift ("breading and topping the"), at ~35% more decoded
    tokens (Qwen2.5-0.5B: 28 vs 18 tokens per item). The parser and the export format still
    accept the full 1–3 paths of 2–4 phrases, for templates that ask for them."""

    version: str
    system: str
    user: str
    examples: tuple[Example, ...]
    max_paths: int = 2
    max_phrases: int = 3
    max_words: int = 3
    max_tokens: int = 64
    items_per_prompt: int = 1
    strip_specs: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.max_paths <= MAX_PATHS:
            raise ConfigError(f"max_paths must be in 1..{MAX_PATHS}, got {self.max_paths}")
        if not MIN_PHRASES <= self.max_phrases <= MAX_PHRASES:
            raise ConfigError(f"max_phrases must be in 2..{MAX_PHRASES}")
        if not 1 <= self.max_words <= MAX_WORDS:
            raise ConfigError(f"max_words must be in 1..{MAX_WORDS}")
        if not 1 <= self.items_per_prompt <= MAX_ITEMS_PER_PROMPT:
            raise ConfigError(
                f"items_per_prompt must be in 1..{MAX_ITEMS_PER_PROMPT}, got {self.items_per_prompt}"
            )
        try:
            self.user.format(behaviour="b", item="i")
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"user template must use only {{behaviour}} and {{item}}: {exc}") from exc

    @property
    def key(self) -> str:
        """``version:content-hash``, the prompt part of every cache key.

        Fields added after a template version shipped are hashed only when they differ from
        their defaults, so older templates keep their keys (and their cached answers)."""
        content = asdict(self)
        for name, default in _LATER_FIELDS.items():
            if content[name] == default:
                del content[name]
        blob = json.dumps(content, sort_keys=True, ensure_ascii=False).encode()
        return f"{self.version}:{hashlib.sha256(blob).hexdigest()[:12]}"

    def user_message(self, behaviour: str, item: str) -> str:
        return self.user.format(behaviour=behaviour, item=self.item_text(item))

    def item_text(self, item: str) -> str:
        """The item as the model sees it: one line, at most 200 characters, and with
        ``strip_specs`` without sizes, counts, pack notes and markup entities (``14.1-Ounce
        Cans (Pack of 12)``, ``&reg;``): the prompt says not to name them, a small model
        copies them anyway, and on a compute-bound CPU every prompt token costs time."""
        return _strip_specs(_clean_item(item)) if self.strip_specs else _clean_item(item)

    def for_domains(self, names: Sequence[str]) -> PromptTemplate:
        """The template with ``{domains}`` in its system text replaced by the dataset's domain
        names (``"books, home"``): a prompt written once names each catalogue's own domains.
        A template without the placeholder is returned as it is (the key, and so the cached
        answers, change only when the text the model sees does)."""
        if "{domains}" not in self.system:
            return self
        from dataclasses import replace

        return replace(self, system=self.system.replace("{domains}", ", ".join(names)))

    @property
    def example_paths(self) -> list[tuple[str, ...]]:
        """Every path of the few-shot examples (what example-copy rates compare against)."""
        return [p for ex in self.examples for p in ex.paths]

    @property
    def grouped(self) -> bool:
        """Whether prompts carry several numbered items (``items_per_prompt`` > 1)."""
        return self.items_per_prompt > 1

    def group_message(self, behaviour: str, items: Sequence[str]) -> str:
        """The user turn of a multi-item prompt: the behaviour line, then ``n. <item>``."""
        head = self.user.split("\n", 1)[0].format(behaviour=behaviour, item="")
        lines = [f"{n}. {self.item_text(item)}" for n, item in enumerate(items, 1)]
        return "\n".join([head, *lines])

    def messages(self) -> list[tuple[str, str]]:
        """System message plus the few-shot turns: the shared prefix of every prompt."""
        out = [("system", self.system)]
        if not self.grouped:
            for ex in self.examples:
                out.append(("user", self.user_message(ex.behaviour, ex.item)))
                out.append(("assistant", format_paths([list(p) for p in ex.paths])))
            return out
        for start in range(0, len(self.examples), EXAMPLES_PER_TURN):
            turn = self.examples[start : start + EXAMPLES_PER_TURN]
            for behaviour in dict.fromkeys(ex.behaviour for ex in turn):
                same = [ex for ex in turn if ex.behaviour == behaviour]
                out.append(("user", self.group_message(behaviour, [ex.item for ex in same])))
                answer = "".join(
                    f"{n}. {format_paths([list(p) for p in ex.paths])}\n"
                    for n, ex in enumerate(same, 1)
                )
                out.append(("assistant", answer.rstrip("\n")))
        return out

    def json_messages(self) -> list[tuple[str, str]]:
        """The same prompt with JSON answers (``{"paths": [[...]]}``): the naive baseline."""
        out = [("system", self.system.replace(_COMPACT_HINT, _JSON_HINT))]
        for ex in self.examples:
            out.append(("user", self.user_message(ex.behaviour, ex.item)))
            out.append(("assistant", json.dumps({"paths": [list(p) for p in ex.paths]})))
        return out

    def grammar(self, n_items: int | None = None) -> str:
        """GBNF for one answer line: 1..max_paths paths of 2..max_phrases lowercase phrases
        of 1..max_words words, then a newline. Words are letters (with ``'&-``), at most 18
        characters: no digits, because digits in answers were sizes, counts and SKUs
        ("12-ounce bags"), never intents, and a degenerate run cannot spell out a SKU. The
        alphabet is ASCII (the catalogues here are English); a template for other languages
        needs its own grammar.

        For a grouped template, the answer to ``n_items`` items (default
        ``items_per_prompt``): exactly that many lines, numbered ``1. `` to ``n. ``; a
        single-item template always answers one line and ignores ``n_items``."""
        more_paths = self.max_paths - 1
        more_phrases = self.max_phrases - 2
        more_words = self.max_words - 1
        if self.grouped:
            n = n_items or self.items_per_prompt
            if not 1 <= n <= MAX_ITEMS_PER_PROMPT:
                raise ConfigError(f"a grouped answer has 1..{MAX_ITEMS_PER_PROMPT} lines, not {n}")
            root = "root ::= " + " ".join(f'"{i}. " line' for i in range(1, n + 1)) + "\n"
            line = f'line ::= path (" | " path){{0,{more_paths}}} "\\n"\n'
        else:
            root, line = "", f'root ::= path (" | " path){{0,{more_paths}}} "\\n"\n'
        return (
            root
            + line
            + f'path ::= phrase " > " phrase (" > " phrase){{0,{more_phrases}}}\n'
            f'phrase ::= word (" " word){{0,{more_words}}}\n'
            "word ::= [a-z] [a-z'&-]{0,17}\n"
        )

    def json_schema(self) -> dict[str, Any]:
        """JSON schema of the baseline's answers (same limits as :meth:`grammar`)."""
        return {
            "type": "object",
            "properties": {
                "paths": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": self.max_paths,
                    "items": {
                        "type": "array",
                        "minItems": MIN_PHRASES,
                        "maxItems": self.max_phrases,
                        "items": {"type": "string", "maxLength": 40},
                    },
                }
            },
            "required": ["paths"],
        }


#: Fields added after templates shipped, with the default that leaves a template as it was:
#: left out of :attr:`PromptTemplate.key` at that default, so old keys stay valid.
_LATER_FIELDS: dict[str, Any] = {"items_per_prompt": 1, "strip_specs": False}

_UNITS = (
    "ounces?|oz|fl|lbs?|pounds?|count|ct|packs?|pk|pieces?|pcs|pc|inch(?:es)?|in|cm|mm|ml|"
    "liters?|l|quarts?|qt|gallons?|gal|cups?|grams?|g|kg|bags?|cans?|bottles?|jars?|boxes?|"
    "box|tins?|sets?|servings?|capsules?|tablets?|sticks?|bars?"
)
_BRACKETS = re.compile(r"\([^)]*\)?|\[[^\]]*\]?")
_QUANTITY = re.compile(rf"\b\d[\d.,/x-]*(?:\s*-?\s*(?:{_UNITS})\b\.?)?", re.IGNORECASE)
_PACK_OF = re.compile(r"\b(?:pack|case|set|box) of\b", re.IGNORECASE)
_MARKS = re.compile("[\u00ae\u2122\u00a9]")
_LOOSE_PUNCT = re.compile(r"\s*([,;/-])(?:\s*[,;/-])+")


def _strip_specs(text: str) -> str:
    """``text`` without quantities, bracketed notes and trademark signs; the original if
    that leaves fewer than two words (``7 Up``)."""
    out = _MARKS.sub("", html.unescape(text))
    out = _BRACKETS.sub(" ", out)
    out = _PACK_OF.sub(" ", _QUANTITY.sub(" ", out))
    out = _LOOSE_PUNCT.sub(r"\1", " ".join(out.split()))
    out = out.strip(" ,;/-")
    return out if len(out.split()) >= 2 else text


def _clean_item(text: str) -> str:
    """One line, bounded: titles with newlines or 800 characters of keywords exist."""
    flat = " ".join(text.split())
    return flat if len(flat) <= 200 else flat[:200].rsplit(" ", 1)[0]


_COMPACT_HINT = (
    "Answer each item on its own line: paths separated by ' | ', phrases separated by ' > '."
)
_JSON_HINT = 'Answer with JSON: {"paths": [["phrase", "phrase", ...], ...]}.'

_SYSTEM = (
    "You label online shopping behaviour with the shopper's intents. For each item, give 1 to 3 "
    "intent paths. Each path has 2 to 4 short lowercase phrases (1 to 3 words each), from a "
    "broad need to a specific one. Name what the shopper wants, not the product: no brands, "
    "sizes, counts or model numbers, and do not copy the title. " + _COMPACT_HINT
)


def _ex(item: str, *paths: str) -> Example:
    return Example("purchase", item, tuple(tuple(p.split(" > ")) for p in paths))


#: The default template: one item per prompt, examples outside the benchmark's domains
#: (:data:`PROMPT_V1`, the template of the first committed artifact, had food and kitchen
#: examples). Grouping items (``items_per_prompt=8``) was measured and rejected as the
#: default: Qwen2.5-0.5B copies earlier answer lines onto later items (docs/generate.md).
DEFAULT_PROMPT = PromptTemplate(
    version="air-intents-v2",
    system=_SYSTEM,
    user="behaviour: {behaviour}\nitem: {item}",
    strip_specs=True,
    examples=(
        _ex(
            "Coleman Sundome 4-Person Camping Tent with Rainfly, Green",
            "outdoors > camping > tents",
            "travel > family trips",
        ),
        _ex(
            "Crayola Washable Markers, Broad Line, 10 Count, Classic Colors",
            "arts and crafts > drawing > markers",
            "kids > school supplies",
        ),
        _ex(
            "Fitbit Inspire 2 Health & Fitness Tracker, Black",
            "fitness > activity tracking > step counters",
        ),
        _ex(
            "Scotts Turf Builder Lawn Food, 12.5 lb, Covers 5,000 sq ft",
            "gardening > lawn care > fertilizer",
            "yard work > green grass",
        ),
        _ex(
            "Goodnight Moon Board Book by Margaret Wise Brown",
            "books > children's books > bedtime stories",
            "parenting > baby bedtime",
        ),
        _ex(
            "Pantene Pro-V Daily Moisture Renewal Shampoo, 25.4 fl oz",
            "personal care > hair care > shampoo",
            "beauty > everyday grooming",
        ),
    ),
)


_SYSTEM_V1 = (
    "You label online shopping behaviour with the shopper's intents. For the item, give 1 to 3 "
    "intent paths. Each path has 2 to 4 short lowercase phrases (1 to 3 words each), from a "
    "broad need to a specific one. Name what the shopper wants, not the product: no brands, "
    "sizes, counts or model numbers, and do not copy the title. "
    "Answer on one line: paths separated by ' | ', phrases separated by ' > '."
)

#: The template of the first committed artefact (key ``air-intents-v1:eafcadc1c3dc``): one
#: item per prompt, examples from the food and kitchen domains. Kept to reproduce that file
#: and as the "before" of the quality report; :data:`DEFAULT_PROMPT` replaced it.
PROMPT_V1 = PromptTemplate(
    version="air-intents-v1",
    system=_SYSTEM_V1,
    user="behaviour: {behaviour}\nitem: {item}",
    examples=(
        _ex(
            "Twinings English Breakfast Tea, 100 Count Tea Bags",
            "beverages > tea > black tea",
            "breakfast > morning drinks",
        ),
        _ex(
            "Lodge 10.25 Inch Cast Iron Skillet, Pre-Seasoned",
            "kitchen > cookware > skillets",
            "cooking > frying and searing",
        ),
        _ex(
            "KIND Bars, Dark Chocolate Nuts & Sea Salt, Gluten Free, 12 Count",
            "snacks > snack bars > nut bars",
            "healthy eating > gluten free",
        ),
        _ex(
            "OXO Good Grips 3-Piece Mixing Bowl Set",
            "kitchen > baking tools > mixing bowls",
        ),
        _ex(
            "Bob's Red Mill Organic Quinoa Grain, 26 Ounce (Pack of 4)",
            "groceries > grains and rice > quinoa",
            "healthy eating > organic food",
        ),
        _ex(
            "Mainstays 5-Shelf Bookcase, Black",
            "home > furniture > bookcases",
            "home > storage > shelving",
        ),
    ),
)


#: Built-in templates by version name (``airrec generate --prompt air-intents-v1``).
PROMPTS: dict[str, PromptTemplate] = {p.version: p for p in (PROMPT_V1, DEFAULT_PROMPT)}


def load_prompt(path: str | Path) -> PromptTemplate:
    """Read a template from TOML or JSON (by extension). Missing fields default to
    :data:`DEFAULT_PROMPT`'s; ``examples`` is a list of ``{behaviour, item, paths}`` where
    ``paths`` is a list of lists of phrases or of ``"a > b > c"`` strings."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        if p.suffix.lower() == ".toml":
            data: Any = parse_toml(raw.decode())
        else:
            data = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read prompt template {p}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a prompt template is a table/object")
    base = asdict(DEFAULT_PROMPT)
    unknown = set(data) - set(base)
    if unknown:
        raise ConfigError(f"{p}: unknown prompt fields {sorted(unknown)}")
    examples = DEFAULT_PROMPT.examples
    if "examples" in data:
        examples = tuple(_example(e, p) for e in data["examples"])
    fields = {k: data.get(k, getattr(DEFAULT_PROMPT, k)) for k in base if k != "examples"}
    if "version" not in data:
        raise ConfigError(f"{p}: a prompt template needs a 'version'")
    return PromptTemplate(examples=examples, **fields)


def _example(entry: Any, source: Path) -> Example:
    if not isinstance(entry, dict) or "item" not in entry or "paths" not in entry:
        raise ConfigError(f"{source}: each example needs 'item' and 'paths'")
    paths = []
    for path in entry["paths"]:
        phrases = path.split(">") if isinstance(path, str) else path
        paths.append(tuple(str(x).strip() for x in phrases))
    return Example(str(entry.get("behaviour", "purchase")), str(entry["item"]), tuple(paths))
