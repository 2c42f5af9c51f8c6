"""Pure-ASGI middleware: request ids, deadline + access log (outermost), HEAD, CORS with JSON refusals,
and the catch-all error guard (innermost). The body-size limit is SecurityHeadersMiddleware's (JSON 413 with
or without a Content-Length).

Why pure ASGI rather than `@app.middleware("http")`: BaseHTTPMiddleware adds a task and a memory stream per
request, which shows in p50 latency on a 128-MB Lambda. Why a catch-all *middleware* and not an
`Exception` handler: Starlette's ServerErrorMiddleware re-raises after calling such a handler, so Mangum
would log it as a crash (and test clients raise). Catching here means the exception is logged once with the
request id and the caller gets a JSON 503 - never a 500, never a stack trace.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from handlers.api_app.context import (
    current_request_id,
    reset_deadline,
    reset_request_id,
    set_deadline,
    set_request_id,
)
from handlers.api_app.errors import RETRY_AFTER_SECONDS, error_response, is_store_unavailable
from shared.config.log import get_logger

logger = get_logger(__name__)

REQUEST_ID_HEADER = "x-request-id"


def _api_gateway_request_id(scope: Scope) -> str | None:
    """API Gateway's requestContext.requestId (Mangum puts the raw event in scope['aws.event'])."""
    event = scope.get("aws.event")
    if isinstance(event, dict):
        ctx = event.get("requestContext")
        if isinstance(ctx, dict) and isinstance(ctx.get("requestId"), str) and ctx["requestId"]:
            return str(ctx["requestId"])[:128]
    return None


class RequestIdMiddleware:
    """Assigns the request id, returns it as `x-request-id`, tags every log line with it, logs one access line.
    Also starts the request's deadline clock (`deadline_seconds`; run_blocking enforces it)."""

    def __init__(self, app: ASGIApp, deadline_seconds: float | None = None) -> None:
        self.app = app
        self.deadline_seconds = deadline_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _api_gateway_request_id(scope) or uuid.uuid4().hex
        token = set_request_id(request_id)
        started = time.perf_counter()
        deadline_token = set_deadline(
            None if self.deadline_seconds is None else time.monotonic() + self.deadline_seconds
        )
        status: dict[str, int] = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            with logger.append_context_keys(request_id=request_id, correlation_id=request_id):
                try:
                    await self.app(scope, receive, send_with_id)
                finally:
                    logger.info(
                        "request",
                        extra={
                            "method": scope.get("method"),
                            "path": scope.get("path"),
                            "status": status["code"],
                            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                        },
                    )
        finally:
            reset_deadline(deadline_token)
            reset_request_id(token)


class HeadAsGetMiddleware:
    """HEAD on any GET route: run it as GET and send the headers without the body (RFC 9110 9.3.2).
    FastAPI's routes list GET only, so HEAD was a 405; done here, the OpenAPI schema stays unchanged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_headers_only)


class JsonCORSMiddleware(CORSMiddleware):
    """Starlette's CORS handling, but a refused preflight gets the API's JSON error body, not plain text."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = bytes(response.body).decode(errors="replace")  # e.g. "Disallowed CORS origin"
        json_response = error_response(
            response.status_code,
            f"CORS preflight refused: {refused.removeprefix('Disallowed CORS ')} not allowed for this API.",
        )
        for key, value in response.headers.items():
            if key.lower() not in ("content-type", "content-length"):
                json_response.headers[key] = value
        return json_response


# The page loads only its own script and stylesheet (no inline code); posters may come from any https host.
PAGE_CSP = (
    "default-src 'self'; img-src 'self' https: data:; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
# /docs (not served inside Lambda): Swagger UI's assets from jsDelivr and its inline start-up script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' https: data:; frame-ancestors 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


class SecurityHeadersMiddleware:
    """Security headers on every answer (page and API), and the body limit for a *declared* length: a
    Content-Length over the limit (API Gateway always sends one) is the API's JSON 413 with the request
    id before anything is read. (FastAPI's own limiter answers that case in plain text; it still guards
    bodies sent without a length.)"""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = DOCS_CSP if str(scope.get("path", "")).startswith("/docs") else PAGE_CSP

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
                headers.setdefault("content-security-policy", csp)
            await send(message)

        declared = Headers(scope=scope).get("content-length")
        too_big = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        body = bytearray()
        more = scope.get("method") not in ("GET", "HEAD", "DELETE", "OPTIONS") and not too_big
        while more:  # read (at most limit + one message) before the app runs, then replay it
            message = await receive()
            if message["type"] != "http.request":
                more = False
                break
            body += message.get("body", b"")
            more = bool(message.get("more_body", False))
            too_big = len(body) > self.max_body_bytes
            if too_big:
                break
        if too_big:
            response = error_response(413, f"The request body is larger than {self.max_body_bytes} bytes; send fewer ids.")
            response.headers["connection"] = "close"
            await response(scope, receive, send_with_headers)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send_with_headers)


class CatchAllMiddleware:
    """Turns any unhandled exception into a logged JSON 503 (store trouble gets its own message)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # the whole point: nothing escapes as a 500
            store_down = is_store_unavailable(exc)
            logger.exception(
                "store unavailable" if store_down else "unhandled error",
                extra={"path": scope.get("path"), "error_type": type(exc).__name__},
            )
            if response_started:  # headers already sent: nothing more can be said to the client
                return
            detail = (
                "A data store is unreachable right now; retry in a few seconds."
                if store_down
                else "The service could not complete this request; retry, and quote the request id if it persists."
            )
            await _send_json(send, 503, {"detail": detail, "request_id": current_request_id()})


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"retry-after", RETRY_AFTER_SECONDS.encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
