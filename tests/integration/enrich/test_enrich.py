"""`python -m training_job enrich` against a local imitation of OMDb (there is no internet here), with the
cache on moto's S3 server or a folder and the details in real MariaDB, then GET /movies/{id} through the
Lambda handler: details when known, 200 with nulls when not (empty table, missing table, no key, no network).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.config.settings import Settings, clear_settings_cache
from tests.helpers.factories import make_run
from tests.helpers.live import LiveRun, free_port, http_api_event, invoke, load_live
from training_job.__main__ import main as cli_main

KEY = "test-omdb-key-3f9a7c"
NULLS = {"plot": None, "director": None, "cast": None, "runtime_minutes": None, "poster_url": None, "source": None}
FAST = ["--no-progress", "--backoff", "0.01", "--retries", "2", "--concurrency", "3"]


@dataclass
class FakeOmdb:
    """OMDb's answers for the make_run titles 'Movie <N> <Genre> Story': movie 2 is rate-limited once, 3 is
    unknown, 4 always fails (503), 5 is listed a year later than MovieLens says, 6 has no poster/runtime."""

    url: str = ""
    requests: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, q: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self.lock:
            self.requests.append(q)
            earlier = sum(1 for r in self.requests if r.get("t") == q.get("t"))
        if q.get("apikey") != KEY:
            return 401, {"Response": "False", "Error": "Invalid API key!"}, {}
        m = re.match(r"^Movie (\d+) ", q.get("t", ""))
        n = int(m.group(1)) if m else 0
        year = q.get("y")
        found = {
            "Title": q.get("t"),
            "Year": year or "1999",
            "Plot": f"Plot of movie {n}.",
            "Director": f"Director {n}",
            "Actors": f"Actor A{n}, Actor B{n}",
            "Runtime": f"{90 + n} min",
            "Poster": f"https://img.example/{n}.jpg",
            "Response": "True",
        }
        if n == 2 and earlier == 1:
            return 429, {"Response": "False", "Error": "Too many requests"}, {"Retry-After": "0"}
        if n == 3 or (n == 5 and year):
            return 200, {"Response": "False", "Error": "Movie not found!"}, {}
        if n == 4:
            return 503, {"Response": "False", "Error": "busy"}, {}
        if n == 5:
            return 200, {**found, "Year": "1955"}, {}  # MovieLens says 1954
        if n == 6:
            return 200, {**found, "Poster": "N/A", "Runtime": "N/A"}, {}
        return 200, found, {}

    def asked(self, n: int) -> int:
        return sum(1 for r in self.requests if r.get("t", "").startswith(f"Movie {n} "))


@pytest.fixture
def fake_omdb() -> Iterator[FakeOmdb]:
    fake = FakeOmdb()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
            status, body, headers = fake.answer(query)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("content-length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def live(mysql_settings: Settings, tmp_path: Path) -> Iterator[LiveRun]:
    """12 movies live in a fresh MariaDB database + Milvus Lite."""
    deps.reset_caches()
    yield load_live(mysql_settings, make_run(str(tmp_path / "runs"), n_movies=12, n_users=8, dim=8, seed=1))
    deps.reset_caches()
    from shared.stores.milvus.store import close_all_clients

    close_all_clients()


def get_movie(movie_id: int) -> tuple[int, Any]:
    deps.reset_caches()
    handler = Mangum(create_app(), lifespan="off")
    code, _, body = invoke(handler, http_api_event("GET", f"/movies/{movie_id}"))
    return code, body


def enrich(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any], str]:
    """Run the CLI in-process; returns (exit code, the JSON summary, everything printed)."""
    code = cli_main(["enrich", *args])
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    return code, summary, out + err


def set_key(monkeypatch: pytest.MonkeyPatch, key: str | None = KEY) -> None:
    if key is None:
        monkeypatch.delenv("GRAPHREC_OMDB_API_KEY", raising=False)
    else:
        monkeypatch.setenv("GRAPHREC_OMDB_API_KEY", key)
    clear_settings_cache()


def s3_cache(bucket: str) -> dict[str, str]:
    import boto3

    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys}


def test_enrich_fills_mysql_and_an_s3_cache_and_the_api_serves_the_details(
    live: LiveRun, fake_omdb: FakeOmdb, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert get_movie(2) == (200, {**live.movies[2], "movie_id": 2, "details": NULLS})  # before: placeholders
    set_key(monkeypatch)
    cache = f"s3://{s3_bucket}/details"
    code, summary, printed = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, *FAST)
    assert code == 0
    assert {k: summary[k] for k in ("movies", "cached", "found", "not_found", "failed", "skipped", "stored")} == {
        "movies": 12, "cached": 0, "found": 10, "not_found": 1, "failed": 1, "skipped": 0, "stored": 10,
    }  # fmt: skip
    assert fake_omdb.asked(2) == 2  # a 429, then the answer
    assert fake_omdb.asked(4) == 3  # 503 three times (--retries 2), then given up: failed, not cached
    assert fake_omdb.asked(5) == 2  # with its year (not found), then without (found a year later: accepted)

    code, body = get_movie(2)
    assert code == 200 and {k: body[k] for k in ("movie_id", "title", "year", "genres")} == {
        "movie_id": 2, **live.movies[2],
    }  # fmt: skip
    assert body["details"] == {
        "plot": "Plot of movie 2.",
        "director": "Director 2",
        "cast": ["Actor A2", "Actor B2"],
        "runtime_minutes": 92,
        "poster_url": "https://img.example/2.jpg",
        "source": "omdb",
    }
    assert get_movie(3) == (200, {**live.movies[3], "movie_id": 3, "details": NULLS})  # not found: nulls
    assert get_movie(4)[1]["details"] == NULLS  # failed: nulls
    assert get_movie(5)[1]["details"]["plot"] == "Plot of movie 5."
    six = get_movie(6)[1]["details"]
    assert six["poster_url"] is None and six["runtime_minutes"] is None and six["plot"] == "Plot of movie 6."

    objects = s3_cache(s3_bucket)
    assert objects and all(k.startswith("details/omdb/part-") and k.endswith(".jsonl") for k in objects)
    lines = [json.loads(line) for text in objects.values() for line in text.splitlines()]
    assert sorted(e["movie_id"] for e in lines) == [1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12]  # no failed movie
    assert KEY not in printed and all(KEY not in text for text in objects.values())

    # A rerun asks only for what is not cached yet (the failed movie); misses stay cached as misses.
    before = len(fake_omdb.requests)
    code, summary, printed = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, *FAST)
    assert (code, summary["cached"], summary["asked"], summary["failed"], summary["stored"]) == (0, 11, 1, 1, 10)
    assert {r["t"].split()[1] for r in fake_omdb.requests[before:]} == {"4"}
    before = len(fake_omdb.requests)
    code, summary, _ = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, "--retry-not-found", *FAST)
    assert (code, summary["asked"], summary["not_found"]) == (0, 2, 1)
    assert {r["t"].split()[1] for r in fake_omdb.requests[before:]} == {"3", "4"}
    assert KEY not in printed


def test_without_a_key_only_the_cache_is_used(
    live: LiveRun, fake_omdb: FakeOmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    cache = str(tmp_path / "cache")
    set_key(monkeypatch, None)
    code, summary, printed = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, *FAST)
    assert (code, summary["skipped"], summary["stored"]) == (0, 12, 0)
    assert "GRAPHREC_OMDB_API_KEY is not set" in printed and fake_omdb.requests == []
    assert not Path(cache).exists()  # nothing written
    assert get_movie(1) == (200, {**live.movies[1], "movie_id": 1, "details": NULLS})

    # Fill the cache elsewhere (--no-mysql), then load it without a key and without asking anyone.
    set_key(monkeypatch)
    code, summary, _ = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, "--no-mysql", *FAST)
    assert (code, summary["found"], summary["stored"]) == (0, 10, 0)
    assert get_movie(1)[1]["details"] == NULLS
    set_key(monkeypatch, None)
    asked = len(fake_omdb.requests)
    code, summary, _ = enrich(capsys, "--live", "--cache", cache, "--base-url", fake_omdb.url, *FAST)
    assert (code, summary["cached"], summary["stored"], summary["skipped"]) == (0, 11, 10, 1)
    assert len(fake_omdb.requests) == asked
    assert get_movie(1)[1]["details"]["director"] == "Director 1"


def test_no_network_exits_0_writes_nothing_and_the_api_answers_nulls(
    live: LiveRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from shared.config.settings import get_settings
    from shared.stores.mysql.store import MetadataStore

    set_key(monkeypatch)
    cache = tmp_path / "cache"
    nowhere = f"http://127.0.0.1:{free_port()}/"  # nothing listens there: connection refused
    code, summary, printed = enrich(
        capsys, "--live", "--cache", str(cache), "--base-url", nowhere, "--give-up-after", "3", *FAST
    )
    assert code == 0
    assert summary["found"] == 0 and summary["failed"] >= 3 and summary["failed"] + summary["skipped"] == 12
    assert "unreachable" in printed and "no network" in printed and KEY not in printed
    assert not cache.exists()
    assert MetadataStore.from_settings(get_settings()).count_movie_details() == 0
    assert get_movie(7) == (200, {**live.movies[7], "movie_id": 7, "details": NULLS})


def test_a_refused_key_stops_the_run(
    live: LiveRun, fake_omdb: FakeOmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    set_key(monkeypatch, "wrong-key")
    code, summary, printed = enrich(capsys, "--live", "--cache", str(tmp_path / "c"), "--base-url", fake_omdb.url, *FAST)
    assert code == 0 and summary["found"] == 0 and summary["skipped"] == 12
    assert "refused the API key" in printed and "wrong-key" not in printed
    assert len(fake_omdb.requests) <= 3  # only the requests already in flight


def test_details_table_empty_or_missing_still_answers_200(live: LiveRun) -> None:
    import pymysql

    from shared.config.settings import get_settings

    assert get_movie(1) == (200, {**live.movies[1], "movie_id": 1, "details": NULLS})  # empty table
    conf = get_settings().resolved_mysql()
    conn = pymysql.connect(**conf)
    with conn.cursor() as cur:
        cur.execute("DROP TABLE movie_details")  # a database migrated before the table existed
    conn.close()
    assert get_movie(1) == (200, {**live.movies[1], "movie_id": 1, "details": NULLS})
    assert get_movie(999)[0] == 404


def test_enrich_reads_movies_from_a_data_folder(
    mysql_settings: Settings, fake_omdb: FakeOmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "ml-1m"
    data.mkdir()
    movies = [
        "2571::Matrix, The (1999)::Action|Sci-Fi",
        "29::City of Lost Children, The (Cité des enfants perdus, La) (1995)::Adventure|Sci-Fi",
        "1099::Christmas Carol, A (1938)::Drama",
        "6::Heat (1995)::Action|Crime|Thriller",
    ]
    (data / "movies.dat").write_bytes("\n".join(movies).encode("latin-1"))  # ML-1M's encoding
    (data / "users.dat").write_text("1::F::1::10::48067\n")
    (data / "ratings.dat").write_text("1::2571::5::978300760\n")
    set_key(monkeypatch)
    code, summary, _ = enrich(capsys, "--data", str(data), "--cache", str(tmp_path / "c"), "--base-url", fake_omdb.url, *FAST)
    assert (code, summary["movies"], summary["found"], summary["stored"]) == (0, 4, 4, 4)
    assert sorted((r["t"], r["y"]) for r in fake_omdb.requests) == [
        ("A Christmas Carol", "1938"),
        ("Heat", "1995"),
        ("The City of Lost Children", "1995"),
        ("The Matrix", "1999"),
    ]
    from shared.stores.mysql.store import MetadataStore

    stored = MetadataStore.from_settings(mysql_settings).get_movie_details([2571, 29, 7])
    assert sorted(stored) == [29, 2571] and stored[2571].source == "omdb" and stored[2571].fetched_at is not None
