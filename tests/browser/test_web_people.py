"""Signed-in people on the demo page, in real headless Chromium over the real app (uvicorn, MariaDB, Milvus).

The app runs with development sign-in (GRAPHREC_AUTH_MODE=dev). A person signs in, likes three movies, reloads: the
likes and the recommendations are still there, and the recommendations are exactly what
GET /users/me/recommendations answers for the same token. Unliking one changes the list, and it stays gone
after another reload. The detail view shows a placeholder poster when nothing is known about the movie, a
"Similar movies" row, and a like button; it opens with focus inside and returns focus when closed with Esc.
Signing out returns to anonymous likes; "Forget me" deletes the person's likes. Another test feeds the detail
view a poster and facts (the API answer is rewritten in the browser) and a broken poster URL.

Screenshots: GRAPHREC_SCREENSHOT_DIR (default /tmp) / graphrec_sign_in.png, graphrec_signed_in.png,
graphrec_detail.png, graphrec_detail_poster.png.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from shared.config.settings import clear_settings_cache
from tests.browser.conftest import open_page
from tests.helpers.live import LiveRun

pytestmark = pytest.mark.browser

SHOTS = Path(os.environ.get("GRAPHREC_SCREENSHOT_DIR", "/tmp"))
# a 2x3 PNG (one colour), the "poster" served by a routed URL
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAADCAIAAAA2iEnWAAAAFklEQVR4nGNkYPjPwMDAxMDAwMDAAAAnWAIDl5xJ5wAAAABJRU5ErkJggg=="
)


class Browser:
    """One Chromium tab on the app, plus plain HTTP calls to the same server (to compare with the page)."""

    def __init__(self, tab: Any, url: str) -> None:
        self.tab = tab
        self.url = url

    def token(self) -> str | None:
        raw = self.tab.evaluate("sessionStorage.getItem('graphrec.auth')")
        return json.loads(raw)["token"] if raw else None

    def get(self, path: str, token: str | None = None) -> Any:
        req = urllib.request.Request(
            self.url + path, headers={"authorization": f"Bearer {token}"} if token else {}
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def post(self, path: str, body: Any) -> Any:
        req = urllib.request.Request(
            self.url + path,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            return json.loads(res.read())

    def ids(self, selector: str) -> list[int]:
        return [
            int(x) for x in self.tab.eval_on_selector_all(selector, "els => els.map(e => e.dataset.movieId)")
        ]

    def sign_in(self, name: str, shot: Path | None = None) -> None:
        from playwright.sync_api import expect

        tab = self.tab
        tab.click("#signin-open")
        expect(tab.locator("#signin-form")).to_be_visible()
        expect(tab.locator("#signin-name")).to_be_focused()
        tab.fill("#signin-name", name)
        if shot:
            tab.screenshot(path=str(shot))
            print(f"sign-in form: {shot}")
        tab.click("#signin-form button[type=submit]")
        expect(tab.get_by_test_id("who-name")).to_have_text(name)
        expect(tab.locator("#signin-open")).to_be_hidden()


@pytest.fixture
def browser(live: LiveRun, monkeypatch: pytest.MonkeyPatch) -> Iterator[Browser]:
    monkeypatch.setenv("GRAPHREC_AUTH_MODE", "dev")
    monkeypatch.setenv("GRAPHREC_DEV_AUTH_SECRET", "browser-" + uuid.uuid4().hex)
    clear_settings_cache()
    with open_page() as (tab, url):
        yield Browser(tab, url)


def _wait_recs_change(tab: Any, before: list[int]) -> None:
    tab.wait_for_function(
        "before => JSON.stringify([...document.querySelectorAll('#recs li')].map(e => +e.dataset.movieId)) !== before",
        arg=json.dumps(before).replace(" ", ""),
    )


def test_sign_in_like_reload_unlike_detail_and_sign_out(browser: Browser, live: LiveRun) -> None:
    from playwright.sync_api import expect

    tab = browser.tab
    name = "ada-" + uuid.uuid4().hex[:6]
    expect(tab.locator(".card")).to_have_count(24)
    browser.sign_in(name, shot=SHOTS / "graphrec_sign_in.png")
    token = browser.token()
    assert token and token.startswith("dev.")
    me = browser.get("/users/me", token)
    assert me["liked"] == [] and me["name"] == name
    expect(tab.get_by_test_id("who-id")).to_have_text(str(me["user_id"]))
    expect(tab.locator("#recs-status")).to_have_text("Like a movie to get recommendations.")

    # like three movies: each click is an event; the list and the recommendations come from the server
    liked = browser.ids(".card")[:3]
    for movie_id in liked:
        tab.click(f'.card[data-movie-id="{movie_id}"]')
    expect(tab.locator(".card.liked")).to_have_count(3)
    expect(tab.locator("#liked-count")).to_have_text("3")
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 3 liked"))
    expect(tab.locator("#recs li")).to_have_count(10)
    assert browser.get("/users/me", token)["liked"] == liked

    # reload: still signed in, same likes (in order), same recommendations as the API gives this token
    tab.reload()
    expect(tab.get_by_test_id("who-name")).to_have_text(name)
    expect(tab.locator("#liked-count")).to_have_text("3")
    assert browser.ids("#liked li") == liked
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 3 liked"))
    expect(tab.locator("#recs li")).to_have_count(10)
    api_recs = [r["movie_id"] for r in browser.get("/users/me/recommendations?k=10", token)["items"]]
    recs = browser.ids("#recs li")
    assert recs == api_recs and not set(recs) & set(liked)
    # exactly what the anonymous endpoint answers for the same likes (a new person has no stored history)
    assert recs == [
        r["movie_id"] for r in browser.post("/recommendations", {"liked": liked, "k": 10})["items"]
    ]
    for movie_id in liked:
        expect(tab.locator(f'#liked li[data-movie-id="{movie_id}"]')).to_contain_text(
            live.movies[movie_id]["title"]
        )
    shot = SHOTS / "graphrec_signed_in.png"
    tab.screenshot(path=str(shot), full_page=True)
    print(f"signed-in page: {shot}")

    # the genre filter, signed in: the best 10 of that genre among the person's top 100
    genre = live.movies[recs[0]]["genres"][0]
    with tab.expect_request(lambda r: "/users/me/recommendations?k=100" in r.url):
        tab.select_option("#genre", genre)
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 3 liked"))
    pool = browser.get("/users/me/recommendations?k=100", token)["items"]
    assert browser.ids("#recs li") == [r["movie_id"] for r in pool if genre in r["genres"]][:10]
    tab.select_option("#genre", "")
    expect(tab.locator("#recs li")).to_have_count(10)
    tab.wait_for_function(
        "want => JSON.stringify([...document.querySelectorAll('#recs li')].map(e => +e.dataset.movieId)) === want",
        arg=json.dumps(recs).replace(" ", ""),
    )

    # unlike one: an unlike event; the recommendations change and match the API again
    tab.click(f'#liked li[data-movie-id="{liked[0]}"] button.unlike')
    expect(tab.locator("#liked-count")).to_have_text("2")
    _wait_recs_change(tab, recs)
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 2 liked"))
    after = browser.ids("#recs li")
    assert after == [r["movie_id"] for r in browser.get("/users/me/recommendations?k=10", token)["items"]]
    assert liked[0] not in after  # unliked stays "seen": not recommended back
    tab.reload()
    expect(tab.get_by_test_id("who-name")).to_have_text(name)
    expect(tab.locator("#liked-count")).to_have_text("2")
    assert browser.ids("#liked li") == liked[1:]

    # the detail view of a grid movie: no details in this database, so the placeholder poster
    expect(tab.locator(".card")).to_have_count(24)
    card = tab.locator(".card").first
    movie_id = int(card.get_attribute("data-movie-id") or "")
    movie = live.movies[movie_id]
    info = card.locator("button.info")
    info.click()
    dialog = tab.get_by_test_id("detail")
    expect(dialog).to_be_visible()
    expect(dialog).to_have_attribute("aria-modal", "true")
    expect(tab.locator("#detail-close")).to_be_focused()
    expect(tab.locator("#detail-title")).to_have_text(movie["title"])
    if movie["year"]:
        expect(tab.locator("#detail-facts")).to_contain_text(str(movie["year"]))
    for genre in movie["genres"]:
        expect(tab.locator("#detail-genres .chip", has_text=genre)).to_have_count(1)
    placeholder = tab.locator("#detail-poster").get_by_test_id("poster-placeholder")
    expect(placeholder).to_be_visible()
    expect(placeholder).to_have_attribute("aria-label", f"No poster for {movie['title']}")
    expect(tab.locator("#detail-plot")).to_contain_text("No plot summary")
    similar = tab.locator("#similar li")
    expect(similar).to_have_count(10)
    api_similar = [r["movie_id"] for r in browser.get(f"/movies/{movie_id}/similar?k=10")["items"]]
    assert browser.ids("#similar li") == api_similar
    was_liked = movie_id in liked[1:]
    expect(tab.locator("#detail-like")).to_have_attribute("aria-pressed", str(was_liked).lower())
    tab.click("#detail-like")  # like (or unlike) from the detail view: the page follows
    expect(tab.locator("#detail-like")).to_have_attribute("aria-pressed", str(not was_liked).lower())
    expect(tab.locator("#liked-count")).to_have_text("1" if was_liked else "3")
    stored = re.compile(f"Based on {1 if was_liked else 3} liked")  # once the event is in
    expect(tab.locator("#recs-status")).to_have_text(stored)
    expect(card).to_have_class(re.compile(r"\bliked\b") if not was_liked else re.compile(r"^card$"))
    shot = SHOTS / "graphrec_detail.png"
    tab.screenshot(path=str(shot))
    print(f"detail view: {shot}")

    # a similar movie opens in the same dialog; Esc closes it and focus returns to the "i" button
    first_similar = api_similar[0]
    similar.first.locator("button").click()
    expect(tab.locator("#detail-title")).to_have_text(live.movies[first_similar]["title"])
    tab.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(info).to_be_focused()
    # a recommendation's title opens the detail view too; the close button closes it
    rec = tab.locator("#recs li").first
    rec.locator("button.title-link").click()
    expect(dialog).to_be_visible()
    expect(tab.locator("#detail-title")).to_have_text(
        live.movies[int(rec.get_attribute("data-movie-id") or "")]["title"]
    )
    tab.click("#detail-close")
    expect(dialog).to_be_hidden()

    # sign out: anonymous again (tab-only likes, POST /recommendations), and a reload stays signed out
    tab.click("#signout")
    expect(tab.locator("#signin-open")).to_be_visible()
    expect(tab.locator("#signed-in")).to_be_hidden()
    expect(tab.locator("#liked-count")).to_have_text("0")
    expect(tab.locator(".card.liked")).to_have_count(0)
    assert browser.token() is None
    with tab.expect_request(lambda r: r.url.endswith("/recommendations") and r.method == "POST"):
        tab.locator(".card").nth(1).click()
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 1 liked"))
    tab.reload()
    expect(tab.locator("#signin-open")).to_be_visible()
    expect(tab.locator("#liked-count")).to_have_text("0")
    # the server kept the person's likes
    assert len(browser.get("/users/me", token)["liked"]) == (1 if was_liked else 3)


def test_forget_me_empties_the_likes(browser: Browser, live: LiveRun) -> None:
    from playwright.sync_api import expect

    tab = browser.tab
    name = "grace-" + uuid.uuid4().hex[:6]
    expect(tab.locator(".card")).to_have_count(24)
    browser.sign_in(name)
    for movie_id in browser.ids(".card")[:2]:
        tab.click(f'.card[data-movie-id="{movie_id}"]')
    expect(tab.locator("#liked-count")).to_have_text("2")
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 2 liked"))

    # "Forget me" asks first: dismissing keeps everything
    tab.once("dialog", lambda d: d.dismiss())
    tab.click("#forget")
    expect(tab.locator("#liked-count")).to_have_text("2")
    expect(tab.get_by_test_id("who-name")).to_have_text(name)

    tab.once("dialog", lambda d: d.accept())
    tab.click("#forget")
    expect(tab.locator("#account-status")).to_contain_text("deleted")
    expect(tab.locator("#signin-open")).to_be_visible()
    expect(tab.locator("#liked-count")).to_have_text("0")
    expect(tab.locator("#liked li")).to_have_count(0)
    assert browser.token() is None

    # signing in again under the same name starts empty
    browser.sign_in(name)
    expect(tab.locator("#liked-count")).to_have_text("0")
    expect(tab.locator("#recs-status")).to_have_text("Like a movie to get recommendations.")
    assert browser.get("/users/me", browser.token())["liked"] == []


def _open_from_search(tab: Any, movie_id: int, title: str) -> None:
    tab.fill("#search", title)
    tab.click("#search-form button[type=submit]")
    tab.locator(f'.card[data-movie-id="{movie_id}"] button.info').click()


def test_detail_view_poster_and_facts(browser: Browser, live: LiveRun) -> None:
    """Details as the enrich job stores them (poster, plot, director, cast, runtime), and a poster that fails to
    load: the API's answer is rewritten in the browser, the rest is the real app."""
    from playwright.sync_api import expect

    tab = browser.tab
    ids = sorted(live.movies)
    with_poster, broken = ids[0], ids[1]
    plot = "A programmer learns the world is a simulation."
    details: dict[int, dict[str, Any]] = {
        with_poster: {
            "plot": plot,
            "director": "Lana Wachowski, Lilly Wachowski",
            "cast": ["Keanu Reeves", "Laurence Fishburne"],
            "runtime_minutes": 136,
            "poster_url": browser.url + "/test-poster.png",
            "source": "omdb",
        },
        broken: {
            "plot": None,
            "director": None,
            "cast": None,
            "runtime_minutes": 95,
            "poster_url": "http://127.0.0.1:9/missing.jpg",
            "source": "omdb",
        },
    }

    def with_details(route: Any) -> None:
        res = route.fetch()
        body = res.json()
        body["details"] = details[body["movie_id"]]
        route.fulfill(response=res, json=body)

    for movie_id in details:
        tab.route(f"**/movies/{movie_id}", with_details)
    tab.route("**/test-poster.png", lambda route: route.fulfill(body=PNG, content_type="image/png"))

    _open_from_search(tab, with_poster, live.movies[with_poster]["title"])
    img = tab.locator("#detail-poster img")
    expect(img).to_be_visible()
    title = live.movies[with_poster]["title"]
    expect(img).to_have_attribute("alt", re.compile(f"^Poster of {re.escape(title)}"))
    tab.wait_for_function("() => document.querySelector('#detail-poster img').naturalWidth > 0")
    expect(tab.locator("#detail-plot")).to_have_text(plot)
    expect(tab.locator("#detail-credits")).to_contain_text("Lana Wachowski, Lilly Wachowski")
    expect(tab.locator("#detail-credits")).to_contain_text("Keanu Reeves, Laurence Fishburne")
    expect(tab.locator("#detail-facts")).to_contain_text("2 h 16 min")
    expect(tab.locator("#similar li")).to_have_count(10)
    shot = SHOTS / "graphrec_detail_poster.png"
    tab.screenshot(path=str(shot))
    print(f"detail view with a poster: {shot}")

    # a poster URL that does not load falls back to the placeholder; unknown fields are left out
    tab.keyboard.press("Escape")
    _open_from_search(tab, broken, live.movies[broken]["title"])
    expect(tab.locator("#detail-title")).to_have_text(live.movies[broken]["title"])
    expect(tab.locator("#detail-poster").get_by_test_id("poster-placeholder")).to_be_visible()
    expect(tab.locator("#detail-facts")).to_contain_text("1 h 35 min")
    expect(tab.locator("#detail-plot")).to_contain_text("No plot summary")
    expect(tab.locator("#detail-credits dt")).to_have_text(["Source"])
    tab.keyboard.press("Escape")
    expect(tab.get_by_test_id("detail")).to_be_hidden()


def test_a_lost_event_is_retried_once_with_the_same_key(browser: Browser, live: LiveRun) -> None:
    """A like whose request fails on the network is sent once more, byte for byte (same idempotency key);
    when that fails too, the page takes the like back and says so."""
    from playwright.sync_api import expect

    tab = browser.tab
    expect(tab.locator(".card")).to_have_count(24)
    browser.sign_in("lin-" + uuid.uuid4().hex[:6])
    sent: list[str] = []

    def drop_first(route: Any) -> None:
        sent.append(route.request.post_data or "")
        if len(sent) == 1:
            route.abort("connectionreset")
        else:
            route.continue_()

    tab.route("**/events", drop_first)
    first, second = browser.ids(".card")[:2]
    tab.click(f'.card[data-movie-id="{first}"]')
    expect(tab.locator("#recs-status")).to_have_text(re.compile("Based on 1 liked"))
    assert len(sent) == 2 and sent[0] == sent[1]
    (event,) = json.loads(sent[0])["events"]
    assert event["movie_id"] == first and event["type"] == "like" and len(event["idempotency_key"]) >= 8
    assert browser.get("/users/me", browser.token())["liked"] == [first]

    tab.unroute("**/events")
    tab.route("**/events", lambda route: route.abort("connectionreset"))
    tab.click(f'.card[data-movie-id="{second}"]')
    expect(tab.locator("#account-status")).to_contain_text("Not saved")
    expect(tab.locator("#liked-count")).to_have_text("1")
    expect(tab.locator(f'.card[data-movie-id="{second}"]')).not_to_have_class(re.compile(r"\bliked\b"))
    assert browser.get("/users/me", browser.token())["liked"] == [first]


def test_a_stale_token_asks_to_sign_in_again(browser: Browser, live: LiveRun) -> None:
    """A token the server no longer accepts (e.g. it restarted with another key): 401, back to signed out."""
    from playwright.sync_api import expect

    tab = browser.tab
    expect(tab.locator("#signin-open")).to_be_visible()
    tab.evaluate(
        "sessionStorage.setItem('graphrec.auth', JSON.stringify({token: 'dev.e30.bad', mode: 'dev'}))"
    )
    tab.reload()
    expect(tab.locator("#account-status")).to_contain_text("sign in again")
    expect(tab.locator("#signin-form")).to_be_visible()
    expect(tab.locator("#signed-in")).to_be_hidden()
    assert browser.token() is None


def test_cognito_sign_in_round_trip(browser: Browser, live: LiveRun) -> None:
    """The hosted-UI path without a Cognito: /auth/config and the signed-in endpoints are answered in the
    browser; the page must send the person to the hosted UI with the right query, take the id token from
    the fragment it comes back with (checking `state`), send it as the bearer token, and log out there."""
    from playwright.sync_api import expect

    tab = browser.tab
    hosted = "https://graphrec-test.auth.eu-west-1.amazoncognito.com"
    seen: dict[str, Any] = {"auth": []}
    me = {"user_id": 1000000007, "name": "lin@example.com", "claimed": False, "liked": []}

    def fulfill_json(body: Any) -> Any:
        def handler(route: Any) -> None:
            seen["auth"].append(route.request.headers.get("authorization"))
            route.fulfill(json=body)

        return handler

    tab.route(
        "**/auth/config",
        lambda r: r.fulfill(json={"mode": "cognito", "hosted_ui_url": hosted, "client_id": "web-client"}),
    )
    tab.route("**/users/me", fulfill_json(me))
    tab.route("**/users/me/recommendations**", fulfill_json({"run_id": live.run.run_id, "items": []}))

    def hosted_ui(route: Any) -> None:
        seen.setdefault("hosted", []).append(route.request.url)
        route.fulfill(body="hosted UI", content_type="text/html")

    tab.route(hosted + "/**", hosted_ui)
    tab.reload()
    expect(tab.locator("#signin-open")).to_be_visible()
    expect(tab.locator("#signin-form")).to_be_hidden()

    with tab.expect_navigation(url=re.compile(re.escape(hosted) + "/oauth2/authorize")):
        tab.click("#signin-open")
    authorize = urlsplit(seen["hosted"][-1])
    q = parse_qs(authorize.query)
    assert q["response_type"] == ["token"] and q["client_id"] == ["web-client"]
    assert q["redirect_uri"] == [browser.url + "/"] and q["scope"] == ["openid email"]
    state = q["state"][0]

    # back from the hosted UI: the fragment carries the id token
    tab.goto(
        f"{browser.url}/#id_token=header.payload.sig&access_token=x&expires_in=3600&token_type=Bearer&state={state}"
    )
    expect(tab.get_by_test_id("who-name")).to_have_text("lin@example.com")
    expect(tab.get_by_test_id("who-id")).to_have_text("1000000007")
    assert tab.evaluate("location.hash") == ""
    assert browser.token() == "header.payload.sig"
    assert seen["auth"] and set(seen["auth"]) == {"Bearer header.payload.sig"}

    # signing out also ends the hosted UI's session
    tab.click("#signout")
    tab.wait_for_url(re.compile(re.escape(hosted) + "/logout"))
    logout = parse_qs(urlsplit(seen["hosted"][-1]).query)
    assert logout == {"client_id": ["web-client"], "logout_uri": [browser.url + "/"]}
    # a fragment whose state does not match the page's request is refused
    tab.goto(f"{browser.url}/#id_token=forged&expires_in=3600&state=not-ours")
    expect(tab.locator("#account-status")).to_contain_text("did not match")
    expect(tab.locator("#signin-open")).to_be_visible()
    assert browser.token() is None
