"""An HTTP recommendation service in ~40 lines: airrec behind FastAPI + uvicorn.

Run it (needs the ``serve`` extra: fastapi, uvicorn, httpx)::

    python examples/http_service.py --bundle path/to/bundle --port 8000
    python examples/http_service.py            # no bundle: builds a small synthetic one

Then, from another shell::

    # scores of candidates 4 and 5 for a user who saw items 1, 2, 3 (oldest first)
    curl -s localhost:8000/score -H 'content-type: application/json' \
         -d '{"items": [1, 2, 3], "candidates": [4, 5]}'
    # -> {"version":1,"scores":[1.0567...,1.1255...]}

    # events with behaviour types and timestamps (all events timestamped, or none)
    curl -s localhost:8000/score -H 'content-type: application/json' \
         -d '{"history": [{"item": 1, "behaviour": 0, "timestamp": 10.0},
                          {"item": 2, "timestamp": 12.5}], "candidates": [4]}'

    # top-5 items of domain "d0" (a name or an id), re-ranked target-aware from a pool of 100
    curl -s localhost:8000/retrieve -H 'content-type: application/json' \
         -d '{"items": [1, 2, 3], "domain": "d0", "k": 5, "pool": 100}'

    # why candidate 4 scores what it does: chains (phrases), evidence events, attention
    curl -s localhost:8000/explain -H 'content-type: application/json' \
         -d '{"items": [1, 2, 3], "candidate": 4}'

    # swap in a new bundle while serving (atomic; a bad bundle is refused with 422 and the
    # old version keeps serving); then see which version serves. Reloads are off unless the
    # service was started with AIRREC_ADMIN_TOKEN set, and load only bundles beside --bundle.
    curl -s localhost:8000/admin/reload -H 'content-type: application/json' \
         -H "X-Admin-Token: $AIRREC_ADMIN_TOKEN" -d '{"path": "new-bundle"}'
    curl -s localhost:8000/healthz

Every answer carries ``version``: the bundle version that computed it (1, then +1 per reload).
Client mistakes get a 4xx with ``{"error": code, "detail": message}``, never a 500: unknown
item or domain -> 422, malformed JSON -> 400, history or candidates over the limits -> 413,
negative k -> 422 (full table in ``airrec/serve/errors.py``).

The pieces, to embed in a service of your own: :class:`airrec.serve.EngineRegistry` holds the
engine and swaps it on reload; :func:`airrec.serve.app.create_app` is the FastAPI app.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import uvicorn

from airrec.serve.app import create_app
from airrec.synthetic import make_synthetic_bundle


def main() -> None:
    p = argparse.ArgumentParser(description="airrec HTTP service (example)")
    p.add_argument("--bundle", type=Path, help="bundle directory (default: build a synthetic one)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="airrec-example-") as tmp:
        bundle = args.bundle
        if bundle is None:
            bundle = make_synthetic_bundle(
                Path(tmp) / "bundle", n_nodes=300, n_items=120, dim=16, n_heads=2,
                depth=3, paths_per_item=2, seed=1,
            )
            print(f"serving a synthetic bundle from {bundle}")
        # Limits bound one request's work; the endpoints run in uvicorn's thread pool and the
        # engine releases the GIL, so a single worker process uses every core.
        app = create_app(bundle, max_history=1000, max_candidates=1000, max_k=1000,
                         admin_token=os.environ.get("AIRREC_ADMIN_TOKEN") or None)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
