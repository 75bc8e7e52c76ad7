"""Read a UTF-8 text file as lines, with errors that name the file and line.

Text-mode I/O decodes ahead of the line being parsed, so its ``UnicodeDecodeError`` cannot
say which line is bad; decoding the bytes ourselves can. Lines are split on ``\\n`` only
(``str.splitlines`` also splits on form feeds and Unicode separators, which would shift
line numbers), and a trailing ``\\r`` is dropped so CRLF files read the same.
"""

from __future__ import annotations

from pathlib import Path

from airrec.errors import DataError

__all__ = ["read_lines"]


def read_lines(path: Path) -> list[str]:
    """The file's lines without line endings (a leading UTF-8 BOM is ignored)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 text ({exc.reason})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
