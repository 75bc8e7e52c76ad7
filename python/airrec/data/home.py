"""Where airrec keeps datasets on disk.

Data never lives in the repository or the installed package: it is large, has its own
licence, and differs per machine. One setting decides where it is, with the usual precedence
of command-line tools: an explicit value (the CLI's ``--data-home`` flag) wins over the
``AIRREC_DATA_HOME`` environment variable, which wins over the default
``$XDG_CACHE_HOME/airrec/data`` (``~/.cache/airrec/data`` when ``XDG_CACHE_HOME`` is unset).
Each dataset is a subdirectory named after it, e.g. ``<data home>/food-kitchen``.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_VAR", "data_home", "dataset_dir"]

#: Environment variable that sets the data directory when no explicit path is given.
ENV_VAR = "AIRREC_DATA_HOME"


def data_home(explicit: str | Path | None = None) -> Path:
    """Resolve the data directory: ``explicit`` > ``$AIRREC_DATA_HOME`` > the cache default.

    Empty strings count as unset, ``~`` and ``$VARS`` are expanded, and the result is absolute.
    The directory is not created: readers fail clearly on a missing one, and ``fetch``
    creates it when it downloads.
    """
    chosen: str | Path | None = explicit if explicit not in (None, "") else None
    if chosen is None:
        chosen = os.environ.get(ENV_VAR) or None
    if chosen is None:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
        chosen = os.path.join(cache, "airrec", "data")
    expanded = os.path.expandvars(os.path.expanduser(os.fspath(chosen)))
    return Path(expanded).absolute()


def dataset_dir(name: str, explicit: str | Path | None = None) -> Path:
    """The directory of dataset ``name`` (e.g. ``"food-kitchen"``) under :func:`data_home`."""
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise ValueError(f"not a dataset name: {name!r}")
    return data_home(explicit) / name
