"""Offline LLM intent generation: (behaviour, item text) → 1–3 hierarchical intent paths.

The pipeline: :func:`resolve_model` finds and verifies a GGUF (presets ship on PyPI);
:class:`PromptTemplate` holds the versioned few-shot prompt and output grammar;
:class:`IntentGenerator` decodes many items at once over a shared, once-evaluated prefix;
:func:`generate_intents` streams answers into a crash-safe SQLite cache (resumable,
shardable, mergeable); :func:`export_intents` writes the committed ``intents.jsonl.gz``
in the format :mod:`airrec.kb.intents` owns (read back with ``read_intents``).
"""

from __future__ import annotations

from airrec.generate.bench import bench_generate
from airrec.generate.cache import IntentCache, cache_key, merge_caches, parse_shard, shard_of
from airrec.generate.export import export_intents
from airrec.generate.models import PRESETS, ResolvedModel, model_cache_dir, resolve_model
from airrec.generate.parse import ParsedIntents, clean_phrase, parse_intents
from airrec.generate.prompts import DEFAULT_PROMPT, Example, PromptTemplate, load_prompt
from airrec.generate.quality import QualityTally, quality_of
from airrec.generate.ray_runner import generate_intents_ray
from airrec.generate.runner import (
    GenerationSummary,
    IntentGenerator,
    Outcome,
    Unit,
    generate_intents,
    units_for,
)

__all__ = [
    "DEFAULT_PROMPT",
    "PRESETS",
    "Example",
    "GenerationSummary",
    "IntentCache",
    "IntentGenerator",
    "Outcome",
    "ParsedIntents",
    "PromptTemplate",
    "QualityTally",
    "ResolvedModel",
    "Unit",
    "bench_generate",
    "cache_key",
    "export_intents",
    "generate_intents",
    "generate_intents_ray",
    "load_prompt",
    "merge_caches",
    "model_cache_dir",
    "clean_phrase",
    "parse_intents",
    "parse_shard",
    "quality_of",
    "resolve_model",
    "shard_of",
    "units_for",
]
