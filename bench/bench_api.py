"""API benchmark on a MovieLens-1M-sized live run (3,706 movies, 6,040 users, 64-d) in Milvus Lite + MariaDB.

One command:  .venv/bin/python bench/bench_api.py [--requests 300] [--load-requests 3000] [--concurrency 16]

1. Builds a synthetic ML-1M-sized run (genre clusters, realistic history lengths: median ~95, max 2,314
   movies per user), loads it with the real loader (`python -m handlers.loader`) into the database
   `graphrec_bench` (recreated) and a Milvus Lite file under .local/bench/.
2. In-process latency: the Lambda handler (Mangum) called with payload-2.0 events, p50/p99 per endpoint;
   the run's recipe is multi-interest (BENCH_RECIPE), measured with 1-10, 50 and 500 liked movies.
3. HTTP load: uvicorn in a subprocess on 127.0.0.1, an asyncio httpx client with N concurrent workers;
   bounded by request count AND time (self-stopping); throughput and error count.
4. Cold start: fresh interpreter, `import handlers.api` + first /recommendations answer (median of 3).

Targets on 2 cores: recommend p50 <= 8 ms, p99 <= 25 ms in-process; >= 150 req/s over HTTP with zero
errors; cold start <= 1.5 s. The machine may be shared: the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

N_MOVIES, N_USERS, DIM = 3706, 6040, 64
ML_GENRES = [
    "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
DB = "graphrec_bench"
WORK = ROOT / ".local" / "bench" / "api"
TARGETS = {"p50": 8.0, "p99": 25.0, "rps": 150.0, "cold": 1.5}
# The heaviest recipe the API serves: the latest 50 movies clustered into up to 3 interests (a genre
# cluster of this run is ~0.26 cosine distance wide, genres ~1 apart), one batched search of 3 queries.
BENCH_RECIPE = {"last_k": 50, "decay": 0.95, "interests": 3, "threshold": 0.5, "diversity": 0.0}


def make_ml1m_like_run(out: Path, seed: int = 0) -> str:
    """Write a valid run folder shaped like MovieLens-1M; returns its manifest URI."""
    from shared.contract import artifacts

    rng = np.random.default_rng(seed)
    n_clusters = len(ML_GENRES)
    centers = rng.normal(size=(n_clusters, DIM)).astype(np.float32)  # (C, dim)
    cluster = rng.integers(n_clusters, size=N_MOVIES)  # (n,)
    emb = centers[cluster] + 0.6 * rng.normal(size=(N_MOVIES, DIM)).astype(np.float32)  # (n, dim)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    ids = np.sort(rng.choice(np.arange(1, 3953), size=N_MOVIES, replace=False)).astype(np.int64)  # ML-1M id range
    years = [int(y) if i % 23 else None for i, y in enumerate(rng.integers(1919, 2001, size=N_MOVIES))]
    genres = [
        sorted({ML_GENRES[c], *[ML_GENRES[g] for g in rng.integers(n_clusters, size=rng.integers(0, 3))]})
        for c in cluster
    ]
    titles = [f"{ML_GENRES[c]} Picture No. {int(m)}" for m, c in zip(ids, cluster, strict=True)]
    popularity = rng.zipf(1.3, size=N_MOVIES).astype(np.float64)
    lengths = np.clip(rng.lognormal(mean=4.55, sigma=1.0, size=N_USERS), 20, 2314).astype(int)
    lengths[0] = 2314  # the heaviest ML-1M user
    histories = []
    for n in lengths:
        fav = rng.integers(n_clusters, size=2)
        w = popularity * np.where(np.isin(cluster, fav), 8.0, 1.0)
        histories.append([int(x) for x in rng.choice(ids, size=int(n), replace=False, p=w / w.sum())])
    writer = artifacts.RunWriter(str(out))
    writer.write_table(artifacts.EMBEDDINGS, artifacts.embeddings_table(ids, emb))
    writer.write_table(artifacts.MOVIES, artifacts.movies_table(ids, titles, years, genres))
    writer.write_table(artifacts.USER_HISTORY, artifacts.user_history_table(range(1, N_USERS + 1), histories))
    writer.write_json(artifacts.METRICS, {"bench": True})
    writer.write_json(artifacts.CONFIG, {"dim": DIM, "seed": seed, "bench": True})
    writer.finish(
        dim=DIM,
        counts=artifacts.Counts(movies=N_MOVIES, users=N_USERS, embeddings=N_MOVIES, ratings=int(lengths.sum())),
        metrics={"bench": True},
        source={"kind": "bench-synthetic", "seed": seed},
        recipe=BENCH_RECIPE,
    )
    return writer.uri(artifacts.MANIFEST)


def bench_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "GRAPHREC_MYSQL_DATABASE": DB,
            "GRAPHREC_MILVUS_URI": str(WORK / "milvus.db"),
            "GRAPHREC_ARTIFACT_URI": str(WORK / "runs"),
            "GRAPHREC_LOG_LEVEL": os.environ.get("GRAPHREC_LOG_LEVEL", "INFO"),
            "PYTHONPATH": str(ROOT),
        }
    )
    return env


def prepare() -> tuple[str, dict[str, Any]]:
    import pymysql

    from shared.config.settings import get_settings

    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "runs").mkdir(parents=True)
    os.environ.update(bench_env())
    s = get_settings()
    conn = pymysql.connect(host=s.mysql_host, port=s.mysql_port, user=s.mysql_user, password=s.mysql_password.get_secret_value())
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB}`")
        cur.execute(f"CREATE DATABASE `{DB}` CHARACTER SET utf8mb4")
    conn.close()
    t = time.perf_counter()
    manifest = make_ml1m_like_run(WORK / "runs")
    print(f"  run written in {time.perf_counter() - t:.1f}s: {manifest}")
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "handlers.loader", manifest, "--no-progress"],
        cwd=ROOT, env=bench_env(), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    if proc.returncode != 0:
        sys.exit(f"loader failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    print(f"  loaded with handlers.loader in {time.perf_counter() - t:.1f}s")
    from shared.contract import artifacts
    from shared.contract.artifacts import RunReader

    reader = RunReader(manifest)
    ids = [int(m) for b in reader.iter_batches(artifacts.MOVIES) for m in b.column("movie_id").to_pylist()]
    return reader.manifest().run_id, {"movie_ids": ids}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def in_process(run_id: str, movie_ids: list[int], n: int) -> dict[str, dict[str, float]]:
    from handlers.api import handler
    from handlers.api_app.middleware import logger
    from tests.helpers.live import LambdaContext, http_api_event

    devnull = open(os.devnull, "w")  # noqa: SIM115  # lives as long as the benchmark process
    logger.registered_handler.setStream(devnull)  # type: ignore[attr-defined]  # format, don't print
    rng = random.Random(1)
    ctx = LambdaContext()

    def liked() -> list[int]:
        return rng.sample(movie_ids, rng.randint(1, 10))

    cases: dict[str, Any] = {
        "POST /recommendations": lambda: http_api_event("POST", "/recommendations", body={"liked": liked(), "k": 10}),
        "POST /recommendations +genre": lambda: http_api_event(
            "POST", "/recommendations", body={"liked": liked(), "k": 10, "genres": [rng.choice(ML_GENRES)]}
        ),
        "POST /recommendations 50 liked": lambda: http_api_event(
            "POST", "/recommendations", body={"liked": rng.sample(movie_ids, 50), "k": 10}
        ),
        "POST /recommendations 50 liked, diversity 0.5": lambda: http_api_event(
            "POST", "/recommendations", body={"liked": rng.sample(movie_ids, 50), "k": 10, "diversity": 0.5}
        ),
        "POST /recommendations 500 liked": lambda: http_api_event(
            "POST", "/recommendations", body={"liked": rng.sample(movie_ids, 500), "k": 10}
        ),
        "GET /users/{id}/recommendations": lambda: http_api_event(
            "GET", f"/users/{rng.randint(1, N_USERS)}/recommendations", query="k=10"
        ),
        "GET /movies/{id}/similar": lambda: http_api_event("GET", f"/movies/{rng.choice(movie_ids)}/similar"),
        "GET /movies/{id}": lambda: http_api_event("GET", f"/movies/{rng.choice(movie_ids)}"),
        "GET /movies?sample=24": lambda: http_api_event("GET", "/movies", query="sample=24"),
        "GET /movies?q=": lambda: http_api_event("GET", "/movies", query=f"q=No.%20{rng.randint(1, 399)}"),
        "GET /health": lambda: http_api_event("GET", "/health"),
    }
    out: dict[str, dict[str, float]] = {}
    for name, make in cases.items():
        for _ in range(20):  # warm-up: clients connected, collection loaded, code paths hot
            handler(make(), ctx)
        times, errors = [], 0
        for _ in range(n):
            event = make()
            t = time.perf_counter()
            res = handler(event, ctx)
            times.append((time.perf_counter() - t) * 1000)
            errors += res["statusCode"] != 200
        out[name] = {"p50": percentile(times, 50), "p99": percentile(times, 99), "errors": errors}
    heavy = http_api_event("GET", "/users/1/recommendations")  # the 2,314-movie history
    t = time.perf_counter()
    for _ in range(20):
        handler(heavy, ctx)
    out["GET /users/1/recommendations (2,314 seen)"] = {"p50": (time.perf_counter() - t) * 50, "p99": float("nan"), "errors": 0}
    return out


async def _load(base: str, movie_ids: list[int], total: int, seconds: float, concurrency: int) -> dict[str, float]:
    import httpx

    rng = random.Random(2)
    sent = ok = errors = 0
    deadline = time.perf_counter() + seconds
    lat: list[float] = []

    def request() -> tuple[str, str, Any]:
        r = rng.random()
        if r < 0.7:
            return "POST", "/recommendations", {"liked": rng.sample(movie_ids, rng.randint(1, 10)), "k": 10}
        if r < 0.8:
            return "GET", f"/users/{rng.randint(1, N_USERS)}/recommendations", None
        if r < 0.9:
            return "GET", f"/movies/{rng.choice(movie_ids)}/similar", None
        return "GET", "/movies?sample=24", None

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal sent, ok, errors
        while sent < total and time.perf_counter() < deadline:
            sent += 1
            method, path, body = request()
            t = time.perf_counter()
            try:
                res = await client.request(method, path, json=body)
                if res.status_code == 200:
                    ok += 1
                else:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            lat.append((time.perf_counter() - t) * 1000)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    return {
        "requests": ok + errors, "ok": ok, "errors": errors, "seconds": elapsed, "rps": (ok + errors) / elapsed,
        "p50": percentile(lat, 50), "p99": percentile(lat, 99),
    }  # fmt: skip


def wait_healthy(base: str, proc: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    """Poll GET /health until 200; fail if the server process exits or `seconds` pass."""
    import httpx

    from tests.helpers.servers import wait_until

    def healthy() -> bool:
        try:
            return httpx.get(base + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(healthy, alive=lambda: proc.poll() is None, what="uvicorn (healthy)", timeout=seconds)


def over_http(movie_ids: list[int], total: int, seconds: float, concurrency: int) -> dict[str, float]:

    from tests.helpers.servers import free_port, stop

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "handlers.api:app", "--host", "127.0.0.1", "--port", str(port),
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=bench_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        asyncio.run(_load(base, movie_ids, 200, 10, concurrency))  # warm-up
        return asyncio.run(_load(base, movie_ids, total, seconds, concurrency))
    finally:
        stop(proc)


COLD = """
import time
t0 = time.perf_counter()
import handlers.api
t1 = time.perf_counter()
from tests.helpers.live import LambdaContext, http_api_event
ev = http_api_event("POST", "/recommendations", body={"liked": %s, "k": 10})
res = handlers.api.handler(ev, LambdaContext())
t2 = time.perf_counter()
assert res["statusCode"] == 200, res
import json, sys
print(json.dumps({"import": t1 - t0, "first": t2 - t1, "heavy": [m for m in ("torch", "dgl", "awswrangler") if m in sys.modules]}))
"""


def cold_start(movie_ids: list[int], runs: int = 3) -> dict[str, Any]:
    results = []
    for _ in range(runs):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", COLD % json.dumps(movie_ids[:3])],
            cwd=ROOT, env={**bench_env(), "GRAPHREC_LOG_LEVEL": "WARNING"}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["process"] = wall
        results.append(r)
    med = {k: statistics.median(r[k] for r in results) for k in ("import", "first", "process")}
    return {**med, "total": med["import"] + med["first"], "heavy": results[0]["heavy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="in-process requests per endpoint")
    parser.add_argument("--load-requests", type=int, default=3000, help="HTTP load: max requests")
    parser.add_argument("--load-seconds", type=float, default=30.0, help="HTTP load: max seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="HTTP load: concurrent clients")
    args = parser.parse_args()

    print(f"== setup: ML-1M-sized run ({N_MOVIES} movies, {N_USERS} users, {DIM}-d), database {DB}")
    run_id, info = prepare()
    ids = info["movie_ids"]
    print(f"  live run {run_id}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    print(f"== in-process handler latency ({args.requests} requests per endpoint, Mangum + payload 2.0)")
    lat = in_process(run_id, ids, args.requests)
    for name, r in lat.items():
        print(f"  {name:42s} p50 {r['p50']:7.2f} ms   p99 {r['p99']:7.2f} ms   errors {int(r['errors'])}")
    from shared.stores.milvus.store import close_all_clients

    close_all_clients()  # hand the Milvus Lite file over to the uvicorn process

    print(f"== HTTP load (uvicorn subprocess, {args.concurrency} concurrent, <= {args.load_requests} req / {args.load_seconds:.0f} s)")
    load = over_http(ids, args.load_requests, args.load_seconds, args.concurrency)
    print(
        f"  {load['requests']:.0f} requests in {load['seconds']:.1f}s = {load['rps']:.0f} req/s, "
        f"errors {load['errors']:.0f}, latency p50 {load['p50']:.1f} ms p99 {load['p99']:.1f} ms"
    )

    print("== cold start (fresh interpreter: import handlers.api + first /recommendations; median of 3)")
    cold = cold_start(ids)
    print(
        f"  import {cold['import']:.2f}s + first answer {cold['first']:.2f}s = {cold['total']:.2f}s "
        f"(whole process incl. interpreter {cold['process']:.2f}s); torch/dgl/awswrangler loaded: {cold['heavy'] or 'none'}"
    )

    rec = lat["POST /recommendations"]
    print(f"== targets (recipe {BENCH_RECIPE})")
    print(f"  recommend p50 {rec['p50']:.2f} ms (<= {TARGETS['p50']})  {'OK' if rec['p50'] <= TARGETS['p50'] else 'MISSED'}")
    print(f"  recommend p99 {rec['p99']:.2f} ms (<= {TARGETS['p99']})  {'OK' if rec['p99'] <= TARGETS['p99'] else 'MISSED'}")
    r50 = lat["POST /recommendations 50 liked"]
    print(f"  recommend 50 liked p99 {r50['p99']:.2f} ms (<= {TARGETS['p99']})  {'OK' if r50['p99'] <= TARGETS['p99'] else 'MISSED'}")
    ok_rps = load["rps"] >= TARGETS["rps"] and load["errors"] == 0
    print(f"  HTTP {load['rps']:.0f} req/s, {load['errors']:.0f} errors (>= {TARGETS['rps']:.0f}, 0)  {'OK' if ok_rps else 'MISSED'}")
    print(f"  cold start {cold['total']:.2f}s (<= {TARGETS['cold']})  {'OK' if cold['total'] <= TARGETS['cold'] else 'MISSED'}")
    print(f"  load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
