"""airrec: AIR (Atomic Intent Reasoning) for cross-domain recommendation.

An LLM turns behaviour into hierarchical intents offline; a Rust engine composes them into
target-aware intent vectors online, in microseconds.
"""

from __future__ import annotations

from airrec.errors import (
    AirrecError,
    BundleChecksumError,
    BundleError,
    BundleVersionError,
    ChecksumError,
    ConfigError,
    DataError,
    GenerationError,
    InputError,
    InputTypeError,
    ModelError,
    UnknownBehaviourError,
    UnknownItemError,
)

__all__ = [
    "AirrecError",
    "BundleChecksumError",
    "BundleError",
    "BundleVersionError",
    "ChecksumError",
    "ConfigError",
    "DataError",
    "GenerationError",
    "InputError",
    "InputTypeError",
    "ModelError",
    "UnknownBehaviourError",
    "UnknownItemError",
]
