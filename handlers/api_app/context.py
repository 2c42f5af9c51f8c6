"""Per-request values readable anywhere in the request (error bodies, log lines, store calls)."""

from __future__ import annotations

from contextvars import ContextVar

_request_id: ContextVar[str | None] = ContextVar("graphrec_request_id", default=None)
_deadline: ContextVar[float | None] = ContextVar("graphrec_deadline", default=None)


def current_request_id() -> str | None:
    return _request_id.get()


def set_request_id(value: str | None) -> object:
    return _request_id.set(value)


def reset_request_id(token: object) -> None:
    _request_id.reset(token)  # type: ignore[arg-type]


def current_deadline() -> float | None:
    """time.monotonic() by which the request must be answered (None outside a request)."""
    return _deadline.get()


def set_deadline(value: float | None) -> object:
    return _deadline.set(value)


def reset_deadline(token: object) -> None:
    _deadline.reset(token)  # type: ignore[arg-type]
