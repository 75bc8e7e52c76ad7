"""The one atomic-write helper: a target is either the old file or the whole new one."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from airrec._files import atomic_writer, write_atomic, write_json_atomic


def test_success_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    write_atomic(target, b"old")
    write_atomic(target, "néw")
    assert target.read_bytes() == "néw".encode()
    assert sorted(p.name for p in target.parent.iterdir()) == ["f.bin"]
    write_json_atomic(tmp_path / "j.json", {"a": [1, 2]})
    assert (tmp_path / "j.json").read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'


def test_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    write_atomic(target, b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]  # temp removed


def test_concurrent_writers_never_share_a_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    threads = [threading.Thread(target=write_atomic, args=(target, p)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in payloads  # one whole payload, never a mix
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]

