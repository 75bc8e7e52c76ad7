"""The quality report: each failure mode of small models counted on hand-made answers."""

from __future__ import annotations

from airrec.generate import QualityTally, quality_of

EXAMPLE = ("pets", "dog food", "dry food")


def test_each_rate_counts_its_failure_mode() -> None:
    answers = [
        # an example pasted onto a look-alike item
        ("Pedigree Adult Kibble 20 lb", [list(EXAMPLE)]),
        # leaf of two title words: a product name, not an intent
        ("Green Tea Bags", [["drinks", "tea", "green tea"], ["health", "antioxidants"]]),
        # a one-word leaf from the title is not a copy
        ("Earl Grey Tea", [["drinks", "tea"]]),
        # the example's frame with a new leaf: a prefix copy, not a full copy
        ("Beef Jerky", [["pets", "dog food", "jerky"]]),
        # a degenerate phrase still in the answer
        ("Kitchen Scale", [["home", "scalesizesizesize"]]),
        # failed
        ("Mystery", []),
    ]
    report = quality_of(answers, [EXAMPLE])
    assert report["items"] == 6 and report["failed"] == 1
    assert report["failure_rate"] == round(1 / 6, 4)
    assert report["example_copy_rate"] == 0.2  # 1 of 5 answered items
    assert report["example_prefix_copy_rate"] == 0.4  # the pasted one and the reframed one
    assert report["title_copy_rate"] == round(1 / 6, 4)  # 1 of 6 paths
    assert report["repetition_rate"] == round(1 / 6, 4)
    assert report["paths_per_item"] == 1.2
    # "pets" and "drinks" both start 2 of 6 paths; the first seen wins the tie
    assert report["top_first_phrase"] == "pets"
    assert report["top_first_phrase_share"] == round(2 / 6, 4)
    assert report["distinct_phrases_per_level"] == [4, 4, 3]


def test_parser_dropped_repetition_is_counted() -> None:
    tally = QualityTally()
    tally.add("Tea", [["drinks", "tea"]], "ok", "degenerate repetition")
    tally.add("Tea", [["drinks", "tea"]], "ok", "")
    report = tally.report()
    assert report["repetition_rate"] == 0.5 and report["failure_rate"] == 0.0


def test_empty_report_is_all_zero() -> None:
    report = QualityTally().report()
    assert report["items"] == 0 and report["paths_per_item"] == 0.0
    assert report["top_first_phrase"] == "" and report["distinct_phrases_per_level"] == []


def test_glued_words_are_counted_whether_split_or_still_there() -> None:
    tally = QualityTally()
    tally.add("Dried Cherries", [["food", "dried fruits andberries"]])  # an old, unrepaired answer
    tally.add("Cherries", [["food", "fruits and berries"]], "ok", "glued word")  # repaired by the parser
    tally.add("Android Tablet", [["electronics", "android tablets"]])  # a real word
    tally.add("Andouille", [["food", "andouille sausage"]])  # the title's own word
    assert tally.report()["glued_word_rate"] == 0.5


def test_warnings_name_the_rate_that_is_off_and_what_to_try() -> None:
    from airrec.generate.quality import quality_warnings

    # The arts-and-office trial of the own-data issue: examples pasted, `home` on half the paths.
    bad = quality_of([("Craft glue", [["home", "furniture", "bookcases"]])] * 11
                     + [(f"Item {i}", [["home", f"thing {i}"]]) for i in range(9)]
                     + [(f"Pen {i}", [["office", f"pen {i}"]]) for i in range(10)],
                     example_paths=[("home", "furniture", "bookcases")])
    warnings = quality_warnings(bad)
    assert any(w.startswith("example_copy_rate 36.7% is above 3% on 30 items") and "own domain" in w
               for w in warnings)
    assert any(w.startswith("top_first_phrase_share") and "'home'" in w for w in warnings)
    # The default prompt's Food-Kitchen figures (docs/generate.md) give no warning.
    good = {"items": 500, "failure_rate": 0.0, "example_copy_rate": 0.022, "example_prefix_copy_rate": 0.102,
            "title_copy_rate": 0.177, "repetition_rate": 0.0, "glued_word_rate": 0.0,
            "top_first_phrase": "food", "top_first_phrase_share": 0.176}
    assert quality_warnings(good) == []
    assert quality_warnings(quality_of([])) == []
