"""``airrec build``: dataset + intents file -> bundle, from the command line.

Wire it into the main parser with::

    sub = subparsers.add_parser("build", help="build a bundle from intents")
    add_build_arguments(sub)
    sub.set_defaults(func=run_build)

Settings come from, lowest to highest precedence: the defaults of
:func:`airrec.kb.build_bundle`, a TOML file (``--config``: a ``[build]`` table with the
keys of :data:`BUILD_KEYS` and an ``[engine]`` table of engine settings,
docs/online-path.md §6), then explicit flags.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airrec._files import parse_toml
from airrec.errors import AirrecError, ConfigError
from airrec.kb.build import BuildReport, build_bundle
from airrec.kb.embed import Embedder, LlamaCppEmbedder, SentenceTransformerEmbedder

__all__ = ["BUILD_KEYS", "add_build_arguments", "default_cache_dir", "embedder_factory", "make_embedder", "run_build"]

#: Keys of the ``[build]`` table and their types.
BUILD_KEYS: dict[str, tuple[type, ...]] = {
    "embedder": (str,), "dim": (int, type(None)), "merge_threshold": (float, int, type(None)),
    "merge_plurals": (bool,), "n_heads": (int,), "attn_dim": (int, type(None)), "seed": (int,),
    "batch_size": (int,), "cache_dir": (str,),
}


def default_cache_dir() -> Path:
    """``$AIRREC_CACHE_DIR/embeddings``, else ``~/.cache/airrec/embeddings``."""
    root = os.environ.get("AIRREC_CACHE_DIR") or os.path.join("~", ".cache", "airrec")
    return Path(os.path.expandvars(os.path.expanduser(root))) / "embeddings"


def embedder_factory(spec: str) -> Callable[[], Embedder]:
    """A picklable callable that builds the embedder of ``spec`` (Ray actors build their own):
    ``minilm`` (all-MiniLM-L6-v2 from its package), ``st:DIR`` (a sentence-transformers
    directory) or ``gguf:PATH`` (llama.cpp)."""
    if spec == "minilm":
        return SentenceTransformerEmbedder
    if spec.startswith("st:"):
        return functools.partial(SentenceTransformerEmbedder, spec[3:])
    if spec.startswith("gguf:"):
        return functools.partial(LlamaCppEmbedder, spec[5:])
    raise ConfigError(f"unknown embedder {spec!r}: use minilm, st:DIR or gguf:PATH")


def make_embedder(spec: str, *, ray: str | None = None, actors: int | None = None) -> Embedder:
    """The embedder of ``spec`` (see :func:`embedder_factory`); with ``ray`` (an address or
    ``local``) its work runs in Ray actors (:class:`airrec.kb.ray_embed.RayEmbedder`)."""
    factory = embedder_factory(spec)
    if ray is None:
        return factory()
    from airrec.kb.ray_embed import RayEmbedder

    return RayEmbedder(factory, address=ray, actors=actors)


_OFF = -2.0


def _threshold(text: str) -> float:
    return _OFF if text.lower() in ("none", "off") else float(text)


_NATIVE = -1


def _dim(text: str) -> int:
    return _NATIVE if text.lower() in ("none", "native") else int(text)


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``airrec build`` flags to ``parser``."""
    from airrec.data.source import add_dataset_arguments

    add_dataset_arguments(parser, default=None)
    parser.add_argument("--intents", type=Path, required=True, help="intents JSONL(.gz) file")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    parser.add_argument("--embedder", help="minilm (default), st:DIR or gguf:PATH")
    parser.add_argument("--dim", type=_dim, help="PCA dimension (default 64; 'native' keeps it)")
    parser.add_argument("--merge-threshold", type=_threshold,
                        help="cosine for merging sibling phrases (default 0.9; 'off')")
    parser.add_argument("--config", type=Path, help="TOML with [build] and [engine] tables")
    parser.add_argument("--cache-dir", type=Path, help=f"embedding cache (default {default_cache_dir()})")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the cache")
    parser.add_argument("--seed", type=int, help="seed of the projection and composition init")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    parser.add_argument("--report", type=Path, help="also write the build report (JSON) here")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--ray", metavar="ADDRESS",
                        help="embed on Ray: 'local' (an in-process cluster) or a cluster address")
    parser.add_argument("--ray-actors", type=int, metavar="N", help="embedding actors (default: one per CPU)")


def _read_config(path: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if path is None:
        return {}, {}
    try:
        data = parse_toml(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read config {path}: {e}") from e
    unknown = sorted(set(data) - {"build", "engine"})
    if unknown:
        raise ConfigError(f"{path}: unknown tables {unknown} (expected [build], [engine])")
    build, engine = dict(data.get("build", {})), dict(data.get("engine", {}))
    for key, value in build.items():
        if key not in BUILD_KEYS:
            raise ConfigError(f"{path}: unknown [build] key {key!r}; keys: {sorted(BUILD_KEYS)}")
        if (isinstance(value, bool) and bool not in BUILD_KEYS[key]) or not isinstance(
            value, BUILD_KEYS[key]
        ):
            raise ConfigError(f"{path}: [build] {key} has the wrong type: {value!r}")
    return build, engine


def _load_dataset(args: argparse.Namespace) -> Any:
    from airrec.data.source import source_from_args

    return source_from_args(args).load(progress=not args.quiet)


def run_build(args: argparse.Namespace) -> int:
    """Run ``airrec build``; prints the report summary, returns the exit code (0)."""
    build, engine = _read_config(args.config)
    settings: dict[str, Any] = {"embedder": "minilm", "dim": 64, "merge_threshold": 0.9,
                                "merge_plurals": True, "n_heads": 4, "attn_dim": None,
                                "seed": 0, "batch_size": 64, **build}
    for flag in ("embedder", "dim", "merge_threshold", "seed"):
        if getattr(args, flag) is not None:
            settings[flag] = getattr(args, flag)
    if settings["dim"] == _NATIVE:
        settings["dim"] = None
    if settings["merge_threshold"] == _OFF:
        settings["merge_threshold"] = None
    cache: Path | None = None
    if not args.no_cache:
        cache = args.cache_dir or (Path(build["cache_dir"]) if "cache_dir" in build
                                   else default_cache_dir())
    dataset = _load_dataset(args)
    report: BuildReport = build_bundle(
        dataset, args.intents, args.out,
        embedder=make_embedder(settings["embedder"], ray=args.ray, actors=args.ray_actors),
        dim=settings["dim"], merge_threshold=settings["merge_threshold"],
        merge_plurals=settings["merge_plurals"], config=engine or None,
        n_heads=settings["n_heads"], attn_dim=settings["attn_dim"], seed=settings["seed"],
        cache_dir=cache, batch_size=settings["batch_size"], overwrite=args.overwrite,
        progress=not args.quiet,
    )
    print(report.summary())
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry point (``python -m airrec.kb.cli``) until the main CLI wires it."""
    parser = argparse.ArgumentParser(prog="airrec build", description=__doc__.split("\n")[0])
    add_build_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_build(args)
    except AirrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
