"""fetch() against a local HTTP server: verified downloads, corruption, errors, idempotence."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from airrec.data import FOOD_KITCHEN, DatasetSpec, RemoteFile, fetch, get_spec, verify
from airrec.data.home import ENV_VAR
from airrec.errors import ChecksumError, DataError

Serve = Callable[..., str]


def small_spec(served: Path) -> DatasetSpec:
    """Three small files written into ``served``, with their true sums (and one size unknown)."""
    served.mkdir(parents=True, exist_ok=True)
    contents = {"a.txt": b"alpha\n", "b.bin": bytes(range(256)) * 300, "c d.txt": b"spaced name"}
    files = []
    for k, (name, data) in enumerate(contents.items()):
        (served / name).write_bytes(data)
        size = None if k == 2 else len(data)
        files.append(RemoteFile(name, hashlib.sha256(data).hexdigest(), size))
    return DatasetSpec("small", "https://example.invalid/never-used/", tuple(files))


def leftovers(directory: Path) -> list[str]:
    """Temporary/partial files fetch might have left behind."""
    return sorted(
        p.name for p in directory.iterdir() if p.name.startswith(".") or p.suffix == ".part"
    )


def test_fetch_verifies_and_is_idempotent(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    url = serve(tmp_path / "served")
    dest = tmp_path / "home" / "small"
    first = fetch(spec, dest, base_url=url, progress=True)
    assert [f.name for f in first] == ["a.txt", "b.bin", "c d.txt"]
    assert all(f.downloaded for f in first)
    assert (dest / "b.bin").read_bytes() == (tmp_path / "served" / "b.bin").read_bytes()
    assert verify(spec, dest) == [] and leftovers(dest) == []
    mtime = (dest / "b.bin").stat().st_mtime_ns

    second = fetch(spec, dest, base_url=url, progress=False)
    assert not any(f.downloaded for f in second)
    assert (dest / "b.bin").stat().st_mtime_ns == mtime

    # A local file that went bad is fetched again; the good ones are left alone.
    (dest / "a.txt").write_bytes(b"tampered\n")
    third = fetch(spec, dest, base_url=url, progress=False)
    assert [f.name for f in third if f.downloaded] == ["a.txt"]
    assert verify(spec, dest) == []


def test_corrupted_download_raises_and_leaves_nothing(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    data = bytearray((tmp_path / "served" / "b.bin").read_bytes())
    data[1000] ^= 0xFF  # same size, one flipped byte
    (tmp_path / "served" / "b.bin").write_bytes(bytes(data))
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumError) as err:
        fetch(spec, dest, base_url=serve(tmp_path / "served"), progress=False)
    message = str(err.value)
    assert "b.bin" in message and spec.files[1].sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message
    assert not (dest / "b.bin").exists() and leftovers(dest) == []
    assert (dest / "a.txt").exists()  # verified before the failure: kept for the re-run


def test_oversized_download_is_cut_short(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    (tmp_path / "served" / "a.txt").write_bytes(b"alpha\n" * 100_000)
    with pytest.raises(
        ChecksumError, match=r"a\.txt: sha256 mismatch .*\(more than the expected 6 bytes"
    ):
        fetch(spec, tmp_path / "dest", base_url=serve(tmp_path / "served"), progress=False)
    assert leftovers(tmp_path / "dest") == []


def test_http_error_names_the_url(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    (tmp_path / "served" / "b.bin").unlink()
    url = serve(tmp_path / "served")
    with pytest.raises(DataError, match=rf"HTTP 404 .* fetching {url}b\.bin"):
        fetch(spec, tmp_path / "dest", base_url=url, progress=False)
    assert leftovers(tmp_path / "dest") == []


def test_timeout_names_the_url(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    url = serve(tmp_path / "served", slow=True)
    with pytest.raises(DataError, match=rf"timed out after 0.3s fetching {url}a\.txt"):
        fetch(spec, tmp_path / "dest", base_url=url, progress=False, timeout=0.3)
    assert leftovers(tmp_path / "dest") == []


def test_connection_refused_and_bad_scheme(tmp_path: Path) -> None:
    spec = small_spec(tmp_path / "served")
    with pytest.raises(DataError, match=r"cannot fetch http://127\.0\.0\.1:9/a\.txt"):
        fetch(spec, tmp_path / "dest", base_url="http://127.0.0.1:9/", progress=False, timeout=5)
    with pytest.raises(DataError, match="is not http"):
        fetch(spec, tmp_path / "dest", base_url="file:///etc/", progress=False)


def test_default_destination_is_the_data_home(
    tmp_path: Path, serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = small_spec(tmp_path / "served")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "home"))
    fetched = fetch(spec, base_url=serve(tmp_path / "served"), progress=False)
    assert fetched[0].path == tmp_path / "home" / "small" / "a.txt"


def test_known_specs() -> None:
    assert get_spec("food-kitchen") is FOOD_KITCHEN
    assert len(FOOD_KITCHEN.files) == 11
    assert FOOD_KITCHEN.url(FOOD_KITCHEN.files[0]).startswith(
        "https://raw.githubusercontent.com/xhran2010/LLMCDSR/857de8d516909c16e96e3b4630f18d5a093faadd/"
    )
    with pytest.raises(DataError, match="known: food-kitchen"):
        get_spec("movie-book")


def test_food_kitchen_from_a_local_mirror(
    tmp_path: Path, serve: Serve, food_kitchen_dir: Path
) -> None:
    """The real spec's sums match the published files; one corrupted file is caught."""
    mirror = tmp_path / "mirror"
    shutil.copytree(food_kitchen_dir, mirror)
    for path in mirror.iterdir():
        path.chmod(0o644)
    url = serve(mirror)
    dest = tmp_path / "home" / "food-kitchen"
    assert all(f.downloaded for f in fetch(FOOD_KITCHEN, dest, base_url=url, progress=False))
    assert verify(FOOD_KITCHEN, dest) == []
    assert not any(f.downloaded for f in fetch(FOOD_KITCHEN, dest, base_url=url, progress=False))

    with (mirror / "valid.txt").open("r+b") as f:
        f.seek(100)
        f.write(b"9")
    (dest / "valid.txt").unlink()
    with pytest.raises(ChecksumError, match=r"valid\.txt: sha256 mismatch"):
        fetch(FOOD_KITCHEN, dest, base_url=url, progress=False)
    assert not (dest / "valid.txt").exists() and leftovers(dest) == []
    assert verify(FOOD_KITCHEN, dest) == ["valid.txt"]


def test_local_write_problems_are_data_errors(tmp_path: Path, serve: Serve) -> None:
    spec = small_spec(tmp_path / "served")
    url = serve(tmp_path / "served")
    (tmp_path / "dest" / "a.txt").mkdir(parents=True)  # a directory where a file must go
    with pytest.raises(DataError, match=r"a\.txt: cannot write"):
        fetch(spec, tmp_path / "dest", base_url=url, progress=False)
    assert leftovers(tmp_path / "dest") == []
    (tmp_path / "blocker").write_text("")
    with pytest.raises(DataError, match="cannot create the data directory"):
        fetch(spec, tmp_path / "blocker" / "sub", base_url=url, progress=False)
