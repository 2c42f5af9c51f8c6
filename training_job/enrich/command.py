"""`python -m training_job enrich`: plot, director, cast, runtime and poster URL for every movie, from OMDb.

    python -m training_job enrich                          # movies of GRAPHREC_DATA_URI (folder, ml-1m.zip, s3://)
    python -m training_job enrich --data s3://bucket/ml-1m/
    python -m training_job enrich --live                   # movies of the live run in MySQL

Optional and never in the way: without GRAPHREC_OMDB_API_KEY, without network, or when OMDb refuses the key, it
says so, stores what the cache already holds, and exits 0; the API then answers nulls and clients show a
placeholder. Steps (docs/movie-details.md):

1. the movies: MovieLens movies.dat of a data source, or the live run's movies in MySQL;
2. the cache (GRAPHREC_DETAILS_CACHE_URI, a folder or s3://): JSON lines, one per movie asked, keyed by movie id +
   query title + year; only movies not in it are asked (misses are cached too: --retry-not-found asks them
   again; failures are not cached, so the next run retries them);
3. the look-ups: `--concurrency` threads, a per-request timeout, retries with back-off on 429/5xx
   (training_job/enrich/omdb.py); new results are written to the cache every `FLUSH_EVERY` movies, so an
   interrupted run keeps its progress; after `--give-up-after` consecutive unreachable answers the rest is
   skipped ("no network");
4. MySQL: every cached detail of these movies is upserted into `movie_details` (by movie id; a run needs
   no reload to show them). With MySQL unreachable the cache is kept and the command exits 1.

Prints one JSON summary line on stdout (found / not_found / failed / cached / skipped / stored); messages go
to stderr. The key is never printed, logged or cached.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from tqdm import tqdm

from shared.config.settings import Settings, get_settings
from shared.contract import objectstore
from shared.errors import StoreUnavailable
from shared.stores.mysql.details import MovieDetails
from training_job.enrich import omdb

FLUSH_EVERY = 200  # new cache lines per part file
CACHE_FOLDER = "omdb"  # under GRAPHREC_DETAILS_CACHE_URI: one folder per source


@dataclass(frozen=True)
class Target:
    movie_id: int
    title: str
    year: int | None

    @property
    def key(self) -> str:
        return f"{self.movie_id}|{omdb.query_title(self.title)}|{self.year if self.year is not None else ''}"


@dataclass
class Summary:
    movies: int = 0
    cached: int = 0  # answered from the cache (found or not found before)
    asked: int = 0
    found: int = 0
    not_found: int = 0
    failed: int = 0
    skipped: int = 0  # not asked: no key, no network, key refused, --limit
    requests: int = 0
    with_details: int = 0  # movies with details after this run (cached + found)
    stored: int = 0  # rows upserted into MySQL
    cache_uri: str = ""
    messages: list[str] = field(default_factory=list)


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", default=None, help="MovieLens data: folder, ml-1m.zip or s3:// prefix (default: GRAPHREC_DATA_URI)")
    src.add_argument("--live", action="store_true", help="look up the movies of the live run in MySQL instead")
    p.add_argument("--cache", default=None, help="cache folder or s3:// prefix (default: GRAPHREC_DETAILS_CACHE_URI)")
    p.add_argument("--base-url", default=None, help="OMDb endpoint (default: GRAPHREC_OMDB_BASE_URL)")
    p.add_argument("--concurrency", type=int, default=4, help="parallel requests (default 4)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request (default 10)")
    p.add_argument("--retries", type=int, default=4, help="extra attempts after a 429/5xx/timeout (default 4)")
    p.add_argument("--backoff", type=float, default=1.0, help="first retry pause in s, doubled per attempt (default 1)")
    p.add_argument("--limit", type=int, default=None, help="ask at most this many movies (free keys: 1,000 requests/day)")
    p.add_argument("--give-up-after", type=int, default=5, help="consecutive unreachable answers that mean 'no network'")
    p.add_argument("--retry-not-found", action="store_true", help="ask again for movies cached as not found")
    p.add_argument("--no-mysql", dest="mysql", action="store_false", help="only fill the cache; do not touch MySQL")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")


# ------------------------------------------------------------------------------------------------ movies
def movies_from_data(source: str) -> list[Target]:
    """movies.dat of a MovieLens source, parsed as training parses it (the same titles and years)."""
    from training_job.data.movielens import MOVIES_FILE, parse_movies
    from training_job.data.sources import resolve

    files, _ = resolve(source, False, ".local/data")
    movies, _, _ = parse_movies(files[MOVIES_FILE])
    years = movies["year"].astype(object).where(movies["year"].notna(), None)
    return [
        Target(int(m), str(t), None if y is None else int(y))
        for m, t, y in zip(movies["movie_id"], movies["title"], years, strict=True)
    ]


def movies_from_live(store: Any) -> list[Target]:
    live = store.live_run()
    if live is None:
        raise LookupError("no run is live yet: load one first, or pass --data")
    return [Target(m, t, y) for m, t, y in store.run_movie_titles(live.run_id)]


# ------------------------------------------------------------------------------------------------- cache
def _details_json(d: MovieDetails) -> dict[str, Any]:
    out = asdict(d)
    out.pop("movie_id")
    out["fetched_at"] = d.fetched_at.isoformat() if d.fetched_at else None
    return out


def read_cache(cache_uri: str) -> dict[str, dict[str, Any]]:
    """key -> the latest cache line for it (parts are read in name order: later lines win)."""
    out: dict[str, dict[str, Any]] = {}
    parts = sorted(u for u in objectstore.list_uris(objectstore.join(cache_uri, CACHE_FOLDER)) if u.endswith(".jsonl"))
    for uri in parts:
        for line in objectstore.read_bytes(uri).decode("utf-8").splitlines():
            try:
                entry = json.loads(line)
                out[str(entry["key"])] = entry
            except (ValueError, KeyError, TypeError):
                continue  # a torn or hand-edited line: that movie is simply asked again
    return out


def write_part(cache_uri: str, entries: list[dict[str, Any]]) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    uri = objectstore.join(cache_uri, CACHE_FOLDER, f"part-{stamp}-{os.getpid()}.jsonl")
    objectstore.write_bytes(uri, "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in entries).encode("utf-8"))


def cached_details(target: Target, entry: dict[str, Any]) -> MovieDetails | None:
    d = entry.get("details")
    if entry.get("status") != "found" or not isinstance(d, dict):
        return None
    fetched = d.get("fetched_at")
    return MovieDetails(
        movie_id=target.movie_id,
        plot=d.get("plot"),
        director=d.get("director"),
        cast=[str(c) for c in d.get("cast") or []],
        runtime_minutes=d.get("runtime_minutes"),
        poster_url=omdb.safe_poster_url(d.get("poster_url")),
        source=d.get("source") or omdb.SOURCE,
        fetched_at=datetime.fromisoformat(fetched) if fetched else None,
    )


# ----------------------------------------------------------------------------------------------- look-ups
class _Asker:
    """Runs the look-ups; stops everything on a refused key or after `give_up` unreachable answers in a row."""

    def __init__(self, client: omdb.Client, give_up: int) -> None:
        self.client = client
        self.give_up = give_up
        self.stop = threading.Event()
        self.reason = ""
        self._unreachable = 0
        self._lock = threading.RLock()  # _halt takes it again inside the unreachable count

    def __call__(self, t: Target) -> tuple[str, omdb.Lookup | None, str]:
        if self.stop.is_set():
            return "skipped", None, ""
        try:
            result = self.client.lookup(t.movie_id, t.title, t.year)
        except omdb.KeyRefused as exc:
            self._halt(f"OMDb refused the API key ({exc}); nothing more is asked this run")
            return "skipped", None, str(exc)
        except omdb.Unreachable as exc:
            with self._lock:
                self._unreachable += 1
                if self._unreachable >= self.give_up:
                    self._halt(f"OMDb is unreachable ({exc}): no network? The rest is left for the next run")
            return "failed", None, str(exc)
        except omdb.Failed as exc:
            return "failed", None, str(exc)
        with self._lock:
            self._unreachable = 0
        return ("found" if result.found else "not_found"), result, ""

    def _halt(self, reason: str) -> None:
        with self._lock:
            if not self.stop.is_set():
                self.reason = reason
                self.stop.set()


def ask(
    todo: list[Target], client: omdb.Client, args: argparse.Namespace, cache_uri: str, summary: Summary
) -> dict[str, dict[str, Any]]:
    """Look the movies up; returns the new cache entries (also written to the cache as they come)."""
    asker = _Asker(client, max(1, args.give_up_after))
    new: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, args.concurrency), thread_name_prefix="omdb") as pool:
        futures = {pool.submit(asker, t): t for t in todo}
        bar = tqdm(total=len(todo), desc="omdb", unit="movie", disable=not args.progress, file=sys.stderr)
        for fut in as_completed(futures):
            t = futures[fut]
            status, result, _ = fut.result()
            bar.update(1)
            setattr(summary, status, getattr(summary, status) + 1)
            if result is None:
                continue
            summary.requests += result.requests
            entry = {
                "key": t.key,
                "movie_id": t.movie_id,
                "query": omdb.query_title(t.title),
                "year": t.year,
                "status": status,
                "details": _details_json(_stamped(result.details)) if result.details else None,
                "asked_at": datetime.now(UTC).isoformat(),
            }
            new[t.key] = entry
            pending.append(entry)
            if len(pending) >= FLUSH_EVERY:
                write_part(cache_uri, pending)
                pending = []
        bar.close()
    if pending:
        write_part(cache_uri, pending)
    summary.asked = summary.found + summary.not_found + summary.failed
    if asker.reason:
        summary.messages.append(asker.reason)
    return new


def _stamped(d: MovieDetails) -> MovieDetails:
    now = datetime.now(UTC).replace(tzinfo=None)
    return MovieDetails(d.movie_id, d.plot, d.director, list(d.cast), d.runtime_minutes, d.poster_url, d.source, now)


# ------------------------------------------------------------------------------------------------- main
def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _metadata_store(settings: Settings) -> Any:
    from shared.stores.mysql.store import MetadataStore

    return MetadataStore.from_settings(settings, statement_timeout=settings.loader_store_timeout)


def run(args: argparse.Namespace, settings: Settings) -> tuple[int, Summary]:
    cache_uri = args.cache or settings.details_cache_uri
    summary = Summary(cache_uri=cache_uri)
    store = _metadata_store(settings) if (args.mysql or args.live) else None
    try:
        targets = movies_from_live(store) if args.live else movies_from_data(args.data or settings.data_uri)
    except (StoreUnavailable, LookupError, OSError, ValueError) as exc:  # MovieLensError is a ValueError
        summary.messages.append(f"cannot read the movies ({exc}); pass --data SRC or --live")
        return 1, summary
    summary.movies = len(targets)
    try:
        cache = read_cache(cache_uri)
    except Exception as exc:  # noqa: BLE001 - an unreadable cache only costs look-ups
        summary.messages.append(f"cache {cache_uri} unreadable ({type(exc).__name__}: {exc}); asking for every movie")
        cache = {}
    todo = [t for t in targets if t.key not in cache or (args.retry_not_found and cache[t.key].get("status") != "found")]
    summary.cached = len(targets) - len(todo)
    if args.limit is not None and len(todo) > args.limit:
        summary.skipped += len(todo) - args.limit
        summary.messages.append(f"--limit {args.limit}: {len(todo) - args.limit} movies are left for the next run")
        todo = todo[: args.limit]
    key = settings.omdb_api_key.get_secret_value() if settings.omdb_api_key else ""
    if todo and not key:
        summary.skipped += len(todo)
        summary.messages.append(
            f"GRAPHREC_OMDB_API_KEY is not set: {len(todo)} movies not looked up (the API shows a placeholder for them); "
            "get a key at https://www.omdbapi.com/apikey.aspx and run enrich again"
        )
    elif todo:
        base = args.base_url or settings.omdb_base_url
        client = omdb.Client(base, key, timeout=args.timeout, retries=max(0, args.retries), backoff=args.backoff)
        _say(f"asking {base} for {len(todo)} movies ({summary.cached} cached, {args.concurrency} at a time)")
        try:
            cache.update(ask(todo, client, args, cache_uri, summary))
        except Exception as exc:  # noqa: BLE001 - e.g. the s3 cache refused a write: report, store what we have
            summary.messages.append(f"stopped: {type(exc).__name__}: {exc}")
    details = [d for t in targets if t.key in cache and (d := cached_details(t, cache[t.key])) is not None]
    summary.with_details = len(details)
    if not args.mysql:
        return 0, summary
    try:
        assert store is not None
        store.ensure_schema()
        summary.stored = store.upsert_movie_details(details)
    except StoreUnavailable as exc:
        summary.messages.append(
            f"MySQL unreachable ({exc}); the details stay cached at {cache_uri}: run enrich again later "
            "(cached movies need no network)"
        )
        return 1, summary
    return 0, summary


def main(args: argparse.Namespace) -> int:
    started = time.monotonic()
    code, summary = run(args, get_settings())
    for message in summary.messages:
        _say(message)
    out = {k: v for k, v in asdict(summary).items() if k != "messages"}
    print(json.dumps({**out, "seconds": round(time.monotonic() - started, 2), "exit": code}), flush=True)
    return code

