"""Test helpers for the API: put a make_run() run live in real MariaDB + Milvus Lite, build payload-2.0 events.

The run is loaded through the store classes (the loader's own path is tested by the loader's tests), then
made live with `switch_live` + the Milvus alias - the exact state the loader leaves behind.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from shared.config.lambda_context import LocalLambdaContext
from shared.config.settings import Settings
from shared.contract.artifacts import MOVIES, USER_HISTORY, RunReader
from tests.helpers.factories import FakeRun, make_run
from tests.helpers.servers import free_port, wait_until

MYSQL_ENV = ("GRAPHREC_MYSQL_HOST", "GRAPHREC_MYSQL_PORT", "GRAPHREC_MYSQL_USER", "GRAPHREC_MYSQL_PASSWORD")


@dataclass
class LiveRun:
    run: FakeRun
    movies: dict[int, dict[str, Any]]  # movie_id -> {"title", "year", "genres"}


def load_live(settings: Settings, run: FakeRun) -> LiveRun:
    """Write the run's movies, histories and vectors into the stores and switch it live."""
    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore, Movie

    reader = RunReader(run.manifest_uri)
    manifest = reader.manifest()
    movies: dict[int, dict[str, Any]] = {}
    for batch in reader.iter_batches(MOVIES):
        for row in batch.to_pylist():
            movies[int(row["movie_id"])] = {"title": row["title"], "year": row["year"], "genres": row["genres"]}
    histories = [
        (int(r["user_id"]), [int(m) for m in r["movie_ids"]])
        for batch in reader.iter_batches(USER_HISTORY)
        for r in batch.to_pylist()
    ]
    meta = MetadataStore.from_settings(settings)
    meta.ensure_schema()
    meta.upsert_run(
        run.run_id,
        status="loading",
        dim=run.dim,
        counts=manifest.counts.model_dump(),
        metrics={**manifest.metrics, **({"recipe": manifest.recipe} if manifest.recipe else {})},
        manifest_uri=run.manifest_uri,
    )
    meta.insert_movies(run.run_id, [Movie(m, v["title"], v["year"], list(v["genres"])) for m, v in movies.items()])
    meta.insert_histories(run.run_id, histories)
    vectors = VectorStore.from_settings(settings)
    vectors.create_collection(run.run_id, run.dim)
    order = [int(m) for m in run.movie_ids]
    vectors.insert(
        run.run_id,
        order,
        run.embeddings,
        [list(movies[m]["genres"]) for m in order],
        [movies[m]["year"] for m in order],
    )
    vectors.flush(run.run_id)
    meta.set_status(run.run_id, "ready")
    meta.switch_live(run.run_id)
    vectors.set_alias(run.run_id)
    meta.close()
    return LiveRun(run=run, movies=movies)


def http_api_event(
    method: str,
    path: str,
    *,
    query: str = "",
    body: Any = None,
    headers: dict[str, str] | None = None,
    request_id: str | None = None,
    base64_body: bool = False,
) -> dict[str, Any]:
    """An API Gateway HTTP API payload-2.0 event, shaped like `sam local generate-event apigateway http-api-proxy`."""
    raw = body if isinstance(body, str) or body is None else json.dumps(body)
    hdrs = {"accept": "application/json", "host": "abc123.execute-api.us-east-1.amazonaws.com", "user-agent": "pytest"}
    if raw is not None:
        hdrs["content-type"] = "application/json"
    hdrs.update(headers or {})
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in query.split("&") if p)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "cookies": [],
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "pytest",
            },
            "requestId": request_id or f"req-{uuid.uuid4().hex[:12]}",
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:09:15:00 +0000",
            "timeEpoch": 1795425300000,
        },
        "isBase64Encoded": base64_body,
    }
    if params:
        event["queryStringParameters"] = params
    if raw is not None:
        event["body"] = base64.b64encode(raw.encode()).decode() if base64_body else raw
    return event


LambdaContext = LocalLambdaContext  # the name the tests use


def invoke(handler: Any, event: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
    """Call the Lambda handler; returns (status, lower-cased headers, parsed JSON body or raw text)."""
    out = handler(event, LambdaContext())
    headers = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
    body = out.get("body") or ""
    if out.get("isBase64Encoded"):
        body = base64.b64decode(body).decode()
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = body
    return int(out["statusCode"]), headers, parsed


@contextmanager
def uvicorn_in_thread(app: Any) -> Iterator[str]:
    """Serve `app` over real HTTP on 127.0.0.1:<free port>; yields the base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, alive=thread.is_alive, what="uvicorn", timeout=20, interval=0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def live_in_stores(stores: dict[str, str], **run_kwargs: Any) -> Iterator[LiveRun]:
    """A make_run(**run_kwargs) run put live in `stores` (env vars GRAPHREC_MYSQL_DATABASE, GRAPHREC_MILVUS_URI, GRAPHREC_ARTIFACT_URI),
    with the environment pointing at them while the context lasts (module-scoped fixtures use this)."""
    import pytest

    from shared.config.settings import clear_settings_cache, get_settings

    mp = pytest.MonkeyPatch()
    for key, value in stores.items():
        mp.setenv(key, value)
    clear_settings_cache()
    try:
        yield load_live(get_settings(), make_run(stores["GRAPHREC_ARTIFACT_URI"], **run_kwargs))
    finally:
        mp.undo()
        clear_settings_cache()


@contextmanager
def migrated(store_cls: Any, settings: Settings) -> Iterator[Any]:
    """A MySQL store (MetadataStore, EventsReader, ...) built from settings, its tables created; closed after."""
    store = store_cls.from_settings(settings)
    store.ensure_schema()
    try:
        yield store
    finally:
        store.close()
