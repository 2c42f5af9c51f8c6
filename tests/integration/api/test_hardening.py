"""Issue 10 regressions for the API, against real MariaDB and Milvus Lite (item 6 and the /health body):
HEAD, Retry-After on /health, JSON CORS refusals, the body limit, invalid base64 events, damaged data."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api_app import create_app, deps
from shared.config.settings import Settings
from tests.helpers.factories import make_run
from tests.helpers.live import LiveRun, http_api_event, invoke, load_live, uvicorn_in_thread


@pytest.fixture
def live(mysql_settings: Settings, tmp_path: Path) -> Iterator[LiveRun]:
    deps.reset_caches()
    yield load_live(mysql_settings, make_run(str(tmp_path / "runs"), n_movies=60, n_users=10, seed=21))
    deps.reset_caches()


def test_head_is_answered_on_every_get_route(live: LiveRun, call: Any) -> None:
    for path in ("/", "/web/style.css", "/health", "/movies/1", "/movies/1/similar", "/users/1/recommendations"):
        code, headers, body = call("GET", path)
        head_code, head_headers, head_body = call("HEAD", path)
        assert (head_code, head_body) == (code, ""), path
        assert head_headers["content-type"] == headers["content-type"]
        assert head_headers["content-length"] == headers["content-length"]
    assert call("HEAD", "/movies/999999")[0] == 404
    assert call("HEAD", "/recommendations")[0] == 405  # POST-only stays POST-only


def test_head_over_real_http(live: LiveRun) -> None:
    with uvicorn_in_thread(create_app()) as base:
        res = httpx.head(f"{base}/", timeout=10)
        assert res.status_code == 200 and res.content == b"" and int(res.headers["content-length"]) > 100


def test_health_503_carries_retry_after(mysql_settings: Settings, call: Any) -> None:
    from shared.stores.mysql.store import MetadataStore

    MetadataStore.from_settings(mysql_settings).ensure_schema()  # schema, but nothing live
    code, headers, body = call("GET", "/health")
    assert (code, body["status"]) == (503, "no_live_run")
    assert headers["retry-after"] == "5"


def test_health_reports_damaged_live_data_in_its_own_body(live: LiveRun, call: Any, mysql_database: str) -> None:
    """Both stores answer a ping, but reading the live run's data fails (here: a table is gone): /health
    answers with its own Health body naming the problem, not the generic 503 body."""
    import pymysql

    from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER

    assert call("GET", "/health")[0] == 200
    conn = pymysql.connect(
        host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD, database=mysql_database
    )
    with conn.cursor() as cur:
        cur.execute("DROP TABLE user_histories")
    conn.close()
    code, headers, body = call("GET", "/health")
    assert code == 503 and headers["retry-after"] == "5"
    assert body["status"] == "unavailable" and body["run_id"] == live.run.run_id
    assert body["stores"] == {"metadata": "ok", "vectors": "ok"}
    assert "cannot be read" in body["detail"] and "reload or roll back" in body["detail"]


def test_refused_cors_preflight_is_json(call: Any) -> None:
    pre = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    code, headers, body = call("OPTIONS", "/recommendations", headers=pre, request_id="cors-1")
    assert code == 400 and headers["content-type"] == "application/json"
    assert body == {"detail": "CORS preflight refused: origin not allowed for this API.", "request_id": "cors-1"}
    ok = {"origin": "http://localhost:8000", "access-control-request-method": "PUT"}
    code, _, body = call("OPTIONS", "/recommendations", headers=ok)
    assert code == 400 and "method not allowed" in body["detail"]


def test_oversized_body_is_413_through_lambda(call: Any) -> None:
    big = '{"liked": [' + ",".join(["1"] * 40_000) + "]}"  # 80 kB > GRAPHREC_API_MAX_BODY_BYTES (64 KiB)
    code, headers, body = call("POST", "/recommendations", body=big, request_id="big-1")
    assert code == 413 and headers["content-type"] == "application/json"
    assert "larger than 65536 bytes" in body["detail"] and body["request_id"] == "big-1"


def _raw_http(port: int, head: bytes, chunks: list[bytes]) -> tuple[bytes, float]:
    """Send a request head and body chunks on a raw socket; (status line, seconds to the answer)."""
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except OSError:  # the server answered and closed before reading it all: the point
                break
        answer = sock.recv(4096)
    return answer.split(b"\r\n", 1)[0], time.perf_counter() - started


def test_a_100_mb_body_is_refused_before_it_is_read(live: LiveRun) -> None:
    with uvicorn_in_thread(create_app()) as base:
        port = int(base.rsplit(":", 1)[1])
        declared = (
            b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 104857600\r\n\r\n"
        )
        status, seconds = _raw_http(port, declared, [b'{"liked": [1'])  # 100 MB announced, 12 bytes sent
        assert status == b"HTTP/1.1 413 Request Entity Too Large" and seconds < 2
        streamed = b"POST /recommendations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        chunk = b"8000\r\n" + b"1," * 0x4000 + b"\r\n"  # 32 KiB chunks, no length announced
        status, _ = _raw_http(port, streamed, [chunk] * 8)
        assert status == b"HTTP/1.1 413 Request Entity Too Large"
        ok = httpx.post(f"{base}/recommendations", json={"liked": [1, 2], "k": 3}, timeout=10)
        assert ok.status_code == 200


@pytest.mark.parametrize("body", ["not base64!!", "eyJsaWtlZCI6IFsxXX0=%%", "abc"])
def test_invalid_base64_event_is_a_json_422_not_a_lambda_error(body: str) -> None:
    import handlers.api

    event = http_api_event("POST", "/recommendations", body="{}", request_id="b64-1")
    event["body"], event["isBase64Encoded"] = body, True
    code, headers, answer = invoke(handlers.api.handler, event)
    assert code == 422 and headers["content-type"] == "application/json"
    assert answer == {
        "detail": "Invalid request - the body is flagged base64 but is not valid base64.",
        "request_id": "b64-1",
    }
    valid = http_api_event("POST", "/recommendations", body={"liked": [1], "k": 0}, base64_body=True)
    assert base64.b64decode(valid["body"], validate=True)
    assert invoke(handlers.api.handler, valid)[0] == 422  # valid base64 still reaches the app (k=0 invalid)


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "no-length"])
def test_oversized_body_is_a_json_413_with_the_request_id_in_process(call: Any, declared: bool) -> None:
    """Issue 20: API Gateway sends a Content-Length; Starlette's limiter answered that case in plain text."""
    from fastapi.testclient import TestClient

    big = '{"liked": [' + ",".join(["1"] * 40_000) + "]}"
    headers = {"content-length": str(len(big))} if declared else {}
    code, out_headers, body = call("POST", "/recommendations", body=big, headers=headers, request_id="big-2")
    assert code == 413 and out_headers["content-type"] == "application/json"
    assert body == {"detail": "The request body is larger than 65536 bytes; send fewer ids.", "request_id": "big-2"}
    client = TestClient(create_app(), raise_server_exceptions=False)
    content: Any = big if declared else iter([big.encode()])  # an iterator is sent chunked, without a length
    res = client.post("/recommendations", content=content, headers={"content-type": "application/json"})
    assert res.status_code == 413 and res.json()["request_id"] == res.headers["x-request-id"]


def test_oversized_body_is_a_json_413_through_uvicorn(live: LiveRun) -> None:
    big = ('{"liked": [' + ",".join(["1"] * 40_000) + "]}").encode()
    with uvicorn_in_thread(create_app()) as base:
        declared = httpx.post(f"{base}/recommendations", content=big, headers={"content-type": "application/json"}, timeout=10)
        chunked = httpx.post(f"{base}/recommendations", content=iter([big[:30000], big[30000:]]), timeout=10)
    for res in (declared, chunked):
        assert res.status_code == 413 and res.headers["content-type"] == "application/json"
        assert res.json()["request_id"] == res.headers["x-request-id"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("PUT", "/users/me", "DELETE, GET, HEAD"), ("DELETE", "/movies/1", "GET, HEAD"), ("GET", "/recommendations", "POST")],
)
def test_405_is_json_and_names_every_allowed_method(call: Any, method: str, path: str, allow: str) -> None:
    code, headers, body = call(method, path, request_id="m-1")
    assert (code, headers["allow"], body["request_id"]) == (405, allow, "m-1")


def test_security_headers_on_the_page_and_the_api(live: LiveRun, call: Any) -> None:
    for path in ("/", "/web/app.js", "/health", "/movies/1", "/nothing-here"):
        _, headers, _ = call("GET", path)
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["referrer-policy"] == "no-referrer"
        csp = headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_docs_are_not_served_inside_lambda(monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from shared.config.settings import clear_settings_cache

    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "graphrec-api")
    clear_settings_cache()
    res = TestClient(create_app(), raise_server_exceptions=False).get("/docs")
    assert res.status_code == 404 and res.headers["content-type"] == "application/json"
