"""The HTTP service answers exactly what the engine answers, and every client mistake is a 4xx.

Status codes under test are the table in ``airrec.serve.errors``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from airrec import Engine
from airrec.serve.app import create_app

HISTORY = [5, 17, 17, 40, 41, 88]
CANDIDATES = [3, 40, 99, 119, 0]


@pytest.fixture(scope="module")
def engine(small_bundle: Path) -> Engine:
    return Engine.load(small_bundle)


@pytest.fixture(scope="module")
def client(small_bundle: Path) -> Iterator[TestClient]:
    app = create_app(small_bundle, max_history=50, max_candidates=40, max_k=30, max_pool=200,
                     max_body_bytes=64 * 1024)
    with TestClient(app) as c:
        yield c


def post(client: TestClient, url: str, body: Any, status: int = 200) -> dict[str, Any]:
    r = client.post(url, json=body)
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


# ---- happy paths: equal to Engine calls ------------------------------------------------------


def test_score_equals_engine(client: TestClient, engine: Engine) -> None:
    out = post(client, "/score", {"items": HISTORY, "candidates": CANDIDATES})
    assert out["version"] == 1
    assert out["scores"] == engine.score(engine.tree(HISTORY), CANDIDATES).tolist()


def test_score_with_events_equals_engine(client: TestClient, engine: Engine) -> None:
    history = [{"item": i, "behaviour": 0, "timestamp": 2.5 * n} for n, i in enumerate(HISTORY)]
    out = post(client, "/score", {"history": history, "candidates": CANDIDATES})
    tree = engine.tree(HISTORY, [0] * len(HISTORY), [2.5 * n for n in range(len(HISTORY))])
    assert out["scores"] == engine.score(tree, CANDIDATES).tolist()
    # Without timestamps, events take positions, as Engine.tree does.
    out = post(client, "/score", {"history": [{"item": i} for i in HISTORY], "candidates": CANDIDATES})
    assert out["scores"] == engine.score(engine.tree(HISTORY), CANDIDATES).tolist()


def test_empty_history_and_candidates_are_valid(client: TestClient, engine: Engine) -> None:
    out = post(client, "/score", {"candidates": CANDIDATES})
    assert out["scores"] == engine.score(engine.tree([]), CANDIDATES).tolist()
    assert post(client, "/score", {"items": [], "candidates": []})["scores"] == []
    assert post(client, "/retrieve", {"items": [], "domain": 0, "k": 5}) == {"version": 1, "items": [], "ids": [], "scores": []}


@pytest.mark.parametrize("domain", [0, 1, "d0", "d1"])
def test_retrieve_equals_engine(client: TestClient, engine: Engine, domain: int | str) -> None:
    out = post(client, "/retrieve", {"items": HISTORY, "domain": domain, "k": 7, "pool": 50})
    items, scores = engine.retrieve(engine.tree(HISTORY), domain, 7, pool=50)
    assert out == {"version": 1, "items": items.tolist(), "ids": engine.external_ids(items), "scores": scores.tolist()}
    assert len(out["items"]) == 7
    out = post(client, "/retrieve", {"items": HISTORY, "domain": domain, "k": 7, "rerank": False})
    items, scores = engine.retrieve(engine.tree(HISTORY), domain, 7, rerank=False)
    assert out["items"] == items.tolist() and out["scores"] == scores.tolist()


def test_explain_equals_engine(client: TestClient, engine: Engine) -> None:
    out = post(client, "/explain", {"items": HISTORY, "candidate": 40})
    x = engine.explain(engine.tree(HISTORY), 40)
    e = out["explanation"]
    assert out["version"] == 1
    assert (e["candidate"], e["candidate_ext"]) == (40, "sku-000040") and e["score"] == x.score
    assert e["chains"] == x.chains and e["evidence"] == x.evidence
    assert e["null_attention"] == x.null_attention
    assert e["chains"] and all({"phrases", "attention", "nodes"} <= set(c) for c in e["chains"])
    assert all("attention" in ev for ev in e["evidence"])


def test_external_ids_answer_like_internal_ones(client: TestClient, engine: Engine) -> None:
    history, candidates = engine.external_ids(HISTORY), engine.external_ids(CANDIDATES)
    by_id = post(client, "/score", {"items": HISTORY, "candidates": CANDIDATES})
    assert post(client, "/score", {"items": history, "candidates": candidates}) == by_id
    events = [{"item": i, "behaviour": 0} for i in history]
    assert post(client, "/score", {"history": events, "candidates": candidates}) == by_id
    by_id = post(client, "/explain", {"items": HISTORY, "candidate": 40})
    assert post(client, "/explain", {"items": history, "candidate": "sku-000040"}) == by_id
    assert all(ev["ext"] == engine.external_ids([ev["item"]])[0] for ev in by_id["explanation"]["evidence"])
    out = post(client, "/retrieve", {"items": history, "domain": "d1", "k": 5})
    assert out == post(client, "/retrieve", {"items": HISTORY, "domain": "d1", "k": 5})
    assert out["ids"] == engine.external_ids(out["items"])


def test_healthz(client: TestClient, small_bundle: Path) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    h = r.json()
    assert h["version"] == 1 and Path(h["bundle"]) == small_bundle.resolve()
    assert h["n_items"] == 120 and h["domains"] == ["d0", "d1"] and len(h["manifest_sha256"]) == 64


# ---- client mistakes: 4xx with a message, never a 500 ------------------------------------------


@pytest.mark.parametrize(
    ("url", "body", "status", "code", "words"),
    [
        ("/score", {"items": [1, 120], "candidates": [3]}, 422, "unknown_item", "unknown item 120"),
        ("/score", {"items": [1], "candidates": [-1]}, 422, "unknown_item", "unknown item -1"),
        ("/explain", {"items": [1], "candidate": 10**6}, 422, "unknown_item", "unknown item"),
        ("/score", {"history": [{"item": 1, "behaviour": 7}], "candidates": [3]}, 422, "unknown_behaviour", "behaviour 7"),
        ("/retrieve", {"items": [1], "domain": "nope", "k": 3}, 422, "invalid_input", "unknown domain"),
        ("/retrieve", {"items": [1], "domain": 9, "k": 3}, 422, "invalid_input", "domain 9"),
        ("/retrieve", {"items": [1], "domain": 0, "k": -1}, 422, "validation", "greater than or equal to 0"),
        ("/retrieve", {"items": [1], "domain": 0, "k": 31}, 422, "limit", "k = 31"),
        ("/retrieve", {"items": [1], "domain": 0, "k": 3, "pool": 201}, 422, "limit", "pool = 201"),
        ("/score", {"items": list(range(51)), "candidates": [3]}, 413, "too_large", "history has 51"),
        ("/score", {"items": [1], "candidates": list(range(41))}, 413, "too_large", "candidates has 41"),
        ("/explain", {"items": [0] * 51, "candidate": 1}, 413, "too_large", "at most 50"),
        ("/score", {"items": ["1"], "candidates": [3]}, 422, "unknown_item", 'unknown item id "1"'),
        ("/score", {"items": [1], "candidates": ["sku-000001", 2]}, 422, "invalid_input", "mixes"),
        ("/score", {"items": [""], "candidates": [3]}, 422, "validation", "items.0"),
        ("/score", {"items": ["x" * 257], "candidates": [3]}, 422, "validation", "items.0"),
        ("/score", {"items": [1.5], "candidates": [3]}, 422, "validation", "items.0"),
        ("/score", {"items": [True], "candidates": [3]}, 422, "validation", "items.0"),
        ("/score", {"items": [2**70], "candidates": [3]}, 422, "validation", "items.0"),
        ("/score", {"items": 5, "candidates": [3]}, 422, "validation", "items"),
        ("/score", {"items": [1]}, 422, "validation", "candidates"),
        ("/score", {"histroy": [1], "candidates": [3]}, 422, "validation", "histroy"),
        ("/score", {"items": [1], "history": [{"item": 1}], "candidates": [3]}, 422, "validation", "not both"),
        ("/score", {"history": [{"item": 1, "timestamp": 1.0}, {"item": 2}], "candidates": [3]}, 422,
         "validation", "timestamp"),
        ("/score", [1, 2], 422, "validation", "body"),
        ("/explain", {"items": [1], "candidate": "3"}, 422, "unknown_item", 'unknown item id "3"'),
        ("/explain", {"items": [1], "candidate": None}, 422, "validation", "candidate"),
        ("/retrieve", {"items": [1], "domain": 0.5, "k": 3}, 422, "validation", "domain"),
        ("/admin/reload", {"path": ""}, 422, "validation", "path"),
    ],
)
def test_bad_requests(client: TestClient, url: str, body: Any, status: int, code: str, words: str) -> None:
    out = post(client, url, body, status)
    assert out["error"] == code
    assert words in out["detail"], out


def test_non_finite_timestamp(client: TestClient) -> None:
    body = b'{"history": [{"item": 1, "timestamp": NaN}], "candidates": [3]}'
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"] == "invalid_input" and "finite" in r.json()["detail"]


@pytest.mark.parametrize("body", [b"{not json", b'{"items": [1,', b"", b"\xff\xfe"])
def test_malformed_json_is_400(client: TestClient, body: bytes) -> None:
    r = client.post("/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422), r.text
    assert r.json()["error"] in ("malformed_json", "validation") and r.json()["detail"]
    if body.startswith(b"{"):
        assert (r.status_code, r.json()["error"]) == (400, "malformed_json")


def test_body_not_declared_json_is_415(client: TestClient) -> None:
    r = client.post("/score", content=b'{"items": [1], "candidates": [3]}', headers={"content-type": "text/plain"})
    assert r.status_code == 415 and "application/json" in r.json()["detail"]


def test_huge_body_is_413_before_parsing(client: TestClient) -> None:
    huge = b'{"items": [' + b"1," * 40_000 + b'1], "candidates": [3]}'
    r = client.post("/score", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        for i in range(0, len(huge), 8192):
            yield huge[i : i + 8192]

    r = client.post("/score", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"] == "body_too_large"


def test_unknown_route_and_method(client: TestClient) -> None:
    assert client.post("/nope", json={}).status_code == 404
    assert client.get("/score").status_code == 405


def test_random_garbage_never_500(client: TestClient) -> None:
    """Fuzz: random JSON values in every field give 200 or 4xx, never 5xx."""
    rng = np.random.default_rng(0)
    values: list[Any] = [None, True, -1, 0, 3, 119, 120, 2**63, -(2**63) - 1, 1.5, float("inf"), "x", "d0",
                         [], [1, 2], [[1]], [{"item": 1}], [{"item": "a"}], {}, {"item": 1}]
    fields = ["items", "history", "candidates", "candidate", "domain", "k", "pool", "rerank", "path"]
    for _ in range(300):
        body = {f: values[rng.integers(len(values))] for f in fields if rng.random() < 0.5}
        for url in ("/score", "/retrieve", "/explain"):
            r = client.post(url, json=body) if "inf" not in repr(body) else client.post(
                url, content=repr(body).replace("inf", "Infinity").replace("'", '"').replace("None", "null")
                .replace("True", "true").encode(), headers={"content-type": "application/json"})
            assert r.status_code < 500, (url, body, r.text)
            if r.status_code != 200:
                assert r.json()["detail"], r.text
