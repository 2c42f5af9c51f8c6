"""Documented error responses (so /docs and schemathesis know every status an endpoint can answer)."""

from typing import Any

from shared.schemas import ErrorBody

_E: dict[str, Any] = {"model": ErrorBody}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {**_E, "description": "Unknown movie or user"}}
INVALID: dict[int | str, dict[str, Any]] = {422: {**_E, "description": "Invalid input (the message says what)"}}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {**_E, "description": "No live model yet, or a store is unreachable (retry later)"}
}
STANDARD = {**INVALID, **UNAVAILABLE}
PEOPLE: dict[int | str, dict[str, Any]] = {
    401: {**_E, "description": "Not signed in, or the sign-in token is invalid, expired or ended (signed out, forgotten)"},
    403: {**_E, "description": "Another person's data"},
    409: {**_E, "description": "The user id is already claimed, or an idempotency key was used for another event"},
    429: {**_E, "description": "Too many events this minute (see Retry-After)"},
}
