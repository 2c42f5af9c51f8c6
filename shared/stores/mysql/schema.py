"""The MySQL tables (versioned migrations) and the Python shape of their rows (Movie, RunRecord).

Every per-run row is keyed by run_id, so a new run loads beside the live one; `runs.status` holds a
shared.contract.run_status.RunStatus value.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contract.run_status import RunStatus

SCHEMA_VERSION = 3

MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE IF NOT EXISTS runs (
            run_id VARCHAR(48) CHARACTER SET ascii NOT NULL PRIMARY KEY,
            status VARCHAR(16) NOT NULL,
            dim INT NOT NULL,
            counts TEXT NOT NULL,
            metrics MEDIUMTEXT NOT NULL,
            reason TEXT NULL,
            manifest_uri VARCHAR(2048) NULL,
            created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            KEY idx_runs_status (status, updated_at)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """CREATE TABLE IF NOT EXISTS movies (
            run_id VARCHAR(48) CHARACTER SET ascii NOT NULL,
            movie_id BIGINT NOT NULL,
            title VARCHAR(1024) NOT NULL,
            year SMALLINT NULL,
            genres TEXT NOT NULL,
            PRIMARY KEY (run_id, movie_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """CREATE TABLE IF NOT EXISTS user_histories (
            run_id VARCHAR(48) CHARACTER SET ascii NOT NULL,
            user_id BIGINT NOT NULL,
            movie_ids MEDIUMTEXT NOT NULL,
            PRIMARY KEY (run_id, user_id)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        # A single row locked by switch_live so that concurrent switches serialise even when no run is live.
        """CREATE TABLE IF NOT EXISTS live_lock (
            id TINYINT NOT NULL PRIMARY KEY
        ) ENGINE=InnoDB""",
        "INSERT IGNORE INTO live_lock (id) VALUES (1)",
    ],
    # Issue 13: people who sign in, their interaction events, a per-user write budget, movie details.
    # Not keyed by run: a person's likes outlive every run. New people get ids from 1e9 up, far above
    # MovieLens ids (a local demo may claim a MovieLens id explicitly: shared/stores/mysql/people.py).
    2: [
        """CREATE TABLE IF NOT EXISTS profiles (
            user_id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            subject VARCHAR(255) CHARACTER SET ascii NOT NULL,
            display_name VARCHAR(255) NULL,
            created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            UNIQUE KEY uq_profiles_subject (subject)
        ) ENGINE=InnoDB AUTO_INCREMENT=1000000000 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """CREATE TABLE IF NOT EXISTS events (
            seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
            user_id BIGINT NOT NULL,
            movie_id BIGINT NOT NULL,
            type VARCHAR(8) CHARACTER SET ascii NOT NULL,
            rating DECIMAL(2,1) NULL,
            client_ts DATETIME(3) NULL,
            received_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            idempotency_key VARCHAR(64) CHARACTER SET ascii NOT NULL,
            UNIQUE KEY uq_events_key (user_id, idempotency_key),
            KEY idx_events_user (user_id, seq)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """CREATE TABLE IF NOT EXISTS write_budget (
            user_id BIGINT NOT NULL,
            window_start BIGINT NOT NULL,
            used INT NOT NULL,
            PRIMARY KEY (user_id, window_start)
        ) ENGINE=InnoDB""",
        """CREATE TABLE IF NOT EXISTS movie_details (
            movie_id BIGINT NOT NULL PRIMARY KEY,
            plot TEXT NULL,
            director VARCHAR(512) NULL,
            cast_members TEXT NULL,
            runtime_minutes SMALLINT NULL,
            poster_url VARCHAR(2048) NULL,
            source VARCHAR(64) NULL,
            fetched_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
    ],
    # Issue 20: "forget me" that is final, idempotency keys compared exactly, a token-bucket write budget.
    3: [
        # Keys compared byte for byte (ascii_bin): "CaseKey-AbCd" and "casekey-abcd" are two events. Existing
        # rows are kept: keys unique case-insensitively are unique byte for byte too.
        "ALTER TABLE events MODIFY idempotency_key VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL",
        # One row per forgotten user id: who (SHA-256 of the identity subject, so the record holds no personal
        # data), which id and when. The loader, the events export and the training job skip these ids.
        """CREATE TABLE IF NOT EXISTS forgotten (
            user_id BIGINT NOT NULL PRIMARY KEY,
            subject_hash BINARY(32) NOT NULL,
            forgotten_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
            KEY idx_forgotten_subject (subject_hash)
        ) ENGINE=InnoDB""",
        # Tokens of a subject issued (authenticated) before not_before are refused: forget me and sign-out.
        """CREATE TABLE IF NOT EXISTS token_floor (
            subject_hash BINARY(32) NOT NULL PRIMARY KEY,
            not_before DOUBLE NOT NULL
        ) ENGINE=InnoDB""",
        # The write budget becomes a token bucket per person (the fixed minute windows let 2x through at a
        # boundary); the old table's rows are only a minute's counts, nothing to keep.
        "DROP TABLE IF EXISTS write_budget",
        """CREATE TABLE IF NOT EXISTS write_budget (
            user_id BIGINT NOT NULL PRIMARY KEY,
            tokens DOUBLE NOT NULL,
            updated_at DOUBLE NOT NULL
        ) ENGINE=InnoDB""",
    ],
}


@dataclass(frozen=True)
class Movie:
    movie_id: int
    title: str
    year: int | None
    genres: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    status: RunStatus
    dim: int
    counts: dict[str, Any]
    metrics: dict[str, Any]
    reason: str | None
    created_at: datetime
    updated_at: datetime
    manifest_uri: str | None


def movie_from_row(row: Sequence[Any]) -> Movie:
    return Movie(
        movie_id=int(row[0]),
        title=str(row[1]),
        year=None if row[2] is None else int(row[2]),
        genres=list(json.loads(row[3])) if row[3] else [],
    )


def run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        status=RunStatus(row[1]),
        dim=int(row[2]),
        counts=json.loads(row[3]) if row[3] else {},
        metrics=json.loads(row[4]) if row[4] else {},
        reason=row[5],
        created_at=row[6],
        updated_at=row[7],
        manifest_uri=row[8],
    )


RUN_COLS = "run_id, status, dim, counts, metrics, reason, created_at, updated_at, manifest_uri"
MOVIE_COLS = "movie_id, title, year, genres"


def migrate(conn: Any) -> None:
    """Create/migrate the tables on one connection (MetadataStore.ensure_schema runs it under its lock)."""
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INT NOT NULL PRIMARY KEY,"
            " applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB"
        )
        # Serialise concurrent migrators (two Lambdas cold-starting together).
        cur.execute("SELECT GET_LOCK(CONCAT(DATABASE(), '.graphrec_schema'), 30)")
        try:
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(cur.fetchone()[0])
            for version in sorted(v for v in MIGRATIONS if v > current):
                for stmt in MIGRATIONS[version]:
                    cur.execute(stmt)
                cur.execute("INSERT IGNORE INTO schema_version (version) VALUES (%s)", (version,))
        finally:
            cur.execute("SELECT RELEASE_LOCK(CONCAT(DATABASE(), '.graphrec_schema'))")
