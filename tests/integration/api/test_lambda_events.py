"""Every endpoint through the real Mangum handler with API Gateway HTTP API payload-2.0 events,
over a live run in real MariaDB + Milvus Lite (planted clusters: the right answers are known)."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.config.settings import clear_settings_cache
from tests.helpers.factories import GENRES
from tests.helpers.live import LiveRun, http_api_event, invoke


@pytest.fixture(params=["local-index", "milvus-search"])
def call(live: LiveRun, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Both serving paths: the in-memory copy of the run, and searching Milvus directly."""
    monkeypatch.setenv("GRAPHREC_API_LOCAL_INDEX_MAX", "50000" if request.param == "local-index" else "0")
    clear_settings_cache()
    deps.reset_caches()
    handler = Mangum(create_app(), lifespan="off")

    def go(method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
        return invoke(handler, http_api_event(method, path, **kw))

    yield go
    deps.reset_caches()


def cluster_of(live: LiveRun, movie_id: int) -> int:
    return int(live.run.cluster[list(live.run.movie_ids).index(movie_id)])


def members(live: LiveRun, cluster: int) -> list[int]:
    return [int(m) for m, c in zip(live.run.movie_ids, live.run.cluster, strict=True) if c == cluster]


def test_health_reports_live_run_and_counts(call: Any, live: LiveRun) -> None:
    code, headers, body = call("GET", "/health", request_id="apigw-health-1")
    assert code == 200
    assert body["status"] == "ok" and body["run_id"] == live.run.run_id
    assert body["counts"] == {"movies": 200, "users": 50, "vectors": 200}
    assert body["stores"] == {"metadata": "ok", "vectors": "ok"}
    assert headers["x-request-id"] == "apigw-health-1"


def test_recommendations_follow_the_planted_cluster(call: Any, live: LiveRun) -> None:
    liked = members(live, 2)[:3]
    code, _, body = call("POST", "/recommendations", body={"liked": liked, "k": 10})
    assert code == 200
    assert body["run_id"] == live.run.run_id
    items = body["items"]
    assert len(items) == 10
    ids = [i["movie_id"] for i in items]
    assert not set(ids) & set(liked)
    assert all(cluster_of(live, m) == 2 for m in ids)  # planted: nearest movies share the cluster
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    for item in items:  # metadata comes from MySQL, exactly as loaded
        expected = live.movies[item["movie_id"]]
        assert (item["title"], item["year"], item["genres"]) == (
            expected["title"],
            expected["year"],
            list(expected["genres"]),
        )


def test_scores_are_cosine_to_the_normalised_mean(call: Any, live: LiveRun) -> None:
    liked = [int(live.run.movie_ids[i]) for i in (0, 9, 18)]
    _, _, body = call("POST", "/recommendations", body={"liked": liked, "k": 5})
    emb = {int(m): live.run.embeddings[i] for i, m in enumerate(live.run.movie_ids)}
    q = np.mean([emb[m] for m in liked], axis=0)
    q /= np.linalg.norm(q)
    expected = sorted(((float(emb[m] @ q), m) for m in emb if m not in liked), key=lambda t: (-t[0], t[1]))[:5]
    assert [i["movie_id"] for i in body["items"]] == [m for _, m in expected]
    assert [i["score"] for i in body["items"]] == pytest.approx([s for s, _ in expected], abs=1e-5)


def test_exclude_and_genre_filter(call: Any, live: LiveRun) -> None:
    liked = members(live, 1)[:2]
    _, _, first = call("POST", "/recommendations", body={"liked": liked, "k": 5})
    top = [i["movie_id"] for i in first["items"]]
    _, _, second = call("POST", "/recommendations", body={"liked": liked, "k": 5, "exclude": top[:3]})
    assert not set(top[:3]) & {i["movie_id"] for i in second["items"]}
    code, _, horror = call("POST", "/recommendations", body={"liked": liked, "k": 7, "genres": ["Horror"]})
    assert code == 200 and len(horror["items"]) == 7
    assert all("Horror" in i["genres"] for i in horror["items"])
    _, _, none = call("POST", "/recommendations", body={"liked": liked, "genres": ["Western"]})
    assert none["items"] == []


def test_duplicate_liked_ids_count_once(call: Any, live: LiveRun) -> None:
    liked = members(live, 3)[:2]
    _, _, a = call("POST", "/recommendations", body={"liked": liked})
    _, _, b = call("POST", "/recommendations", body={"liked": liked + liked[::-1]})
    assert a["items"] == b["items"]


def test_unknown_liked_ids_are_listed_back(call: Any) -> None:
    code, _, body = call("POST", "/recommendations", body={"liked": [1, 90001, 2, 90002]})
    assert code == 422
    assert body["unknown_movie_ids"] == [90001, 90002]
    assert "90001, 90002" in body["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"liked": [1], "k": 0}, "k"),
        ({"liked": [1], "k": 101}, "k"),
        ({"liked": list(range(1, 502))}, "liked"),
        ({"liked": ["1"]}, "0"),
        ({"liked": [1], "k": "ten"}, "k"),
        ({"liked": []}, "liked"),
        ({"liked": [1], "genres": "Comedy"}, "genres"),
        ({"liked": [1], "unexpected": True}, "unexpected"),
    ],
)
def test_invalid_bodies_are_422_naming_the_field(call: Any, body: dict[str, Any], field: str) -> None:
    code, _, out = call("POST", "/recommendations", body=body)
    assert code == 422
    assert any(e["loc"][-1] == field for e in out["errors"]), out
    assert field in out["detail"]


@pytest.mark.parametrize("raw", [None, "", "{", "[]", "null", '"text"', "{'liked': [1]}"])
def test_empty_or_malformed_bodies_are_422(call: Any, raw: str | None) -> None:
    code, _, out = call("POST", "/recommendations", body=raw)
    assert code == 422, out
    assert out["detail"].startswith("Invalid request")


def test_base64_encoded_body_is_accepted(call: Any, live: LiveRun) -> None:
    code, _, out = call("POST", "/recommendations", body={"liked": [1, 2]}, base64_body=True)
    assert code == 200 and len(out["items"]) == 10


def test_user_recommendations_exclude_seen_movies(call: Any, live: LiveRun) -> None:
    for user_id, seen in list(live.run.user_histories.items())[:5]:
        code, _, body = call("GET", f"/users/{user_id}/recommendations", query="k=10")
        assert code == 200
        ids = [i["movie_id"] for i in body["items"]]
        assert len(ids) == 10 and not set(ids) & set(seen)
        assert sum(cluster_of(live, m) == user_id % len(GENRES) for m in ids) >= 8


def test_unknown_user_is_404(call: Any) -> None:
    code, _, body = call("GET", "/users/987654/recommendations")
    assert code == 404 and "987654" in body["detail"]


def test_similar_movies(call: Any, live: LiveRun) -> None:
    code, _, body = call("GET", "/movies/5/similar", query="k=4")
    assert code == 200
    ids = [i["movie_id"] for i in body["items"]]
    assert len(ids) == 4 and 5 not in ids
    assert all(cluster_of(live, m) == cluster_of(live, 5) for m in ids)
    assert call("GET", "/movies/424242/similar")[0] == 404


def test_movie_lookups(call: Any, live: LiveRun) -> None:
    code, _, movie = call("GET", "/movies/7")
    assert code == 200 and movie["title"] == live.movies[7]["title"]
    code, _, body = call("GET", "/movies/999999")
    assert code == 404 and "999999" in body["detail"]
    _, _, sample = call("GET", "/movies", query="sample=12")
    ids = [m["movie_id"] for m in sample["items"]]
    assert len(ids) == 12 == len(set(ids)) and set(ids) <= set(live.movies)
    _, _, found = call("GET", "/movies", query="q=%20MOVIE%20199%20&limit=50")  # trimmed, case-insensitive
    assert [m["movie_id"] for m in found["items"]] == [199]
    _, _, found = call("GET", "/movies", query="q=movie%2012&limit=5")
    assert [m["movie_id"] for m in found["items"]] == [12, 120, 121, 122, 123]
    _, _, wild = call("GET", "/movies", query="q=%25")  # a literal "%" matches nothing
    assert wild["items"] == []


@pytest.mark.parametrize("query", ["", "sample=3&q=x", "q=%20%20", "sample=0", "sample=101", "limit=0&q=a"])
def test_movie_listing_needs_exactly_one_valid_mode(call: Any, query: str) -> None:
    code, _, body = call("GET", "/movies", query=query)
    assert code == 422 and body["detail"]


def test_request_id_is_api_gateways_and_logged(call: Any) -> None:
    from handlers.api_app.middleware import logger

    stream = io.StringIO()
    old = logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        code, headers, body = call("GET", "/movies/424242", request_id="apigw-req-77")
    finally:
        logger.registered_handler.setStream(old)  # type: ignore[attr-defined]
    assert code == 404 and headers["x-request-id"] == "apigw-req-77" and body["request_id"] == "apigw-req-77"
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    access = [r for r in lines if r.get("message") == "request" and r.get("request_id") == "apigw-req-77"]
    assert access and access[0]["status"] == 404 and access[0]["path"] == "/movies/424242"


def test_cors_allows_configured_origins_only(call: Any) -> None:
    ok = {"origin": "http://localhost:8000"}
    _, headers, _ = call("GET", "/health", headers=ok)
    assert headers["access-control-allow-origin"] == "http://localhost:8000"
    _, headers, _ = call("GET", "/health", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in headers
    pre = {**ok, "access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    code, headers, _ = call("OPTIONS", "/recommendations", headers=pre)
    assert code == 200 and headers["access-control-allow-origin"] == "http://localhost:8000"


def test_openapi_docs_are_served(call: Any) -> None:
    code, _, spec = call("GET", "/openapi.json")
    assert code == 200
    assert {"/health", "/movies", "/movies/{movie_id}", "/recommendations"} <= set(spec["paths"])
    code, headers, _ = call("GET", "/docs")
    assert code == 200 and headers["content-type"].startswith("text/html")



def test_serving_path_matches_the_setting(call: Any, request: pytest.FixtureRequest) -> None:
    from handlers.api_app.local_index import CACHE

    assert call("POST", "/recommendations", body={"liked": [1, 2]})[0] == 200
    built = bool(CACHE._indexes)
    assert built == ("local-index" in request.node.name)
