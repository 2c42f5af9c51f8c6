"""Movie details in MySQL (table `movie_details`, migration 2): plot, director, cast, runtime, poster URL.

Not keyed by run: details describe the film, not a model, so they outlive every run and a new run is
served with them at once. Filled by `python -m training_job enrich` (training_job/enrich/command.py), read by the
API's GET /movies/{id}. Mixed into MetadataStore, so the API's pooled MetadataStore answers
`get_movie_details` with the same connection handling and time bounds as every other call (see
shared/stores/mysql/connection.py). SQL is parametrised; pymysql is imported lazily.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

T = TypeVar("T")

_IN_CHUNK = 1000  # ids per IN (...) list
_UPSERT_CHUNK = 500  # rows per multi-row INSERT (plots are up to a few KB each)
_NO_SUCH_TABLE = 1146  # ER_NO_SUCH_TABLE: a database migrated before migration 2 (the loader adds it)

# Column bounds of migration 2; values are cut to fit rather than refused (the data is best effort).
PLOT_MAX = 8000  # characters (TEXT holds 64 KB; OMDb's full plots are a few hundred words)
DIRECTOR_MAX = 512
CAST_MAX = 20  # names kept
POSTER_URL_MAX = 2048
SOURCE_MAX = 64
RUNTIME_MAX = 32767  # SMALLINT

DETAILS_COLS = "movie_id, plot, director, cast_members, runtime_minutes, poster_url, source, fetched_at"


@dataclass(frozen=True)
class MovieDetails:
    """One movie's details; every field is None (cast: empty) when unknown."""

    movie_id: int
    plot: str | None = None
    director: str | None = None
    cast: list[str] = field(default_factory=list)
    runtime_minutes: int | None = None
    poster_url: str | None = None
    source: str | None = None
    fetched_at: datetime | None = None


def _cut(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:limit] or None


def details_row(d: MovieDetails) -> tuple[Any, ...]:
    """The INSERT parameters of one row (bounded to the columns' sizes)."""
    runtime = d.runtime_minutes if d.runtime_minutes is not None and 0 < d.runtime_minutes <= RUNTIME_MAX else None
    poster = d.poster_url if d.poster_url and len(d.poster_url) <= POSTER_URL_MAX else None  # never a cut URL
    cast = [c.strip() for c in d.cast if c and c.strip()][:CAST_MAX]
    return (
        int(d.movie_id),
        _cut(d.plot, PLOT_MAX),
        _cut(d.director, DIRECTOR_MAX),
        json.dumps(cast, ensure_ascii=False) if cast else None,
        runtime,
        poster,
        _cut(d.source, SOURCE_MAX),
        d.fetched_at or datetime.now(UTC).replace(tzinfo=None),  # DATETIME(6) holds naive UTC
    )


def details_from_row(row: Sequence[Any]) -> MovieDetails:
    try:
        cast = [str(c) for c in json.loads(row[3])] if row[3] else []
    except (ValueError, TypeError):  # hand-edited row: show no cast rather than fail the request
        cast = []
    return MovieDetails(
        movie_id=int(row[0]),
        plot=row[1],
        director=row[2],
        cast=cast,
        runtime_minutes=None if row[4] is None else int(row[4]),
        poster_url=row[5],
        source=row[6],
        fetched_at=row[7],
    )


class MovieDetailsMixin:
    """The `movie_details` table (and a run's movie titles, which the enrichment looks up); needs
    MySQLConnection's _fetchall/_with_conn (MetadataStore provides them)."""

    if TYPE_CHECKING:  # provided by MySQLConnection

        def _fetchall(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...
        def _with_conn(self, fn: Callable[[Any], T], *, retry: bool = True) -> T: ...

    def upsert_movie_details(self, details: Sequence[MovieDetails]) -> int:
        """Insert or replace details by movie_id (a rerun replaces, never duplicates). Returns rows given."""
        rows = [details_row(d) for d in details]
        if not rows:
            return 0

        def go(conn: Any) -> None:
            with conn.cursor() as cur:
                for i in range(0, len(rows), _UPSERT_CHUNK):
                    cur.executemany(  # pymysql sends one multi-row INSERT per call, values escaped by the driver
                        f"INSERT INTO movie_details ({DETAILS_COLS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE plot=VALUES(plot), director=VALUES(director),"
                        " cast_members=VALUES(cast_members), runtime_minutes=VALUES(runtime_minutes),"
                        " poster_url=VALUES(poster_url), source=VALUES(source), fetched_at=VALUES(fetched_at)",
                        rows[i : i + _UPSERT_CHUNK],
                    )

        self._with_conn(go)
        return len(rows)

    def get_movie_details(self, movie_ids: Sequence[int]) -> dict[int, MovieDetails]:
        """Details of the given movies; movies without any are absent. A database whose schema predates
        the table answers {} (no details yet), never an error: details are optional."""
        import pymysql

        ids = list(dict.fromkeys(int(m) for m in movie_ids))

        def go(conn: Any) -> dict[int, MovieDetails]:
            out: dict[int, MovieDetails] = {}
            with conn.cursor() as cur:
                for i in range(0, len(ids), _IN_CHUNK):
                    chunk = ids[i : i + _IN_CHUNK]
                    marks = ",".join(["%s"] * len(chunk))
                    try:
                        cur.execute(f"SELECT {DETAILS_COLS} FROM movie_details WHERE movie_id IN ({marks})", chunk)
                    except pymysql.err.ProgrammingError as exc:
                        if exc.args and exc.args[0] == _NO_SUCH_TABLE:
                            return {}
                        raise
                    for row in cur.fetchall():
                        d = details_from_row(row)
                        out[d.movie_id] = d
            return out

        return self._with_conn(go) if ids else {}

    def count_movie_details(self) -> int:
        return int(self._fetchall("SELECT COUNT(*) FROM movie_details")[0][0])

    def run_movie_titles(self, run_id: str) -> list[tuple[int, str, int | None]]:
        """(movie_id, title, year) of every movie of a run, by movie_id (what `enrich --live` looks up)."""
        rows = self._fetchall("SELECT movie_id, title, year FROM movies WHERE run_id=%s ORDER BY movie_id", (run_id,))
        return [(int(r[0]), str(r[1]), None if r[2] is None else int(r[2])) for r in rows]
