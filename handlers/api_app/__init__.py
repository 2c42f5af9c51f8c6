"""The recommendation API as a FastAPI app; `handlers/api.py` wraps it for Lambda with Mangum.

Middleware order (outermost first): RequestIdMiddleware (id + access log) -> CORS -> CatchAllMiddleware
(no 500s) -> FastAPI's own exception handling -> routes.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from handlers.api_app.errors import register_error_handlers
from handlers.api_app.middleware import CatchAllMiddleware, RequestIdMiddleware
from handlers.api_app.routes import ALL
from shared.settings import Settings, get_settings

DESCRIPTION = """Movie recommendations from a PinSage model (graph neural network over who-rated-what).

Every answer names the `run_id` of the live model. Errors are JSON `{"detail": ..., "request_id": ...}`:
404 unknown movie/user, 422 invalid input (unknown liked ids are listed in `unknown_movie_ids`),
503 when no model is live yet or a store is unreachable (retry after a few seconds)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="graphrec", version="1.0.0", description=DESCRIPTION, redoc_url=None)
    register_error_handlers(app)
    for router in ALL:
        app.include_router(router)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origin_list,
        allow_methods=["GET", "POST"],
        allow_headers=["content-type"],
        expose_headers=["x-request-id"],
        max_age=600,
    )
    app.add_middleware(RequestIdMiddleware)
    return app
