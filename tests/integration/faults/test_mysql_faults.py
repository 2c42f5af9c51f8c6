"""MariaDB behind a real TCP proxy that stalls, resets, trickles or drops: the API answers in bounded time
with the right status, requests that need no store stay fast, and it recovers without a restart."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MYSQL_HOST, MYSQL_PORT
from tests.integration.faults.conftest import DEADLINE, SLACK, Answer, Stores, live_stores, timed
from tests.integration.faults.proxy import FaultProxy

BOUND = DEADLINE + SLACK
STATIC = ("/", "/web/style.css", "/web/app.js")


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    tmp = tmp_path_factory.mktemp("mysql-faults")
    yield from live_stores(tmp, str(tmp / "milvus.db"))


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    p = FaultProxy(MYSQL_HOST, MYSQL_PORT, slow_delay=0.3, drop_after=5)
    yield p
    p.close()


@pytest.fixture
def api(stores: Stores, proxy: FaultProxy, serve: Any) -> Iterator[tuple[str, httpx.Client]]:
    env = {
        **stores.env,
        "GRAPHREC_MYSQL_HOST": "127.0.0.1",
        "GRAPHREC_MYSQL_PORT": str(proxy.port),
        "GRAPHREC_LIVE_RUN_CACHE_SECONDS": "0.5",
    }
    with serve(env) as base, httpx.Client(base_url=base, timeout=30) as client:
        yield base, client


def _assert_store_503(a: Answer) -> None:
    assert a.status == 503, a.body
    assert a.seconds <= BOUND, f"took {a.seconds:.2f} s, bound {BOUND} s"
    assert a.headers["retry-after"] == "5" and a.headers["content-type"] == "application/json"
    assert a.body["request_id"] == a.headers["x-request-id"]
    assert "Traceback" not in str(a.body) and "pymysql" not in str(a.body)


def _assert_static_fast(answers: list[Answer]) -> None:
    assert all(a.status == 200 for a in answers)
    seconds = [a.seconds for a in answers]
    # milliseconds, not the fault's duration (before the fix: 20-60 s behind one hung MySQL call). One
    # outlier is tolerated: a 2-core CI box shared with other jobs can deschedule the process briefly.
    slow = [s for s in seconds if s > 0.2]
    assert statistics.median(seconds) < 0.1 and len(slow) <= 1 and max(seconds) < 1.0, seconds


def _recovers(client: httpx.Client, path: str) -> float:
    """Seconds until `path` is 200 again (no restart); fails after 5 s."""
    started = time.perf_counter()
    while True:
        if client.get(path).status_code == 200:
            return time.perf_counter() - started
        assert time.perf_counter() - started < 5, f"{path} did not recover"
        time.sleep(0.1)


@pytest.mark.parametrize("fault", ["stall", "reset", "slow", "drop"])
def test_mysql_fault_is_a_bounded_503_while_other_requests_stay_fast_then_recovers(
    api: tuple[str, httpx.Client], proxy: FaultProxy, fault: str
) -> None:
    _, client = api
    assert client.get("/movies/1").status_code == 200  # the connection through the proxy is up
    proxy.set(fault)
    with ThreadPoolExecutor(max_workers=12) as pool:
        pending = [pool.submit(timed, client, "GET", f"/movies/{i}") for i in range(2, 10)]
        pending += [pool.submit(timed, client, "GET", f"/users/{u}/recommendations") for u in (1, 2)]
        health = pool.submit(timed, client, "GET", "/health")
        time.sleep(0.2)  # the store requests are now waiting on the fault
        static = [timed(client, "GET", path) for path in STATIC * 4]
        answers = [f.result() for f in pending]
        report = health.result()
    _assert_static_fast(static)
    for a in answers:
        _assert_store_503(a)
    assert report.status == 503 and report.seconds <= BOUND and report.headers["retry-after"] == "5"
    assert (
        report.body["status"] == "unavailable" and report.body["detail"]
    )  # the Health body, not the generic one
    proxy.set("pass")
    assert _recovers(client, "/movies/2") < 3
    assert client.get("/users/1/recommendations").status_code == 200
    assert client.get("/health").json()["status"] == "ok"


def test_recommendations_keep_serving_the_last_known_run_while_mysql_hangs(
    api: tuple[str, httpx.Client], proxy: FaultProxy, stores: Stores
) -> None:
    """Liked-movie recommendations come from the in-memory copy of the run; the live run id is cached, and
    while MySQL cannot confirm it the last known one keeps serving (GRAPHREC_LIVE_RUN_STALE_SECONDS)."""
    _, client = api
    body = {"liked": [1, 2, 3], "k": 5}
    assert client.post("/recommendations", json=body).status_code == 200
    proxy.set("stall")
    started = time.perf_counter()
    answers: list[Answer] = []
    while time.perf_counter() - started < 2.5:  # past the 0.5 s cache: refreshes hit the stalled MySQL
        answers.append(timed(client, "POST", "/recommendations", json=body))
    assert all(a.status == 200 and a.body["run_id"] == stores.live.run.run_id for a in answers)
    # at most one request at a time waits for MySQL (1 s read timeout); every other one answers at once
    assert max(a.seconds for a in answers) <= 1 + SLACK
    assert statistics.median(a.seconds for a in answers) < 0.1
    proxy.set("pass")


def test_many_requests_on_a_hung_mysql_do_not_starve_the_process(
    api: tuple[str, httpx.Client], proxy: FaultProxy
) -> None:
    _, client = api
    assert client.get("/movies/1").status_code == 200
    proxy.set("stall")
    with ThreadPoolExecutor(max_workers=48) as pool:
        pending = [pool.submit(timed, client, "GET", f"/movies?q=Movie%20{i}") for i in range(40)]
        time.sleep(0.3)
        static = [timed(client, "GET", path) for path in STATIC * 3]
        answers = [f.result() for f in pending]
    _assert_static_fast(static)
    for a in answers:
        _assert_store_503(a)
    proxy.set("pass")
    assert _recovers(client, "/movies?q=Movie%201") < 3


def test_mysql_refusing_connections_is_a_fast_503(tmp_path: Path, stores: Stores, serve: Any) -> None:
    from tests.helpers.live import free_port

    env = {**stores.env, "GRAPHREC_MYSQL_PORT": str(free_port())}  # nothing listens there
    with serve(env) as base, httpx.Client(base_url=base, timeout=30) as client:
        a = timed(client, "GET", "/movies/1")
        _assert_store_503(a)
        assert a.seconds < 1
