"""Download public datasets over HTTP(S) and verify them against pinned sha256 sums.

Why this shape:

* **Pinned sums, pinned commit.** The URL names a fixed upstream commit and every file has a
  sha256, so a user's copy is byte-identical to the one the reported numbers came from, and
  a proxy, mirror or upstream change cannot silently alter the data.
* **Nothing half-written.** Each file streams into a hidden temporary file in the destination
  directory (same filesystem, so the final ``os.replace`` is atomic), hashed as it arrives;
  only a verified file gets its real name. A failed, corrupted or interrupted download
  removes its temporary file, so the directory holds complete files or nothing.
* **Idempotent.** Files already present with the right sum are not downloaded again, so
  re-running after a network failure only fetches what is missing.
* **stdlib only** (``urllib``): it honours the usual ``HTTP(S)_PROXY`` variables and needs no
  extra dependency; ``base_url`` points it at a mirror (or a local server in tests).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

from airrec._files import atomic_writer, sha256_file
from airrec.data.home import dataset_dir
from airrec.errors import ChecksumError, DataError

__all__ = [
    "DATASETS",
    "FOOD_KITCHEN",
    "DatasetSpec",
    "FetchedFile",
    "RemoteFile",
    "fetch",
    "get_spec",
    "sha256_file",
    "verify",
]

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, sha256 (lower-case hex) and size in bytes if known."""

    name: str
    sha256: str
    size: int | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """A downloadable dataset: its directory name under the data home, URL prefix and files."""

    name: str
    base_url: str
    files: tuple[RemoteFile, ...]
    description: str = ""

    def url(self, file: RemoteFile, base_url: str | None = None) -> str:
        """The URL of ``file``, under ``base_url`` when given (a mirror) else the spec's."""
        base = base_url if base_url is not None else self.base_url
        return base.rstrip("/") + "/" + urllib.parse.quote(file.name)


class FetchedFile(NamedTuple):
    """Outcome for one file: where it is and whether this call downloaded it."""

    name: str
    path: Path
    downloaded: bool


def _parse_sums(table: str) -> tuple[RemoteFile, ...]:
    """Files from ``sha256  name  size`` lines (``sha256sum`` output plus the size)."""
    files = []
    for line in table.strip().splitlines():
        digest, name, size = line.split()
        files.append(RemoteFile(name, digest, int(size)))
    return tuple(files)


# Sums as in DESIGN.md §3 (LLMCDSR commit 857de8d, data/food-kitchen/).
_FOOD_KITCHEN_SUMS = """
ddf19800d60c1320b74a4507d88592b79eaa12c2b33c26620bc526c6e0dc5bee  num.txt                 11
ef7ec64ba0d9bab809e56deec57bd710621681d0b5c63c4febf555f04a0c27b5  instance_num.txt        17
510aa4c2b8cc6fc37ccb0b56dbc33d56eb96583a580463b19f941ddb9d31a5d5  item_set_A.pkl      138370
96f1ff3d4604e79a416796fae5bc9df2828f06657961aa641d0c6f7f33a4a93b  item_set_B.pkl      442060
adc2883e8ea4acee1e5d3e06126549753d640095747a82537959ff11600bcd5c  text_A.pkl          706631
dd467587886f342cf9add91c463fb06c0cc2ab414d72b52eacc18a63bf3833ff  text_B.pkl         2132336
4b39bfa69d9d001938d7ec32853928e51a53c141a95f3b698b052eb27821c3ad  train_A.txt         201449
bab4611796a5c077baf29d6c5f4a70c40cd25e38bb90e9d85035b8c1f06c7a93  train_B.txt        1774169
0375a8e5c049b9377c1199bda2d0de270e989f1cdf08ff21e4d120ec4a5b5986  train_overlap.txt   560265
6d93b5025ad65efef71f0b2e1beaa5899f5ed8f8fd95da96de1286f5b8cb0074  valid.txt            96861
bdc978617810e6bf9f6eac31260e0688169c0c1cdf34cbf395774f3896e37aa4  test.txt             86602
"""

FOOD_KITCHEN = DatasetSpec(
    name="food-kitchen",
    base_url=(
        "https://raw.githubusercontent.com/xhran2010/LLMCDSR/"
        "857de8d516909c16e96e3b4630f18d5a093faadd/data/food-kitchen/"
    ),
    description=(
        "Amazon Food (Grocery & Gourmet Food) - Kitchen (Home & Kitchen), the split published "
        "with LLMCDSR (commit 857de8d); read it with airrec.data.read_llmcdsr"
    ),
    files=_parse_sums(_FOOD_KITCHEN_SUMS),
)

#: Datasets ``fetch`` knows by name (what ``airrec data fetch NAME`` offers).
DATASETS: Mapping[str, DatasetSpec] = MappingProxyType({FOOD_KITCHEN.name: FOOD_KITCHEN})


def get_spec(name: str) -> DatasetSpec:
    """The spec of a known dataset, or a DataError listing the known names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def _is_valid(path: Path, file: RemoteFile) -> bool:
    """Whether ``path`` already holds exactly ``file`` (size checked first: it is free)."""
    try:
        if not path.is_file() or (file.size is not None and path.stat().st_size != file.size):
            return False
        return sha256_file(path) == file.sha256.lower()
    except OSError:
        return False


def verify(spec: DatasetSpec, directory: str | Path) -> list[str]:
    """Names of ``spec``'s files that are missing from ``directory`` or differ from their sums."""
    root = Path(directory)
    return [f.name for f in spec.files if not _is_valid(root / f.name, f)]


def _network_error(url: str, timeout: float, exc: BaseException) -> DataError:
    """A DataError naming ``url`` for anything that went wrong on the network side."""
    if isinstance(exc, urllib.error.HTTPError):
        return DataError(f"HTTP {exc.code} {exc.reason} fetching {url}")
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return DataError(f"timed out after {timeout:g}s fetching {url}")
    if isinstance(exc, urllib.error.URLError):
        return DataError(f"cannot fetch {url}: {reason}")
    return DataError(f"connection failed fetching {url}: {exc!r}")


def _stream(url: str, timeout: float, limit: int | None) -> Iterator[bytes]:
    """Yield the body of ``url`` in chunks, at most ``limit`` bytes; network errors → DataError.

    Only the network calls are guarded here, so a local write error (disk full) is not
    misreported as a network problem.
    """
    request = urllib.request.Request(url, headers={"User-Agent": "airrec-fetch"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            while True:
                want = _CHUNK if limit is None else min(_CHUNK, limit - received)
                chunk = response.read(want) if want > 0 else b""
                if not chunk:
                    return
                received += len(chunk)
                yield chunk
    except (OSError, http.client.HTTPException) as exc:
        raise _network_error(url, timeout, exc) from None


def _download(url: str, file: RemoteFile, dest: Path, timeout: float, bar: tqdm) -> None:
    """Stream ``url`` into a temp file next to ``dest``, verify, then rename it into place."""
    try:
        digest = hashlib.sha256()
        received = 0
        # One byte past the expected size is enough to know the file is wrong.
        limit = None if file.size is None else file.size + 1
        with atomic_writer(dest) as out:
            for chunk in _stream(url, timeout, limit):
                digest.update(chunk)
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            actual = digest.hexdigest()
            if actual != file.sha256.lower():
                got = f"{received} bytes"
                if limit is not None and received >= limit:
                    got = f"more than the expected {file.size} bytes; stopped reading"
                # Raised inside the writer: the download never becomes ``dest``.
                raise ChecksumError(
                    f"{file.name}: sha256 mismatch for {url}: expected {file.sha256.lower()}, "
                    f"got {actual} ({got}); the download was discarded"
                )
            os.fchmod(out.fileno(), 0o644)
    except OSError as exc:
        raise DataError(f"{dest}: cannot write: {exc.strerror or exc}") from None


def fetch(
    spec: DatasetSpec,
    dest_dir: str | Path | None = None,
    *,
    base_url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> list[FetchedFile]:
    """Download ``spec``'s files into ``dest_dir`` and verify their sha256 sums.

    ``dest_dir`` defaults to ``data_home() / spec.name`` (see :mod:`airrec.data.home`).
    ``base_url`` replaces the spec's URL prefix (a mirror, or a local server in tests).
    Files already present with the right sum are skipped; a present file with a wrong sum
    is replaced. ``timeout`` is per network operation, in seconds.

    Raises :class:`ChecksumError` (naming file, expected and actual sums) when a download
    does not match, and :class:`DataError` (naming the URL) for HTTP errors, timeouts and
    connection failures. Either way the file's partial download is removed; files verified
    before the failure stay, so a re-run continues where this one stopped.
    """
    base = base_url if base_url is not None else spec.base_url
    scheme = urllib.parse.urlsplit(base).scheme.lower()
    if scheme not in ("http", "https"):
        raise DataError(f"{spec.name}: base URL {base!r} is not http(s)")
    root = Path(dest_dir).expanduser() if dest_dir is not None else dataset_dir(spec.name)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(
            f"{root}: cannot create the data directory: {exc.strerror or exc}"
        ) from None

    results: list[FetchedFile] = []
    todo: list[RemoteFile] = []
    for file in spec.files:
        if _is_valid(root / file.name, file):
            results.append(FetchedFile(file.name, root / file.name, False))
        else:
            todo.append(file)
    sizes = [f.size for f in todo]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=spec.name,
        disable=not progress or not todo,
    ) as bar:
        for file in todo:
            bar.set_postfix_str(file.name, refresh=False)
            _download(spec.url(file, base), file, root / file.name, timeout, bar)
            results.append(FetchedFile(file.name, root / file.name, True))
    order = {f.name: k for k, f in enumerate(spec.files)}
    return sorted(results, key=lambda r: order[r.name])
