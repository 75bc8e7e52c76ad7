"""Small file helpers shared by every stage: streamed sha256, atomic writes, TOML parsing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 (tomli is a dependency there)
    import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed (bundles, data files and models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_text(text: str) -> str:
    """Hex sha256 of a text's UTF-8 bytes (item texts: the generation cache, intents keys)."""
    return hashlib.sha256(text.encode()).hexdigest()


def safe_name(text: str) -> str:
    """``text`` usable as one file or directory name: characters other than letters, digits
    and ``-_.`` become ``_`` (dataset names in cache paths)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """A binary file that becomes ``path`` only when the block succeeds: the project's one way
    to write a file a reader (or a crash) must never see half-written.

    The data go to a uniquely named temporary file beside ``path`` (same filesystem, so the
    rename is atomic; unique, so two writers never share it), which is flushed and fsync'd,
    renamed over ``path``, and the directory fsync'd so the rename itself survives a power
    cut. On any error the temporary file is removed and ``path`` is left as it was.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(out.parent)


def write_atomic(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Writes ``data`` (``str`` as UTF-8) to ``path`` through :func:`atomic_writer`."""
    with atomic_writer(path) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Writes `obj` as indented JSON through :func:`atomic_writer`."""
    return write_atomic(path, json.dumps(obj, indent=2) + "\n")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - filesystems that refuse it
        pass
    finally:
        os.close(fd)


def parse_toml(text: str) -> dict[str, Any]:
    """A TOML document as a dict (``tomllib``, or ``tomli`` on Python 3.10): the one TOML reader
    of the package. Malformed text raises ``ValueError`` (``TOMLDecodeError`` is one)."""
    data: dict[str, Any] = tomllib.loads(text)
    return data
