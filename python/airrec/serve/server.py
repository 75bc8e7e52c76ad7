"""Run the HTTP service with uvicorn: ``python -m airrec.serve.server --bundle DIR``.

Without ``--bundle`` it builds a small synthetic bundle in a temporary directory, so the
service can be tried (and load-tested) with nothing else at hand. It binds 127.0.0.1 by
default. ``/admin/reload`` is off unless an admin token is configured (``--admin-token-file``
or ``$AIRREC_ADMIN_TOKEN``); it then loads only bundles under ``--bundle-root`` (default: the
directory holding ``--bundle``) and gives up on a load after ``--reload-timeout`` seconds.

One uvicorn worker is the right shape: endpoints run in uvicorn's thread pool and the engine
releases the GIL, so one process uses every core, loads the bundle once, and reloads in one
place. (Several workers would each hold and reload their own copy.)
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["admin_token", "main", "synthetic_bundle"]


def synthetic_bundle(directory: str | os.PathLike[str], seed: int = 1) -> Path:
    """A small synthetic bundle (300 nodes, 120 items, 2 domains) in ``directory``/bundle-<seed>.

    Bundles of different seeds have the same ids and domains but different vectors, so a
    reload between them changes every score: handy to see which version answered.
    """
    from airrec.synthetic import make_synthetic_bundle

    return make_synthetic_bundle(
        Path(directory) / f"bundle-{seed}",
        n_nodes=300, n_items=120, dim=16, n_heads=2, depth=3, paths_per_item=2, seed=seed,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The service's options, on ``airrec serve``'s sub-parser or this module's own."""
    p.add_argument("--bundle", type=Path, help="bundle directory (default: a synthetic one in a temp dir)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-history", type=int, default=1000, help="events per request")
    p.add_argument("--max-candidates", type=int, default=1000, help="candidates per /score request")
    p.add_argument("--max-k", type=int, default=1000, help="largest k of /retrieve")
    p.add_argument("--admin-token-file", type=Path, default=None,
                   help="file holding the X-Admin-Token that enables /admin/reload "
                   "(default: $AIRREC_ADMIN_TOKEN; neither: reloads are disabled)")
    p.add_argument("--bundle-root", type=Path, default=None,
                   help="reloads load only directories under this one (default: the parent of --bundle)")
    p.add_argument("--reload-timeout", type=float, default=120.0,
                   help="seconds a reload may take before it is refused (default 120)")
    p.add_argument("--access-log", action="store_true", help="log every request (off: load tests)")
    p.add_argument("--log-level", default="warning")


def parser() -> argparse.ArgumentParser:
    """``python -m airrec.serve.server``'s parser (the same options as ``airrec serve``)."""
    p = argparse.ArgumentParser(prog="python -m airrec.serve.server", description=__doc__.split("\n")[0])
    add_arguments(p)
    return p


def admin_token(path: Path | None, p: argparse.ArgumentParser) -> str | None:
    """The token from ``path`` (stripped), else ``$AIRREC_ADMIN_TOKEN``, else ``None``; an
    unreadable or empty file is a usage error, never a silently open or closed endpoint."""
    if path is None:
        return os.environ.get("AIRREC_ADMIN_TOKEN") or None
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as e:
        p.error(f"cannot read --admin-token-file: {e}")
    if not token:
        p.error("--admin-token-file is empty")
    return token


def main(argv: Sequence[str] | None = None) -> None:
    """Parses arguments, loads the bundle and serves until interrupted."""
    p = parser()
    serve(p.parse_args(argv), p)


def serve(args: argparse.Namespace, p: argparse.ArgumentParser) -> int:
    """Loads the bundle and serves until interrupted (``p`` reports usage errors)."""
    import uvicorn

    from airrec.serve.app import create_app

    token = admin_token(args.admin_token_file, p)
    with tempfile.TemporaryDirectory(prefix="airrec-serve-") as tmp:
        bundle = args.bundle if args.bundle is not None else synthetic_bundle(tmp)
        app = create_app(
            bundle, max_history=args.max_history, max_candidates=args.max_candidates,
            max_k=args.max_k, admin_token=token, bundle_root=args.bundle_root,
            reload_timeout_s=args.reload_timeout,
        )
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                    access_log=args.access_log)
    return 0


if __name__ == "__main__":
    main()
