"""Export the interaction events (MySQL `events`) as one snapshot object the training job merges in.

Why one full snapshot at a fixed key, not dated increments: the export is the set of events that exist
*now*. A person who used "forget me" (their events deleted) is simply absent from the next snapshot, and
the next training run never sees them again; with increments, their old events would live on in every
earlier file. Each export overwrites the same object in one step, so a reader sees the previous snapshot
or the new one, never half of one: on S3 one PUT (a multipart upload also appears only when complete), in
a local folder a temporary file renamed over the old one (shared.contract.objectstore).

Format (EXPORT_COLUMNS, CSV with a header line, UTF-8, rows in `seq` order = the order the API received
them, which is the order shared.serving.event_fold applies them):

    seq,user_id,movie_id,type,rating,timestamp
    17,1000000000,1193,like,,1767225600.123
    18,1000000000,661,rated,3.5,1767225700.000

`type` is like | unlike | watched | rated; `rating` is empty unless the event carried one; `timestamp` is
Unix seconds (UTC): the client's time when it sent one, else when the API received the event (the same
rule as shared.stores.mysql.people, so training orders a history as the API does).

Beside it, `<uri>.meta.json` (metadata_uri) describes the snapshot: rows, users, min/max seq, exported_at,
sha256 and bytes of the CSV. It is written after the CSV; the training job reports whether the two match.

The table is read in bounded chunks (keyset pagination on the primary key, parametrised SQL), each chunk
one statement under the MySQL timeouts of shared/stores/mysql/connection.py; the snapshot covers every event with
seq <= MAX(seq) at the start of the export (rows deleted meanwhile may still be in this snapshot, and are
gone from the next one).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.config.log import get_logger
from shared.contract import objectstore
from shared.stores.mysql.connection import MySQLConnection
from shared.stores.mysql.schema import migrate

if TYPE_CHECKING:  # pragma: no cover
    from shared.config.settings import Settings

logger = get_logger(__name__)

EXPORT_COLUMNS = ("seq", "user_id", "movie_id", "type", "rating", "timestamp")
FORMAT = "graphrec-events-csv"
FORMAT_VERSION = 1
META_SUFFIX = ".meta.json"
DEFAULT_CHUNK_ROWS = 10_000
EXPORT_FILE = "events.csv"


def metadata_uri(export_uri: str) -> str:
    """Where the snapshot's metadata lives: next to it, `<export_uri>.meta.json`."""
    return export_uri + META_SUFFIX


def default_export_uri(artifact_uri: str) -> str:
    """GRAPHREC_EVENTS_EXPORT_URI when unset: `events/events.csv` beside the runs folder (GRAPHREC_ARTIFACT_URI
    s3://b/runs -> s3://b/events/events.csv; .local/runs -> .local/events/events.csv). Not inside the runs
    prefix: the loader's trigger and read-only role cover runs/, the export is not a run."""
    return objectstore.join(objectstore.parent(artifact_uri.rstrip("/")), "events", EXPORT_FILE)


def export_uri_from(settings: Settings) -> str:
    return settings.events_export_uri or default_export_uri(settings.artifact_uri)


def timestamp_of(client_ts: datetime | None, received_at: datetime) -> float:
    """Unix seconds of an event: the client's time when given, else the receipt time (DATETIME = UTC)."""
    when = client_ts or received_at
    return (when.replace(tzinfo=UTC) if when.tzinfo is None else when).timestamp()


class EventsReader(MySQLConnection):
    """The events table, read for the export: the connection handling, timeouts and secret rotation of
    MetadataStore (shared/stores/mysql/connection.py), none of its run tables."""

    @classmethod
    def from_settings(cls, settings: Settings) -> EventsReader:
        kwargs = settings.resolved_mysql()
        kwargs.setdefault("connect_timeout", settings.mysql_connect_timeout)
        kwargs.setdefault("read_timeout", settings.mysql_read_timeout)  # per chunk, not per export
        kwargs.setdefault("write_timeout", settings.mysql_write_timeout)
        reader = cls(kwargs)
        if settings.mysql_secret_arn:  # a rotated secret: "access denied" fetches it again
            reader._refresh_credentials = partial(settings.resolved_mysql, refresh=True)
        return reader

    def ensure_schema(self) -> None:
        """The tables (migrations of shared/stores/mysql/schema.py): a database no API has written to yet gets
        an empty events table, so its export is empty rather than an error."""
        self._with_conn(migrate)

    def events_max_seq(self) -> int:
        return int(self._fetchall("SELECT COALESCE(MAX(seq), 0) FROM events")[0][0])

    def events_after(self, after: int, upto: int, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` events with after < seq <= upto, in seq order."""
        return self._fetchall(
            "SELECT seq, user_id, movie_id, type, rating, client_ts, received_at FROM events"
            " WHERE seq > %s AND seq <= %s ORDER BY seq LIMIT %s",
            (int(after), int(upto), int(limit)),
        )

    def iter_events(self, upto: int, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> Iterator[tuple[Any, ...]]:
        """Every event with seq <= upto, in seq order, one bounded statement per chunk."""
        after = 0
        while True:
            rows = self.events_after(after, upto, chunk_rows)
            yield from rows
            if len(rows) < chunk_rows:
                return
            after = int(rows[-1][0])


@dataclass(frozen=True)
class ExportResult:
    uri: str
    metadata_uri: str
    rows: int
    users: int
    min_seq: int
    max_seq: int
    exported_at: str
    sha256: str
    bytes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rating(value: Any) -> str:
    if value is None:
        return ""
    return format(Decimal(str(value)).normalize(), "f")


def export_events(
    reader: EventsReader, uri: str, *, chunk_rows: int = DEFAULT_CHUNK_ROWS, tmp_dir: str | None = None
) -> ExportResult:
    """Write every event as one CSV snapshot at `uri` (overwritten in one step) plus its metadata."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be >= 1")
    t0 = time.perf_counter()
    reader.ensure_schema()  # a database no API has written to yet has no events table: export it empty
    upto = reader.events_max_seq()
    digest = hashlib.sha256()
    rows, min_seq, max_seq = 0, 0, 0
    users: set[int] = set()
    fd, tmp_name = tempfile.mkstemp(prefix="events-export-", suffix=".csv", dir=tmp_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(EXPORT_COLUMNS)
            for seq, user_id, movie_id, etype, rating, client_ts, received_at in reader.iter_events(upto, chunk_rows):
                ts = timestamp_of(client_ts, received_at)
                writer.writerow((int(seq), int(user_id), int(movie_id), str(etype), _rating(rating), f"{ts:.3f}"))
                rows += 1
                min_seq = min_seq or int(seq)
                max_seq = int(seq)
                users.add(int(user_id))
        size = tmp.stat().st_size
        with tmp.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        objectstore.upload_file(tmp, uri)  # one object, replaced whole
    finally:
        tmp.unlink(missing_ok=True)
    result = ExportResult(
        uri=uri,
        metadata_uri=metadata_uri(uri),
        rows=rows,
        users=len(users),
        min_seq=min_seq,
        max_seq=max_seq,
        exported_at=datetime.now(UTC).isoformat(timespec="seconds"),
        sha256=digest.hexdigest(),
        bytes=size,
        seconds=round(time.perf_counter() - t0, 3),
    )
    meta = {"format": FORMAT, "version": FORMAT_VERSION, "columns": list(EXPORT_COLUMNS), **result.to_dict()}
    objectstore.write_bytes(result.metadata_uri, json.dumps(meta, indent=2).encode())
    logger.info("events exported", extra=result.to_dict())
    return result


def export_from_settings(
    settings: Settings, *, uri: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> ExportResult:
    """Export with the configured database and GRAPHREC_EVENTS_EXPORT_URI (or `uri`)."""
    reader = EventsReader.from_settings(settings)
    try:
        return export_events(reader, uri or export_uri_from(settings), chunk_rows=chunk_rows)
    finally:
        reader.close()
