"""People who sign in: their profile (subject -> user id), interaction events and write budget, in MySQL.

Why beside the run tables and not keyed by run: a person's likes outlive every training run. The API
writes here on every POST /events and reads a person's recent events on every recommendation, so each
method is one or two indexed statements; `events` is append-only and `(user_id, idempotency_key)` is
unique, so a retried batch never duplicates. Mixed into MetadataStore, so the API's MySQL connection
pool serves both. SQL is always parametrised.

"Forget me" is final (issue 20): the `forgotten` table records which user id was forgotten, when, and a
SHA-256 of the identity subject (no personal data); `token_floor` holds, per subject hash, the time before
which its tokens are refused (forget me and sign-out). The loader, the events export and the training job
skip forgotten ids, so no older run folder or export brings a person's history back.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from shared.serving.event_fold import Event, EventType

_clock = time.time  # the write budget's clock (tests move it)
T = TypeVar("T")

# New people get ids from here up (the profiles table's AUTO_INCREMENT start): MovieLens ids stay below.
NEW_USER_BASE = 1_000_000_000

NAME_MAX = 255  # profiles.display_name is VARCHAR(255): longer names (a Cognito e-mail claim) are cut
PROFILE_COLS = "user_id, subject, display_name, created_at"
_SUBJECT_SALT = b"graphrec-subject-v1:"
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


class KeyConflict(ValueError):
    """An idempotency key already stored (or repeated in the batch) with a different event."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def subject_hash(subject: str) -> bytes:
    """What the forget-me record keeps of an identity: 32 bytes of salted SHA-256, not the subject itself."""
    return hashlib.sha256(_SUBJECT_SALT + subject.encode()).digest()


def clean_name(name: str | None) -> str | None:
    """A display name as stored: whitespace trimmed, empty = no name, at most NAME_MAX characters."""
    if name is None:
        return None
    cleaned = " ".join(name.split())[:NAME_MAX]
    return cleaned or None


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
    """DATETIME columns hold UTC without a zone; DATETIME(3) keeps milliseconds."""
    if ts is None:
        return None
    naive = ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts
    return naive.replace(microsecond=naive.microsecond // 1000 * 1000)


def _as_row(e: NewEvent) -> tuple[Any, ...]:
    """An event as its (movie_id, type, rating, client_ts) columns would hold it."""
    return (e.movie_id, e.type.value, None if e.rating is None else Decimal(str(e.rating)), _naive_utc(e.client_ts))


def _same_event(e: NewEvent, row: Sequence[Any]) -> bool:
    """Does a stored (movie_id, type, rating, client_ts) row say the same as the new event?"""
    rating = None if row[2] is None else float(Decimal(row[2]))
    return (int(row[0]), str(row[1]), rating, row[3]) == (
        int(e.movie_id),
        e.type.value,
        e.rating,
        _naive_utc(e.client_ts),
    )


class PeopleMixin:
    """Methods over profiles/events/write_budget; needs MySQLConnection's _fetchall/_execute/_with_conn
    and MetadataStore.ensure_schema (the tables are migration 2 of shared/stores/mysql/schema.py)."""

    _people_ready = False

    if TYPE_CHECKING:  # provided by MySQLConnection / MetadataStore

        def _fetchall(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]: ...
        def _execute(self, sql: str, args: Sequence[Any] | None = None) -> int: ...
        def _with_conn(self, fn: Callable[[Any], T], *, retry: bool = True) -> T: ...
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

    def session_state(self, subject: str) -> tuple[Profile | None, float | None]:
        """(the subject's profile or None, the time before which its tokens are refused or None), in one
        round trip: every signed-in request asks both."""
        self._people()
        rows = self._fetchall(
            "SELECT (SELECT not_before FROM token_floor WHERE subject_hash=%s), p.user_id, p.subject,"
            " p.display_name, p.created_at FROM (SELECT 1) AS one LEFT JOIN profiles p ON p.subject=%s",
            (subject_hash(subject), subject),
        )
        floor, *profile = rows[0]
        return (None if profile[0] is None else _profile(profile)), (None if floor is None else float(floor))

    def revoke_tokens(self, subject: str, not_before: float) -> None:
        """Refuse the subject's tokens issued before `not_before` (Unix seconds): sign-out and forget me."""
        self._people()
        self._execute(
            "INSERT INTO token_floor (subject_hash, not_before) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE not_before = GREATEST(not_before, VALUES(not_before))",
            (subject_hash(subject), float(not_before)),
        )

    def get_or_create_profile(self, subject: str, display_name: str | None) -> Profile:
        """The person's profile, created with a new user id (>= NEW_USER_BASE) on sign-in or their first
        write (never by a read)."""
        found = self.profile_by_subject(subject)
        if found is not None:
            return found
        self._execute(
            "INSERT INTO profiles (subject, display_name) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE subject=subject",  # two first requests at once: one row
            (subject, clean_name(display_name)),
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
            (int(user_id), subject, clean_name(display_name)),
        )
        mine = self.profile_by_subject(subject)
        if mine is None or mine.user_id != user_id:
            raise ValueError(f"user {user_id} is already claimed by someone else")
        return mine

    # ------------------------------------------------------------------ events
    def append_events(self, user_id: int, events: Sequence[NewEvent]) -> int:
        """Append events (in order); returns how many were new. A key stored before with the same event (a
        retried batch) is skipped, never written twice; a key stored (or repeated in the batch) with a
        *different* event raises KeyConflict before anything is written - a retry must resend the same body."""
        self._people()
        if not events:
            return 0
        unique: dict[str, NewEvent] = {}
        for e in events:
            first = unique.setdefault(e.idempotency_key, e)
            if first != e and not _same_event(first, _as_row(e)):
                raise KeyConflict(e.idempotency_key)
        keys = list(unique)
        stored = self._fetchall(
            "SELECT idempotency_key, movie_id, type, rating, client_ts FROM events WHERE user_id=%s"
            f" AND idempotency_key IN ({','.join(['%s'] * len(keys))})",
            [int(user_id), *keys],
        )
        for key, *row in stored:
            if not _same_event(unique[str(key)], row):
                raise KeyConflict(str(key))
        fresh = [e for k, e in unique.items() if k not in {str(r[0]) for r in stored}]
        if not fresh:
            return 0
        marks = ",".join(["(%s,%s,%s,%s,%s,%s)"] * len(fresh))
        args: list[Any] = []
        for e in fresh:
            rating = None if e.rating is None else Decimal(str(e.rating))
            args += [int(user_id), int(e.movie_id), e.type.value, rating, _naive_utc(e.client_ts), e.idempotency_key]
        # ON DUPLICATE KEY with a no-op update: a concurrent retry's rows count 0, while real errors still
        # raise (INSERT IGNORE would also swallow truncation and type errors).
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

    def liked_movies(self, user_id: int) -> list[int]:
        """Movies whose latest like/unlike is a like, in the order of that like (shared.serving.event_fold.liked),
        decided in SQL: one row per liked movie, however many events the person sent (the rows are bounded
        by the catalogue; aggregating every event into one JSON value broke past group_concat_max_len)."""
        self._people()
        rows = self._fetchall(
            "SELECT e.movie_id FROM events e JOIN (SELECT MAX(seq) AS seq FROM events WHERE user_id=%s"
            " AND type IN ('like', 'unlike') GROUP BY movie_id) latest ON e.seq = latest.seq"
            " WHERE e.type = 'like' ORDER BY e.seq",
            (int(user_id),),
        )
        return [int(r[0]) for r in rows]

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
        """A token bucket per person, shared by every container through MySQL: it holds up to `per_minute`
        events and refills at per_minute/60 per second, so no window of T seconds takes more than
        per_minute * (1 + T/60) (the old fixed minute windows let 2 x per_minute through within 2 s at a
        boundary). Returns 0 when the n events are allowed (they are spent), else the seconds until they
        would be (nothing is spent; the batch is refused). One locked read-modify-write per call."""
        self._people()
        rate = per_minute / 60.0

        def go(conn: Any) -> float:
            now = _clock()
            with conn.cursor() as cur:
                cur.execute("BEGIN")
                try:
                    cur.execute(
                        "INSERT INTO write_budget (user_id, tokens, updated_at) VALUES (%s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE user_id=user_id",
                        (int(user_id), float(per_minute), now),
                    )
                    cur.execute(
                        "SELECT tokens, updated_at FROM write_budget WHERE user_id=%s FOR UPDATE", (int(user_id),)
                    )
                    tokens, updated = (float(v) for v in cur.fetchone())
                    tokens = min(float(per_minute), tokens + max(0.0, now - updated) * rate)
                    allowed = n <= tokens
                    cur.execute(
                        "UPDATE write_budget SET tokens=%s, updated_at=%s WHERE user_id=%s",
                        (tokens - n if allowed else tokens, max(now, updated), int(user_id)),
                    )
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
            if allowed:
                return 0.0
            return max(1.0, (min(n, per_minute) - tokens) / rate)

        return self._with_conn(go, retry=False)

    def forget_person(self, user_id: int, subject: str) -> dict[str, int]:
        """"Forget me": recorded first (the `forgotten` row and the token floor, so a crash half-way still
        leaves the person refused and skipped everywhere), then the events, write budget, profile and, for
        people who were new here (not a claimed MovieLens id), their histories in every loaded run.
        Returns rows deleted per table."""
        self._people()
        uid = int(user_id)
        self._execute(
            "INSERT INTO forgotten (user_id, subject_hash) VALUES (%s, %s)"
            " ON DUPLICATE KEY UPDATE subject_hash=VALUES(subject_hash), forgotten_at=CURRENT_TIMESTAMP(6)",
            (uid, subject_hash(subject)),
        )
        self.revoke_tokens(subject, time.time())
        deleted = {
            "events": self._execute("DELETE FROM events WHERE user_id=%s", (uid,)),
            "write_budget": self._execute("DELETE FROM write_budget WHERE user_id=%s", (uid,)),
        }
        if uid >= NEW_USER_BASE:
            deleted["user_histories"] = self._execute("DELETE FROM user_histories WHERE user_id=%s", (uid,))
        deleted["profiles"] = self._execute("DELETE FROM profiles WHERE user_id=%s", (uid,))
        return deleted

    def forgotten_among(self, user_ids: Sequence[int]) -> set[int]:
        """Which of these ids (>= NEW_USER_BASE: a claimed MovieLens id's history is MovieLens's) were
        forgotten: the loader drops their history rows from any run folder it loads."""
        ids = [int(u) for u in user_ids if int(u) >= NEW_USER_BASE]
        if not ids:
            return set()
        self._people()
        rows = self._fetchall(f"SELECT user_id FROM forgotten WHERE user_id IN ({','.join(['%s'] * len(ids))})", ids)
        return {int(r[0]) for r in rows}
