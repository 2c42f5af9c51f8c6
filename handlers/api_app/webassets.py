"""Serves the files in handlers/web/ from memory (read once per container; a fixed allow-list, no path input)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi.responses import Response

from handlers.api_app.errors import NotFound

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@lru_cache(maxsize=len(TYPES))
def _read(name: str) -> bytes:
    return (WEB_DIR / name).read_bytes()


def asset(name: str) -> Response:
    if name not in TYPES:
        raise NotFound(f"no such page asset: {name[:60]}")
    return Response(_read(name), media_type=TYPES[name], headers={"cache-control": "public, max-age=300"})
