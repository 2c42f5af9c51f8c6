"""The demo page end to end in real headless Chromium (Debian's /usr/bin/chromium via Playwright).

uvicorn serves the real app on 127.0.0.1 over a live run; the test likes three movies and checks the
recommendations that appear exclude them and that the page names the live run. It fails (never skips) when
Chromium is missing: scripts install it with `apt-get install -y chromium`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import open_page
from tests.helpers.live import LiveRun

SCREENSHOT = Path(os.environ.get("GRAPHREC_SCREENSHOT", "/tmp/graphrec_page.png"))

pytestmark = pytest.mark.browser


@pytest.fixture
def page(live: LiveRun) -> Iterator[Any]:
    with open_page() as (tab, _):
        yield tab


def _ids(page: Any, selector: str) -> list[int]:
    return [int(x) for x in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.movieId)")]


def test_like_three_movies_and_get_recommendations(page: Any, live: LiveRun) -> None:
    from playwright.sync_api import expect

    expect(page.get_by_test_id("run-id")).to_have_text(live.run.run_id)
    cards = page.locator(".card")
    expect(cards).to_have_count(24)

    liked = _ids(page, ".card")[:3]
    for movie_id in liked:
        page.click(f'.card[data-movie-id="{movie_id}"]')
    expect(page.locator(".card.liked")).to_have_count(3)
    expect(page.locator("#liked li")).to_have_count(3)
    expect(page.locator("#liked-count")).to_have_text("3")

    recs = page.locator("#recs li")
    expect(recs).to_have_count(10)
    expect(page.locator("#recs-status")).to_have_text(re.compile("Based on 3 liked"))
    rec_ids = _ids(page, "#recs li")
    assert not set(rec_ids) & set(liked)
    assert set(rec_ids) <= set(live.movies)
    scores = [float(s) for s in page.locator("#recs .score").all_inner_texts()]
    assert scores == sorted(scores, reverse=True)
    first = live.movies[rec_ids[0]]
    expect(recs.first).to_contain_text(first["title"])
    for genre in first["genres"]:
        expect(recs.first.locator(".chip", has_text=genre)).to_have_count(1)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # unliking one updates the list again (and it may now contain the unliked movie's neighbours)
    page.click(f'#liked li[data-movie-id="{liked[0]}"] button.unlike')
    expect(page.locator("#liked-count")).to_have_text("2")
    expect(page.locator("#recs-status")).to_have_text(re.compile("Based on 2 liked"))
    assert not set(_ids(page, "#recs li")) & set(liked[1:])


def test_search_and_genre_filter(page: Any, live: LiveRun) -> None:
    from playwright.sync_api import expect

    page.fill("#search", "movie 19")
    page.click("#search-form button[type=submit]")
    expect(page.locator(".card")).to_have_count(11)  # 19 and 190..199
    expect(page.locator("#browse-status")).to_contain_text("11 title(s)")
    page.click('.card[data-movie-id="190"]')
    expect(page.locator("#recs li")).to_have_count(10)
    page.select_option("#genre", "Horror")
    expect(page.locator("#recs-status")).to_have_text(re.compile("Based on 1 liked"))
    for chips in page.locator("#recs li .chips").all_inner_texts():
        assert "Horror" in chips
