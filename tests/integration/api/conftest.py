"""Fixtures: one live run per test module in a private MariaDB database + Milvus, every module twice:
Milvus Lite (a file, in-process) and a Milvus server over the network (a fresh database on the session's
`milvus-lite server`), the same code with only GRAPHREC_MILVUS_URI differing.

Loading once per module keeps the suite fast; each test still gets the environment pointing at it
(the root conftest resets the environment before every test).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.config.settings import clear_settings_cache
from tests.conftest import (
    MILVUS_BACKENDS,
    MYSQL_HOST,
    MYSQL_PASSWORD,
    MYSQL_PORT,
    MYSQL_USER,
    milvus_backend_uri,
)
from tests.helpers.live import LiveRun, http_api_event, invoke, live_in_stores


@pytest.fixture(scope="module", params=MILVUS_BACKENDS)
def milvus_backend(request: pytest.FixtureRequest) -> str:
    """Which Milvus the module's tests run against: "lite", "server" or "standalone"."""
    return str(request.param)


@pytest.fixture(autouse=True)
def _milvus_for_test(
    request: pytest.FixtureRequest,
    milvus_backend: str,
    _isolated_settings: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[None]:
    """Tests that build their own runs (not the module's `live` one) get the module's backend too."""
    if "live" in request.fixturenames:
        yield
        return
    from shared.stores.milvus.store import close_all_clients

    for uri in milvus_backend_uri(request, milvus_backend, tmp_path):
        monkeypatch.setenv("GRAPHREC_MILVUS_URI", uri)
        clear_settings_cache()
        yield
        deps.reset_caches()
        close_all_clients()


@pytest.fixture(scope="module")
def _module_stores(
    request: pytest.FixtureRequest, milvus_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A fresh database + Milvus (Lite path or server database) for the module (dropped afterwards)."""
    import pymysql

    from shared.stores.milvus.store import close_all_clients

    name = f"graphrec_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # generated name, not input
    tmp = tmp_path_factory.mktemp("api")
    milvus = milvus_backend_uri(request, milvus_backend, tmp)
    try:
        uri = next(milvus)
        yield {"GRAPHREC_MYSQL_DATABASE": name, "GRAPHREC_MILVUS_URI": uri, "GRAPHREC_ARTIFACT_URI": str(tmp / "runs")}
    finally:
        milvus.close()
        deps.reset_caches()
        close_all_clients()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


@pytest.fixture(scope="module")
def _module_live(_module_stores: dict[str, str]) -> Iterator[LiveRun]:
    with live_in_stores(_module_stores, n_movies=200, n_users=50, dim=16, seed=7) as live:
        yield live


@pytest.fixture
def live(_module_live: LiveRun, _module_stores: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> LiveRun:
    """The module's live run, with this test's environment pointing at its stores."""
    for key, value in _module_stores.items():
        monkeypatch.setenv(key, value)
    clear_settings_cache()
    return _module_live


@pytest.fixture
def call() -> Iterator[Callable[..., tuple[int, dict[str, str], Any]]]:
    """call(method, path, **http_api_event kwargs) -> (status, headers, body) through the Mangum handler, with
    store clients and caches fresh for the test (modules may override it, e.g. to run both serving paths)."""
    deps.reset_caches()
    handler = Mangum(create_app(), lifespan="off")
    yield lambda method, path, **kw: invoke(handler, http_api_event(method, path, **kw))
    deps.reset_caches()
