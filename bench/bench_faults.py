"""Load-and-fault benchmark: many concurrent clients against uvicorn while a new run is switched live and
while MySQL stalls.

One command:  .venv/bin/python bench/bench_faults.py [--clients 64] [--rate 150] [--stall 10]

Set-up (all real, all on this machine):
- MariaDB database `graphrec_bench_faults` (recreated), reached by the API through a TCP fault proxy
  (tests/integration/faults/proxy.py) and by the loader directly;
- a Milvus server: `milvus-lite server` in its own process (the loader and the API are separate processes);
- two ML-1M-sized runs (3,706 movies x 64-d, 6,040 users, same data, different run ids);
- the API: `uvicorn handlers.api:app` (1 worker) in a subprocess with the default settings
  (GRAPHREC_MYSQL_READ_TIMEOUT 3 s, GRAPHREC_MILVUS_TIMEOUT 3 s, GRAPHREC_API_REQUEST_TIMEOUT 4 s,
  GRAPHREC_LIVE_RUN_CACHE_SECONDS 5 s);
- N asyncio clients (default 64), each pacing itself so that together they offer `--rate` req/s: 55%
  POST /recommendations, 15% /movies/{id}/similar, 12% /users/{id}/recommendations, 12% /movies/{id},
  6% GET / - the last three routes differ in what they need: MySQL, MySQL, nothing.

Phases: baseline -> switch (`python -m handlers.loader` puts run 2 live while the clients run, until the
API serves it + 2 s) -> settle -> stall (the proxy accepts and never answers for --stall s) -> recovery.
Prints requests, errors by status and p50/p99/max latency per phase, the run ids served, the load average.
Targets (issue 10): 0 errors and p99 <= 100 ms outside the stall; during it no request waits longer than
the store timeout + 1 s (the request deadline is 3.5 s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

DB = "graphrec_bench_faults"
WORK = ROOT / ".local" / "bench" / "faults"
STORE_TIMEOUT = 3.0  # the default GRAPHREC_MYSQL_READ_TIMEOUT / GRAPHREC_MILVUS_TIMEOUT (shared/config/settings.py)
API_ENV: dict[str, str] = {}


@dataclass
class Phase:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    run_ids: Counter[str] = field(default_factory=Counter)
    by_route: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))


class Recorder:
    """Requests are counted in the phase they started in - except that a request still waiting when the
    stall began counts as a stall request (it met the fault)."""

    def __init__(self, api_pid: int) -> None:
        self.phase = Phase("warmup")
        self.phases: list[Phase] = []
        self.stall: Phase | None = None
        self.stall_started: float | None = None
        self.api_pid = api_pid

    def start(self, name: str) -> None:
        self.phase = Phase(name)
        self.phase.cpu_start = api_cpu_seconds(self.api_pid)  # type: ignore[attr-defined]
        self.phase.client_cpu_start = time.process_time()  # type: ignore[attr-defined]
        self.phases.append(self.phase)
        if name == "stall":
            self.stall, self.stall_started = self.phase, time.perf_counter()

    def end(self, seconds: float) -> None:
        self.phase.seconds = seconds  # type: ignore[attr-defined]
        self.phase.cpu = api_cpu_seconds(self.api_pid) - self.phase.cpu_start  # type: ignore[attr-defined]
        self.phase.client_cpu = time.process_time() - self.phase.client_cpu_start  # type: ignore[attr-defined]

    def phase_of(self, phase: Phase) -> Phase:
        """The phase a request that started in `phase` and ended after the stall began belongs to."""
        if self.stall is None or phase is self.stall or phase not in self.phases:
            return phase
        return self.stall if self.phases.index(phase) < self.phases.index(self.stall) else phase


def api_cpu_seconds(pid: int) -> float:
    """user+system CPU seconds the API process has used (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def start_milvus(data: Path) -> tuple[subprocess.Popen[bytes], str]:
    from tests.helpers.servers import start_milvus_lite_server

    return start_milvus_lite_server(data)


def free_port() -> int:
    from tests.helpers.servers import free_port

    return free_port()


def env_for(milvus_uri: str, mysql_port: int | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRAPHREC_", "MYSQL_", "MILVUS_", "API_", "LIVE_RUN"))}
    env.update(
        {
            "GRAPHREC_MYSQL_DATABASE": DB,
            "GRAPHREC_MYSQL_HOST": "127.0.0.1",
            "GRAPHREC_MILVUS_URI": milvus_uri,
            "GRAPHREC_ARTIFACT_URI": str(WORK / "runs"),
            "PYTHONPATH": str(ROOT),
            "GRAPHREC_LOG_LEVEL": os.environ.get("GRAPHREC_LOG_LEVEL", "INFO"),
        }
    )
    if mysql_port is not None:
        env["GRAPHREC_MYSQL_PORT"] = str(mysql_port)
        env.update(API_ENV)  # --api-env KEY=VALUE: settings for the API process only
    return env


def load(manifest: str, milvus_uri: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "handlers.loader", manifest, "--no-progress"],
        cwd=ROOT, env=env_for(milvus_uri), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


async def client_loop(
    client: object, rec: Recorder, ids: list[int], users: int, interval: float, stop: asyncio.Event, seed: int
) -> None:
    import httpx

    assert isinstance(client, httpx.AsyncClient)
    rng = random.Random(seed)
    await asyncio.sleep(rng.random() * interval)  # spread the clients over the interval
    while not stop.is_set():
        started = time.perf_counter()
        roll = rng.random()
        if roll < 0.55:
            route, req = (
                "recommend",
                client.post("/recommendations", json={"liked": rng.sample(ids, 3), "k": 10}),
            )
        elif roll < 0.70:
            route, req = "similar", client.get(f"/movies/{rng.choice(ids)}/similar")
        elif roll < 0.82:
            route, req = "user", client.get(f"/users/{rng.randint(1, users)}/recommendations")
        elif roll < 0.94:
            route, req = "movie", client.get(f"/movies/{rng.choice(ids)}")
        else:
            route, req = "page", client.get("/")
        phase = rec.phase
        run_id = None
        try:
            res = await req
            status = str(res.status_code)
            if res.status_code == 200 and route != "page":
                run_id = res.json().get("run_id", "-")
        except Exception as exc:  # noqa: BLE001 - a transport failure is an error of the run
            status = type(exc).__name__
        ended = time.perf_counter()
        if rec.stall_started is not None and ended >= rec.stall_started:
            phase = rec.phase_of(phase)
        if run_id is not None:
            phase.run_ids[run_id] += 1
        phase.latencies.append(ended - started)
        phase.statuses[status] += 1
        phase.by_route[route][status] += 1
        await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))


def report(
    rec: Recorder, args: argparse.Namespace, loads: list[tuple[str, tuple[float, float, float]]]
) -> None:
    print(f"\n{args.clients} clients offering {args.rate:g} req/s; stall {args.stall:g} s; store timeout "
          f"{STORE_TIMEOUT:g} s, request deadline 3.5 s")  # fmt: skip
    head = f"{'phase':<10} {'secs':>5} {'requests':>8} {'req/s':>6} {'API CPU':>7} {'clients':>7} {'errors by status':<34} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}  run ids served"
    print(head)
    print("-" * len(head))
    for ph in rec.phases:
        lat = np.asarray(ph.latencies) * 1000 if ph.latencies else np.zeros(1)
        errors = {k: v for k, v in ph.statuses.items() if k != "200"}
        secs = getattr(ph, "seconds", 0.0)
        runs = ", ".join(f"{r[-8:]}:{n}" for r, n in ph.run_ids.items())
        print(
            f"{ph.name:<10} {secs:>5.1f} {sum(ph.statuses.values()):>8} {sum(ph.statuses.values()) / max(secs, 1e-9):>6.0f} "
            f"{getattr(ph, 'cpu', float('nan')) / max(secs, 1e-9):>7.0%} "
            f"{getattr(ph, 'client_cpu', float('nan')) / max(secs, 1e-9):>7.0%} "
            f"{str(errors or 0):<34} {np.percentile(lat, 50):>7.1f} {np.percentile(lat, 99):>7.1f} {lat.max():>7.1f}  {runs}"
        )
        if errors:
            routes = {r: dict(c) for r, c in ph.by_route.items() if any(k != "200" for k in c)}
            print(f"{'':<10} errors by route: {routes}")
    print(
        "\nload average (1/5/15 min): "
        + "; ".join(f"{n}: {a[0]:.2f} {a[1]:.2f} {a[2]:.2f}" for n, a in loads)
    )
    outside = [p for p in rec.phases if p.name != "stall"]
    stall = next((p for p in rec.phases if p.name == "stall"), None)
    errs = sum(v for p in outside for k, v in p.statuses.items() if k != "200")
    p99 = max(float(np.percentile(np.asarray(p.latencies) * 1000, 99)) for p in outside if p.latencies)
    print(f"targets: errors outside the stall {errs} (target 0): {'met' if errs == 0 else 'MISSED'}; "
          f"worst p99 outside the stall {p99:.1f} ms (target <= 100): {'met' if p99 <= 100 else 'MISSED'}")  # fmt: skip
    if stall is not None and stall.latencies:
        worst = max(stall.latencies)
        bound = STORE_TIMEOUT + 1
        print(f"         longest wait during the stall {worst:.2f} s (target <= {bound:g} s): "
              f"{'met' if worst <= bound else 'MISSED'}")  # fmt: skip


class ProxyProcess:
    """tests/integration/faults/proxy.py in its own process: its forwarding threads never share a GIL with
    the clients. SIGUSR1 stalls it, SIGUSR2 lets bytes through again."""

    def __init__(self, upstream: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.faults.proxy", upstream],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())

    def set(self, mode: str) -> None:
        import signal

        self.proc.send_signal({"stall": signal.SIGUSR1, "pass": signal.SIGUSR2}[mode])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


async def drive(
    args: argparse.Namespace,
    base: str,
    ids: list[int],
    second: str,
    milvus_uri: str,
    proxy: ProxyProcess,
    api_pid: int,
) -> None:
    import httpx

    rec = Recorder(api_pid)
    loads: list[tuple[str, tuple[float, float, float]]] = [("start", os.getloadavg())]
    stop = asyncio.Event()
    interval = args.clients / args.rate
    # keep-alive expiry under uvicorn's 5 s: a connection the server is closing is never reused (no ReadError race)
    limits = httpx.Limits(
        max_connections=args.clients + 8, max_keepalive_connections=args.clients + 8, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        tasks = [
            asyncio.create_task(client_loop(client, rec, ids, 6040, interval, stop, seed=i))
            for i in range(args.clients)
        ]

        async def phase(name: str, seconds: float) -> None:
            rec.start(name)
            t = time.perf_counter()
            await asyncio.sleep(seconds)
            rec.end(time.perf_counter() - t)

        await asyncio.sleep(3)  # warm-up: connections, in-memory index (not reported)
        await phase("baseline", args.baseline)

        rec.start("switch")
        t = time.perf_counter()
        loader = load(second, milvus_uri)
        new_id = Path(second).parent.name
        while loader.poll() is None or rec.phase.run_ids.get(new_id, 0) == 0:
            await asyncio.sleep(0.1)
            if time.perf_counter() - t > 180:
                break
        out, err = loader.communicate()
        if loader.returncode != 0:
            print(f"loader failed ({loader.returncode}): {out[-2000:]} {err[-2000:]}")
        await asyncio.sleep(2)
        rec.end(time.perf_counter() - t)
        loads.append(("after switch", os.getloadavg()))

        await phase("settle", 3)
        rec.start("stall")
        t = time.perf_counter()
        proxy.set("stall")
        await asyncio.sleep(args.stall)
        proxy.set("pass")
        rec.end(time.perf_counter() - t)
        loads.append(("after stall", os.getloadavg()))
        await phase("recovery", args.recovery)
        stop.set()
        await asyncio.gather(*tasks)
    report(rec, args, loads)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--rate", type=float, default=150.0, help="requests/s offered by all clients together")
    p.add_argument("--baseline", type=float, default=10.0)
    p.add_argument("--stall", type=float, default=10.0)
    p.add_argument("--recovery", type=float, default=5.0)
    p.add_argument("--api-env", action="append", default=[], metavar="KEY=VALUE", help="extra API setting")
    args = p.parse_args()
    API_ENV.update(kv.split("=", 1) for kv in args.api_env)

    import httpx
    import pymysql
    from bench_api import make_ml1m_like_run

    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "runs").mkdir(parents=True)
    conn = pymysql.connect(
        host="127.0.0.1", port=int(os.environ.get("GRAPHREC_MYSQL_PORT", "3306")), user="root", password=""
    )
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{DB}`")
        cur.execute(f"CREATE DATABASE `{DB}` CHARACTER SET utf8mb4")
    conn.close()
    milvus, milvus_uri = start_milvus(WORK)
    api: subprocess.Popen[bytes] | None = None
    proxy = ProxyProcess(f"127.0.0.1:{int(os.environ.get('GRAPHREC_MYSQL_PORT', '3306'))}")
    try:
        first = make_ml1m_like_run(WORK / "runs", seed=0)
        time.sleep(1.1)  # run ids sort by second
        second = make_ml1m_like_run(WORK / "runs", seed=0)  # same data, a new run id
        t = time.perf_counter()
        proc = load(first, milvus_uri)
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            sys.exit(f"loading run 1 failed: {out[-2000:]} {err[-2000:]}")
        print(
            f"run 1 loaded in {time.perf_counter() - t:.1f} s; milvus server {milvus_uri}; MySQL via proxy :{proxy.port}"
        )
        port = free_port()
        api_log = (WORK / "api.log").open("wb")
        api = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "handlers.api:app", "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1", "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env_for(milvus_uri, proxy.port), stdout=api_log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or api.poll() is not None:
                sys.exit(f"API did not start: {(WORK / 'api.log').read_text()[-2000:]}")
            time.sleep(0.3)
        from shared.contract import artifacts
        from shared.contract.artifacts import RunReader

        ids = [
            int(m)
            for b in RunReader(first).iter_batches(artifacts.MOVIES)
            for m in b.column("movie_id").to_pylist()
        ]
        asyncio.run(drive(args, base, ids, second, milvus_uri, proxy, api.pid))
    finally:
        proxy.close()
        from tests.helpers.servers import stop

        if api is not None:
            stop(api)
        stop(milvus)


if __name__ == "__main__":
    main()
