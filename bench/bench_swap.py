"""Swap under load: the deployed topology on one machine, every component in its own process.

    .venv/bin/python bench/bench_swap.py [--runs 4] [--concurrency 16] [--milvus-search] [--small]

- Milvus: `milvus-lite server` on a free loopback port (a network server, as Milvus/Zilliz is on AWS).
- MySQL: the local MariaDB, database `graphrec_swap` (recreated).
- API: uvicorn serving handlers.api:app (one worker) with GRAPHREC_MILVUS_URI=http://127.0.0.1:<port>.
- Load: N concurrent HTTP clients (asyncio + httpx), 70% POST /recommendations, the rest similar-movies,
  user recommendations and /health, for as long as the swaps take (bounded in time and count).
- Loader: `python -m handlers.loader` in its own process per switch (as separate Lambda invocations), putting
  runs 2..R live one after the other, then `--rollback` (the previous run live again).

Passes when every request answered 200 and answers named only runs that were live; prints requests,
errors, req/s, p50/p99, the run_ids seen in order, each switch's duration, and the load average.
`--milvus-search` sets GRAPHREC_API_LOCAL_INDEX_MAX=0 so every search goes to the Milvus server (the path for
catalogues above 50,000 vectors); the default uses the API's in-memory exact index for this catalogue.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DB = "graphrec_swap"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def start_milvus_server(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`milvus-lite server` under `data` (tests/helpers/servers.py); returns (process, uri) once it answers."""
    from tests.helpers.servers import start_milvus_lite_server

    return start_milvus_lite_server(data)


def recreate_db() -> None:
    import pymysql

    from shared.config.settings import Settings

    s = Settings()
    conn = pymysql.connect(host=s.mysql_host, port=s.mysql_port, user=s.mysql_user, password=s.mysql_password.get_secret_value())
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB}`")
        cur.execute(f"CREATE DATABASE `{DB}` CHARACTER SET utf8mb4")
    conn.close()


def loader(env: dict[str, str], *args: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "handlers.loader", *args, "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"loader {args} failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    out = proc.stdout
    return time.perf_counter() - t, json.loads(out[out.index("{") :]) if "{" in out else {}


async def _client(
    base: str, n_movies: int, n_users: int, stop: asyncio.Event, out: list[tuple[float, float, int, str | None, str]]
) -> None:
    import httpx

    rng = random.Random()
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        while not stop.is_set():
            r = rng.random()
            t = time.perf_counter()
            try:
                if r < 0.7:
                    kind = "recommendations"
                    liked = rng.sample(range(1, n_movies + 1), 3)
                    resp = await http.post("/recommendations", json={"liked": liked, "k": 10})
                elif r < 0.85:
                    kind = "similar"
                    resp = await http.get(f"/movies/{rng.randint(1, n_movies)}/similar", params={"k": 10})
                elif r < 0.97:
                    kind = "user"
                    resp = await http.get(f"/users/{rng.randint(1, n_users)}/recommendations", params={"k": 10})
                else:
                    kind = "health"
                    resp = await http.get("/health")
                status = resp.status_code
                run_id = resp.json().get("run_id") if status == 200 else None
                if status != 200:
                    kind += f": {resp.text[:200]}"
            except Exception as exc:  # noqa: BLE001 - a failed request is a result here
                status, run_id, kind = 0, None, f"{type(exc).__name__}: {exc}"
            out.append((t, time.perf_counter() - t, status, run_id, kind))


async def _load(base: str, n_movies: int, n_users: int, concurrency: int, stop: asyncio.Event, out: list) -> None:  # type: ignore[type-arg]
    await asyncio.gather(*(_client(base, n_movies, n_users, stop, out) for _ in range(concurrency)))


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bench_api import wait_healthy  # bench/ is on sys.path: the script's own folder

    from tests.helpers.factories import make_run
    from tests.helpers.servers import free_port
    from tests.helpers.servers import stop as stop_process

    n_movies, n_users, dim = (400, 300, 16) if args.small else (3706, 6040, 64)
    work = Path(tempfile.mkdtemp(prefix="graphrec-swap-"))
    milvus, milvus_uri = start_milvus_server(work / "milvus")
    api = None
    try:
        recreate_db()
        env = {
            **os.environ,
            "GRAPHREC_MILVUS_URI": milvus_uri,
            "GRAPHREC_MYSQL_DATABASE": DB,
            "GRAPHREC_ARTIFACT_URI": str(work / "runs"),
            "GRAPHREC_KEEP_RUNS": "2",
            "GRAPHREC_LIVE_RUN_CACHE_SECONDS": "1",
            "GRAPHREC_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
        if args.milvus_search:
            env["GRAPHREC_API_LOCAL_INDEX_MAX"] = "0"
        t = time.perf_counter()
        runs = [make_run(str(work / "runs"), n_movies=n_movies, n_users=n_users, dim=dim, seed=i) for i in range(args.runs)]
        print(f"  {args.runs} runs of {n_movies} x {dim}-d, {n_users} users written in {time.perf_counter() - t:.1f} s")
        first_s, _ = loader(env, runs[0].manifest_uri)
        print(f"  first run loaded in {first_s:.1f} s (Milvus server {milvus_uri})")

        port = free_port()
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "handlers.api:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        wait_healthy(base, api)

        results: list[tuple[float, float, int, str | None, str]] = []
        switches: list[dict[str, Any]] = []
        load1_before = os.getloadavg()[0]

        async def scenario() -> None:
            stop = asyncio.Event()
            load = asyncio.create_task(_load(base, n_movies, n_users, args.concurrency, stop, results))
            started = time.monotonic()
            await asyncio.sleep(0)
            await asyncio.sleep(args.settle)
            plan = [("load", r.manifest_uri) for r in runs[1:]] + [("rollback", "--rollback")]
            for kind, arg in plan:
                if time.monotonic() - started > args.max_seconds:
                    break
                t0 = time.perf_counter()
                seconds, out = await asyncio.to_thread(loader, env, arg)
                switches.append({"kind": kind, "seconds": round(seconds, 2), "at": round(t0, 3), "result": out})
                await asyncio.sleep(args.settle)
            stop.set()
            await load

        t_start = time.perf_counter()
        asyncio.run(scenario())
        elapsed = time.perf_counter() - t_start
        load1_after = os.getloadavg()
    finally:
        if api is not None:
            stop_process(api)
        stop_process(milvus)

    ok = [r for r in results if r[2] == 200]
    failed = [r for r in results if r[2] != 200]
    lat = [r[1] * 1000 for r in ok]
    # per run: how many answers, and when (by completion, seconds from the first request) it was served
    t_first = min((r[0] for r in results), default=0.0)
    served: dict[str, dict[str, Any]] = {}
    for t, d, status, rid, _ in results:
        if status == 200 and rid:
            done = t + d - t_first
            e = served.setdefault(rid, {"answers": 0, "first_s": done, "last_s": done})
            e["answers"] += 1
            e["first_s"], e["last_s"] = min(e["first_s"], done), max(e["last_s"], done)
    seen = sorted(served, key=lambda k: served[k]["first_s"])
    timeline = [{"run_id": k, **{x: round(v, 2) if isinstance(v, float) else v for x, v in served[k].items()}} for k in seen]
    run_ids = {r.run_id for r in runs}
    return {
        "requests": len(results),
        "failed": len(failed),
        "failures": sorted({f[4] for f in failed})[:10],
        "foreign_run_ids": sorted({r[3] for r in ok if r[3] not in run_ids}),
        "seconds": round(elapsed, 1),
        "rps": round(len(results) / elapsed, 1),
        "p50_ms": round(percentile(lat, 50), 1),
        "p99_ms": round(percentile(lat, 99), 1),
        "max_ms": round(max(lat), 1) if lat else None,
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "runs_served": timeline,
        "switches": [
            {"kind": s["kind"], "seconds": s["seconds"], "at_s": round(s["at"] - t_first, 2)}
            | {k: s["result"][k] for k in ("outcome", "run_id", "live_run_id") if k in s["result"]}
            for s in switches
        ],
        "loadavg_before": round(load1_before, 2),
        "loadavg_after_1_5_15": [round(x, 2) for x in load1_after],
        "concurrency": args.concurrency,
        "search": "milvus server" if args.milvus_search else "in-memory index (catalogue <= GRAPHREC_API_LOCAL_INDEX_MAX)",
        "catalogue": f"{n_movies} movies x {dim}-d, {n_users} users",
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=4, help="runs to put live one after the other (then one rollback)")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--settle", type=float, default=3.0, help="seconds of load before, between and after switches")
    p.add_argument("--max-seconds", type=float, default=300.0, help="stop switching after this long")
    p.add_argument("--milvus-search", action="store_true", help="GRAPHREC_API_LOCAL_INDEX_MAX=0: search in the Milvus server")
    p.add_argument("--small", action="store_true", help="400 movies, 300 users, 16-d (quick check)")
    args = p.parse_args()
    out = run(args)
    print(json.dumps(out, indent=2))
    good = out["failed"] == 0 and not out["foreign_run_ids"] and len(out["runs_served"]) >= 2
    print("PASS: 0 failed requests across every switch" if good else "FAIL")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
