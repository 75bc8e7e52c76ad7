"""Load the ``{str: int}`` / ``{str: str}`` pickles of the LLMCDSR release without running code.

LLMCDSR ships its item maps and titles as pickles downloaded from the internet. A plain
``pickle.load`` would execute whatever callable the file names (``os.system`` and friends)
before we could look at the result. Every pickle opcode that can reach a callable (GLOBAL,
STACK_GLOBAL, INST, OBJ, EXT*) goes through :meth:`pickle.Unpickler.find_class`, so an
unpickler whose ``find_class`` always raises can only build the built-in containers and
scalars. Those files hold nothing else, and we check the result's type on top.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import NoReturn, TypeVar

from airrec.errors import DataError

__all__ = ["load_str_dict", "load_str_int_dict", "load_str_str_dict", "refuse_globals_loads"]

_V = TypeVar("_V", int, str)


class _NoGlobalsUnpickler(pickle.Unpickler):
    """An unpickler that refuses every global and persistent reference."""

    def __init__(self, data: bytes, source: str) -> None:
        self.stream = io.BytesIO(data)
        super().__init__(self.stream)
        self._source = source

    def find_class(self, module: str, name: str) -> NoReturn:
        raise DataError(
            f"{self._source}: the pickle refers to the global {module}.{name}; refusing to "
            "load it (only plain dicts of str/int are accepted, and globals can run code)"
        )

    def persistent_load(self, pid: object) -> NoReturn:
        raise DataError(f"{self._source}: the pickle uses persistent ids; refusing to load it")


def refuse_globals_loads(data: bytes, source: str = "<bytes>") -> object:
    """Unpickle ``data`` allowing only built-in containers and scalars.

    ``source`` names the file in error messages. Raises :class:`DataError` for a pickle that
    names any global, is truncated or malformed, or has bytes after its end.
    """
    unpickler = _NoGlobalsUnpickler(data, source)
    try:
        result = unpickler.load()
    except DataError:
        raise
    except RecursionError:
        raise DataError(f"{source}: the pickle is nested too deeply") from None
    except Exception as exc:
        raise DataError(f"{source}: not a valid pickle ({type(exc).__name__}: {exc})") from None
    trailing = len(data) - unpickler.stream.tell()
    if trailing:
        raise DataError(f"{source}: {trailing} unexpected bytes after the end of the pickle")
    return result


def load_str_dict(path: str | Path, value_type: type[_V]) -> dict[str, _V]:
    """Load a pickled ``dict`` whose keys are ``str`` and values are ``value_type``.

    Raises :class:`DataError` naming the file when it is missing, unreadable, holds a global,
    or holds anything but such a dict (the first offending key is quoted).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None
    result = refuse_globals_loads(data, str(path))
    if type(result) is not dict:
        raise DataError(f"{path}: expected a pickled dict, found {type(result).__name__}")
    for key, value in result.items():
        # `type(...) is` rather than isinstance: bool is an int subclass and must not pass.
        if type(key) is not str:
            raise DataError(f"{path}: key {key!r} is a {type(key).__name__}, expected str")
        if type(value) is not value_type:
            raise DataError(
                f"{path}: value of {key!r} is a {type(value).__name__}, "
                f"expected {value_type.__name__}"
            )
    return result


def load_str_int_dict(path: str | Path) -> dict[str, int]:
    """Load a pickled ``{str: int}`` (LLMCDSR's ``item_set_{A,B}.pkl``: asin → index)."""
    return load_str_dict(path, int)


def load_str_str_dict(path: str | Path) -> dict[str, str]:
    """Load a pickled ``{str: str}`` (LLMCDSR's ``text_{A,B}.pkl``: asin → title)."""
    return load_str_dict(path, str)
