"""Domain errors -> HTTP answers a person can act on.

Mapping: unknown movie/user -> 404, bad or unknown input -> 422 naming the field or ids, no live run or a store
that cannot be reached -> 503 with Retry-After. Anything unexpected is handled by CatchAllMiddleware
(middleware.py), which also answers 503: the service never returns a 500 or a stack trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from handlers.api_app.context import current_request_id
from shared.errors import StoreUnavailable

RETRY_AFTER_SECONDS = "5"


class ApiError(Exception):
    """An error with a known HTTP status and a message meant for the caller."""

    status_code = 400

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(ApiError):
    status_code = 404


class InvalidInput(ApiError):
    status_code = 422


class UnknownMovies(InvalidInput):
    def __init__(self, unknown: list[int]) -> None:
        shown = ", ".join(str(m) for m in unknown[:20]) + (" ..." if len(unknown) > 20 else "")
        super().__init__(
            f"{len(unknown)} movie id(s) are not in the live model: {shown}. "
            "Use GET /movies?q=... to find valid ids.",
            unknown_movie_ids=unknown,
        )


class NoLiveRun(ApiError):
    status_code = 503

    def __init__(self) -> None:
        super().__init__(
            "No model is live yet: load a training run first (graphrec-load <run folder>), then retry."
        )


class Unavailable(ApiError):
    status_code = 503


def error_response(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail, "request_id": current_request_id()}
    body.update({k: v for k, v in extra.items() if v is not None})
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status_code == 503 else None
    if status_code == 429 and extra.get("retry_after_seconds"):
        headers = {"Retry-After": str(extra["retry_after_seconds"])}
    return JSONResponse(body, status_code=status_code, headers=headers)


def is_store_unavailable(exc: BaseException) -> bool:
    """True for the stores' StoreUnavailable (shared.errors imports nothing, so neither pymilvus nor pymysql)."""
    return isinstance(exc, StoreUnavailable)


def _readable(errors: list[Any]) -> tuple[str, list[dict[str, object]]]:
    """Pydantic errors -> one sentence + a compact list (no echoed input: it may be huge)."""
    parts: list[str] = []
    compact: list[dict[str, object]] = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        msg = str(err.get("msg", "invalid value"))
        if loc == ["body"] and err.get("type") == "missing":
            msg = 'a JSON body is required, e.g. {"liked": [1, 2355], "k": 10}'
        parts.append(f"{'.'.join(loc) or 'request'}: {msg}")
        compact.append({"loc": loc, "msg": msg, "type": str(err.get("type", ""))})
    return "Invalid request - " + "; ".join(parts[:10]), compact


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status_code, exc.detail, **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail, compact = _readable(list(exc.errors()))
    return error_response(422, detail, errors=compact)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code if exc.status_code < 500 else 503
    detail = exc.detail if isinstance(exc.detail, str) else "request failed"
    if status == 400:  # FastAPI's "error parsing the body" (e.g. not UTF-8): same class as invalid JSON
        status, detail = 422, "Invalid request - the body is not readable JSON (send UTF-8 JSON)."
    if status == 413:  # FastAPI's max_body_size (Starlette's limiter): say what the limit is
        limit = request.scope.get("starlette.max_body_size")
        detail = f"The request body is larger than {limit} bytes; send fewer ids." if limit else detail
    response = error_response(status, detail)
    for key, value in (exc.headers or {}).items():
        response.headers[key] = value
    if status == 405:  # Starlette names only the first route matching the path (GET /users/me, not DELETE)
        response.headers["allow"] = ", ".join(_methods_for(request))
    return response


def _methods_for(request: Request) -> list[str]:
    """Every method some route serves at this path (the Allow header of a 405)."""
    from starlette.routing import Match

    # Ask each route whether it fully matches the path with each method: FastAPI wraps included routers
    # (no `methods` attribute to read), but their `matches` answers per method.
    methods = {
        m
        for m in ("GET", "POST", "PUT", "PATCH", "DELETE")
        if any(route.matches({**request.scope, "method": m})[0] == Match.FULL for route in request.app.routes)
    }
    if "GET" in methods:
        methods.add("HEAD")  # HeadAsGetMiddleware serves HEAD on every GET route
    return sorted(methods)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
