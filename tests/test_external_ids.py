"""External item ids end to end: written into the bundle, validated on load by the engine,
accepted and returned by the Python API (internal ids stay the fast path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from airrec import Engine
from airrec.bundle import Composition, load_arrays, replace_composition, write_bundle
from airrec.errors import InputError, InputTypeError, UnknownItemError


@pytest.fixture(scope="module")
def engine(small_bundle: Path) -> Engine:
    return Engine.load(small_bundle)


def test_ids_resolve_both_ways(engine: Engine) -> None:
    n = engine.n_items
    ext = engine.external_ids(np.arange(n))
    assert ext[:2] == ["sku-000000", "sku-000001"] and len(set(ext)) == n
    assert engine.item_ids(ext).tolist() == list(range(n))
    assert engine.item_id("sku-000042") == 42
    with pytest.raises(UnknownItemError, match='unknown item id "sku-999999"'):
        engine.item_ids(["sku-000001", "sku-999999"])
    with pytest.raises(UnknownItemError):
        engine.external_ids([n])
    with pytest.raises(InputTypeError):
        engine.item_ids("sku-000001")  # one str is not a sequence of ids
    with pytest.raises(InputTypeError):
        engine.item_ids([1, 2])  # type: ignore[list-item]
    # A hostile id is refused with a short message that quotes it escaped.
    with pytest.raises(UnknownItemError) as info:
        engine.item_id("\r\n" + "x" * 1_000_000)
    assert len(str(info.value)) < 200 and "\n" not in str(info.value)


def test_every_request_takes_external_ids(engine: Engine) -> None:
    history, candidates = [3, 17, 42, 8], [5, 9, 11, 100]
    by_ext = engine.external_ids(history), engine.external_ids(candidates)
    tree, tree_ext = engine.tree(history), engine.tree(by_ext[0])
    assert np.array_equal(tree.node_ids, tree_ext.node_ids)
    assert np.array_equal(engine.score(tree, candidates), engine.score(tree_ext, by_ext[1]))
    assert np.array_equal(engine.score(history, candidates), engine.score(by_ext[0], np.array(by_ext[1])))
    assert np.array_equal(engine.intent_vectors(tree, candidates), engine.intent_vectors(tree, by_ext[1]))
    assert engine.contexts(tree, candidates) == engine.contexts(tree, by_ext[1])
    grown = engine.tree(history[:2]).add(by_ext[0][2]).extend(by_ext[0][3:])
    assert np.array_equal(grown.node_ids, tree.node_ids)
    x, x_ext = engine.explain(tree, candidates[0]), engine.explain(tree, by_ext[1][0])
    assert (x.candidate, x.candidate_ext, x.score) == (x_ext.candidate, by_ext[1][0], x_ext.score)
    assert [e["ext"] for e in x.evidence] == engine.external_ids([e["item"] for e in x.evidence])
    assert "sku-000005" in str(x)
    # What retrieve returns (internal ids) maps back to names.
    items, _ = engine.retrieve(tree, 0, 5)
    assert engine.item_ids(engine.external_ids(items)).tolist() == items.tolist()


def test_mixed_or_unknown_ids_are_typed_errors(engine: Engine) -> None:
    tree = engine.tree([1, 2])
    with pytest.raises(InputTypeError, match="mixes"):
        engine.score(tree, ["sku-000001", 2])
    with pytest.raises(InputTypeError, match="mixes"):
        engine.tree([1, "sku-000002"])
    with pytest.raises(UnknownItemError):
        engine.score(tree, ["nope"])
    with pytest.raises(UnknownItemError):
        engine.explain(tree, "nope")
    with pytest.raises(InputError):
        engine.score(tree, np.array([["sku-000001"]]))


def test_bundle_arrays_round_trip_the_ids(small_bundle: Path, tmp_path: Path) -> None:
    arrays = load_arrays(small_bundle)
    ids = arrays.external_ids()
    assert ids[7] == "sku-000007"
    # A training export keeps them.
    comp = Composition.init(arrays.dims.dim, arrays.dims.attn_dim, arrays.dims.n_heads,
                            arrays.dims.max_depth, seed=3)
    out = replace_composition(small_bundle, tmp_path / "trained", comp)
    assert load_arrays(out).external_ids() == ids
    assert Engine.load(out).item_id("sku-000007") == 7


def test_default_ids_are_the_internal_ids_in_decimal(tiny_bundle: Path) -> None:
    engine = Engine.load(tiny_bundle)
    assert engine.external_ids([0, 3]) == ["0", "3"]
    assert engine.item_id("3") == 3


@pytest.mark.parametrize(
    ("ids", "error", "needle"),
    [
        (["a", "b", "a", "c"], InputError, 'external id "a" is given to more than one item'),
        (["a", "", "b", "c"], InputError, "must not be empty"),
        (["a", "b\x00", "x", "c"], InputError, "control character"),
        (["a", "b", "c", "d" * 300], InputError, "bytes long"),
        (["a", "b", "c"], InputError, "4 strings"),
        (["a", "b", "c", 4], InputTypeError, "must hold str"),
        ("abcd", InputError, "4 strings"),
    ],
)
def test_the_writer_refuses_bad_ids(
    tmp_path: Path, tiny_inputs: dict[str, Any], ids: Any, error: type[Exception], needle: str
) -> None:
    with pytest.raises(error, match=needle):
        write_bundle(tmp_path / "b", **tiny_inputs, item_ids=ids)
    assert not (tmp_path / "b").exists()


def test_dataset_names_each_item_once(tmp_path: Path) -> None:
    from airrec.data.source import DataSource

    inter = tmp_path / "interactions.csv"
    # "X1" exists in both domains: those two items are qualified with their domain's name.
    inter.write_text("user,item,domain,timestamp\n" + "".join(
        f"u{u},{item},{domain},{t}\n" for u in range(4)
        for t, (item, domain) in enumerate([("X1", "books"), ("B2", "books"), ("X1", "home"), ("H3", "home")])))
    dataset = DataSource(interactions=inter, name="shop").load()
    names = dataset.bundle_item_ids()
    assert sorted(names) == ["B2", "H3", "books:X1", "home:X1"]
    assert len(set(names)) == dataset.n_items


def test_candidate_vectors_as_lists_still_score(engine: Engine) -> None:
    vectors = np.eye(engine.dim, dtype=np.float32)[:3]
    tree = engine.tree([1, 2])
    np.testing.assert_array_equal(engine.score(tree, vectors.tolist()), engine.score(tree, vectors))
    np.testing.assert_array_equal(engine.intent_vectors(tree, vectors.tolist()), engine.intent_vectors(tree, vectors))
