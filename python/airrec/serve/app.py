"""The HTTP service: a FastAPI app over an :class:`~airrec.serve.registry.EngineRegistry`.

Endpoints are plain ``def`` functions on purpose: FastAPI runs them in its thread pool, and the
engine releases the GIL for all its compute, so concurrent requests run on all cores while the
event loop keeps accepting connections. An ``async def`` endpoint would run the engine on the
event loop thread and serialise every request.

Each request reads ``registry.current`` once and uses that snapshot throughout (tree built with
the same engine that scores it); the ``version`` in the answer is that snapshot's, so a client
can always tell which bundle answered. Status codes: see :mod:`airrec.serve.errors`.
"""

from __future__ import annotations

import hmac
import os
from typing import Annotated, Any

from fastapi import FastAPI, Header

from airrec.errors import AirrecError
from airrec.serve.errors import ApiError, answering, install_handlers
from airrec.serve.limits import BodyLimit
from airrec.serve.models import (
    ExplainRequest,
    ExplainResponse,
    HealthResponse,
    HistoryRequest,
    ReloadRequest,
    ReloadResponse,
    RetrieveRequest,
    RetrieveResponse,
    ScoreRequest,
    ScoreResponse,
)
from airrec.serve.registry import EngineRegistry, Loaded, ReloadInProgressError

__all__ = ["create_app"]


def _check_size(name: str, n: int, limit: int) -> None:
    if n > limit:
        raise ApiError(413, "too_large", f"{name} has {n} entries; this service accepts at most {limit}")


def _check_bound(name: str, value: int, limit: int) -> None:
    if value > limit:
        raise ApiError(422, "limit", f"{name} = {value} exceeds this service's maximum of {limit}")


def create_app(
    bundle_path: str | os.PathLike[str] | EngineRegistry,
    *,
    max_history: int = 1000,
    max_candidates: int = 1000,
    max_k: int = 1000,
    max_pool: int = 10_000,
    max_body_bytes: int = 1 << 20,
    admin_token: str | None = None,
) -> FastAPI:
    """A FastAPI app serving score / retrieve / explain from one bundle, with hot reload.

    ``bundle_path`` is a bundle directory (loaded now, as version 1) or an existing registry
    (to share it with host code that reloads by itself). The limits bound one request's work:
    events in a history, candidates, ``k`` and ``pool``, and body bytes. With
    ``admin_token``, ``/admin/reload`` requires the header ``X-Admin-Token: <token>``; without
    it the endpoint is open, so bind such a service to loopback only.
    """
    registry = bundle_path if isinstance(bundle_path, EngineRegistry) else EngineRegistry(bundle_path)
    app = FastAPI(
        title="airrec",
        summary="AIR target-aware intent scores, top-k retrieval and explanations",
    )
    app.state.registry = registry
    install_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)

    def snapshot(req: HistoryRequest) -> Loaded:
        """The request's one engine snapshot, after the history-length check."""
        _check_size("history", req.n_events, max_history)
        return registry.current

    @app.post("/score")
    def score(req: ScoreRequest) -> ScoreResponse:
        """Scores of ``candidates`` for the user (built-in score head), in request order."""
        _check_size("candidates", len(req.candidates), max_candidates)
        snap = snapshot(req)
        with answering(snap.version):
            tree = snap.engine.tree(*req.events())
            scores = snap.engine.score(tree, req.candidates)
        return ScoreResponse(version=snap.version, scores=scores.tolist())

    @app.post("/retrieve")
    def retrieve(req: RetrieveRequest) -> RetrieveResponse:
        """Top-``k`` items of ``domain`` (id or name), best first; empty for an empty history."""
        _check_bound("k", req.k, max_k)
        _check_bound("pool", req.pool, max_pool)
        snap = snapshot(req)
        with answering(snap.version):
            tree = snap.engine.tree(*req.events())
            items, scores = snap.engine.retrieve(tree, req.domain, req.k, pool=req.pool, rerank=req.rerank)
        return RetrieveResponse(version=snap.version, items=items.tolist(), scores=scores.tolist())

    @app.post("/explain")
    def explain(req: ExplainRequest) -> ExplainResponse:
        """The chains (with phrases), evidence events and attention behind one score."""
        snap = snapshot(req)
        with answering(snap.version):
            tree = snap.engine.tree(*req.events())
            x = snap.engine.explain(tree, req.candidate)
        explanation: dict[str, Any] = {
            "candidate": x.candidate,
            "score": x.score,
            "chains": x.chains,
            "evidence": x.evidence,
            "null_attention": x.null_attention,
        }
        return ExplainResponse(version=snap.version, explanation=explanation)

    @app.post("/admin/reload")
    def reload(
        req: ReloadRequest, x_admin_token: Annotated[str | None, Header()] = None
    ) -> ReloadResponse:
        """Loads and validates ``path`` off to the side, then swaps it in atomically.

        A bad bundle is refused (422) and the current version keeps serving; a reload while
        another runs is refused (409) rather than queued.
        """
        if admin_token is not None and not hmac.compare_digest(
            (x_admin_token or "").encode(), admin_token.encode()
        ):
            raise ApiError(403, "forbidden", "missing or wrong X-Admin-Token")
        try:
            new = registry.reload(req.path, wait=False)
        except ReloadInProgressError as e:
            raise ApiError(409, "reload_in_progress", str(e), registry.current.version) from e
        except (AirrecError, OSError) as e:
            detail = f"bundle {req.path!r} refused, version {registry.current.version} keeps serving: {e}"
            raise ApiError(422, "bad_bundle", detail, registry.current.version) from e
        return ReloadResponse(version=new.version, bundle=new.path, manifest_sha256=new.manifest_sha256)

    @app.get("/healthz")
    def healthz() -> HealthResponse:
        """The version being served and the bundle it comes from."""
        return HealthResponse(**registry.current.describe())

    return app
