"""One call to get the Amazon Food–Kitchen dataset the paper and LLMCDSR report on.

It lives in ``<data home>/food-kitchen`` (see :mod:`airrec.data.home`). If the files are
not there, the error says how to get them rather than guessing another location: data
locations are explicit (flag > ``AIRREC_DATA_HOME`` > default cache).
"""

from __future__ import annotations

from pathlib import Path

from airrec.data.dataset import Dataset
from airrec.data.fetch import FOOD_KITCHEN, fetch, verify
from airrec.data.home import ENV_VAR, dataset_dir
from airrec.data.llmcdsr import read_llmcdsr
from airrec.errors import ChecksumError, DataError

__all__ = ["FOOD_KITCHEN_DOMAINS", "load_food_kitchen"]

#: Domain A is Amazon "Grocery & Gourmet Food", domain B "Home & Kitchen".
FOOD_KITCHEN_DOMAINS = ("Food", "Kitchen")


def load_food_kitchen(
    data_home: str | Path | None = None,
    *,
    download: bool = False,
    check_sums: bool = False,
    progress: bool = True,
) -> Dataset:
    """Load Food–Kitchen from ``data_home`` (default: see :func:`airrec.data.data_home`).

    ``download=True`` fetches missing or corrupted files first (needs a network).
    ``check_sums=True`` verifies the sha256 of every file before reading (~10 ms), which
    catches a hand-copied or edited directory that still parses.
    """
    directory = dataset_dir(FOOD_KITCHEN.name, data_home)
    if download:
        fetch(FOOD_KITCHEN, directory, progress=progress)
    elif not (directory / "num.txt").is_file():
        raise DataError(
            f"{directory}: Food–Kitchen not found; run `airrec data fetch {FOOD_KITCHEN.name}`, "
            f"pass download=True, or point {ENV_VAR} (or the --data-home flag) at a directory "
            f"holding {FOOD_KITCHEN.name}/"
        )
    if check_sums:
        bad = verify(FOOD_KITCHEN, directory)
        if bad:
            raise ChecksumError(
                f"{directory}: missing or modified: {', '.join(bad)}; re-fetch with "
                f"`airrec data fetch {FOOD_KITCHEN.name}`"
            )
    return read_llmcdsr(directory, name=FOOD_KITCHEN.name, domain_names=FOOD_KITCHEN_DOMAINS)
