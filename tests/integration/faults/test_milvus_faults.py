"""A Milvus server (`milvus-lite server`, its own process, gRPC over TCP) behind a real TCP proxy that
stalls, resets, trickles or drops: bounded 503s, requests that need no store stay fast, recovery without
a restart. The in-memory index is off (GRAPHREC_API_LOCAL_INDEX_MAX=0), so every recommendation asks Milvus."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.helpers.servers import milvus_lite_server
from tests.integration.faults.conftest import (
    DEADLINE,
    SLACK,
    Answer,
    Stores,
    live_stores,
    timed,
)
from tests.integration.faults.proxy import FaultProxy

BOUND = DEADLINE + SLACK
STATIC = ("/", "/web/style.css", "/web/app.js")


@pytest.fixture(scope="module")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with milvus_lite_server(tmp_path_factory.mktemp("milvus-server")) as uri:
        yield uri


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory, milvus_server: str) -> Iterator[Stores]:
    yield from live_stores(tmp_path_factory.mktemp("milvus-faults"), milvus_server)


@pytest.fixture
def proxy(milvus_server: str) -> Iterator[FaultProxy]:
    host, port = milvus_server.removeprefix("http://").split(":")
    p = FaultProxy(host, int(port), slow_delay=0.3, drop_after=5)
    yield p
    p.close()


@pytest.fixture
def api(stores: Stores, proxy: FaultProxy, serve: Any) -> Iterator[httpx.Client]:
    from shared.stores.milvus.store import close_all_clients

    env = {**stores.env, "GRAPHREC_MILVUS_URI": f"http://{proxy.address}", "GRAPHREC_API_LOCAL_INDEX_MAX": "0"}
    close_all_clients()  # one gRPC channel per URI per process: start from a fresh one through the proxy
    try:
        with serve(env) as base, httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        close_all_clients()


def _assert_store_503(a: Answer) -> None:
    assert a.status == 503, a.body
    assert a.seconds <= BOUND, f"took {a.seconds:.2f} s, bound {BOUND} s"
    assert a.headers["retry-after"] == "5" and a.headers["content-type"] == "application/json"
    assert "Traceback" not in str(a.body) and "grpc" not in str(a.body).lower()


def _recovers(client: httpx.Client, method: str, path: str, **kwargs: Any) -> float:
    started = time.perf_counter()
    while True:
        if client.request(method, path, **kwargs).status_code == 200:
            return time.perf_counter() - started
        assert time.perf_counter() - started < 10, f"{path} did not recover"
        time.sleep(0.2)


@pytest.mark.parametrize("fault", ["stall", "reset", "slow", "drop"])
def test_milvus_fault_is_a_bounded_503_while_other_requests_stay_fast_then_recovers(
    api: httpx.Client, proxy: FaultProxy, fault: str
) -> None:
    client = api
    body = {"liked": [1, 2, 3], "k": 5}
    assert client.post("/recommendations", json=body).status_code == 200  # the channel is up
    proxy.set(fault)
    with ThreadPoolExecutor(max_workers=8) as pool:
        pending = [
            pool.submit(timed, client, "POST", "/recommendations", json={**body, "k": k}) for k in (3, 4, 6)
        ]
        pending += [pool.submit(timed, client, "GET", f"/movies/{m}/similar") for m in (1, 2)]
        health = pool.submit(timed, client, "GET", "/health")
        time.sleep(0.2)
        static = [timed(client, "GET", path) for path in STATIC * 4]
        answers = [f.result() for f in pending]
        report = health.result()
    assert all(a.status == 200 for a in static)
    seconds = [a.seconds for a in static]  # milliseconds; one scheduling outlier tolerated (shared CPU)
    assert (
        statistics.median(seconds) < 0.1 and len([s for s in seconds if s > 0.2]) <= 1 and max(seconds) < 1.0
    ), seconds
    for a in answers:
        _assert_store_503(a)
    assert report.status == 503 and report.seconds <= BOUND and report.headers["retry-after"] == "5"
    assert report.body["status"] == "unavailable"
    proxy.set("pass")
    assert _recovers(client, "POST", "/recommendations", json=body) < 8
    assert client.get("/movies/1/similar").status_code == 200
