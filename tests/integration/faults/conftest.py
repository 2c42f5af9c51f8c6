"""Fault-injection fixtures: a live run in a private MariaDB database (+ Milvus Lite file or a Milvus server
process), a FaultProxy in front of the store under test, and the real app served by uvicorn over HTTP.

Timeouts are shortened through the real settings (GRAPHREC_MYSQL_READ_TIMEOUT, GRAPHREC_MILVUS_TIMEOUT, GRAPHREC_API_REQUEST_TIMEOUT)
so the whole suite runs in about a minute; the defaults are a few seconds (shared/config/settings.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from handlers.api_app import create_app, deps
from shared.config.settings import clear_settings_cache, get_settings
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER
from tests.helpers.factories import make_run
from tests.helpers.live import LiveRun, load_live, uvicorn_in_thread

# Short budgets for the suite: a store call may take 1 s, a request 2 s.
FAST_TIMEOUTS = {
    "GRAPHREC_MYSQL_CONNECT_TIMEOUT": "1",
    "GRAPHREC_MYSQL_READ_TIMEOUT": "1",
    "GRAPHREC_MYSQL_WRITE_TIMEOUT": "1",
    "GRAPHREC_MILVUS_TIMEOUT": "1",
    "GRAPHREC_API_REQUEST_TIMEOUT": "2",
}
DEADLINE = float(FAST_TIMEOUTS["GRAPHREC_API_REQUEST_TIMEOUT"])
SLACK = 0.75  # thread scheduling on a busy 2-core box; the guarantee is "deadline, not 20-60 s"


@dataclass
class Answer:
    status: int
    seconds: float
    headers: httpx.Headers
    body: Any


def timed(client: httpx.Client, method: str, url: str, **kwargs: Any) -> Answer:
    started = time.perf_counter()
    res = client.request(method, url, **kwargs)
    seconds = time.perf_counter() - started
    try:
        body: Any = res.json()
    except ValueError:
        body = res.text
    return Answer(res.status_code, seconds, res.headers, body)


def _create_database() -> str:
    import pymysql

    name = f"graphrec_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # generated name, not input
    conn.close()
    return name


def _drop_database(name: str) -> None:
    import pymysql

    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


@contextmanager
def module_env(values: dict[str, str]) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    for key, value in values.items():
        mp.setenv(key, value)
    clear_settings_cache()
    try:
        yield
    finally:
        mp.undo()
        clear_settings_cache()


@dataclass
class Stores:
    env: dict[str, str]
    live: LiveRun


def live_stores(tmp: Path, milvus_uri: str) -> Iterator[Stores]:
    """A fresh database with a live make_run() run whose vectors are in `milvus_uri`."""
    from shared.stores.milvus.store import close_all_clients

    name = _create_database()
    env = {"GRAPHREC_MYSQL_DATABASE": name, "GRAPHREC_MILVUS_URI": milvus_uri, "GRAPHREC_ARTIFACT_URI": str(tmp / "runs")}
    try:
        with module_env(env):
            run = make_run(env["GRAPHREC_ARTIFACT_URI"], n_movies=200, n_users=50, dim=16, seed=11)
            live = load_live(get_settings(), run)
        yield Stores(env, live)
    finally:
        deps.reset_caches()
        close_all_clients()
        _drop_database(name)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], AbstractContextManager[str]]:
    """serve(env) -> context manager yielding the base URL of the real app on uvicorn with that environment."""

    @contextmanager
    def run(env: dict[str, str]) -> Iterator[str]:
        for key, value in {**FAST_TIMEOUTS, **env}.items():
            monkeypatch.setenv(key, value)
        clear_settings_cache()
        deps.reset_caches()
        try:
            with uvicorn_in_thread(create_app()) as base:
                yield base
        finally:
            deps.reset_caches()

    return run
