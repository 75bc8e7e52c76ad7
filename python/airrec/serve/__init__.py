"""Serving airrec from a Python host: an HTTP service with hot reload, and its load test.

- :mod:`airrec.serve.registry` — :class:`EngineRegistry`: the current engine, swapped
  atomically on reload (usable without HTTP, by any host service).
- :mod:`airrec.serve.app` — :func:`create_app`: the FastAPI app (score / retrieve / explain /
  admin reload / healthz); status codes in :mod:`airrec.serve.errors`.
- :mod:`airrec.serve.server` — ``python -m airrec.serve.server --bundle DIR``: run it (uvicorn).
- :mod:`airrec.serve.loadtest` — a bounded loopback load test with a reload in the middle.

Needs the ``serve`` extra (fastapi, uvicorn, httpx); :mod:`airrec.serve.registry` does not.
"""

from __future__ import annotations

from airrec.serve.registry import EngineRegistry, Loaded, ReloadInProgressError, ReloadTimeoutError

__all__ = ["EngineRegistry", "Loaded", "ReloadInProgressError", "ReloadTimeoutError"]
