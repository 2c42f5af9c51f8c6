"""Issue 13, closing the loop, on moto: people's events -> export (the Lambda handler) to s3:// -> training
with --events-uri on s3:// ratings -> the real loader into MariaDB + Milvus Lite -> the new run's
user_histories hold what people liked (and not what they unliked), and its manifest says what was merged.

Events go straight into the `events` table the API appends to (the same columns, the same receipt order).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest

from infra.local_cloud import upload_folder
from infra.sam_local import LambdaContext, s3_put_event
from shared.config.settings import Settings, clear_settings_cache, get_settings
from shared.contract import artifacts

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
EVENTS = REPO / "events"
TINY = [
    "--epochs", "1", "--max-minutes", "2", "--batches-per-epoch", "3", "--batch-size", "64", "--dim", "16",
    "--threads", "1", "--refit-epochs", "0", "--infer-random-walks", "20", "--no-progress", "--seed", "5",
]  # fmt: skip


@pytest.fixture
def loop_env(
    s3_bucket: str, mysql_settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[dict[str, str]]:
    from handlers import loader
    from training_job.synthetic.cli import generate

    monkeypatch.setenv("DGLBACKEND", "pytorch")
    monkeypatch.setenv("GRAPHREC_ARTIFACT_URI", f"s3://{s3_bucket}/runs")
    monkeypatch.setenv("GRAPHREC_DATA_URI", f"s3://{s3_bucket}/data/ml-1m")
    monkeypatch.setenv("GRAPHREC_EVENTS_EXPORT_URI", f"s3://{s3_bucket}/events/events.csv")
    clear_settings_cache()
    data = tmp_path / "data"
    generate(data, users=150, movies=100, ratings=4000, seed=3, profile="planted")
    upload_folder(data, s3_bucket, "data/ml-1m")
    loader.reset_stores()
    yield {"bucket": s3_bucket, "data": str(data)}
    loader.reset_stores()


def _mysql() -> Any:
    import pymysql

    return pymysql.connect(**get_settings().resolved_mysql(), autocommit=True)


def _add_events(conn: Any, user_id: int, events: list[tuple[int, str, float | None, datetime | None]]) -> None:
    """Append events the way the API does: one row each, in the order received."""
    with conn.cursor() as cur:
        for i, (movie_id, etype, rating, client_ts) in enumerate(events):
            cur.execute(
                "INSERT INTO events (user_id, movie_id, type, rating, client_ts, idempotency_key)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (user_id, movie_id, etype, rating, client_ts, f"loop-{user_id}-{i}"),
            )


def test_events_reach_the_next_run(loop_env: dict[str, str]) -> None:
    from handlers import loader
    from handlers.events_export import app as events_export
    from shared.stores.mysql.events_export import EventsReader
    from shared.stores.mysql.store import MetadataStore
    from training_job.__main__ import main as train_cli

    started = time.perf_counter()
    bucket = loop_env["bucket"]
    ratings = pd.read_csv(
        Path(loop_env["data"]) / "ratings.dat", sep="::", engine="python", names=["u", "m", "r", "t"]
    )
    movies = sorted(set(pd.read_csv(Path(loop_env["data"]) / "movies.dat", sep="::", engine="python",
                                    names=["m", "title", "g"], encoding="latin-1")["m"]))  # fmt: skip
    # an existing synthetic user: unlikes a movie of their base ratings, rates one they never rated
    existing = int(ratings["u"].iloc[0])
    theirs = ratings[ratings["u"] == existing].sort_values("t")
    dropped = int(theirs["m"].iloc[0])
    new_for_them = next(m for m in movies if m not in set(theirs["m"]))

    reader = EventsReader.from_settings(get_settings())
    reader.ensure_schema()  # migration 2: profiles + events, as the API's first write would
    reader.close()
    conn = _mysql()
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO profiles (subject, display_name) VALUES (%s, %s)", ("loop-person", "Loop"))
            person = int(cur.lastrowid)
        assert person >= 1_000_000_000  # a new person: users.dat has never heard of them
        a, b, c, d = movies[1], movies[5], movies[9], movies[13]
        t0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC).replace(tzinfo=None)
        _add_events(conn, person, [(a, "like", None, t0), (b, "like", None, None), (c, "like", None, None),
                                   (d, "watched", None, None), (b, "unlike", None, None),
                                   (987_654, "like", None, None)])  # fmt: skip
        _add_events(conn, existing, [(dropped, "unlike", None, None), (new_for_them, "rated", 4.5, None)])
    finally:
        conn.close()

    # 1. the export, as the schedule invokes it, writes the snapshot to S3
    exported = events_export.handler(
        json.loads((EVENTS / "events_export_schedule.json").read_text()),
        LambdaContext(function_name="EventsExportFunction", timeout_seconds=300),
    )
    events_uri = f"s3://{bucket}/events/events.csv"
    assert exported["uri"] == events_uri and exported["rows"] == 8 and exported["users"] == 2
    meta = json.loads(boto3.client("s3").get_object(Bucket=bucket, Key="events/events.csv.meta.json")["Body"].read())
    assert meta["max_seq"] == exported["max_seq"] and meta["sha256"] == exported["sha256"]

    # 2. a tiny training run on the s3:// ratings with the export merged in
    assert train_cli(["train", "--data", f"s3://{bucket}/data/ml-1m", "--output", f"s3://{bucket}/runs",
                      "--events-uri", events_uri, *TINY]) == 0  # fmt: skip
    objects = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix="runs/")["Contents"]
    (manifest_key,) = [o["Key"] for o in objects if o["Key"].endswith("/" + artifacts.MANIFEST)]
    run_id = manifest_key.split("/")[1]
    manifest = artifacts.RunReader(f"s3://{bucket}/{manifest_key}").manifest()
    merged = manifest.source["events"]
    assert merged["status"] == "merged" and merged["uri"] == events_uri
    assert merged["events"] == 7 and merged["rejected"]["unknown_movie"] == 1  # movie 987654 is not in the catalogue
    assert merged["users"] == 2 and merged["new_users"] == 1
    # person: a, c, d added (b liked then unliked); existing user: one added, one removed
    assert merged["pairs_added"] == 4 and merged["pairs_removed"] == 1
    assert merged["pairs_unliked_without_rating"] == 1
    assert merged["export"]["max_seq"] == exported["max_seq"] and merged["export_matches_metadata"] is True
    assert manifest.config["events_uri"] == events_uri

    # 3. the real loader, from the S3 event of the new run's manifest, into MariaDB + Milvus Lite
    out = loader.handler(s3_put_event(bucket, manifest_key), LambdaContext(function_name="LoaderFunction"))
    assert [r["outcome"] for r in out["results"]] == ["live"], out

    # 4. the new run's histories hold what people did
    store = MetadataStore.from_settings(get_settings())
    try:
        history = store.user_history(run_id, person)
        assert history is not None and set(history) == {a, c, d}
        assert history[0] == a  # chronological: the like with the earliest client time comes first
        theirs_now = store.user_history(run_id, existing)
        assert theirs_now is not None
        assert new_for_them in theirs_now and dropped not in theirs_now
        assert theirs_now[-1] == new_for_them  # the newest interaction is last
        assert set(theirs_now) == set(theirs["m"]) - {dropped} | {new_for_them}
    finally:
        store.close()
    print(f"events loop (export -> train -> load): {time.perf_counter() - started:.1f} s")
