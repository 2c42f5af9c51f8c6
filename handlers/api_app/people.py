"""Signed-in people: profiles, events, real-time recommendations, forget-me (blocking; run in worker threads).

Privacy rules (issue 20):
- Ids of people (>= NEW_USER_BASE) are never public: GET /users/{id}/recommendations answers such an id only
  to its owner; for anyone else it is the same 404 as an id that never existed (and a forgotten person's id
  is such an id), so the answer tells nobody whether a person exists. MovieLens ids stay public (the
  offline evaluation asks for them); one claimed in a local demo is 403 for anyone but its claimer.
- A token is refused (401) once its subject signed out or was forgotten after the token was issued
  (`token_floor`, compared with the token's auth_time/iat), so "forget me" cannot be undone by the old token.
- A profile is created by sign-in or a write, never by a read: reads without one answer empty.
Events are validated against the live run's catalogue before anything is written, and the write budget is
spent first, so a refused batch writes no event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from handlers.api_app.errors import ApiError, NotFound, UnknownMovies
from handlers.api_app.identity import Caller, Unauthorized
from handlers.api_app.recommender import Recommender
from shared import people_schemas as ps
from shared import schemas
from shared.config.settings import Settings
from shared.serving.event_fold import Event
from shared.stores.mysql.people import NEW_USER_BASE, KeyConflict, NewEvent, Profile, StoredEvent, clean_name


class Forbidden(ApiError):
    status_code = 403


class Conflict(ApiError):
    status_code = 409


class KeyReused(Conflict):
    def __init__(self, key: str) -> None:
        super().__init__(
            f"Idempotency key '{key}' was already used for a different event; a retry must resend the same "
            "event, a new event needs a new key.",
            idempotency_key=key,
        )


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, retry_after_seconds=int(retry_after + 0.999))


class PeopleStore(Protocol):
    """What this module needs from MySQL (shared.stores.mysql.people.PeopleMixin on MetadataStore)."""

    def profile_by_subject(self, subject: str) -> Profile | None: ...
    def session_state(self, subject: str) -> tuple[Profile | None, float | None]: ...
    def revoke_tokens(self, subject: str, not_before: float) -> None: ...
    def profile_by_user(self, user_id: int) -> Profile | None: ...
    def get_or_create_profile(self, subject: str, display_name: str | None) -> Profile: ...
    def claim_profile(self, subject: str, display_name: str | None, user_id: int) -> Profile: ...
    def append_events(self, user_id: int, events: Sequence[NewEvent]) -> int: ...
    def recent_actions(self, user_id: int, limit: int) -> list[Event]: ...
    def liked_movies(self, user_id: int) -> list[int]: ...
    def events_page(self, user_id: int, limit: int, before: int | None) -> list[StoredEvent]: ...
    def spend_write_budget(self, user_id: int, n: int, per_minute: int) -> float: ...
    def forget_person(self, user_id: int, subject: str) -> dict[str, int]: ...
    def user_history(self, run_id: str, user_id: int) -> list[int] | None: ...


def session(people: PeopleStore, caller: Caller) -> Profile | None:
    """The caller's profile (None before their first write), after checking their token is still good:
    one issued before they signed out or were forgotten is a 401."""
    profile, not_before = people.session_state(caller.subject)
    if not_before is not None and (caller.issued_at is None or caller.issued_at < not_before):
        raise Unauthorized("This sign-in has ended (signed out, or forgotten at the person's request); sign in again.")
    return profile


def profile_of(people: PeopleStore, caller: Caller) -> Profile:
    """The caller's profile, created now when they have none (sign-in and writes only)."""
    return session(people, caller) or people.get_or_create_profile(caller.subject, caller.name)


def dev_sign_in(people: PeopleStore, caller: Caller, claim: int | None, run_id: str | None) -> Profile:
    """Development sign-in: the person's profile, optionally taking over a MovieLens user of the live run."""
    if claim is None:  # a new token is issued now, after any sign-out: no token to check here
        return people.get_or_create_profile(caller.subject, caller.name)
    if run_id is None or not people.user_history(run_id, claim):
        raise NotFound(f"user {claim} has no history in the live model; claim a user that has one.")
    try:
        return people.claim_profile(caller.subject, caller.name, claim)
    except ValueError as exc:
        raise Conflict(f"Cannot claim user {claim}: {exc}.") from exc


def me(people: PeopleStore, caller: Caller) -> ps.Me:
    profile = session(people, caller)
    if profile is None:  # signed in, nothing written yet: no profile is created by reading
        return ps.Me(user_id=None, name=clean_name(caller.name), claimed=False, liked=[])
    return ps.Me(
        user_id=profile.user_id,
        name=profile.display_name,
        claimed=profile.claimed,
        liked=people.liked_movies(profile.user_id),
    )


def record_events(
    people: PeopleStore, rec: Recommender, caller: Caller, body: ps.EventsRequest, settings: Settings
) -> ps.EventsAccepted:
    """Validate (movies in the live run), spend the write budget, append; a retried key is a duplicate."""
    ids = list(dict.fromkeys(e.movie_id for e in body.events))
    known = rec.movies.get_movies(rec.run_id, ids)
    unknown = [m for m in ids if m not in known]
    if unknown:
        raise UnknownMovies(unknown)
    profile = profile_of(people, caller)
    wait = people.spend_write_budget(profile.user_id, len(body.events), settings.events_per_minute)
    if wait > 0:
        raise TooManyRequests(
            f"More than {settings.events_per_minute} events in a minute; retry in {wait:.0f} s.", wait
        )
    try:
        written = people.append_events(
            profile.user_id,
            [NewEvent(e.movie_id, e.type, e.rating, e.timestamp, e.idempotency_key) for e in body.events],
        )
    except KeyConflict as exc:
        raise KeyReused(exc.key) from exc
    return ps.EventsAccepted(user_id=profile.user_id, accepted=written, duplicates=len(body.events) - written)


def events_page(people: PeopleStore, caller: Caller, limit: int, before: int | None) -> ps.EventPage:
    profile = session(people, caller)
    if profile is None:
        return ps.EventPage(user_id=None, items=[], next_before=None)
    rows = people.events_page(profile.user_id, limit, before)
    items = [
        ps.EventOut(
            seq=r.seq,
            movie_id=r.movie_id,
            type=r.type,
            rating=r.rating,
            timestamp=r.client_ts,
            received_at=r.received_at,
            idempotency_key=r.idempotency_key,
        )
        for r in rows
    ]
    return ps.EventPage(user_id=profile.user_id, items=items, next_before=rows[-1].seq if len(rows) == limit else None)


def forget(people: PeopleStore, caller: Caller) -> None:
    """Forget me: recorded (so no run folder or export brings the person back), data deleted, and every token
    of the person issued until now refused."""
    profile = session(people, caller)
    if profile is not None:
        people.forget_person(profile.user_id, caller.subject)
    else:
        people.revoke_tokens(caller.subject, time.time())


def sign_out(people: PeopleStore, caller: Caller) -> None:
    """Server-side sign-out: every token of the person issued until now is refused from here on."""
    people.revoke_tokens(caller.subject, time.time())


def unknown_user(user_id: int, run_id: str) -> NotFound:
    """The 404 of an id with no history (Recommender.for_user's words), also for ids kept private."""
    return NotFound(f"user {user_id} has no history in the live model (run {run_id}).")


def recommend_for_user(
    people: PeopleStore,
    rec: Recommender,
    caller: Caller | None,
    user_id: int,
    k: int,
    diversity: float | None,
    settings: Settings,
) -> schemas.Recommendations:
    """GET /users/{id}/recommendations: stored history + the person's newer events (when it is a person)."""
    if user_id >= NEW_USER_BASE:  # a person's id: only its owner gets an answer, anyone else a plain 404
        mine = session(people, caller) if caller is not None else None
        if mine is None or mine.user_id != user_id:
            raise unknown_user(user_id, rec.run_id)
        return _with_events(people, rec, mine, k, diversity, settings)
    profile = people.profile_by_user(user_id)
    if profile is None:
        return rec.for_user(user_id, k, diversity)
    if caller is None or caller.subject != profile.subject or session(people, caller) is None:
        raise Forbidden(f"User {user_id} belongs to a signed-in person; only they can read its recommendations.")
    return _with_events(people, rec, profile, k, diversity, settings)


def recommend_for_me(
    people: PeopleStore, rec: Recommender, caller: Caller, k: int, diversity: float | None, settings: Settings
) -> schemas.Recommendations:
    profile = session(people, caller)
    if profile is None:
        return schemas.Recommendations(run_id=rec.run_id, items=[])
    return _with_events(people, rec, profile, k, diversity, settings)


def _with_events(
    people: PeopleStore, rec: Recommender, profile: Profile, k: int, diversity: float | None, settings: Settings
) -> schemas.Recommendations:
    events = people.recent_actions(profile.user_id, settings.events_realtime_max)
    return rec.for_user(profile.user_id, k, diversity, events, known=True)


def check_dev_mode(settings: Settings) -> None:
    if settings.auth_mode != "dev":
        raise NotFound("Development sign-in is off here (GRAPHREC_AUTH_MODE is not 'dev'); sign in with Cognito.")

