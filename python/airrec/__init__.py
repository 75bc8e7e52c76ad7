"""airrec: AIR (Atomic Intent Reasoning) for cross-domain recommendation.

An LLM turns behaviour into hierarchical intents offline; a Rust engine composes them into
target-aware intent vectors online, in microseconds.
"""

from __future__ import annotations

from airrec._airrec import FORMAT_VERSION, __version__
from airrec.engine import Context, Engine, Explanation, Histories, Slots, UserTree
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
    TreeBusyError,
    UnknownBehaviourError,
    UnknownItemError,
)

__all__ = [
    "FORMAT_VERSION",
    "__version__",
    "Context",
    "Engine",
    "Explanation",
    "Histories",
    "Slots",
    "UserTree",
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
    "TreeBusyError",
    "UnknownItemError",
]
