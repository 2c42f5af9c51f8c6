"""Blocking store work off the event loop, inside the request's deadline.

Why: pymysql and pymilvus block. Run on the event loop, one call waiting on a hung MySQL froze every other
request in the process, even `/` and the static files (issue 10). Every route therefore does its store
work through `run_blocking`, which runs it in a worker thread and waits at most until the request's
deadline (`GRAPHREC_API_REQUEST_TIMEOUT`, set by RequestIdMiddleware). A thread that is still blocked then is
abandoned - its store call ends by itself within the store's own timeout (GRAPHREC_MYSQL_READ_TIMEOUT,
GRAPHREC_MILVUS_TIMEOUT) - and the caller gets a JSON 503 with Retry-After straight away.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from handlers.api_app.context import current_deadline
from handlers.api_app.errors import Unavailable
from shared.config.log import get_logger
from shared.config.settings import get_settings

logger = get_logger(__name__)
T = TypeVar("T")


def _ensure_threads() -> None:
    """Size the event loop's worker pool (anyio's default is 40): requests that wait on a hung store must
    not take every thread from requests that need none (the in-memory index answers without I/O)."""
    limiter = anyio.to_thread.current_default_thread_limiter()
    wanted = get_settings().api_store_threads
    if limiter.total_tokens < wanted:
        limiter.total_tokens = wanted


async def run_blocking(fn: Callable[..., T], *args: Any, inline: bool = False, **kwargs: Any) -> T:
    """fn(*args, **kwargs) in a worker thread; Unavailable (503) when the request's deadline passes first.

    inline=True runs it on the event loop instead: only for work proven to need no I/O (see
    deps.answerable_from_memory), where the thread hop would cost more than the work."""
    if inline:
        return fn(*args, **kwargs)
    deadline = current_deadline()
    budget = get_settings().api_request_timeout
    remaining = budget if deadline is None else deadline - time.monotonic()
    if remaining <= 0:
        raise Unavailable(f"The request ran out of time ({budget:g} s); retry in a few seconds.")
    _ensure_threads()
    with anyio.move_on_after(remaining):
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), abandon_on_cancel=True)
    logger.warning("request deadline exceeded; store call abandoned", extra={"budget_s": budget})
    raise Unavailable(
        f"A data store did not answer within the request deadline ({budget:g} s); retry in a few seconds."
    )
