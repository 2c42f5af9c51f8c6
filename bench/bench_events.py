"""Real-time recommendations benchmark (issue 13): how much a person's events cost per request.

One command:  .venv/bin/python bench/bench_events.py [--requests 300] [--events 200]

Same MovieLens-1M-sized live run as bench/bench_api.py (3,706 movies, 6,040 users, 64-d, multi-interest
recipe; loaded with the real loader into MariaDB `graphrec_bench` + Milvus Lite), then in-process through the
Lambda handler (Mangum, payload 2.0, development sign-in):
- POST /events with one event (idempotent insert + write budget);
- GET /users/me/recommendations of a new person with N events (likes, some unlikes);
- the same for a claimed MovieLens user (stored history + N events);
- POST /recommendations with as many liked ids: the same recipe work without the events (the baseline);
- GET /users/{id}/recommendations of MovieLens users (no person: one profile look-up more than before).
Target on 2 cores: p99 <= 25 ms with 200 recent events. The load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_api import N_USERS, percentile, prepare  # noqa: E402

TARGET_P99_MS = 25.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per case")
    parser.add_argument("--events", type=int, default=200, help="events per person")
    args = parser.parse_args()
    print("== preparing an ML-1M-sized live run (bench/bench_api.py)")
    run_id, info = prepare()
    os.environ.update({"GRAPHREC_AUTH_MODE": "dev", "GRAPHREC_EVENTS_PER_MINUTE": "1000000", "GRAPHREC_DEV_AUTH_SECRET": uuid.uuid4().hex})
    from handlers.api import handler
    from handlers.api_app.middleware import logger
    from shared.config.settings import clear_settings_cache
    from tests.helpers.live import LambdaContext, http_api_event

    clear_settings_cache()
    logger.registered_handler.setStream(open(os.devnull, "w"))  # type: ignore[attr-defined]  # noqa: SIM115
    ctx = LambdaContext()
    movie_ids: list[int] = info["movie_ids"]
    rng = random.Random(3)

    def call(method: str, path: str, token: str | None = None, **kw: Any) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return handler(http_api_event(method, path, headers=headers, **kw), ctx)  # type: ignore[no-any-return]

    def sign_in(name: str, claim: int | None = None) -> str:
        import json

        body: dict[str, Any] = {"name": name} | ({"claim_user_id": claim} if claim else {})
        out = call("POST", "/auth/dev/sign-in", body=body)
        assert out["statusCode"] == 200, out
        return str(json.loads(out["body"])["token"])

    def events(n: int) -> list[dict[str, Any]]:
        picks = rng.sample(movie_ids, n)
        out = [{"movie_id": m, "type": "like", "idempotency_key": uuid.uuid4().hex} for m in picks]
        for i in range(0, n, 10):  # every tenth: an unlike of an earlier like
            out.append({"movie_id": picks[i], "type": "unlike", "idempotency_key": uuid.uuid4().hex})
        return out[:n]

    def fill(token: str, n: int) -> None:
        evs = events(n)
        for i in range(0, len(evs), 100):
            res = call("POST", "/events", token, body={"events": evs[i : i + 100]})
            assert res["statusCode"] == 200, res

    people = [sign_in(f"new{i}") for i in range(20)]
    claimed = [sign_in(f"ml{i}", claim=i) for i in range(1, 21)]
    t = time.perf_counter()
    for token in people + claimed:
        fill(token, args.events)
    print(f"  {len(people) + len(claimed)} people x {args.events} events posted in {time.perf_counter() - t:.1f}s")

    cases = {
        "POST /events (1 event)": lambda: call(
            "POST", "/events", rng.choice(people),
            body={"events": [{"movie_id": rng.choice(movie_ids), "type": "watched", "idempotency_key": uuid.uuid4().hex}]},
        ),
        f"GET /users/me/recommendations (new person, {args.events} events)": lambda: call(
            "GET", "/users/me/recommendations", rng.choice(people)
        ),
        f"GET /users/me/recommendations (claimed ML user, history + {args.events} events)": lambda: call(
            "GET", "/users/me/recommendations", rng.choice(claimed)
        ),
        f"POST /recommendations ({args.events} liked ids: the same work without events, baseline)": lambda: call(
            "POST", "/recommendations", body={"liked": rng.sample(movie_ids, args.events), "k": 10}
        ),
        "GET /users/{id}/recommendations (ML user, no person)": lambda: call(
            "GET", f"/users/{rng.randint(21, N_USERS)}/recommendations"
        ),
    }  # fmt: skip
    print(f"== in-process handler latency ({args.requests} requests per case); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    worst = 0.0
    for name, make in cases.items():
        for _ in range(20):
            make()
        times, errors = [], 0
        for _ in range(args.requests):
            t = time.perf_counter()
            res = make()
            times.append((time.perf_counter() - t) * 1000)
            errors += res["statusCode"] != 200
        p50, p99 = percentile(times, 50), percentile(times, 99)
        if "me/recommendations" in name:
            worst = max(worst, p99)
        print(f"  {name:<80} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  errors {errors}")
    verdict = "OK" if worst <= TARGET_P99_MS else "MISSED"
    print(f"== real-time p99 {worst:.1f} ms (target <= {TARGET_P99_MS:.0f} ms) {verdict}; run {run_id}")
    print(f"  load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
