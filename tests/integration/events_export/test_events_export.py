"""shared/stores/mysql/events_export.py and handlers/events_export/app.py against real MariaDB, a local folder and moto's S3
server: one full snapshot in receipt order, read in bounded chunks, replaced whole; a forgotten person is
gone from the next export; what the training job reads back is what was stored."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest

from shared.config.settings import Settings, clear_settings_cache
from shared.stores.mysql.events_export import (
    EXPORT_COLUMNS,
    EventsReader,
    default_export_uri,
    export_events,
    metadata_uri,
)
from tests.helpers.live import migrated


@pytest.fixture
def reader(mysql_settings: Settings) -> Iterator[EventsReader]:
    with migrated(EventsReader, mysql_settings) as r:
        yield r


def _insert(reader: EventsReader, rows: list[tuple[int, int, str, float | None, datetime | None]]) -> None:
    for i, (user_id, movie_id, etype, rating, client_ts) in enumerate(rows):
        reader._execute(
            "INSERT INTO events (user_id, movie_id, type, rating, client_ts, idempotency_key)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (user_id, movie_id, etype, rating, client_ts, f"k-{user_id}-{movie_id}-{i}"),
        )


def _read(path: Path | str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(Path(path).read_text())))


ROWS: list[tuple[int, int, str, float | None, datetime | None]] = [
    (1_000_000_000, 10, "like", None, datetime(2026, 3, 1, 12, 0, 0, 250000)),
    (1_000_000_000, 20, "rated", 3.5, None),
    (7, 30, "watched", None, None),
    (1_000_000_000, 10, "unlike", None, None),
    (7, 40, "rated", 5.0, datetime(2026, 3, 2, 8, 30, 0)),
    (1_000_000_001, 10, "like", None, None),
    (7, 30, "rated", 1.0, None),
]


def test_every_event_in_receipt_order_read_in_chunks(reader: EventsReader, tmp_path: Path) -> None:
    from training_job.data.events import parse_events

    _insert(reader, ROWS)
    uri = str(tmp_path / "exports" / "events.csv")
    result = export_events(reader, uri, chunk_rows=2)  # 7 rows: four chunks, the last one short
    assert (result.rows, result.users) == (7, 3)
    rows = _read(uri)
    assert list(rows[0]) == list(EXPORT_COLUMNS)
    seqs = [int(r["seq"]) for r in rows]
    assert seqs == sorted(seqs) and len(set(seqs)) == 7 and (result.min_seq, result.max_seq) == (seqs[0], seqs[-1])
    assert [(int(r["user_id"]), int(r["movie_id"]), r["type"]) for r in rows] == [(u, m, t) for u, m, t, _, _ in ROWS]
    assert [r["rating"] for r in rows] == ["", "3.5", "", "", "5", "", "1"]
    # the client's time when sent (UTC, millisecond precision), else when it was received
    assert rows[0]["timestamp"] == f"{datetime(2026, 3, 1, 12, 0, 0, 250000, tzinfo=UTC).timestamp():.3f}"
    assert rows[4]["timestamp"] == f"{datetime(2026, 3, 2, 8, 30, tzinfo=UTC).timestamp():.3f}"
    assert abs(float(rows[1]["timestamp"]) - datetime.now(UTC).timestamp()) < 3600
    meta = json.loads(Path(metadata_uri(uri)).read_text())
    assert meta["format"] == "graphrec-events-csv" and meta["rows"] == 7 and meta["max_seq"] == seqs[-1]
    assert meta["sha256"] == result.sha256 and meta["bytes"] == Path(uri).stat().st_size
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["events.csv", "events.csv.meta.json"]
    # what the training job reads back is what was stored
    parsed = parse_events(Path(uri).read_bytes())
    assert [(u, e.movie_id, e.type.value, e.rating) for u, e in parsed.events] == [(u, m, t, r) for u, m, t, r, _ in ROWS]
    assert sum(parsed.rejected.values()) == 0


def test_a_forgotten_person_is_gone_from_the_next_export(reader: EventsReader, tmp_path: Path) -> None:
    _insert(reader, ROWS)
    uri = str(tmp_path / "events.csv")
    first = export_events(reader, uri)
    assert 1_000_000_000 in {int(r["user_id"]) for r in _read(uri)}
    reader._execute("DELETE FROM events WHERE user_id=%s", (1_000_000_000,))  # what "forget me" does
    second = export_events(reader, uri)
    users = {int(r["user_id"]) for r in _read(uri)}
    assert users == {7, 1_000_000_001} and second.rows == 4 and second.sha256 != first.sha256
    assert json.loads(Path(metadata_uri(uri)).read_text())["rows"] == 4


def test_a_database_without_events_exports_an_empty_snapshot(mysql_settings: Settings, tmp_path: Path) -> None:
    """A database no API has written to yet: the tables are created, the snapshot is a header line, and
    the training job trains on its base ratings."""
    from shared.stores.mysql.events_export import export_from_settings

    uri = str(tmp_path / "events.csv")
    result = export_from_settings(mysql_settings, uri=uri)
    assert (result.rows, result.users, result.max_seq) == (0, 0, 0)
    assert Path(uri).read_text() == ",".join(EXPORT_COLUMNS) + "\n"


def test_lambda_handler_writes_to_s3_where_the_settings_say(
    reader: EventsReader, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from handlers.events_export import app as events_export

    _insert(reader, ROWS[:3])
    monkeypatch.setenv("GRAPHREC_EVENTS_EXPORT_URI", f"s3://{s3_bucket}/events/events.csv")
    clear_settings_cache()
    event = json.loads((Path(__file__).resolve().parents[3] / "events" / "events_export_schedule.json").read_text())
    out = events_export.handler(event, None)
    assert out["uri"] == f"s3://{s3_bucket}/events/events.csv" and out["rows"] == 3
    s3 = boto3.client("s3")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert keys == ["events/events.csv", "events/events.csv.meta.json"]
    body = s3.get_object(Bucket=s3_bucket, Key="events/events.csv")["Body"].read().decode()
    assert len(body.splitlines()) == 4


def test_default_location_is_beside_the_runs_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from shared.config.settings import get_settings
    from shared.stores.mysql.events_export import export_uri_from

    assert default_export_uri("s3://b/runs") == "s3://b/events/events.csv"
    assert default_export_uri("s3://b/prod/runs/") == "s3://b/prod/events/events.csv"
    assert default_export_uri(".local/runs") == str(Path(".local/events/events.csv"))
    assert export_uri_from(get_settings()) == str(tmp_path / "events" / "events.csv")  # GRAPHREC_ARTIFACT_URI=tmp/runs
    monkeypatch.setenv("GRAPHREC_EVENTS_EXPORT_URI", "s3://elsewhere/e.csv")
    clear_settings_cache()
    assert export_uri_from(get_settings()) == "s3://elsewhere/e.csv"


def test_cli_prints_the_result_and_fails_cleanly_without_mysql(
    reader: EventsReader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers.events_export.app import main

    _insert(reader, ROWS[:2])
    uri = str(tmp_path / "cli" / "events.csv")
    assert main(["--uri", uri, "--chunk-rows", "1"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert out["rows"] == 2 and Path(uri).is_file()
    from tests.conftest import free_port

    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", str(free_port()))  # nothing listens there
    clear_settings_cache()
    assert main(["--uri", uri]) == 3
    assert "error:" in capsys.readouterr().err
