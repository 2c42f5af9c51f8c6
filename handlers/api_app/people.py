"""Signed-in people: profiles, events, real-time recommendations, forget-me (blocking; run in worker threads).

Privacy rule: a user id that belongs to a person (has a profile) is readable only by that person - someone
else asking for its recommendations gets a 403; MovieLens users nobody signed in as stay public (the
offline evaluation asks for them). Events are validated against the live run's catalogue before anything
is written, and the write budget is spent first, so a refused batch writes no event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from handlers.api_app.errors import ApiError, NotFound, UnknownMovies
from handlers.api_app.identity import Caller
from handlers.api_app.recommender import Recommender
from shared import people_schemas as ps
from shared import schemas
from shared.config.settings import Settings
from shared.serving.event_fold import Event, liked
from shared.stores.mysql.people import NewEvent, Profile, StoredEvent


class Forbidden(ApiError):
    status_code = 403


class Conflict(ApiError):
    status_code = 409


class TooManyRequests(ApiError):
    status_code = 429

    def __init__(self, detail: str, retry_after: float) -> None:
        super().__init__(detail, retry_after_seconds=int(retry_after + 0.999))


class PeopleStore(Protocol):
    """What this module needs from MySQL (shared.stores.mysql.people.PeopleMixin on MetadataStore)."""

    def profile_by_subject(self, subject: str) -> Profile | None: ...
    def profile_by_user(self, user_id: int) -> Profile | None: ...
    def get_or_create_profile(self, subject: str, display_name: str | None) -> Profile: ...
    def claim_profile(self, subject: str, display_name: str | None, user_id: int) -> Profile: ...
    def append_events(self, user_id: int, events: Sequence[NewEvent]) -> int: ...
    def recent_actions(self, user_id: int, limit: int) -> list[Event]: ...
    def like_actions(self, user_id: int) -> list[Event]: ...
    def events_page(self, user_id: int, limit: int, before: int | None) -> list[StoredEvent]: ...
    def spend_write_budget(self, user_id: int, n: int, per_minute: int) -> float: ...
    def forget_person(self, user_id: int) -> dict[str, int]: ...
    def user_history(self, run_id: str, user_id: int) -> list[int] | None: ...


def profile_of(people: PeopleStore, caller: Caller) -> Profile:
    return people.get_or_create_profile(caller.subject, caller.name)


def dev_sign_in(people: PeopleStore, caller: Caller, claim: int | None, run_id: str | None) -> Profile:
    """Development sign-in: the person's profile, optionally taking over a MovieLens user of the live run."""
    if claim is None:
        return profile_of(people, caller)
    if run_id is None or not people.user_history(run_id, claim):
        raise NotFound(f"user {claim} has no history in the live model; claim a user that has one.")
    try:
        return people.claim_profile(caller.subject, caller.name, claim)
    except ValueError as exc:
        raise Conflict(f"Cannot claim user {claim}: {exc}.") from exc


def me(people: PeopleStore, caller: Caller) -> ps.Me:
    profile = profile_of(people, caller)
    return ps.Me(
        user_id=profile.user_id,
        name=profile.display_name,
        claimed=profile.claimed,
        liked=liked(people.like_actions(profile.user_id)),
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
    first: dict[str, ps.EventIn] = {}
    for e in body.events:  # a key repeated inside the batch: the first event wins, in its place
        first.setdefault(e.idempotency_key, e)
    unique = list(first.values())
    written = people.append_events(
        profile.user_id,
        [NewEvent(e.movie_id, e.type, e.rating, e.timestamp, e.idempotency_key) for e in unique],
    )
    return ps.EventsAccepted(user_id=profile.user_id, accepted=written, duplicates=len(body.events) - written)


def events_page(people: PeopleStore, caller: Caller, limit: int, before: int | None) -> ps.EventPage:
    profile = profile_of(people, caller)
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
    profile = people.profile_by_subject(caller.subject)
    if profile is not None:
        people.forget_person(profile.user_id)


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
    profile = people.profile_by_user(user_id)
    if profile is None:
        return rec.for_user(user_id, k, diversity)
    if caller is None or caller.subject != profile.subject:
        raise Forbidden(f"User {user_id} belongs to a signed-in person; only they can read its recommendations.")
    return _with_events(people, rec, profile, k, diversity, settings)


def recommend_for_me(
    people: PeopleStore, rec: Recommender, caller: Caller, k: int, diversity: float | None, settings: Settings
) -> schemas.Recommendations:
    return _with_events(people, rec, profile_of(people, caller), k, diversity, settings)


def _with_events(
    people: PeopleStore, rec: Recommender, profile: Profile, k: int, diversity: float | None, settings: Settings
) -> schemas.Recommendations:
    events = people.recent_actions(profile.user_id, settings.events_realtime_max)
    return rec.for_user(profile.user_id, k, diversity, events, known=True)


def check_dev_mode(settings: Settings) -> None:
    if settings.auth_mode != "dev":
        raise NotFound("Development sign-in is off here (GRAPHREC_AUTH_MODE is not 'dev'); sign in with Cognito.")

