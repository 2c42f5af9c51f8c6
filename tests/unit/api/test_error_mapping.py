"""Faults injected behind the routes (dependency overrides) come back as JSON 4xx/503 - never a 500.

These run the real app through the real Mangum handler with payload-2.0 events; only the dependency
that would reach a store is replaced by one that raises, to prove the mapping for each failure kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.stores.milvus.store import StoreUnavailable
from tests.helpers.live import http_api_event, invoke


@pytest.fixture
def app() -> Iterator[FastAPI]:
    deps.reset_caches()
    application = create_app()
    yield application
    application.dependency_overrides.clear()
    deps.reset_caches()


def _raiser(exc: Exception) -> Callable[[], Any]:
    async def dep() -> Any:
        raise exc

    return dep


@pytest.mark.parametrize(
    ("exc", "status", "phrase"),
    [
        (StoreUnavailable("mysql gone"), 503, "data store is unreachable"),
        (RuntimeError("boom"), 503, "could not complete this request"),
        (KeyError("x"), 503, "could not complete this request"),
        (ZeroDivisionError(), 503, "could not complete this request"),
    ],
)
def test_unexpected_and_store_errors_become_json_503(app: FastAPI, exc: Exception, status: int, phrase: str) -> None:
    app.dependency_overrides[deps.metadata_dep] = _raiser(exc)
    handler = Mangum(app, lifespan="off")
    for event in (
        http_api_event("GET", "/movies", query="sample=3", request_id="apigw-123"),
        http_api_event("POST", "/recommendations", body={"liked": [1]}, request_id="apigw-123"),
        http_api_event("GET", "/users/1/recommendations", request_id="apigw-123"),
    ):
        code, headers, body = invoke(handler, event)
        assert code == status
        assert phrase in body["detail"]
        assert body["request_id"] == "apigw-123" == headers["x-request-id"]
        assert headers["retry-after"] == "5"
        assert "Traceback" not in str(body) and "boom" not in str(body)


def test_no_live_run_is_a_clear_503(app: FastAPI) -> None:
    from handlers.api_app.errors import NoLiveRun

    app.dependency_overrides[deps.live_run_dep] = _raiser(NoLiveRun())
    code, _, body = invoke(Mangum(app, lifespan="off"), http_api_event("GET", "/movies/1"))
    assert code == 503
    assert "No model is live yet" in body["detail"]


def test_no_exception_escapes_to_the_asgi_server(app: FastAPI) -> None:
    """raise_app_exceptions=True would re-raise anything the app let through (what uvicorn logs as a crash)."""
    app.dependency_overrides[deps.vectors_dep] = _raiser(RuntimeError("boom"))
    app.dependency_overrides[deps.live_run_dep] = _raiser(RuntimeError("boom"))

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=True)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/movies/1/similar")

    res = asyncio.run(call())
    assert res.status_code == 503
    assert res.headers["content-type"] == "application/json"
    assert len(res.headers["x-request-id"]) == 32  # generated: no API Gateway id outside Lambda


def test_routing_errors_are_json_4xx(app: FastAPI) -> None:
    handler = Mangum(app, lifespan="off")
    code, _, body = invoke(handler, http_api_event("GET", "/nope"))
    assert (code, body["detail"]) == (404, "Not Found")
    code, _, body = invoke(handler, http_api_event("DELETE", "/recommendations"))
    assert code == 405 and body["request_id"]


def test_bad_input_is_422_even_when_the_stores_are_down(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config.settings import clear_settings_cache
    from tests.helpers.live import free_port

    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", str(free_port()))  # nothing listens there: MySQL is "down"
    clear_settings_cache()
    handler = Mangum(app, lifespan="off")
    code, _, body = invoke(handler, http_api_event("GET", "/movies/1"))
    assert code == 503 and "unreachable" in body["detail"]  # a valid request needs the store
    code, _, body = invoke(handler, http_api_event("POST", "/recommendations", body={"liked": [], "k": 0}))
    assert code == 422 and {e["loc"][-1] for e in body["errors"]} == {"liked", "k"}
    for path, query in (("/movies/abc", ""), ("/movies/1/similar", "k=0"), ("/users/1/recommendations", "k=101")):
        code, _, body = invoke(handler, http_api_event("GET", path, query=query))
        assert code == 422, body
        assert body["errors"][0]["loc"][0] in ("path", "query")


def test_web_page_and_assets_are_served(app: FastAPI) -> None:
    handler = Mangum(app, lifespan="off")
    code, headers, body = invoke(handler, http_api_event("GET", "/"))
    assert code == 200 and headers["content-type"].startswith("text/html")
    assert "web/app.js" in body
    code, headers, _ = invoke(handler, http_api_event("GET", "/web/app.js"))
    assert code == 200 and "javascript" in headers["content-type"]
    code, _, _ = invoke(handler, http_api_event("GET", "/web/..%2Fapi.py"))
    assert code == 404
