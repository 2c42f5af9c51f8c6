"""MySQL (MariaDB/RDS) store for run bookkeeping, movie metadata and user histories.

Why MySQL holds "which run is live": the switch is one transaction on `runs.status`, so readers never
see two live runs or none mid-switch, and a failed load can never become live by accident. Every
per-run row is keyed by run_id, so a new run loads beside the live one.

The connection handling lives in shared/stores/mysql/connection.py (one connection per process, reconnected
transparently), the tables and row shapes in shared/stores/mysql/schema.py. SQL is always parametrised;
table names are constants. pymysql is imported lazily.
"""

from __future__ import annotations

import contextlib
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from shared.contract.run_status import GO_LIVE_FROM, RUN_STATUSES, RunStatus
from shared.errors import StoreUnavailable
from shared.stores.mysql.connection import MySQLConnection
from shared.stores.mysql.details import MovieDetailsMixin
from shared.stores.mysql.people import PeopleMixin
from shared.stores.mysql.schema import (  # noqa: F401 - SCHEMA_VERSION, Movie, RunRecord: store.py is this package's entry point for callers
    MOVIE_COLS,
    RUN_COLS,
    SCHEMA_VERSION,
    Movie,
    RunRecord,
    migrate,
    movie_from_row,
    run_from_row,
)

if TYPE_CHECKING:  # pragma: no cover
    from shared.config.settings import Settings

__all__ = ["RUN_STATUSES", "MetadataStore", "Movie", "RunRecord", "StoreUnavailable"]

_IN_CHUNK = 1000  # ids per IN (...) list
_STMT_BYTES = 2_000_000  # per multi-row INSERT (max_allowed_packet is 16 MB on MariaDB, 64 MB on RDS MySQL)
_DELETE_CHUNK = 50_000  # rows per DELETE statement (keeps transactions small)


def _escape_like(q: str) -> str:
    """Make user text literal inside LIKE: % and _ match themselves (escape char is backslash)."""
    return q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class MetadataStore(PeopleMixin, MovieDetailsMixin, MySQLConnection):
    """Runs, movies and user histories in MySQL (see module docstring); people and their events from
    PeopleMixin (shared/stores/mysql/people.py), so one connection pool serves both."""

    @classmethod
    def from_settings(cls, settings: Settings, *, statement_timeout: float | None = None) -> MetadataStore:
        """statement_timeout overrides the read/write budget (the loader's bulk statements need longer than
        the API's few seconds)."""
        kwargs = settings.resolved_mysql()
        kwargs.setdefault("connect_timeout", settings.mysql_connect_timeout)
        kwargs.setdefault("read_timeout", statement_timeout or settings.mysql_read_timeout)
        kwargs.setdefault("write_timeout", statement_timeout or settings.mysql_write_timeout)
        store = cls(kwargs)
        if settings.mysql_secret_arn:
            # A rotated secret: the cached credentials get "access denied" (1045); fetch the secret again.
            store._refresh_credentials = partial(settings.resolved_mysql, refresh=True)
        return store

    def __repr__(self) -> str:  # never show the password
        k = self._kwargs
        return f"MetadataStore({k.get('user')}@{k.get('host')}:{k.get('port')}/{k.get('database')})"

    # ------------------------------------------------------------------ schema
    def ensure_schema(self) -> None:
        """Create/migrate tables idempotently; safe to call from several processes at once."""
        self._with_conn(migrate)

    def schema_version(self) -> int:
        return int(self._fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")[0][0])

    # ------------------------------------------------------------------ runs
    def upsert_run(
        self,
        run_id: str,
        *,
        status: str,
        dim: int,
        counts: dict[str, Any],
        metrics: dict[str, Any],
        manifest_uri: str,
    ) -> None:
        """Create or update a run's row (created_at is kept from the first insert)."""
        status = _check_status(status)
        self._execute(
            "INSERT INTO runs (run_id, status, dim, counts, metrics, reason, manifest_uri, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, NULL, %s, CURRENT_TIMESTAMP(6), CURRENT_TIMESTAMP(6))"
            " ON DUPLICATE KEY UPDATE status=VALUES(status), dim=VALUES(dim), counts=VALUES(counts),"
            " metrics=VALUES(metrics), reason=NULL, manifest_uri=VALUES(manifest_uri),"
            " updated_at=CURRENT_TIMESTAMP(6)",
            (
                run_id,
                status,
                int(dim),
                json.dumps(counts, default=str),
                json.dumps(metrics, default=str),
                manifest_uri,
            ),
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        rows = self._fetchall(f"SELECT {RUN_COLS} FROM runs WHERE run_id=%s", (run_id,))
        return run_from_row(rows[0]) if rows else None

    def set_status(self, run_id: str, status: str, reason: str | None = None) -> None:
        """Move a run to loading/ready/retired/failed (use switch_live to make one live).

        Raises KeyError for an unknown run, ValueError for 'live' or an unknown status.
        """
        status = _check_status(status)
        if status == RunStatus.LIVE:
            raise ValueError("use switch_live() to make a run live (it retires the old one atomically)")
        n = self._execute(
            "UPDATE runs SET status=%s, reason=%s, updated_at=CURRENT_TIMESTAMP(6) WHERE run_id=%s",
            (status, reason, run_id),
        )
        if n == 0 and self.get_run(run_id) is None:
            raise KeyError(f"unknown run {run_id}")

    def live_run(self) -> RunRecord | None:
        rows = self._fetchall(
            f"SELECT {RUN_COLS} FROM runs WHERE status='{RunStatus.LIVE}' ORDER BY updated_at DESC LIMIT 1"
        )
        return run_from_row(rows[0]) if rows else None

    def switch_live(self, run_id: str) -> str | None:
        """In ONE transaction: the live run (if any) -> retired, run_id -> live. Returns the previously
        live run_id (None if there was none; run_id itself if it already was live: nothing changes).

        Only a 'ready' or 'retired' run can go live (never loading/failed): KeyError/ValueError otherwise.
        """

        def go(conn: Any) -> str | None:
            conn.begin()
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT id FROM live_lock WHERE id=1 FOR UPDATE")
                    cur.execute("SELECT status FROM runs WHERE run_id=%s FOR UPDATE", (run_id,))
                    row = cur.fetchone()
                    if row is None:
                        raise KeyError(f"unknown run {run_id}")
                    if row[0] == RunStatus.LIVE:
                        conn.rollback()
                        return run_id
                    if row[0] not in GO_LIVE_FROM:
                        raise ValueError(f"run {run_id} is {row[0]}; only ready or retired runs can go live")
                    cur.execute("SELECT run_id FROM runs WHERE status=%s FOR UPDATE", (RunStatus.LIVE.value,))
                    old = [r[0] for r in cur.fetchall()]
                    cur.execute(
                        "UPDATE runs SET status=%s, reason=NULL, updated_at=CURRENT_TIMESTAMP(6) WHERE status=%s",
                        (RunStatus.RETIRED.value, RunStatus.LIVE.value),
                    )
                    cur.execute(
                        "UPDATE runs SET status=%s, reason=NULL, updated_at=CURRENT_TIMESTAMP(6) WHERE run_id=%s",
                        (RunStatus.LIVE.value, run_id),
                    )
                conn.commit()
                return old[0] if old else None
            except BaseException:
                with contextlib.suppress(Exception):  # connection may be gone; the server rolls back
                    conn.rollback()
                raise

        # No blind retry: a lost connection mid-commit leaves the outcome unknown; the caller re-reads.
        return self._with_conn(go, retry=False)

    def list_runs(self) -> list[RunRecord]:
        """All runs, newest first (by creation time, then run_id which embeds the training time)."""
        return [
            run_from_row(r)
            for r in self._fetchall(f"SELECT {RUN_COLS} FROM runs ORDER BY created_at DESC, run_id DESC")
        ]

    @contextlib.contextmanager
    def run_lock(self, run_id: str) -> Iterator[bool]:
        """Try to take the server-wide "loading run_id" lock without waiting; yields whether we hold it.

        Why: S3 may deliver the same event twice at the same moment (two Lambda containers). Without a
        lock both would write the same collection, and Milvus' plain insert does not deduplicate primary
        keys. A MySQL named lock lives on its own connection (so our reconnect logic can never drop it
        silently) and is released by the server when that connection dies - a killed loader never leaves
        a stale lock behind, unlike a status-column lease.
        """
        import hashlib

        import pymysql

        db = str(self._kwargs.get("database", ""))
        name = "graphrec_load_" + hashlib.sha1(f"{db}/{run_id}".encode()).hexdigest()  # <= 64 chars
        conn = self._connect()
        try:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
                    acquired = cur.fetchone()[0] == 1
            except pymysql.err.MySQLError as exc:
                raise StoreUnavailable(f"MySQL lock for run {run_id} failed: {exc}") from exc
            try:
                yield acquired
            finally:
                if acquired:
                    with contextlib.suppress(Exception), conn.cursor() as cur:  # closing releases it anyway
                        cur.execute("SELECT RELEASE_LOCK(%s)", (name,))
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    # ------------------------------------------------------------------ per-run data (loader)
    def _bulk_upsert(
        self, head: str, tail: str, build: Callable[[Callable[[str], str]], Iterable[str]]
    ) -> None:
        """Multi-row `head VALUES (..),(..) tail` statements of <= _STMT_BYTES each.

        Why not executemany: pymysql's executemany escapes every value through its generic per-type
        dispatch, which made Python (not MySQL) the bottleneck at ~10k rows/s. `build` formats each row
        with typed literals instead: ints via int()/%d, strings through the driver's own escape_string
        (Connection.escape(str): the very path executemany takes for strings; honours NO_BACKSLASH_ESCAPES), NULL for
        None. So this is exactly as injection-proof as parametrised executemany, only faster.
        """

        def go(conn: Any) -> None:
            def quote(value: str) -> str:
                return str(conn.escape(str(value)))  # str -> '...' via the driver's escape_string

            parts: list[str] = []
            size = 0
            with conn.cursor() as cur:
                for row in build(quote):
                    parts.append(row)
                    size += len(row) + 1
                    if size >= _STMT_BYTES:
                        cur.execute(f"{head} VALUES {','.join(parts)} {tail}")
                        parts, size = [], 0
                if parts:
                    cur.execute(f"{head} VALUES {','.join(parts)} {tail}")

        self._with_conn(go)

    def insert_movies(self, run_id: str, movies: Sequence[Movie]) -> int:
        """Upsert movies of a run (a retried batch replaces rows, never duplicates). Returns rows given."""
        if not movies:
            return 0
        dumps = json.JSONEncoder(ensure_ascii=False).encode

        def build(quote: Callable[[str], str]) -> Iterator[str]:
            rid = quote(run_id)
            for m in movies:
                year = "NULL" if m.year is None else f"{int(m.year):d}"
                yield f"({rid},{int(m.movie_id):d},{quote(str(m.title))},{year},{quote(dumps([str(g) for g in m.genres]))})"

        self._bulk_upsert(
            "INSERT INTO movies (run_id, movie_id, title, year, genres)",
            "ON DUPLICATE KEY UPDATE title=VALUES(title), year=VALUES(year), genres=VALUES(genres)",
            build,
        )
        return len(movies)

    def insert_histories(self, run_id: str, rows: Sequence[tuple[int, list[int]]]) -> int:
        """Upsert (user_id, movie_ids chronological) rows of a run. Returns rows given."""
        if not rows:
            return 0

        def build(quote: Callable[[str], str]) -> Iterator[str]:
            rid = quote(run_id)
            for uid, mids in rows:
                ids = ",".join(map(str, map(int, mids)))  # ints only: digits, '-' and commas
                yield f"({rid},{int(uid):d},'[{ids}]')"

        self._bulk_upsert(
            "INSERT INTO user_histories (run_id, user_id, movie_ids)",
            "ON DUPLICATE KEY UPDATE movie_ids=VALUES(movie_ids)",
            build,
        )
        return len(rows)

    def count_movies(self, run_id: str) -> int:
        return int(self._fetchall("SELECT COUNT(*) FROM movies WHERE run_id=%s", (run_id,))[0][0])

    def count_users(self, run_id: str) -> int:
        return int(self._fetchall("SELECT COUNT(*) FROM user_histories WHERE run_id=%s", (run_id,))[0][0])

    def delete_run_data(self, run_id: str) -> None:
        """Delete a run's movies and histories in bounded chunks (the runs row stays)."""
        for table in ("movies", "user_histories"):
            while self._execute(f"DELETE FROM {table} WHERE run_id=%s LIMIT {_DELETE_CHUNK}", (run_id,)) > 0:
                pass

    # ------------------------------------------------------------------ reads (API)
    def get_movies(self, run_id: str, movie_ids: Sequence[int]) -> dict[int, Movie]:
        """Movies of the run by id; unknown ids are absent from the result."""
        ids = list(dict.fromkeys(int(m) for m in movie_ids))
        out: dict[int, Movie] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            marks = ",".join(["%s"] * len(chunk))
            for row in self._fetchall(
                f"SELECT {MOVIE_COLS} FROM movies WHERE run_id=%s AND movie_id IN ({marks})",
                (run_id, *chunk),
            ):
                m = movie_from_row(row)
                out[m.movie_id] = m
        return out

    def search_movies(self, run_id: str, q: str, limit: int) -> list[Movie]:
        """Case-insensitive title substring search; q is literal text (%, _ and quotes are not special).
        Titles starting with q first, then by position of the match, then title."""
        q = q.strip()
        if not q or limit <= 0:
            return []
        pattern = f"%{_escape_like(q)}%"
        rows = self._fetchall(
            f"SELECT {MOVIE_COLS} FROM movies WHERE run_id=%s AND title LIKE %s"
            " ORDER BY LOCATE(%s, title), title, movie_id LIMIT %s",
            (run_id, pattern, q, int(limit)),
        )
        return [movie_from_row(r) for r in rows]

    def sample_movies(self, run_id: str, n: int) -> list[Movie]:
        """Up to n distinct random movies of the run (uniform for small catalogues; for large ones,
        random id pivots so the query stays an index lookup)."""
        if n <= 0:
            return []
        stats = self._fetchall(
            "SELECT COUNT(*), MIN(movie_id), MAX(movie_id) FROM movies WHERE run_id=%s", (run_id,)
        )
        total, lo, hi = stats[0]
        if not total:
            return []
        if total <= 50_000 or n * 4 >= total:
            rows = self._fetchall(
                f"SELECT {MOVIE_COLS} FROM movies WHERE run_id=%s ORDER BY RAND() LIMIT %s", (run_id, int(n))
            )
            return [movie_from_row(r) for r in rows]
        picked: dict[int, Movie] = {}
        rng = random.Random()
        for _ in range(5):
            need = n - len(picked)
            if need <= 0:
                break
            pivots = [rng.randint(int(lo), int(hi)) for _ in range(need * 2)]
            sub = f"(SELECT {MOVIE_COLS} FROM movies WHERE run_id=%s AND movie_id >= %s ORDER BY movie_id LIMIT 1)"
            sql = " UNION ALL ".join([sub] * len(pivots))
            args: list[Any] = []
            for p in pivots:
                args += [run_id, p]
            for row in self._fetchall(sql, args):
                m = movie_from_row(row)
                picked.setdefault(m.movie_id, m)
        out = list(picked.values())[:n]
        rng.shuffle(out)
        return out

    def user_history(self, run_id: str, user_id: int) -> list[int] | None:
        """The user's movie ids (oldest first) in the run, or None when the user is unknown."""
        rows = self._fetchall(
            "SELECT movie_ids FROM user_histories WHERE run_id=%s AND user_id=%s", (run_id, int(user_id))
        )
        return [int(x) for x in json.loads(rows[0][0])] if rows else None


def _check_status(status: str) -> str:
    """The status as a plain string (what the driver sends); ValueError for an unknown one."""
    if status not in RUN_STATUSES:
        raise ValueError(f"status must be one of {RUN_STATUSES}, got {status!r}")
    return str(RunStatus(status).value)
