"""The page with a multi-interest run, in real headless Chromium: "because you liked ..." and the diversity slider.

Liking one movie of each of three genres (planted taste clusters) must give recommendations citing at
least two of the three likes, each line naming liked titles only; moving the slider re-asks the API with
`diversity` and changes the list. The run's recipe has several interests and a default diversity, which
the slider shows before it is touched.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.serving.recipe import Recipe
from tests.browser.test_web_page import page  # noqa: F401  (the Chromium page over the live run)
from tests.helpers.live import LiveRun, live_in_stores

pytestmark = pytest.mark.browser

RECIPE = Recipe(last_k=50, decay=0.9, interests=3, threshold=0.5, diversity=0.2)


@pytest.fixture(scope="module")
def _module_live(_module_stores: dict[str, str]) -> Iterator[LiveRun]:
    with live_in_stores(_module_stores, n_movies=200, n_users=20, dim=16, seed=3, recipe=RECIPE.to_dict()) as live:
        yield live


def _like_first_of(tab: Any, genre: str) -> int:
    from playwright.sync_api import expect

    tab.fill("#search", f"{genre} Story")
    tab.click("#search-form button[type=submit]")
    expect(tab.locator("#browse-status")).to_contain_text(f"\u201c{genre} Story\u201d")
    card = tab.locator(".card").first
    movie_id = int(card.get_attribute("data-movie-id"))
    card.click()
    return movie_id


def _cited(tab: Any) -> list[list[int]]:
    raw = tab.eval_on_selector_all("#recs li", "els => els.map(e => (e.querySelector('.because') || {dataset: {}}).dataset.because || '')")
    return [[int(x) for x in r.split(",") if x] for r in raw]


def test_three_genres_are_explained_and_diversity_reranks(page: Any, live: LiveRun) -> None:  # noqa: F811
    from playwright.sync_api import expect

    expect(page.locator("#diversity-value")).to_have_text("0.2")  # the run's default, from /health
    liked = [_like_first_of(page, g) for g in ("Action", "Horror", "Animation")]
    expect(page.locator("#liked-count")).to_have_text("3")
    expect(page.locator("#recs-status")).to_have_text(re.compile("Based on 3 liked"))
    recs = page.locator("#recs li")
    expect(recs).to_have_count(10)
    cited = _cited(page)
    assert all(c and set(c) <= set(liked) for c in cited)  # every line explains itself with liked movies only
    assert len({c[0] for c in cited}) >= 2  # at least two of the three tastes are served and named
    titles = {m: live.movies[m]["title"] for m in liked}
    first = recs.first.locator(".because")
    expect(first).to_contain_text("because you liked")
    expect(first).to_contain_text(titles[cited[0][0]])

    before = [int(x) for x in page.eval_on_selector_all("#recs li", "els => els.map(e => e.dataset.movieId)")]
    with page.expect_request(lambda r: r.url.endswith("/recommendations") and '"diversity":1' in (r.post_data or "")):
        page.eval_on_selector("#diversity", "el => { el.value = '1'; el.dispatchEvent(new Event('change')); }")
    expect(page.locator("#diversity-value")).to_have_text("1.0")
    page.wait_for_function(
        "before => JSON.stringify([...document.querySelectorAll('#recs li')].map(e => +e.dataset.movieId)) !== before",
        arg=str(before).replace(" ", ""),
    )
    after = _cited(page)
    assert len(after) == 10 and all(c and set(c) <= set(liked) for c in after)
