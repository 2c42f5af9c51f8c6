"""Retry policy for transient store errors (StoreUnavailable), shared by every loader step."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.config.log import get_logger
from shared.config.settings import get_settings
from shared.errors import StoreUnavailable

logger = get_logger(__name__)
T = TypeVar("T")


@dataclass
class RetryPolicy:
    """Exponential backoff for transient store errors (StoreUnavailable): base, 2*base, 4*base ... <= cap."""

    attempts: int = 5
    base_seconds: float | None = None  # None: Settings.loader_retry_base_seconds (GRAPHREC_LOADER_RETRY_BASE_SECONDS)
    cap_seconds: float = 8.0

    def call(self, what: str, fn: Callable[[], T]) -> T:
        base = self.base_seconds if self.base_seconds is not None else get_settings().loader_retry_base_seconds
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StoreUnavailable as exc:
                if attempt == self.attempts:
                    raise
                delay = min(self.cap_seconds, base * 2 ** (attempt - 1))
                logger.warning(
                    "transient store error, retrying",
                    extra={"op": what, "attempt": attempt, "delay_s": delay, "error": str(exc)},
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


RETRY = RetryPolicy()
