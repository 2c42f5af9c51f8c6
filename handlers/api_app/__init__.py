"""The recommendation API as a FastAPI app; `handlers/api.py` wraps it for Lambda with Mangum.

Middleware order (outermost first): RequestIdMiddleware (id, deadline clock, access log) -> HEAD as GET ->
security headers + body limit (JSON 413 before a huge body is read) -> CORS (JSON refusals) -> CatchAllMiddleware (no 500s) -> FastAPI's own exception handling and body limit
-> routes (store work in worker threads within the
request deadline: offload.py).
"""

from __future__ import annotations

from fastapi import FastAPI

from handlers.api_app.errors import register_error_handlers
from handlers.api_app.middleware import (
    CatchAllMiddleware,
    HeadAsGetMiddleware,
    JsonCORSMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from handlers.api_app.routes import ALL
from shared.config.settings import Settings, get_settings

DESCRIPTION = """Movie recommendations from a PinSage model (graph neural network over who-rated-what).

Every answer names the `run_id` of the live model. Errors are JSON `{"detail": ..., "request_id": ...}`:
404 unknown movie/user, 422 invalid input (unknown liked ids are listed in `unknown_movie_ids`),
503 when no model is live yet or a store is unreachable (retry after a few seconds)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="graphrec",
        version="1.0.0",
        description=DESCRIPTION,
        redoc_url=None,
        docs_url=None if settings.aws_lambda_function_name else "/docs",  # no CDN scripts in the deployed API
    )
    register_error_handlers(app)
    for router in ALL:
        app.include_router(router)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(
        JsonCORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["content-type", "authorization"],
        expose_headers=["x-request-id"],
        max_age=600,
    )
    app.add_middleware(SecurityHeadersMiddleware, max_body_bytes=settings.api_max_body_bytes)
    app.add_middleware(HeadAsGetMiddleware)
    app.add_middleware(RequestIdMiddleware, deadline_seconds=settings.api_request_timeout)
    return app
