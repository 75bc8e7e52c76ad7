"""How the service turns failures into HTTP answers: 4xx for every client mistake, never a 500.

Every error body has the same shape, ``{"error": <code>, "detail": <message>}``, plus
``"version"`` when an engine had been chosen, and ``"errors"`` (field, message) for validation
failures. Status codes:

====================================================  ======  =====================
failure                                               status  ``error``
====================================================  ======  =====================
body is not valid JSON                                400     ``malformed_json``
body not sent as ``Content-Type: application/json``   415     ``unsupported_media_type``
body too large (bytes)                                413     ``body_too_large``
history / candidates longer than the service limits   413     ``too_large``
wrong/missing/unknown field, ``k < 0``, id > int64   422     ``validation``
``k`` or ``pool`` above the service limits            422     ``limit``
item id (internal or external) not in the bundle      422     ``unknown_item``
behaviour id outside the bundle                       422     ``unknown_behaviour``
unknown domain, non-finite timestamp, mixed id kinds  422     ``invalid_input``
reload: bundle missing, corrupted, invalid, too slow  422     ``bad_bundle``
reload: another reload is running (or loads stuck)    409     ``reload_in_progress``
reload: no admin token configured (the default)       403     ``reload_disabled``
reload: admin token missing or wrong                  403     ``forbidden``
reload: path not under the bundle root                403     ``outside_bundle_root``
====================================================  ======  =====================

An unknown item is 422, not 404: the *endpoint* exists and the request is well-formed JSON, but
one of its values is not valid for the loaded bundle, exactly like an unknown domain; a 404
would read as a wrong URL to clients, proxies and dashboards.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from airrec.errors import (
    AirrecError,
    InputError,
    InputTypeError,
    UnknownBehaviourError,
    UnknownItemError,
)

__all__ = ["ApiError", "answering", "install_handlers"]

log = logging.getLogger("airrec.serve")


class ApiError(Exception):
    """A failure with its HTTP status and error code, raised by endpoints and handlers."""

    def __init__(self, status: int, code: str, detail: str, version: int | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.version = version

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.version is not None:
            body["version"] = self.version
        return JSONResponse(body, status_code=self.status)


def _classify(e: AirrecError) -> tuple[int, str]:
    """Engine error class → (status, code). Most specific classes first."""
    if isinstance(e, UnknownItemError):
        return 422, "unknown_item"
    if isinstance(e, UnknownBehaviourError):
        return 422, "unknown_behaviour"
    if isinstance(e, (InputError, InputTypeError)):
        return 422, "invalid_input"
    return 500, "engine_error"  # not the caller's fault: a bug or a broken bundle


@contextmanager
def answering(version: int) -> Iterator[None]:
    """Runs engine calls for one request; their typed errors become :class:`ApiError`."""
    try:
        yield
    except AirrecError as e:
        status, code = _classify(e)
        if status >= 500:
            log.exception("engine error answering with version %d", version)
        raise ApiError(status, code, str(e), version) from e


def _field_errors(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Pydantic errors as plain ``{"field", "message"}`` (their ``ctx`` may hold exceptions)."""
    out = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        out.append({"field": ".".join(loc) or "body", "message": str(err.get("msg", ""))})
    return out


async def _on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        ctx = next(e for e in errors if e.get("type") == "json_invalid").get("ctx") or {}
        reason = ctx.get("error", "not valid JSON")
        return ApiError(400, "malformed_json", f"request body is not valid JSON: {reason}").response()
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type and any(tuple(e.get("loc", ())) == ("body",) for e in errors):
        # FastAPI does not parse a body it was not told is JSON, then reports a missing object.
        detail = f"send the body as JSON with Content-Type: application/json (got {content_type!r})"
        return ApiError(415, "unsupported_media_type", detail).response()
    fields = _field_errors(errors)
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    body = {"error": "validation", "detail": summary or "invalid request", "errors": fields}
    return JSONResponse(body, status_code=422)


async def _on_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "internal", "internal error (logged by the service)").response()


def install_handlers(app: FastAPI) -> None:
    """Registers the handlers above on ``app``."""
    app.add_exception_handler(RequestValidationError, _on_validation)  # type: ignore[arg-type]
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(Exception, _on_unexpected)
