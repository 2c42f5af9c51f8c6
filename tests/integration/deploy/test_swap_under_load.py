"""The deployed topology, small: a Milvus server process, the API under uvicorn, 16 concurrent HTTP clients,
and the loader in its own process putting two new runs live and rolling one back meanwhile. Every request
must be answered 200 by a run that was live (bench/bench_swap.py is the full-size version)."""

from __future__ import annotations

import argparse
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor

import pymysql

from infra.sam_template import REPO_ROOT
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER


def test_runs_switch_under_16_concurrent_clients_without_a_failed_request() -> None:
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    import bench_swap

    bench_swap.DB = f"graphrec_swap_{uuid.uuid4().hex[:8]}"
    args = argparse.Namespace(
        runs=3, concurrency=16, settle=1.5, max_seconds=120, milvus_search=True, small=True
    )
    try:
        # in a worker thread: asyncio.run() would leave this thread without an event loop for later tests
        with ThreadPoolExecutor(1) as pool:
            out = pool.submit(bench_swap.run, args).result()
    finally:
        conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{bench_swap.DB}`")  # generated name
        conn.close()
    print({k: out[k] for k in ("requests", "failed", "rps", "p50_ms", "p99_ms", "switches")})
    assert out["requests"] > 100
    assert out["failed"] == 0, out["failures"]
    assert out["foreign_run_ids"] == []
    served = [r["run_id"] for r in out["runs_served"]]
    assert len(served) == 3  # every run was served at some point, in the order it went live
    assert [s["kind"] for s in out["switches"]] == ["load", "load", "rollback"]
    # after the rollback the second run is served again, up to the end
    second = next(r for r in out["runs_served"] if r["run_id"] == served[1])
    third = next(r for r in out["runs_served"] if r["run_id"] == served[2])
    assert second["last_s"] > third["last_s"]
