"""The answer parser: well-formed, garbage, truncated, oversized, unicode, title copies."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from airrec.generate.parse import (
    MAX_INPUT_CHARS,
    clean_phrase,
    is_degenerate,
    is_glued,
    lexicon,
    parse_intents,
    unglue,
)

TITLE = "Lodge 10.25 Inch Cast Iron Skillet, Pre-Seasoned"


def test_compact_form() -> None:
    got = parse_intents("kitchen > cookware > skillets | cooking > frying and searing\n", TITLE)
    assert got.paths == [["kitchen", "cookware", "skillets"], ["cooking", "frying and searing"]]
    assert got.ok and got.problems == []


def test_json_forms() -> None:
    answer = json.dumps({"paths": [["Kitchen", "Cookware", "Skillets"]]})
    assert parse_intents(answer, TITLE).paths == [["kitchen", "cookware", "skillets"]]
    assert parse_intents('[["a", "b"], "c > d"]').paths == [["a", "b"], ["c", "d"]]


def test_garbage_is_a_failure_not_an_exception() -> None:
    for junk in ["", "   ", "I cannot help with that.", "{{{{", "]]]", "null", "42", "\x00\x01"]:
        got = parse_intents(junk, TITLE)
        assert not got.ok and got.paths == [] and got.error


def test_truncated_json_keeps_complete_paths() -> None:
    got = parse_intents('{"paths": [["kitchen", "cookware", "skillets"], ["cooking", "fry', TITLE)
    assert got.paths == [["kitchen", "cookware", "skillets"]]
    assert "malformed JSON" in got.error


def test_truncated_compact_drops_the_broken_tail() -> None:
    got = parse_intents("kitchen > cookware > skillets | cooking >", TITLE)
    assert got.paths == [["kitchen", "cookware", "skillets"]]


def test_oversized_answer_is_cut_and_bounded() -> None:
    huge = " | ".join(f"food > snack {i}" for i in range(5000))
    assert len(huge) > MAX_INPUT_CHARS
    got = parse_intents(huge, TITLE)
    assert len(got.paths) == 3 and any("cut" in p for p in got.problems)


def test_normalisation() -> None:
    assert clean_phrase('  "Pet   Supplies!" ') == "pet supplies"
    assert clean_phrase("[Tea & Coffee]") == "tea and coffee"
    assert clean_phrase("Café au lait") == "café au lait"
    assert clean_phrase("decorative items for") == "decorative items"
    assert clean_phrase("salt and") == "salt" and clean_phrase("and") == ""
    assert clean_phrase("ＦＵＬＬ width") == "full width"  # NFKC
    got = parse_intents("Food > Café > Crème Brûlée", "x")
    assert got.paths == [["food", "café", "crème brûlée"]]


def test_path_rules() -> None:
    # a lone phrase is no hierarchy; >4 phrases are cut to 4; repeats collapse
    assert parse_intents("food", TITLE).paths == []
    assert parse_intents("a > b > c > d > e > f").paths == [["a", "b", "c", "d"]]
    assert parse_intents("bread > breads > breads > breads").paths == [["bread", "breads"]]
    assert parse_intents("food > x x x x x").paths == []  # phrase of 5 words
    assert parse_intents("food > " + "y" * 41).paths == []  # phrase over 40 chars


def test_duplicates_prefixes_and_cap() -> None:
    got = parse_intents("a > b | a > b | a > b > c | d > e | f > g | h > i")
    assert got.paths == [["a", "b", "c"], ["d", "e"], ["f", "g"]]


def test_title_copies_are_rejected() -> None:
    # a phrase covering > 60% of the title's distinct words is a copy, not an intent
    title = "Hamilton Beach 2-Slice Toaster"
    got = parse_intents("kitchen > hamilton beach slice toaster | kitchen > toasters", title)
    assert got.paths == [["kitchen", "toasters"]]
    assert "copies the title" in got.error
    # short titles are exempt: "green tea" is a fine intent for "Green Tea Bags"
    assert parse_intents("food > green tea", "Green Tea Bags").paths == [["food", "green tea"]]


def test_list_markers() -> None:
    got = parse_intents("1: food > snacks\n- home > decor")
    assert got.paths == [["food", "snacks"], ["home", "decor"]]


def test_degenerate_repeats_are_dropped() -> None:
    # Seen from Qwen2.5-0.5B on arts/office items: looping words and repeated words.
    got = parse_intents("office > needle size scalesizesizesize | crafts > sewing > needles")
    assert got.paths == [["crafts", "sewing", "needles"]]
    assert "degenerate repetition" in got.problems
    got = parse_intents("crafts > ical ical ical")
    assert not got.ok and "degenerate repetition" in got.error
    assert not parse_intents("snacks > zzzz bars").ok


def test_real_words_are_not_degenerate() -> None:
    for phrase in ["couscous", "bonbon treats", "assessment", "bookkeeping", "tea for two"]:
        assert not is_degenerate(clean_phrase(phrase)), phrase
    assert is_degenerate("mahi mahi")  # a word twice in a row is dropped, knowingly
    assert parse_intents("groceries > grains > couscous").paths == [
        ["groceries", "grains", "couscous"]
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400), st.text(max_size=80))
def test_never_raises_and_invariants_hold(answer: str, title: str) -> None:
    got = parse_intents(answer, title)
    assert len(got.paths) <= 3
    for path in got.paths:
        assert 2 <= len(path) <= 4
        for phrase in path:
            assert phrase and phrase == phrase.lower().strip() and len(phrase) <= 40
            assert len(phrase.split()) <= 4
            assert not is_degenerate(phrase)
    assert got.ok or got.error


def test_glued_function_words_are_split_or_cut() -> None:
    # the rest is known words: split; it is not: cut the phrase there (and its dangling "and")
    assert unglue("organic fruits andberries") == ("organic fruits and berries", True)
    assert unglue("racks andkitchentools") == ("racks and kitchen tools", True)
    assert unglue("dish racks andkitchentools") == ("dish racks", True)  # 5 words: cut
    assert unglue("one cup oftea") == ("one cup of tea", True)
    assert unglue("popcorn recipes forummies") == ("popcorn recipes", True)
    assert unglue("andments") == ("", True)
    # a split past MAX_WORDS words cuts instead of making the phrase too long
    assert unglue("cake pan set withlidhandle") == ("cake pan set", True)


def test_real_words_and_title_words_are_not_glued() -> None:
    for phrase in ("android phones", "forest fruits", "without sugar", "offer", "formula milk"):
        assert unglue(phrase) == (phrase, False)
        assert not any(is_glued(w) for w in phrase.split())
    assert is_glued("andouille")  # not an English word the lexicon knows ...
    assert unglue("andouille sausage", {"andouille"}) == ("andouille sausage", False)  # ... but the title's
    assert {"forest", "berries", "without"} <= lexicon() and len(lexicon()) > 20_000


def test_parser_unglues_and_says_so() -> None:
    got = parse_intents("food > snacks > fruits andberries | cooking > recipes forummies")
    assert got.paths == [["food", "snacks", "fruits and berries"], ["cooking", "recipes"]]
    assert "glued word" in got.problems
    # the title's own word is kept whole
    title = "Aidells Cajun Style Andouille Smoked Chicken Sausage"
    assert parse_intents("food > sausages > andouille sausage", title).paths == [
        ["food", "sausages", "andouille sausage"]
    ]


def test_apostrophe_and_hyphen_glue() -> None:
    assert unglue("stainless steel canteen'ry'ware'ry") == ("stainless steel canteen", True)
    assert unglue("neck pillows fortravelers'needs") == ("neck pillows for travelers", True)
    assert unglue("white boxes for-decoration'ies") == ("white boxes for decoration", True)
    assert unglue("recipes''s''s") == ("recipes", True)
    assert unglue("children's toys") == ("children's toys", False)  # a possessive stays
    assert unglue("pasta d'oro") == ("pasta d'oro", False)  # a short head is a real elision
    assert unglue("k-cups and pre-seasoned") == ("k-cups and pre-seasoned", False)
    assert is_glued("canteen'ry") and is_glued("for-flips") and not is_glued("k-cups")
    assert unglue("gift boxes and-carefully-hand") == ("gift boxes", True)  # too long to split: cut
