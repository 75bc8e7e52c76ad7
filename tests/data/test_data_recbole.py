"""The RecBole atomic-file reader: single dataset, two-domain file pairs, bad rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from airrec.data import RecBoleFiles, read_recbole
from airrec.errors import DataError

INTER = (
    "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
    "1\t10\t5\t300\n"
    "1\t11\t4\t100\n"
    "2\t10\t3\t50\n"
    "1\t12\t4\t200\n"
    "2\t12\t2\t60\n"
    "2\t13\t5\t70\n"
)
ITEM = (
    "item_id:token\ttitle:token_seq\tcategories:token_seq\n"
    "10\tGreen tea\tdrinks\n"
    "11\tCurry paste\tsauces\n"
    "12\tRice\tgrains\n"
)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_dataset_directory(tmp_path: Path) -> None:
    write(tmp_path / "toy" / "toy.inter", INTER)
    write(tmp_path / "toy" / "toy.item", ITEM)
    ds = read_recbole(tmp_path / "toy")
    assert ds.name == "toy" and ds.domain_names == ("default",)
    assert ds.items.external_ids == ("10", "11", "12", "13")
    assert ds.items.texts == ("Green tea", "Curry paste", "Rice", "")
    assert ds.user_external_ids == ("1", "2")
    # user 1 by time: 11 (100), 12 (200), 10 (300); user 2: 10, 12, 13.
    assert ds.train.items.tolist() == [1, 0]
    assert ds.valid.targets is not None and ds.valid.targets.tolist() == [2, 2]
    assert ds.test.targets is not None and ds.test.targets.tolist() == [0, 3]
    assert ds.test.history(0).timestamps.tolist() == [100.0, 200.0]


def test_inter_path_finds_sibling_item_file(tmp_path: Path) -> None:
    write(tmp_path / "a.inter", INTER)
    write(tmp_path / "a.item", ITEM)
    assert read_recbole(tmp_path / "a.inter").items.texts[0] == "Green tea"


def test_two_domains_with_shared_users(tmp_path: Path) -> None:
    food = RecBoleFiles(
        write(tmp_path / "food.inter", INTER), write(tmp_path / "food.item", ITEM), "Food"
    )
    kitchen_inter = (
        "user_id:token\titem_id:token\ttimestamp:float\n" "1\t10\t400\n" "3\t11\t1\n" "3\t10\t2\n"
    )
    kitchen_item = "item_id:token\ttitle:token_seq\n10\tPan\n11\tKettle\n"
    kitchen = RecBoleFiles(
        write(tmp_path / "kitchen.inter", kitchen_inter),
        write(tmp_path / "kitchen.item", kitchen_item),
        "Kitchen",
    )
    ds = read_recbole([food, kitchen])
    assert ds.name == "food+kitchen" and ds.domain_names == ("Food", "Kitchen")
    # Item token 10 is a different item in each domain.
    assert ds.items.external_ids == ("10", "11", "12", "13", "10", "11")
    assert ds.items.texts[4:] == ("Pan", "Kettle")
    assert ds.user_external_ids == ("1", "2", "3")
    # User 1's last event is the Kitchen pan at t=400, after three Food events.
    assert ds.test.targets is not None and ds.test.targets.tolist()[0] == 4
    assert ds.domain_of(ds.test.history(0).items).tolist() == [0, 0, 0]


def test_domain_and_behaviour_fields(tmp_path: Path) -> None:
    inter = (
        "user_id:token\titem_id:token\tdomain:token\tbehaviour:token\n"
        "u\ta\tA\tclick\nu\tb\tB\torder\nu\tc\tA\tclick\n"
    )
    ds = read_recbole(write(tmp_path / "x.inter", inter))
    assert ds.domain_names == ("A", "B") and ds.behaviour_names == ("click", "order")
    assert ds.timestamps_are_positions
    assert ds.valid.target_behaviours is not None and ds.valid.target_behaviours.tolist() == [1]


BAD = [
    ("user_id:token\titem_id\n", 1, "header field 'item_id' is not 'name:type'"),
    ("user_id:token\titem_id:string\n", 1, "has type 'string'"),
    ("user_id:token\ttimestamp:float\n1\t5\n", 1, "missing field(s) item_id"),
    (
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\n",
        3,
        "2 fields, the header has 3",
    ),
    (
        "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3\n1\t2\tsoon\n",
        3,
        "field 'timestamp'",
    ),
    ("user_id:token\titem_id:token\n1\t2\n\t3\n", 3, "empty user"),
    ("", 1, "expected a header"),
]


@pytest.mark.parametrize(("content", "line", "fragment"), BAD)
def test_bad_rows(tmp_path: Path, content: str, line: int, fragment: str) -> None:
    path = write(tmp_path / "bad.inter", content)
    with pytest.raises(DataError) as err:
        read_recbole(path)
    assert f"{path}:{line}:" in str(err.value) and fragment in str(err.value)


def test_bad_item_file_and_sources(tmp_path: Path) -> None:
    write(tmp_path / "a.inter", INTER)
    write(tmp_path / "a.item", ITEM + "10\tDuplicate\tdrinks\n")
    with pytest.raises(DataError, match=r"a\.item:5: item '10' is already listed at .*a\.item:2"):
        read_recbole(tmp_path / "a.inter")
    with pytest.raises(DataError, match=r"no empty\.inter"):
        (tmp_path / "empty").mkdir()
        read_recbole(tmp_path / "empty")
    with pytest.raises(DataError, match=r"expected a RecBole dataset directory or a \.inter file"):
        read_recbole(tmp_path / "a.item")
    (tmp_path / "bin.inter").write_bytes(b"user_id:token\titem_id:token\n1\t\xff\n")
    with pytest.raises(DataError, match=r"bin\.inter:2: not UTF-8"):
        read_recbole(tmp_path / "bin.inter")
