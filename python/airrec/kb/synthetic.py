"""Random but plausible intents, for scale tests and benchmarks before real LLM output exists.

Paths are drawn from a small hierarchical vocabulary (category > subcategory > product type),
with the kinds of noise an LLM produces: case and punctuation variants, plurals, and a few
synonyms, so that normalisation and sibling merging have something to do. Seeded: the same
arguments give the same file byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from airrec.kb.intents import write_intents

__all__ = ["VOCABULARY", "synthetic_intents"]

#: category -> subcategory -> product types.
VOCABULARY: dict[str, dict[str, list[str]]] = {
    "beverages": {
        "coffee": ["ground coffee", "whole bean coffee", "coffee pods", "instant coffee",
                   "espresso", "decaf coffee", "flavored coffee", "cold brew"],
        "tea": ["green tea", "black tea", "herbal tea", "chai", "loose leaf tea", "iced tea"],
        "soft drinks": ["soda", "sparkling water", "energy drinks", "juice"],
    },
    "snacks": {
        "chips": ["potato chips", "tortilla chips", "kettle chips", "pita chips"],
        "candy": ["milk chocolate", "dark chocolate", "gummies", "hard candy", "mints"],
        "cookies": ["chocolate chip cookies", "shortbread", "biscotti", "wafers"],
        "nuts": ["almonds", "cashews", "trail mix", "peanuts"],
    },
    "pantry": {
        "condiments": ["hot sauce", "salsa", "mustard", "ketchup", "bbq sauce"],
        "pasta": ["spaghetti", "penne", "egg noodles", "gluten free pasta"],
        "baking supplies": ["flour", "baking chocolate", "sugar", "baking mix", "yeast"],
        "spices": ["black pepper", "cinnamon", "curry powder", "sea salt", "paprika"],
        "cooking oils": ["olive oil", "coconut oil", "avocado oil"],
    },
    "kitchen": {
        "cookware": ["frying pans", "cast iron skillet", "saucepans", "dutch oven", "woks"],
        "kitchen tools": ["spatulas", "whisks", "tongs", "peelers", "can openers"],
        "cutlery": ["chef knives", "paring knives", "knife sets", "knife sharpeners"],
        "coffee makers": ["french press", "drip coffee maker", "espresso machine",
                          "coffee grinder", "pour over"],
        "bakeware": ["baking sheets", "muffin pans", "cake pans", "mixing bowls"],
        "drinkware": ["travel mugs", "coffee mugs", "water bottles", "tumblers"],
    },
}
_SYNONYMS = {"kitchen tools": "kitchen utensils", "cookware": "cook ware", "candy": "sweets",
             "frying pans": "skillets", "spatulas": "spatula", "travel mugs": "travel mug"}


def _noisy(phrase: str, rng: np.random.Generator, noise: float) -> str:
    if rng.random() >= noise:
        return phrase
    kind = int(rng.integers(4))
    if kind == 0:
        return phrase.title()
    if kind == 1:
        return phrase + "."
    if kind == 2:
        return phrase[:-1] if phrase.endswith("s") and not phrase.endswith("ss") else phrase + "s"
    return _SYNONYMS.get(phrase, phrase)


def _rows(
    n_items: int, n_behaviours: int, rng: np.random.Generator, noise: float, coverage: float,
    depth4: float,
) -> Iterator[tuple[int, int, list[list[str]]]]:
    categories = sorted(VOCABULARY)
    for item in range(n_items):
        if rng.random() >= coverage:
            continue
        home = categories[int(rng.integers(len(categories)))]
        for behaviour in range(n_behaviours):
            paths: list[list[str]] = []
            for k in range(int(rng.integers(1, 4))):
                category = home if k == 0 or rng.random() < 0.7 else categories[
                    int(rng.integers(len(categories)))]
                subs = sorted(VOCABULARY[category])
                sub = subs[int(rng.integers(len(subs)))]
                leaf = VOCABULARY[category][sub][int(rng.integers(len(VOCABULARY[category][sub])))]
                path = [_noisy(category, rng, noise / 3), _noisy(sub, rng, noise),
                        _noisy(leaf, rng, noise)]
                if rng.random() < depth4:
                    path.append(f"{leaf} variant {int(rng.integers(20))}")
                paths.append(path)
            yield item, behaviour, paths


def synthetic_intents(
    path: str | os.PathLike[str], n_items: int, *, n_behaviours: int = 1, seed: int = 0,
    noise: float = 0.15, coverage: float = 0.95, depth4: float = 0.2,
) -> Path:
    """Write an intents file for items ``0 .. n_items-1`` (a fraction ``1 - coverage`` left
    without intents, to exercise cold start); ``noise`` is the chance a phrase is mangled."""
    rng = np.random.default_rng(seed)
    return write_intents(path, _rows(n_items, n_behaviours, rng, noise, coverage, depth4))
