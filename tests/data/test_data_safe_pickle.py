"""The no-globals unpickler: plain dicts load, anything that could run code is refused."""

from __future__ import annotations

import os
import pickle
import pickletools
from pathlib import Path

import pytest

from airrec.data.safe_pickle import load_str_int_dict, load_str_str_dict, refuse_globals_loads
from airrec.errors import DataError


class _RunsCommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_global_is_refused_and_nothing_runs(tmp_path: Path, protocol: int) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"k": _RunsCommand(marker)}, protocol=protocol))
    assert any(
        op.name in ("GLOBAL", "STACK_GLOBAL") for op, _, _ in pickletools.genops(path.read_bytes())
    )
    with pytest.raises(
        DataError, match=rf"{path}: the pickle refers to the global (posix|os|nt)\.system"
    ):
        load_str_int_dict(path)
    assert not marker.exists()


def test_plain_dicts_load(tmp_path: Path) -> None:
    (tmp_path / "i.pkl").write_bytes(pickle.dumps({"B00X": 0, "B00Y": 1}))
    (tmp_path / "s.pkl").write_bytes(pickle.dumps({"B00X": "Tea"}, protocol=0))
    assert load_str_int_dict(tmp_path / "i.pkl") == {"B00X": 0, "B00Y": 1}
    assert load_str_str_dict(tmp_path / "s.pkl") == {"B00X": "Tea"}


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (pickle.dumps([1, 2]), "expected a pickled dict, found list"),
        (pickle.dumps({1: 2}), "key 1 is a int, expected str"),
        (pickle.dumps({"a": True}), "value of 'a' is a bool, expected int"),
        (pickle.dumps({"a": 1})[:-3], "not a valid pickle"),
        (pickle.dumps({"a": 1}) + b"junk", "4 unexpected bytes after the end"),
        (b"", "not a valid pickle"),
    ],
)
def test_wrong_content(tmp_path: Path, payload: bytes, fragment: str) -> None:
    path = tmp_path / "x.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError) as err:
        load_str_int_dict(path)
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_missing_file_and_persistent_ids(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        load_str_int_dict(tmp_path / "none.pkl")
    persistent = b"\x80\x02Pabc\n."  # PERSID 'abc'
    with pytest.raises(DataError, match="persistent ids"):
        refuse_globals_loads(persistent, "p.pkl")
