"""The exceptions airrec raises.

Everything airrec raises on purpose derives from :class:`AirrecError`, so a service can catch
one class. Errors about a caller's input also derive from :class:`ValueError` (or
:class:`TypeError` for a wrong dtype), so generic handlers keep working.

The Rust engine raises these same classes (it imports this module), so ``except
airrec.UnknownItemError`` works whether the error came from Python or from Rust.
"""

from __future__ import annotations

__all__ = [
    "AirrecError",
    "BundleError",
    "BundleChecksumError",
    "BundleVersionError",
    "ChecksumError",
    "ConfigError",
    "InputError",
    "InputTypeError",
    "UnknownItemError",
    "UnknownBehaviourError",
    "TreeBusyError",
    "DataError",
    "ModelError",
    "GenerationError",
]


class AirrecError(Exception):
    """Base class of every error airrec raises on purpose."""


class ChecksumError(AirrecError):
    """A file's sha256 differs from the expected one (a download, a bundle file, a model)."""


class BundleError(AirrecError):
    """A bundle directory is missing, malformed or inconsistent (shape, dtype, range, file)."""


class BundleChecksumError(BundleError, ChecksumError):
    """A bundle file's sha256 or size differs from its manifest: truncated or corrupted."""


class BundleVersionError(BundleError):
    """The bundle's format version is not one this build of airrec reads."""


class ConfigError(AirrecError, ValueError):
    """An engine or pipeline setting is out of range or of the wrong type."""


class InputError(AirrecError, ValueError):
    """A request's input is invalid: bad shape, negative k, non-finite value, ..."""


class InputTypeError(AirrecError, TypeError):
    """A request's input has the wrong type or dtype (e.g. float item ids)."""


class UnknownItemError(InputError):
    """An item id is outside ``[0, n_items)`` of the loaded bundle."""


class UnknownBehaviourError(InputError):
    """A behaviour id is outside the behaviour types configured in the bundle."""


class TreeBusyError(InputError):
    """A :class:`~airrec.UserTree` got an event while another thread was reading it (a score,
    explain or retrieve runs with the GIL released). A tree has one owner: add from the thread
    that owns it, or give each thread its own tree."""


class DataError(AirrecError):
    """A dataset file is missing or malformed; the message names the file and line."""


class ModelError(AirrecError):
    """A model cannot be found, verified or loaded."""


class GenerationError(AirrecError):
    """LLM intent generation failed in a way that retrying cannot fix."""
