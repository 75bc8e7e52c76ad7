"""Request and response bodies of the HTTP service (pydantic v2).

Request models are strict (``true`` is not an integer, ``"12"`` is not the integer 12) and
forbid unknown fields, so a typo such as ``"histroy"`` is a 422 naming the field instead of a silently
empty history. Size limits (history length, candidates, k) are *not* declared here: they are
settings of :func:`airrec.serve.app.create_app`, checked by the endpoints.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "Event",
    "ExplainRequest",
    "ExplainResponse",
    "HealthResponse",
    "ReloadRequest",
    "ReloadResponse",
    "RetrieveRequest",
    "RetrieveResponse",
    "ScoreRequest",
    "ScoreResponse",
]

#: Ids travel as int64 into the engine; bounding them here turns 2**70 into a clear 422.
ItemId = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
#: An item is named by its internal id (a JSON integer: the fast path) or by its external id
#: (a JSON string, the dataset's own id as the bundle stores it: ``"B00X4WHP5E"``; ``"12"`` is
#: the external id "12", never the internal id 12). Lists mix neither kind.
ItemRef = Union[ItemId, Annotated[str, Field(min_length=1, max_length=256)]]
_STRICT = ConfigDict(strict=True, extra="forbid")


class Event(BaseModel):
    """One thing the user did: an item, a behaviour type (default 0) and a time."""

    model_config = _STRICT
    item: ItemRef
    behaviour: Annotated[int, Field(ge=0, le=2**63 - 1)] = 0
    timestamp: float | None = None


class HistoryRequest(BaseModel):
    """A user's history, oldest first: ``history`` (events) or ``items`` (ids only).

    Both absent means an empty history, which is valid (the intent vector is then the null
    slot's alone). Timestamps are all given or all absent (absent: positions 0..n-1), since a
    mix has no meaning the engine could follow.
    """

    model_config = _STRICT
    history: list[Event] | None = None
    items: list[ItemRef] | None = None

    @model_validator(mode="after")
    def _one_history(self) -> HistoryRequest:
        if self.history is not None and self.items is not None:
            raise ValueError("give either 'history' (events) or 'items' (ids), not both")
        if self.history:
            given = sum(e.timestamp is not None for e in self.history)
            if 0 < given < len(self.history):
                raise ValueError("either every event of 'history' has a timestamp or none does")
        return self

    @property
    def n_events(self) -> int:
        return len(self.history if self.history is not None else self.items or [])

    def events(self) -> tuple[list[int | str], list[int] | None, list[float] | None]:
        """``(items, behaviours, timestamps)`` as :meth:`airrec.Engine.tree` takes them."""
        if self.history is None:
            return list(self.items or []), None, None
        items = [e.item for e in self.history]
        behaviours = [e.behaviour for e in self.history]
        stamps = [e.timestamp for e in self.history]
        if self.history and all(t is not None for t in stamps):
            return items, behaviours, [float(t) for t in stamps if t is not None]
        return items, behaviours, None


class ScoreRequest(HistoryRequest):
    candidates: list[ItemRef]


#: Counts travel as machine integers; past this they are a 422, never an overflow (500).
_COUNT = Annotated[int, Field(ge=0, le=2**63 - 1)]


class RetrieveRequest(HistoryRequest):
    domain: Union[Annotated[int, Field(ge=0, le=2**32 - 1)], Annotated[str, Field(max_length=256)]]
    k: _COUNT = 10
    pool: _COUNT = 100
    rerank: bool = True


class ExplainRequest(HistoryRequest):
    candidate: ItemRef


class ReloadRequest(BaseModel):
    """A bundle directory, absolute or relative to the service's bundle root."""

    model_config = _STRICT
    path: Annotated[str, Field(min_length=1, max_length=4096)]

    @model_validator(mode="after")
    def _no_nul(self) -> ReloadRequest:
        if "\x00" in self.path:
            raise ValueError("path contains a NUL character")
        return self


class Versioned(BaseModel):
    """Every answer names the engine version that computed it."""

    version: int


class ScoreResponse(Versioned):
    scores: list[float]


class RetrieveResponse(Versioned):
    """Best first: internal ids (``items``), the same items' external ids (``ids``), scores."""

    items: list[int]
    ids: list[str]
    scores: list[float]


class ExplainResponse(Versioned):
    explanation: dict[str, Any]


class ReloadResponse(Versioned):
    bundle: str
    manifest_sha256: str


class HealthResponse(Versioned):
    bundle: str
    manifest_sha256: str
    loaded_at: float
    n_items: int
    n_nodes: int
    dim: int
    domains: list[str]
