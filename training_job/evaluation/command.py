"""`python -m training_job evaluate`: HR@10 / NDCG@10 / coverage of what a deployment ACTUALLY serves.

An operator holds out some (user_id, movie_id) rows - typically each user's latest rating, left out of the
data the run was trained on - and asks the live system `GET /users/{id}/recommendations?k=K` for every
user in the file:

    python -m training_job evaluate --heldout heldout.csv --api https://abc.execute-api.eu-west-1.amazonaws.com
    python -m training_job evaluate --heldout heldout.csv --handler     # in-process Lambda handler (env = stores)
    python -m training_job evaluate --heldout heldout.csv --run s3://bucket/runs/<run_id>   # offline, no stores

`--run` computes what that run WOULD serve with the API's own code (shared/serving/recipe.py) from the run folder
alone, so `--api` and `--run` on the same run must agree; the difference between either and the run's
metrics.json is the difference between the trainer's split and your held-out data.

The held-out file: one row per line, user_id and movie_id first, separated by `::`, `,`, tab or spaces
(MovieLens ratings.dat works as is); a header line and malformed lines are skipped and counted. A user
listed several times counts as a hit when any of their held-out movies is in the top K.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

_SPLIT = re.compile(r"::|,|\t|\s+")


@dataclass
class Heldout:
    targets: dict[int, set[int]] = field(default_factory=dict)  # user_id -> held-out movie_ids
    rows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def read_heldout(text: str) -> Heldout:
    """Parse the held-out file; every line is either a row or a counted skip reason."""
    out = Heldout()
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            out.skipped["blank"] = out.skipped.get("blank", 0) + 1
            continue
        parts = [p for p in _SPLIT.split(line.strip()) if p]
        try:
            user, movie = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            reason = "header" if n == 0 else "malformed"
            out.skipped[reason] = out.skipped.get(reason, 0) + 1
            continue
        out.targets.setdefault(user, set()).add(movie)
        out.rows += 1
    return out


def metrics(ranked: dict[int, list[int]], held: Heldout, catalogue: int, k: int) -> dict[str, Any]:
    """HR@k / NDCG@k over users with an answer, coverage of the catalogue (served_eval's definitions)."""
    from training_job.evaluation.served import ranking_metrics

    users = list(ranked)
    return ranking_metrics([ranked[u] for u in users], [held.targets[u] for u in users], catalogue, k)


Fetch = Callable[[str], tuple[int, Any]]  # path -> (status, json body)


def http_fetch(base: str, timeout: float) -> Fetch:
    def go(path: str) -> tuple[int, Any]:
        req = urllib.request.Request(base.rstrip("/") + path, headers={"accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (operator-given URL)
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, None
        except (urllib.error.URLError, TimeoutError, ConnectionError):
            return 0, None

    return go


def handler_fetch() -> Fetch:
    """The Lambda handler in this process (stores from the environment, as the deployed function)."""
    from handlers.api import handler
    from shared.config.lambda_context import LocalLambdaContext

    def go(path: str) -> tuple[int, Any]:
        raw_path, _, query = path.partition("?")
        event = {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": {"accept": "application/json", "host": "evaluate.local"},
            "requestContext": {
                "http": {"method": "GET", "path": raw_path, "sourceIp": "127.0.0.1", "protocol": "HTTP/1.1", "userAgent": "evaluate"},
                "requestId": "evaluate",
                "stage": "$default",
                "domainName": "evaluate.local",
                "accountId": "000000000000",
                "apiId": "local",
                "time": "01/Jan/2026:00:00:00 +0000",
                "timeEpoch": 0,
            },
            "isBase64Encoded": False,
        }
        resp = handler(event, LocalLambdaContext())
        body = resp.get("body") or "null"
        try:
            return int(resp["statusCode"]), json.loads(body)
        except ValueError:
            return int(resp["statusCode"]), None

    return go


def run_fetch(run_uri: str) -> tuple[Fetch, int]:
    """What the run folder would serve, with the API's recipe and ranking code (no stores needed)."""
    import numpy as np

    from shared.contract import artifacts
    from shared.serving.recipe import ExactIndex, Recipe
    from training_job.evaluation.served import recommend

    reader = artifacts.RunReader(run_uri)
    manifest = reader.manifest()
    emb = reader.open_parquet(artifacts.EMBEDDINGS).read()
    ids = emb.column("movie_id").to_numpy()
    matrix = np.asarray(emb.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32)
    index = ExactIndex(ids, matrix.reshape(len(ids), -1))
    recipe = Recipe.from_dict(manifest.recipe)
    hist = reader.open_parquet(artifacts.USER_HISTORY).read().to_pydict()
    histories = dict(zip(hist["user_id"], hist["movie_ids"], strict=True))

    def go(path: str) -> tuple[int, Any]:
        user = int(path.split("/")[2])
        k = int(path.rsplit("k=", 1)[1])
        if not histories.get(user):
            return 404, None
        items = recommend(index, recipe, histories[user], k)
        return 200, {"run_id": manifest.run_id, "items": [{"movie_id": m} for m in items]}

    return go, len(index)


def score(fetch: Fetch, held: Heldout, catalogue: int, k: int, concurrency: int, progress: bool = True) -> dict[str, Any]:
    users = sorted(held.targets)
    statuses: dict[str, int] = {}
    ranked: dict[int, list[int]] = {}
    run_ids: set[str] = set()

    def one(user: int) -> tuple[int, int, Any]:
        status, body = fetch(f"/users/{user}/recommendations?k={k}")
        return user, status, body

    # The in-process handler runs its own event loop: call it from this thread, one request at a time.
    pool = ThreadPoolExecutor(max_workers=concurrency) if concurrency > 1 else None
    answers = pool.map(one, users) if pool is not None else map(one, users)
    try:
        for user, status, body in tqdm(answers, total=len(users), desc="asking", disable=not progress):
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            if status == 200 and isinstance(body, dict):
                ranked[user] = [int(i["movie_id"]) for i in body.get("items", [])]
                if body.get("run_id"):
                    run_ids.add(str(body["run_id"]))
    finally:
        if pool is not None:
            pool.shutdown()
    return {
        **metrics(ranked, held, catalogue, k),
        "asked": len(users),
        "statuses": statuses,
        "run_ids": sorted(run_ids),
        "heldout_rows": held.rows,
        "heldout_skipped": held.skipped,
    }


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--heldout", required=True, help="file of (user_id, movie_id) rows the run was NOT trained on (local path or s3://)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--api", help="base URL of a deployed API (e.g. the HttpApiUrl stack output, or http://127.0.0.1:8000)")
    where.add_argument("--handler", action="store_true", help="call the API's Lambda handler in this process; stores come from the environment")
    where.add_argument("--run", help="score what this run folder would serve (offline, same code as the API)")
    p.add_argument("--k", type=int, default=10, help="list length (default: %(default)s)")
    p.add_argument("--catalogue", type=int, default=0, help="catalogue size for coverage (default: from /health or the run)")
    p.add_argument("--concurrency", type=int, default=8, help="parallel requests with --api (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per HTTP request (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from shared.contract import objectstore

    held = read_heldout(objectstore.read_bytes(args.heldout).decode("utf-8", errors="replace"))
    if not held.targets:
        print(json.dumps({"error": f"no (user_id, movie_id) rows in {args.heldout}", "skipped": held.skipped}))
        return 2
    catalogue = args.catalogue
    concurrency = args.concurrency
    if args.run:
        fetch, n = run_fetch(args.run)
        catalogue = catalogue or n
        concurrency = 1
    else:
        fetch = http_fetch(args.api, args.timeout) if args.api else handler_fetch()
        if args.handler:
            concurrency = 1
        if not catalogue:
            status, health = fetch("/health")
            catalogue = int(((health or {}).get("counts") or {}).get("movies") or 0) if status == 200 else 0
    result = score(fetch, held, catalogue, args.k, concurrency, args.progress)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0 if result["users"] else 1


def cli(argv: Sequence[str] | None = None) -> int:  # pragma: no cover - convenience for python -m
    p = argparse.ArgumentParser(prog="python -m training_job evaluate", description=__doc__)
    add_arguments(p)
    return main(p.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
