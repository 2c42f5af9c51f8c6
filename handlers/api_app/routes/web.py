"""GET / (the single-page demo) and its two assets; kept out of the OpenAPI schema."""

from fastapi import APIRouter
from fastapi.responses import Response

from handlers.api_app.errors import NotFound
from handlers.api_app.webassets import asset

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index() -> Response:
    return asset("index.html")


@router.get("/web/{name}")
async def web_asset(name: str) -> Response:
    if name == "index.html":
        raise NotFound("not found")
    return asset(name)
