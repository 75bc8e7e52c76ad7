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
from pathlib import Path
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


def _under_root(root: Path, path: str) -> Path:
    """``path`` (absolute, or relative to ``root``) resolved, if it is a directory strictly
    inside ``root``; else a 403 that says the same whatever exists outside the root."""
    candidate = Path(path)
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ApiError(403, "outside_bundle_root",
                       "the path is not a directory under this service's bundle root")
    return resolved


def create_app(
    bundle_path: str | os.PathLike[str] | EngineRegistry,
    *,
    max_history: int = 1000,
    max_candidates: int = 1000,
    max_k: int = 1000,
    max_pool: int = 10_000,
    max_body_bytes: int = 1 << 20,
    admin_token: str | None = None,
    bundle_root: str | os.PathLike[str] | None = None,
    reload_timeout_s: float = 120.0,
) -> FastAPI:
    """A FastAPI app serving score / retrieve / explain from one bundle, with hot reload.

    ``bundle_path`` is a bundle directory (loaded now, as version 1) or an existing registry
    (to share it with host code that reloads by itself). The limits bound one request's work:
    events in a history, candidates, ``k`` and ``pool``, and body bytes.

    ``/admin/reload`` is closed (403 ``reload_disabled``) unless ``admin_token`` is given;
    then it requires the header ``X-Admin-Token: <token>``, loads only directories under
    ``bundle_root`` (default: the directory holding the first bundle; symlinks are resolved
    before the check), and gives up on a load after ``reload_timeout_s`` seconds (422, the
    old version keeps serving, the reload lock is free again).
    """
    if admin_token is not None and not admin_token.strip():
        raise ValueError("admin_token must not be empty (leave it None to disable reloads)")
    registry = bundle_path if isinstance(bundle_path, EngineRegistry) else EngineRegistry(bundle_path)
    root = Path(bundle_root if bundle_root is not None else Path(registry.current.path).parent)
    root = root.resolve()
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
            ids = snap.engine.external_ids(items)
        return RetrieveResponse(version=snap.version, items=items.tolist(), ids=ids, scores=scores.tolist())

    @app.post("/explain")
    def explain(req: ExplainRequest) -> ExplainResponse:
        """The chains (with phrases), evidence events and attention behind one score."""
        snap = snapshot(req)
        with answering(snap.version):
            tree = snap.engine.tree(*req.events())
            x = snap.engine.explain(tree, req.candidate)
        explanation: dict[str, Any] = {
            "candidate": x.candidate,
            "candidate_ext": x.candidate_ext,
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
        if admin_token is None:
            raise ApiError(403, "reload_disabled",
                           "reloads are disabled: start the service with an admin token")
        if not hmac.compare_digest((x_admin_token or "").encode(), admin_token.encode()):
            raise ApiError(403, "forbidden", "missing or wrong X-Admin-Token")
        target = _under_root(root, req.path)
        version = registry.current.version
        try:
            new = registry.reload(target, wait=False, timeout_s=reload_timeout_s)
        except ReloadInProgressError as e:
            raise ApiError(409, "reload_in_progress", str(e), version) from e
        except (AirrecError, OSError, ValueError) as e:
            # The reason, with the root's absolute path cut out: an admin learns what is
            # wrong with the bundle, not where the service's files are.
            reason = str(e).replace(str(root) + os.sep, "").replace(str(root), ".")
            detail = f"bundle refused, version {version} keeps serving: {reason}"
            raise ApiError(422, "bad_bundle", detail, version) from e
        return ReloadResponse(version=new.version, bundle=new.path, manifest_sha256=new.manifest_sha256)

    @app.get("/healthz")
    def healthz() -> HealthResponse:
        """The version being served and the bundle it comes from."""
        return HealthResponse(**registry.current.describe())

    return app
