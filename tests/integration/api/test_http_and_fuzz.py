"""The ASGI app over real HTTP (uvicorn on 127.0.0.1) and a schemathesis fuzz of the OpenAPI schema.

With the stores up, no generated request - valid or not - may produce a 5xx.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from handlers.api_app import create_app, deps
from tests.helpers.live import LiveRun, uvicorn_in_thread

app = create_app()
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture
def base_url(live: LiveRun) -> Iterator[str]:
    deps.reset_caches()
    with uvicorn_in_thread(app) as url:
        yield url
    deps.reset_caches()


def test_over_http(base_url: str, live: LiveRun) -> None:
    with httpx.Client(base_url=base_url, timeout=10) as client:
        health = client.get("/health")
        assert health.status_code == 200 and health.json()["run_id"] == live.run.run_id
        rid = health.headers["x-request-id"]
        assert len(rid) == 32 and rid != client.get("/health").headers["x-request-id"]  # generated per request
        rec = client.post("/recommendations", json={"liked": [1, 9, 17], "k": 3})
        assert rec.status_code == 200 and len(rec.json()["items"]) == 3
        bad = client.post("/recommendations", content=b"", headers={"content-type": "application/json"})
        assert bad.status_code == 422 and bad.json()["request_id"] == bad.headers["x-request-id"]
        page = client.get("/")
        assert page.status_code == 200 and "graphrec" in page.text
        assert client.get("/web/style.css").headers["content-type"].startswith("text/css")


@pytest.fixture
def fuzz_ready(live: LiveRun) -> Iterator[None]:
    deps.reset_caches()
    yield
    deps.reset_caches()


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_openapi_no_server_errors(case: schemathesis.Case, fuzz_ready: None) -> None:
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text}"
    case.validate_response(response, checks=[not_a_server_error])


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_fuzz_openapi_conformance(case: schemathesis.Case, fuzz_ready: None) -> None:
    """Every answer matches the documented status codes, content types and response schemas."""
    response = case.call()
    case.validate_response(response, excluded_checks=[_positive_data_acceptance()])


def _positive_data_acceptance():  # type: ignore[no-untyped-def]
    # Schema-valid input can still be a 404 (unknown id) or 422 (e.g. both ?sample and ?q): by design.
    from schemathesis.specs.openapi.checks import positive_data_acceptance

    return positive_data_acceptance
