"""The intents file reader: format, validation with file:line errors, duplicates, gzip."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from airrec.errors import DataError
from airrec.kb import IntentLimits, read_intents, write_intents

GOOD = {"item": 3, "behaviour": 0, "paths": [["pets", "pet supplies", "cat bed"]]}


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_records_in_order(tmp_path: Path) -> None:
    f = _write(tmp_path / "i.jsonl", [
        json.dumps(GOOD), "",
        json.dumps({"item": 1, "behaviour": 2, "paths": [["a", "b"], ["a", "c", "d", "e"]]}),
        json.dumps({"item": 7, "behaviour": 0, "paths": []}),
    ])
    intents = read_intents(f)
    assert [(r.item, r.behaviour, r.line) for r in intents.records] == [(3, 0, 1), (1, 2, 3),
                                                                        (7, 0, 4)]
    assert intents.records[1].paths == (("a", "b"), ("a", "c", "d", "e"))
    assert intents.n_lines == 3 and intents.replaced == 0 and len(intents.sha256) == 64


def test_later_line_replaces_earlier(tmp_path: Path) -> None:
    later = {"item": 3, "behaviour": 0, "paths": [["x", "y"]]}
    intents = read_intents(_write(tmp_path / "i.jsonl", [json.dumps(GOOD), json.dumps(later)]))
    assert len(intents) == 1 and intents.records[0].paths == (("x", "y"),)
    assert intents.replaced == 1 and intents.records[0].line == 2


def test_gzip_round_trip(tmp_path: Path) -> None:
    f = write_intents(tmp_path / "i.jsonl.gz", [(0, 0, [["food", "coffee"]]), (1, 0, [])])
    with gzip.open(f, "rt", encoding="utf-8") as g:
        assert json.loads(g.readline())["paths"] == [["food", "coffee"]]
    assert [r.item for r in read_intents(f).records] == [0, 1]


@pytest.mark.parametrize(("line", "message"), [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"item": 1, "paths": []}', "'behaviour' must be an integer"),
    ('{"item": "1", "behaviour": 0, "paths": []}', "'item' must be an integer"),
    ('{"item": true, "behaviour": 0, "paths": []}', "'item' must be an integer"),
    ('{"item": -1, "behaviour": 0, "paths": []}', "must be >= 0"),
    ('{"item": 1, "behaviour": 0, "paths": "a > b"}', "'paths' must be a list"),
    ('{"item": 1, "behaviour": 0, "paths": [["a", 2]]}', "must be a list of strings"),
    ('{"item": 1, "behaviour": 0, "paths": [["a"]]}', "has 1 phrases, expected 2 to 4"),
    ('{"item": 1, "behaviour": 0, "paths": [["a","b","c","d","e"]]}', "has 5 phrases"),
    ('{"item": 1, "behaviour": 0, "paths": [["a","b"],["a","c"],["a","d"],["a","e"]]}',
     "4 paths, at most 3"),
    ('{"item": 1, "behaviour": 0, "paths": [["a", "  "]]}', "empty phrase"),
    ('{"item": 1, "behaviour": 0, "paths": [], "why": "x"}', "unknown keys ['why']"),
    ('{"item": 1, "behaviour": 0, "paths": [], "ext": 7}', "'ext' must be a non-empty string"),
    ('{"item": 1, "behaviour": 0, "paths": [], "text": ""}', "'text' must be a non-empty string"),
])
def test_malformed_line_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    f = _write(tmp_path / "bad.jsonl", [json.dumps(GOOD), json.dumps(GOOD), line])
    with pytest.raises(DataError, match=re.escape(message)) as info:
        read_intents(f)
    assert f"{f}:3:" in str(info.value)


def test_limits_are_configurable(tmp_path: Path) -> None:
    f = _write(tmp_path / "i.jsonl", ['{"item": 1, "behaviour": 0, "paths": [["solo"]]}'])
    assert read_intents(f, limits=IntentLimits(min_phrases=1)).records[0].paths == (("solo",),)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        read_intents(tmp_path / "nope.jsonl")
    bad = tmp_path / "bin.jsonl"
    bad.write_bytes(b"\xff\xfe\x00garbage\n")
    with pytest.raises(DataError, match="not UTF-8"):
        read_intents(bad)
    gz = tmp_path / "broken.jsonl.gz"
    gz.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="cannot read"):
        read_intents(gz)


def test_shuffle_intents_keeps_answers_but_breaks_the_item_link(tmp_path: Path) -> None:
    from airrec.kb.intents import read_intents, shuffle_intents, write_intents

    rows = [(i, 0, [[f"topic {i}", f"sub {i}"]]) for i in range(50)]
    src = write_intents(tmp_path / "src.jsonl.gz", rows)
    a = read_intents(shuffle_intents(src, tmp_path / "a.jsonl.gz", seed=1))
    b = read_intents(shuffle_intents(src, tmp_path / "b.jsonl.gz", seed=1))
    c = read_intents(shuffle_intents(src, tmp_path / "c.jsonl.gz", seed=2))
    original = {r.item: r.paths for r in read_intents(src).records}
    shuffled = {r.item: r.paths for r in a.records}
    assert set(shuffled) == set(original)  # same items
    assert sorted(shuffled.values()) == sorted(original.values())  # same answers
    assert sum(shuffled[i] == original[i] for i in original) < 10  # mostly another item's
    assert [r.paths for r in a.records] == [r.paths for r in b.records]  # seeded
    assert [r.paths for r in a.records] != [r.paths for r in c.records]


def test_lines_say_which_item_they_were_and_other_data_is_refused(tmp_path: Path) -> None:
    """Ids are dense positions: intents written for one dataset carry each item's external id
    and text key, and another dataset (or an edited text) refuses them instead of attaching
    them to whatever item has the id there."""
    import dataclasses

    from fk40 import write_dataset

    from airrec.data import ItemTable
    from airrec.kb.intents import check_item_identity, item_text_key

    ds = write_dataset(tmp_path / "fk40")
    path = write_intents(tmp_path / "i.jsonl.gz", [(0, 0, [["a", "b"]]), (5, 0, [["c", "d"]])], identity=ds)
    back = read_intents(path)
    assert [(r.ext, r.text) for r in back.records] == [
        (ds.items.external_ids[i], item_text_key(ds.items.texts[i])) for i in (0, 5)]
    assert check_item_identity(back, ds) == 2

    ids = list(ds.items.external_ids)
    ids[5] = "someone-else"
    other = dataclasses.replace(ds, items=ItemTable(ds.items.domains, ds.items.texts, tuple(ids)))
    with pytest.raises(DataError, match=r"i.jsonl.gz:2: item 5 is .* in the intents file but 'someone-else'"):
        check_item_identity(back, other)
    texts = list(ds.items.texts)
    texts[0] = texts[0] + " (new edition)"
    edited = dataclasses.replace(ds, items=ItemTable(ds.items.domains, tuple(texts), ds.items.external_ids))
    with pytest.raises(DataError, match="text differs"):
        check_item_identity(back, edited)
    # Files without the keys (written before them) are read and used unchecked.
    plain = read_intents(write_intents(tmp_path / "p.jsonl", [(5, 0, [["c", "d"]])]))
    assert check_item_identity(plain, other) == 0
