"""People who sign in: their profile (subject -> user id), interaction events and write budget, in MySQL.

Why beside the run tables and not keyed by run: a person's likes outlive every training run. The API
writes here on every POST /events and reads a person's recent events on every recommendation, so each
method is one or two indexed statements; `events` is append-only and `(user_id, idempotency_key)` is
unique, so a retried batch never duplicates. Mixed into MetadataStore, so the API's MySQL connection
pool serves both. SQL is always parametrised.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from shared.serving.event_fold import Event, EventType

_clock = time.time  # the write budget's clock (tests move it)

# New people get ids from here up (the profiles table's AUTO_INCREMENT start): MovieLens ids stay below.
NEW_USER_BASE = 1_000_000_000

PROFILE_COLS = "user_id, subject, display_name, created_at"
EVENT_COLS = "seq, movie_id, type, rating, client_ts, received_at, idempotency_key"


@dataclass(frozen=True)
class Profile:
    user_id: int
    subject: str
    display_name: str | None
    created_at: datetime

    @property
    def claimed(self) -> bool:
        """True when the person took over an existing (MovieLens) user id in a local demo."""
        return self.user_id < NEW_USER_BASE


@dataclass(frozen=True)
class NewEvent:
    """An event as the API accepted it (validated by the request schema)."""

    movie_id: int
    type: EventType
    rating: float | None
    client_ts: datetime | None
    idempotency_key: str


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    movie_id: int
    type: EventType
    rating: float | None
    client_ts: datetime | None
    received_at: datetime
    idempotency_key: str


def _profile(row: Sequence[Any]) -> Profile:
    return Profile(int(row[0]), str(row[1]), row[2], row[3])


def _event(row: Sequence[Any]) -> StoredEvent:
    rating = None if row[3] is None else float(Decimal(row[3]))
    return StoredEvent(int(row[0]), int(row[1]), EventType(row[2]), rating, row[4], row[5], str(row[6]))


def _actions(rows: Sequence[Sequence[Any]]) -> list[Event]:
    """One JSON_ARRAYAGG row of [seq, movie_id, type] -> events oldest first (MySQL cannot order inside it)."""
    doc = rows[0][0] if rows else None
    return [Event(int(m), EventType(t)) for _, m, t in sorted(json.loads(doc))] if doc else []


def _naive_utc(ts: datetime | None) -> datetime | None:
    """DATETIME columns hold UTC without a zone."""
    if ts is None:
        return None
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


class PeopleMixin:
    """Methods over profiles/events/write_budget; needs MySQLConnection's _fetchall/_execute/_with_conn
    and MetadataStore.ensure_schema (the tables are migration 2 of shared/stores/mysql/schema.py)."""

    _people_ready = False

    if TYPE_CHECKING:  # provided by MySQLConnection / MetadataStore

        def _fetchall(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...
        def _execute(self, sql: str, args: Sequence[Any] | None = None) -> int: ...
        def ensure_schema(self) -> None: ...

    def _people(self) -> None:
        """Migrate once per client: an API deployed before the loader ran migration 2 still works."""
        if not self._people_ready:
            self.ensure_schema()
            self._people_ready = True

    # ------------------------------------------------------------------ profiles
    def profile_by_subject(self, subject: str) -> Profile | None:
        self._people()
        rows = self._fetchall(f"SELECT {PROFILE_COLS} FROM profiles WHERE subject=%s", (subject,))
        return _profile(rows[0]) if rows else None

    def profile_by_user(self, user_id: int) -> Profile | None:
        self._people()
        rows = self._fetchall(f"SELECT {PROFILE_COLS} FROM profiles WHERE user_id=%s", (int(user_id),))
        return _profile(rows[0]) if rows else None

    def get_or_create_profile(self, subject: str, display_name: str | None) -> Profile:
        """The person's profile, created with a new user id (>= NEW_USER_BASE) on first sign-in."""
        found = self.profile_by_subject(subject)
        if found is not None:
            return found
        self._execute(
            "INSERT INTO profiles (subject, display_name) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE subject=subject",  # two first requests at once: one row
            (subject, display_name),
        )
        created = self.profile_by_subject(subject)
        assert created is not None
        return created

    def claim_profile(self, subject: str, display_name: str | None, user_id: int) -> Profile:
        """Local demo only (the API refuses outside development sign-in): take over an existing user id.
        ValueError when the id belongs to someone else or the subject already has another id."""
        own = self.profile_by_subject(subject)
        if own is not None:
            if own.user_id != user_id:
                raise ValueError(f"{subject} is already user {own.user_id}")
            return own
        holder = self.profile_by_user(user_id)
        if holder is not None:
            raise ValueError(f"user {user_id} is already claimed by someone else")
        self._execute(
            "INSERT INTO profiles (user_id, subject, display_name) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE subject=subject",
            (int(user_id), subject, display_name),
        )
        mine = self.profile_by_subject(subject)
        if mine is None or mine.user_id != user_id:
            raise ValueError(f"user {user_id} is already claimed by someone else")
        return mine

    # ------------------------------------------------------------------ events
    def append_events(self, user_id: int, events: Sequence[NewEvent]) -> int:
        """Append events (in order); returns how many were new. A key seen before (a retried batch) is
        skipped, never written twice - the first event with a key wins."""
        self._people()
        if not events:
            return 0
        marks = ",".join(["(%s,%s,%s,%s,%s,%s)"] * len(events))
        args: list[Any] = []
        for e in events:
            rating = None if e.rating is None else Decimal(str(e.rating))
            args += [int(user_id), int(e.movie_id), e.type.value, rating, _naive_utc(e.client_ts), e.idempotency_key]
        # ON DUPLICATE KEY with a no-op update: duplicates count 0 rows, while real errors still raise
        # (INSERT IGNORE would also swallow truncation and type errors).
        written = self._execute(
            "INSERT INTO events (user_id, movie_id, type, rating, client_ts, idempotency_key)"
            f" VALUES {marks} ON DUPLICATE KEY UPDATE seq=seq",
            args,
        )
        return int(written)

    def recent_actions(self, user_id: int, limit: int) -> list[Event]:
        """The latest `limit` events as (movie, type) only, oldest first: what real-time recommendations fold
        in on every request. Aggregated into ONE JSON row by the server: the driver parses rows in Python
        at ~20 us each, which made 200 events cost 4 ms as rows and ~0.3 ms as one JSON document.
        (JSON_ARRAYAGG: MySQL 5.7.22+, MariaDB 10.5+; no ORDER BY inside it on MySQL, so sorted here.)"""
        self._people()
        rows = self._fetchall(
            "SELECT JSON_ARRAYAGG(JSON_ARRAY(seq, movie_id, type)) FROM (SELECT seq, movie_id, type FROM events"
            " WHERE user_id=%s ORDER BY seq DESC LIMIT %s) AS latest",
            (int(user_id), int(limit)),
        )
        return _actions(rows)

    def like_actions(self, user_id: int) -> list[Event]:
        """Every like/unlike of the person, oldest first (for shared.serving.event_fold.liked: all of them, not only
        the latest GRAPHREC_EVENTS_REALTIME_MAX, so an old like still shows)."""
        self._people()
        rows = self._fetchall(
            "SELECT JSON_ARRAYAGG(JSON_ARRAY(seq, movie_id, type)) FROM events WHERE user_id=%s"
            " AND type IN ('like', 'unlike')",
            (int(user_id),),
        )
        return _actions(rows)

    def events_page(self, user_id: int, limit: int, before: int | None) -> list[StoredEvent]:
        """Newest first, `before` a seq from the previous page (keyset pagination)."""
        self._people()
        if before is None:
            rows = self._fetchall(
                f"SELECT {EVENT_COLS} FROM events WHERE user_id=%s ORDER BY seq DESC LIMIT %s",
                (int(user_id), int(limit)),
            )
        else:
            rows = self._fetchall(
                f"SELECT {EVENT_COLS} FROM events WHERE user_id=%s AND seq < %s ORDER BY seq DESC LIMIT %s",
                (int(user_id), int(before), int(limit)),
            )
        return [_event(r) for r in rows]

    def spend_write_budget(self, user_id: int, n: int, per_minute: int) -> float:
        """Count n writes against the person's budget for this minute. Returns 0 when allowed, else the
        seconds until the next window (the batch is refused; what it asked for still counts, so a client
        hammering the API stays refused until it waits)."""
        self._people()
        now = _clock()
        window = int(now // 60)
        created = self._execute(
            "INSERT INTO write_budget (user_id, window_start, used) VALUES (%s, %s, %s)"
            " ON DUPLICATE KEY UPDATE used = used + VALUES(used)",
            (int(user_id), window, int(n)),
        ) == 1  # 1 = a new window's row, 2 = an existing one updated
        used = int(
            self._fetchall(
                "SELECT used FROM write_budget WHERE user_id=%s AND window_start=%s", (int(user_id), window)
            )[0][0]
        )
        if created:  # once per person and minute: forget their older windows
            self._execute("DELETE FROM write_budget WHERE user_id=%s AND window_start < %s", (int(user_id), window))
        if used <= per_minute:
            return 0.0
        return max(1.0, (window + 1) * 60 - now)

    def forget_person(self, user_id: int) -> dict[str, int]:
        """"Forget me": the person's events, write budget and profile; for people who were new here (not a
        claimed MovieLens id) also their histories in loaded runs (learnt from their exported events).
        Returns rows deleted per table."""
        self._people()
        uid = int(user_id)
        deleted = {
            "events": self._execute("DELETE FROM events WHERE user_id=%s", (uid,)),
            "write_budget": self._execute("DELETE FROM write_budget WHERE user_id=%s", (uid,)),
        }
        if uid >= NEW_USER_BASE:
            deleted["user_histories"] = self._execute("DELETE FROM user_histories WHERE user_id=%s", (uid,))
        deleted["profiles"] = self._execute("DELETE FROM profiles WHERE user_id=%s", (uid,))
        return deleted
