"""The LLMCDSR reader on a small valid directory, and on each kind of bad file."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from airrec.data import read_llmcdsr
from airrec.errors import DataError


def test_small_directory(llmcdsr_dir: Path) -> None:
    ds = read_llmcdsr(llmcdsr_dir, domain_names=("Food", "Kitchen"))
    assert ds.name == "small"
    assert ds.n_items == 7 and ds.domain_names == ("Food", "Kitchen")
    assert ds.items.domains.tolist() == [0, 0, 0, 1, 1, 1, 1]
    assert ds.items.external_ids == ("a0", "a1", "a2", "b0", "b1", "b2", "b3")
    assert ds.items.texts[:3] == ("Green tea", "Curry paste", "")
    assert ds.behaviour_names == ("purchase",) and ds.user_external_ids is None

    train = ds.train
    assert train.offsets.tolist() == [0, 3, 5, 8, 10, 14]
    assert train.items.tolist() == [0, 1, 2, 2, 0, 3, 4, 5, 6, 3, 0, 3, 1, 4]
    assert train.users.tolist() == [1, 2, 1, 2, 1]
    assert [train.source_names[s] for s in train.sources] == [
        "train_A",
        "train_A",
        "train_B",
        "train_B",
        "train_overlap",
    ]
    assert train.timestamps[:5].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert not train.has_targets and not train.behaviours.any()

    valid = ds.valid
    assert valid.offsets.tolist() == [0, 2, 3]
    assert valid.items.tolist() == [0, 3, 4]
    assert valid.targets is not None and valid.targets.tolist() == [5, 1]
    assert valid.target_timestamps is not None and valid.target_timestamps.tolist() == [2.0, 1.0]
    assert ds.test.history(0).items.tolist() == [1, 2]

    stats = ds.describe()
    assert stats["items.Food.no_text"] == 1 and stats["items.Kitchen.no_text"] == 0
    assert stats["train.lines.train_overlap"] == 1
    assert stats["valid.targets.Food"] == 1 and stats["valid.targets.Kitchen"] == 1
    assert "train.lines" in ds.summary()


def test_arrays_are_read_only(llmcdsr_dir: Path) -> None:
    ds = read_llmcdsr(llmcdsr_dir)
    with pytest.raises(ValueError):
        ds.train.items[0] = 5


def test_missing_text_pickle_gives_empty_texts(llmcdsr_dir: Path) -> None:
    (llmcdsr_dir / "text_B.pkl").unlink()
    ds = read_llmcdsr(llmcdsr_dir)
    assert ds.describe()["items.B.no_text"] == 4


# (file, new content, line named in the error, fragment of the message)
BAD_TEXT = [
    ("train_A.txt", "1\t0,1,2\n2\t2,x\n", 2, "item 2 ('x') is not a non-negative integer"),
    ("train_A.txt", "1\t0,1,2\n2\t2,3\n", 2, "item 2 = 3 is outside domain A [0, 3)"),
    ("train_B.txt", "1\t3,4,5\n2\t6,2\n", 2, "outside domain B [3, 7)"),
    ("train_B.txt", "1 3,4,5\n2\t6,3\n", 1, "no tab"),
    ("train_B.txt", "1\t3,4,5\n2\t6,3,\n", 2, "item 3 is empty"),
    ("train_B.txt", "1\t3,4,5\n\n2\t6,3\n", 2, "empty line"),
    ("train_B.txt", "1\t3,4\t5\n2\t6,3\n", 1, "more than one tab"),
    ("train_B.txt", "u1\t3,4,5\n2\t6,3\n", 1, "user id 'u1'"),
    ("train_B.txt", "1\t3,4,5\n1\t6,3\n", 2, "user 1 already has a line (line 1)"),
    ("train_overlap.txt", "1\t0,3,1,99\n", 1, "item 4 = 99 is outside the item range [0, 7)"),
    ("valid.txt", "1\t0,3,5\n2\t4\n", 2, "need at least 2"),
    ("test.txt", "1\t1,-2,6\n", 1, "item 2 ('-2') is not a non-negative integer"),
    ("num.txt", "3\nfour\n", 2, "'four' is not an integer"),
    ("num.txt", "3\n0\n", 2, "below 1"),
    ("num.txt", "3\n4\n5\n", 3, "expected 2 counts"),
    ("instance_num.txt", "2\n2\n-1\n", 3, "is not an integer"),
]


@pytest.mark.parametrize(("name", "content", "line", "fragment"), BAD_TEXT)
def test_bad_rows_name_file_and_line(
    llmcdsr_dir: Path, name: str, content: str, line: int, fragment: str
) -> None:
    (llmcdsr_dir / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_llmcdsr(llmcdsr_dir)
    message = str(err.value)
    assert f"{llmcdsr_dir / name}:{line}:" in message
    assert fragment in message


def test_line_count_must_match_instance_num(llmcdsr_dir: Path) -> None:
    (llmcdsr_dir / "train_A.txt").write_text("1\t0,1,2\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"train_A\.txt: has 1 lines but .*instance_num\.txt says 2"
    ):
        read_llmcdsr(llmcdsr_dir)


def test_item_set_must_match_num(llmcdsr_dir: Path) -> None:
    (llmcdsr_dir / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 1, "b2": 2}))
    with pytest.raises(DataError, match=r"item_set_B\.pkl: holds 3 items but .*num\.txt says 4"):
        read_llmcdsr(llmcdsr_dir)
    (llmcdsr_dir / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 1, "b2": 2, "b3": 2}))
    with pytest.raises(DataError, match=r"item_set_B\.pkl: index 2 is used by 'b2' and 'b3'"):
        read_llmcdsr(llmcdsr_dir)


def test_pickle_of_wrong_type(llmcdsr_dir: Path) -> None:
    (llmcdsr_dir / "text_A.pkl").write_bytes(pickle.dumps({"a0": 5}))
    with pytest.raises(DataError, match=r"text_A\.pkl: value of 'a0' is a int, expected str"):
        read_llmcdsr(llmcdsr_dir)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_a_global_is_refused(llmcdsr_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (llmcdsr_dir / "item_set_A.pkl").write_bytes(pickle.dumps({"a0": _Exploit(marker)}))
    with pytest.raises(DataError, match=r"item_set_A\.pkl: .*refers to the global .*system"):
        read_llmcdsr(llmcdsr_dir)
    assert not marker.exists()


def test_missing_files_and_directory(llmcdsr_dir: Path, tmp_path: Path) -> None:
    (llmcdsr_dir / "valid.txt").unlink()
    with pytest.raises(DataError, match=r"missing valid\.txt"):
        read_llmcdsr(llmcdsr_dir)
    with pytest.raises(DataError, match="not a directory"):
        read_llmcdsr(tmp_path / "nope")


def test_crlf_line_endings_are_accepted(llmcdsr_dir: Path) -> None:
    for name in ("train_A.txt", "valid.txt"):
        path = llmcdsr_dir / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    ds = read_llmcdsr(llmcdsr_dir)
    assert np.array_equal(ds.valid.items, [0, 3, 4])
