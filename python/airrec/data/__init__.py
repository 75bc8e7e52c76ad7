"""Datasets for the offline pipeline: readers, the in-memory :class:`Dataset`, downloads."""

from __future__ import annotations

from airrec.data.dataset import Dataset, History, ItemTable, Split
from airrec.data.llmcdsr import read_llmcdsr

__all__ = ["Dataset", "History", "ItemTable", "Split", "read_llmcdsr"]
