"""Browser tests reuse the API tests' module-scoped live run (real MariaDB + Milvus), with Milvus as a
network server, the topology of the demo (scripts/demo.sh) and of AWS. `open_page` is the one way they start
the app and a Chromium tab on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from handlers.api_app import create_app, deps
from tests.helpers.live import uvicorn_in_thread
from tests.integration.api.conftest import _module_live, _module_stores, live  # noqa: F401

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def milvus_backend() -> str:
    return "server"


@contextmanager
def open_page() -> Iterator[tuple[Any, str]]:
    """uvicorn serving the app (with the current settings) + a 1280x900 Chromium tab on its page; yields
    (tab, base URL). Fails (never skips) without Chromium; fails the test on any JavaScript error."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: run `apt-get install -y chromium`"
    deps.reset_caches()
    with uvicorn_in_thread(create_app()) as url, sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            tab = chromium.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            tab.goto(url + "/")
            yield tab, url
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            chromium.close()
    deps.reset_caches()
