"""Datasets for the offline pipeline: readers, the in-memory :class:`Dataset`, downloads.

Every reader returns the same :class:`Dataset` (item table + train/valid/test CSR splits):

* :func:`read_llmcdsr` — the LLMCDSR/C2DSR text format (the published Food–Kitchen split);
  :func:`load_food_kitchen` finds it under the data home.
* :func:`read_tables` — an interactions table plus an items table, CSV or Parquet.
* :func:`read_recbole` — RecBole atomic files (``.inter``/``.item``).

:func:`data_home` says where data lives; :func:`fetch` downloads and verifies a
:class:`DatasetSpec` such as :data:`FOOD_KITCHEN`.
"""

from __future__ import annotations

from airrec.data.dataset import Dataset, History, ItemTable, Split, SplitName
from airrec.data.fetch import (
    DATASETS,
    FOOD_KITCHEN,
    DatasetSpec,
    FetchedFile,
    RemoteFile,
    fetch,
    get_spec,
    sha256_file,
    verify,
)
from airrec.data.food_kitchen import FOOD_KITCHEN_DOMAINS, load_food_kitchen
from airrec.data.home import ENV_VAR, data_home, dataset_dir
from airrec.data.llmcdsr import read_llmcdsr
from airrec.data.recbole import RecBoleFiles, read_recbole
from airrec.data.split import LeaveOneOut, leave_one_out
from airrec.data.tables import read_tables

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "FOOD_KITCHEN",
    "FOOD_KITCHEN_DOMAINS",
    "Dataset",
    "DatasetSpec",
    "FetchedFile",
    "History",
    "ItemTable",
    "LeaveOneOut",
    "RecBoleFiles",
    "RemoteFile",
    "Split",
    "SplitName",
    "data_home",
    "dataset_dir",
    "fetch",
    "get_spec",
    "leave_one_out",
    "load_food_kitchen",
    "read_llmcdsr",
    "read_recbole",
    "read_tables",
    "sha256_file",
    "verify",
]
