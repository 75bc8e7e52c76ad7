"""The global trie: normalisation, prefix merging, sibling merging, final node order."""

from __future__ import annotations

import numpy as np
import pytest

from airrec.errors import ConfigError
from airrec.kb import TrieBuilder, normalise_path, normalise_phrase
from airrec.kb.trie import plural_key
from conftest import HashEmbedder


@pytest.mark.parametrize(("raw", "expected"), [
    ("  Kitchen   Tools. ", "kitchen tools"),
    ("«Coffee»!", "coffee"),
    ("salt & pepper", "salt & pepper"),
    ("K-Cups", "k-cups"),
    ("Pasta &amp; Noodles", "pasta & noodles"),
    ("ＣＯＦＦＥＥ", "coffee"),  # full-width, NFKC
    ("...", ""),
    ("tea\tbags\n", "tea bags"),
])
def test_normalise_phrase(raw: str, expected: str) -> None:
    assert normalise_phrase(raw) == expected


def test_normalise_path_drops_empties_and_repeats() -> None:
    assert normalise_path(["Coffee", "coffee.", "!!", "Ground Coffee"]) == ("coffee", "ground coffee")


@pytest.mark.parametrize(("a", "b"), [("knife sets", "knife set"), ("cookies", "cookie"),
                                      ("dishes", "dish"), ("boxes", "box"),
                                      ("glasses", "glass")])
def test_plural_key_pairs(a: str, b: str) -> None:
    assert plural_key(a) == plural_key(b)


@pytest.mark.parametrize("word", ["glass", "asparagus", "hummus", "swiss"])
def test_plural_key_leaves_non_plurals(word: str) -> None:
    assert plural_key(word) == word


def _paths(trie_builder: TrieBuilder, paths: list[tuple[str, ...]]) -> list[int]:
    return [trie_builder.insert(p) for p in paths]


def test_prefix_merge_by_hand() -> None:
    b = TrieBuilder()
    handles = _paths(b, [("pets", "pet supplies", "cat bed"), ("pets", "pet supplies", "dog bed"),
                         ("pets", "pet food"), ("food", "coffee", "ground coffee"),
                         ("pets", "pet supplies", "cat bed")])
    trie = b.freeze()
    # BFS: roots by phrase, then (parent, phrase)
    assert trie.phrases == ("food", "pets", "coffee", "pet food", "pet supplies",
                            "ground coffee", "cat bed", "dog bed")
    assert trie.parent.tolist() == [-1, -1, 0, 1, 1, 2, 4, 4]
    assert trie.depth.tolist() == [1, 1, 2, 2, 2, 3, 3, 3]
    assert trie.support.tolist() == [1, 4, 1, 1, 3, 1, 2, 1]
    assert [b.final_id(h) for h in handles] == [6, 7, 3, 5, 6]
    assert trie.path_text(6) == "pets > pet supplies > cat bed"
    assert trie.leaves.tolist() == [3, 5, 6, 7]
    assert trie.nodes_per_level() == [2, 3, 3]


def test_order_is_independent_of_insertion_order() -> None:
    paths = [("a", "b", "c"), ("a", "d"), ("e", "f"), ("a", "b", "g"), ("e", "f", "h")]
    tries = []
    for order in (paths, paths[::-1], paths[2:] + paths[:2]):
        b = TrieBuilder()
        _paths(b, order)
        tries.append(b.freeze())
    for t in tries[1:]:
        assert t.phrases == tries[0].phrases
        assert t.parent.tolist() == tries[0].parent.tolist()
    assert np.all(tries[0].parent < np.arange(len(tries[0])))


def test_sibling_merge_into_larger_with_children() -> None:
    """'kitchen utensils' (support 1) merges into 'kitchen tools' (support 2); its children
    join, and its 'spatulas' child unifies with the keeper's own 'spatulas'."""
    emb = HashEmbedder(aliases={"kitchen utensils": "kitchen tools"})
    b = TrieBuilder()
    handles = _paths(b, [
        ("kitchen", "kitchen tools", "spatulas"), ("kitchen", "kitchen tools", "whisks"),
        ("kitchen", "kitchen utensils", "spatulas"), ("kitchen", "kitchen utensils", "tongs"),
        ("kitchen", "cookware", "pans"),
    ])
    report = b.merge_siblings(0.9, emb.embed)
    trie = b.freeze()
    assert report.merged_similar == 1 and report.merged_plural == 0
    assert report.merged_children == 1  # the two 'spatulas'
    assert report.examples[0][:2] == ("kitchen utensils", "kitchen tools")
    assert report.nodes_before == 9 and report.nodes_after == 7 == len(trie)
    texts = {trie.path_text(b.final_id(h)) for h in handles}
    assert texts == {"kitchen > kitchen tools > spatulas", "kitchen > kitchen tools > whisks",
                     "kitchen > kitchen tools > tongs", "kitchen > cookware > pans"}
    spatulas = b.final_id(handles[0])
    assert b.final_id(handles[2]) == spatulas and trie.support[spatulas] == 2
    assert trie.support[trie.phrases.index("kitchen tools")] == 4
    assert report.sibling_phrases == 1 + 3 + 3 + 1  # roots, kitchen's children, theirs


def test_only_siblings_are_compared() -> None:
    """The same near-duplicate under different parents is not merged."""
    emb = HashEmbedder(aliases={"cases": "covers"})
    b = TrieBuilder()
    _paths(b, [("phones", "cases"), ("wine", "covers")])
    assert b.merge_siblings(0.5, emb.embed).merged == 0


def test_no_chaining_through_merged_siblings() -> None:
    """a~b and b~c but a!~c: c is compared with kept siblings only, so it stays."""
    vectors = {"r": [0.0, 1.0], "a": [1.0, 0.0], "b": [0.8, 0.6], "c": [0.28, 0.96]}  # cos ab=.8 bc=.8 ac=.28

    def embed(texts: list[str]) -> np.ndarray:
        return np.array([vectors[t] for t in texts], dtype=np.float32)

    b = TrieBuilder()
    _paths(b, [("r", "a"), ("r", "a"), ("r", "b"), ("r", "c")])
    report = b.merge_siblings(0.75, embed)  # type: ignore[arg-type]
    assert report.merged_similar == 1
    assert b.freeze().phrases == ("r", "a", "c")


def test_plural_merges_without_threshold_and_rate() -> None:
    b = TrieBuilder()
    h = _paths(b, [("food", "snacks"), ("food", "snacks"), ("food", "snack"), ("food", "tea")])
    report = b.merge_siblings(None)
    assert (report.merged_plural, report.merged_similar) == (1, 0)
    assert report.merge_rate == pytest.approx(1 / 4)  # 1 root + 3 siblings seen
    b.freeze()
    assert b.final_id(h[2]) == b.final_id(h[0])
    b2 = TrieBuilder()
    _paths(b2, [("food", "snacks"), ("food", "snack")])
    assert b2.merge_siblings(None, plurals=False).merged == 0


def test_ties_keep_the_shorter_phrase() -> None:
    emb = HashEmbedder(aliases={"extra hot sauce": "hot sauce"})
    b = TrieBuilder()
    _paths(b, [("pantry", "extra hot sauce"), ("pantry", "hot sauce")])
    b.merge_siblings(0.9, emb.embed)
    assert b.freeze().phrases == ("pantry", "hot sauce")


def test_bad_settings() -> None:
    b = TrieBuilder()
    b.insert(("a", "b"))
    with pytest.raises(ConfigError):
        b.merge_siblings(1.5, HashEmbedder().embed)
    with pytest.raises(ConfigError):
        b.merge_siblings(0.9, None)
    with pytest.raises(RuntimeError):
        b.final_id(0)
