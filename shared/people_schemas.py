"""Request/response models of sign-in and interaction events (issue 13), strict like shared/schemas.py.

Why an idempotency key per event rather than per batch: a client retrying after a timeout may resend a
batch with more events appended; per-event keys make every event land exactly once whatever the batching.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.schemas import INT64_MAX, MovieId
from shared.serving.event_fold import EventType

MAX_EVENTS_PER_BATCH = 100
CLOCK_SKEW = timedelta(days=1)  # client timestamps further in the future are refused
EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)  # before any MovieLens rating: earlier client times are refused
# The one timestamp format: RFC 3339 with a zone (Z or +hh:mm), optional fraction. Numbers are refused (a
# number's unit, seconds or milliseconds, would be a guess).
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$")
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=8,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Unique per event (a UUID is ideal): an event whose key was seen before is not stored again.",
    ),
]
STRICT = ConfigDict(strict=True, extra="forbid")


class EventIn(BaseModel):
    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={
            "examples": [{"movie_id": 2571, "type": "like", "idempotency_key": "4f7d2c1e-like-2571"}]
        },
    )

    movie_id: MovieId
    type: Annotated[EventType, Field(strict=False, description="like, unlike, watched or rated.")]
    rating: float | None = Field(
        default=None, ge=0.5, le=5.0, description="Only with type 'rated': 0.5-5 in steps of 0.5."
    )
    timestamp: Annotated[datetime | None, Field(strict=False)] = Field(
        default=None,
        description="When it happened on the client: RFC 3339 with a zone (2026-11-23T17:00:00Z or "
        "...+01:00), from 1995-01-01 to a day ahead; numbers are refused. Kept for the record: the order of a "
        "person's events (serving and training) is the order the server received them.",
    )
    idempotency_key: IdempotencyKey

    @field_validator("rating")
    @classmethod
    def _half_steps(cls, v: float | None) -> float | None:
        if v is not None and round(v * 2) != v * 2:
            raise ValueError("rating must be a multiple of 0.5")
        return v

    @field_validator("timestamp", mode="before")
    @classmethod
    def _rfc3339_only(cls, v: object) -> object:
        if v is None:
            return v
        if not isinstance(v, str):
            raise ValueError("timestamp must be an RFC 3339 string with a zone, e.g. 2026-11-23T17:00:00Z (numbers are refused)")
        if not RFC3339.match(v):
            if re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$", v):
                raise ValueError("timestamp needs a time zone, e.g. 2026-11-23T17:00:00Z")
            raise ValueError("timestamp must be RFC 3339 with a zone, e.g. 2026-11-23T17:00:00Z or 2026-11-23T18:00:00+01:00")
        return v

    @field_validator("timestamp")
    @classmethod
    def _in_range(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return v
        if v.tzinfo is None:
            raise ValueError("timestamp needs a time zone, e.g. 2026-11-23T17:00:00Z")
        # the year first: converting year 1 or 9999 with an offset to UTC overflows
        if v.year < EARLIEST.year or v < EARLIEST:
            raise ValueError("timestamp is before 1995-01-01")
        if v.year > 9000 or v > datetime.now(UTC) + CLOCK_SKEW:
            raise ValueError("timestamp is more than a day in the future")
        return v

    @model_validator(mode="after")
    def _rating_iff_rated(self) -> EventIn:
        if self.type == EventType.RATED and self.rating is None:
            raise ValueError("rating is required when type is 'rated'")
        if self.type != EventType.RATED and self.rating is not None:
            raise ValueError(f"rating is only allowed when type is 'rated', not '{self.type.value}'")
        return self


class EventsRequest(BaseModel):
    model_config = STRICT

    events: list[EventIn] = Field(min_length=1, max_length=MAX_EVENTS_PER_BATCH, description="1-100 events, oldest first.")


class EventsAccepted(BaseModel):
    user_id: int
    accepted: int = Field(description="Events stored now.")
    duplicates: int = Field(description="Events whose idempotency key was already stored (not stored again).")


class EventOut(BaseModel):
    seq: int = Field(description="Server order of arrival; pass as `before` to page back.")
    movie_id: int
    type: EventType
    rating: float | None
    timestamp: datetime | None = Field(description="The client's timestamp, when it sent one.")
    received_at: datetime
    idempotency_key: str


class EventPage(BaseModel):
    user_id: int | None = Field(description="null before the person's first event (no profile yet).")
    items: list[EventOut]
    next_before: int | None = Field(description="Pass as ?before= for older events; null at the end.")


class Me(BaseModel):
    user_id: int | None = Field(
        description="null until the person's first event: a profile (and id) is created by sign-in or a write, never by a read."
    )
    name: str | None
    claimed: bool = Field(description="True when this person took over a MovieLens user (local demo only).")
    liked: list[int] = Field(description="Movies whose latest like/unlike is a like, most recent last.")


class DevSignIn(BaseModel):
    model_config = STRICT

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9 _.@-]+$", description="Who you are.")
    claim_user_id: int | None = Field(
        default=None, ge=0, le=INT64_MAX, description="Take over this MovieLens user (its history shows)."
    )

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        """Spaces collapsed and trimmed ("  ada  lovelace " -> "ada lovelace"); a name of spaces is no name."""
        cleaned = " ".join(v.split())
        if not cleaned:
            raise ValueError("name must contain a letter or digit, not only spaces")
        return cleaned


class DevToken(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    user_id: int
    name: str


class AuthConfig(BaseModel):
    mode: Literal["cognito", "dev"]
    hosted_ui_url: str | None = None
    client_id: str | None = None
