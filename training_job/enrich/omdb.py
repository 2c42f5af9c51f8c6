"""The OMDb client behind `python -m training_job enrich`: query titles, one look-up, response parsing.

OMDb (https://www.omdbapi.com/) answers `GET <base>?apikey=KEY&t=TITLE&y=YEAR&plot=short&r=json` with JSON:
`Response` "True"/"False", `Plot`, `Director`, `Actors` ("A, B, C"), `Runtime` ("142 min"), `Poster` (a URL)
and "N/A" for anything unknown; a miss is `{"Response": "False", "Error": "Movie not found!"}`, a bad key a
401 with `"Error": "Invalid API key!"`, the daily quota a 401 with `"Error": "Request limit reached!"`.

Only the title, the year and the key leave the machine. The key is part of the query string (OMDb has no
other way), so the request URL is never logged or put into an error message.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.stores.mysql.details import MovieDetails

SOURCE = "omdb"
NA = "N/A"
_TRAILING_PARENS = re.compile(r"(?:\s*\([^()]*\))+\s*$")  # "(a.k.a. ...)", a foreign title
_RUNTIME = re.compile(r"^\s*(\d{1,5})\s*min", re.IGNORECASE)
_RETRY_STATUSES = {429, 500, 502, 503, 504}  # worth another try after a pause


def query_title(title: str) -> str:
    """The title OMDb knows a MovieLens title by.

    'Matrix, The (1999)' -> 'The Matrix'; 'City of Lost Children, The (Cité des enfants perdus, La) (1995)'
    -> 'The City of Lost Children': the year and any parenthesised alternative title are dropped and a
    trailing article (', The', ', A', ', An', ', Les', ...) goes to the front. Already-normalised titles (as
    the loader stores them in MySQL: 'The Matrix') come back unchanged.
    """
    from training_job.data.movielens import (
        parse_title,  # the training data's own reading of the title (year, article)
    )

    main, _ = parse_title(title)
    stripped = _TRAILING_PARENS.sub("", main).strip()
    return " ".join((stripped or main).split())


def _value(body: dict[str, Any], key: str) -> str | None:
    raw = body.get(key)
    if not isinstance(raw, str):
        return None
    text = " ".join(raw.split())
    return None if not text or text.upper() == NA else text


def parse_runtime(raw: str | None) -> int | None:
    """'142 min' -> 142; 'N/A', '0 min' or anything else -> None."""
    m = _RUNTIME.match(raw or "")
    minutes = int(m.group(1)) if m else 0
    return minutes if 0 < minutes <= 32767 else None


def safe_poster_url(raw: str | None) -> str | None:
    """Only an absolute http(s) URL is kept (a page renders it as <img src>: no javascript:, data: ...)."""
    if not raw:
        return None
    parsed = urllib.parse.urlsplit(raw)
    if parsed.scheme.lower() not in ("http", "https") or not parsed.netloc or any(c in raw for c in "\"'<> \\"):
        return None
    return raw


def parse_response(movie_id: int, body: Any) -> MovieDetails | None:
    """An OMDb answer -> MovieDetails, or None when OMDb says it has no such movie."""
    if not isinstance(body, dict) or str(body.get("Response", "")).lower() != "true":
        return None
    actors = _value(body, "Actors")
    return MovieDetails(
        movie_id=int(movie_id),
        plot=_value(body, "Plot"),
        director=_value(body, "Director"),
        cast=[a.strip() for a in actors.split(",") if a.strip()] if actors else [],
        runtime_minutes=parse_runtime(_value(body, "Runtime")),
        poster_url=safe_poster_url(_value(body, "Poster")),
        source=SOURCE,
    )


class KeyRefused(Exception):
    """OMDb refused the key (invalid, or its daily quota is used up): no later request can succeed."""


class Unreachable(Exception):
    """No answer at all (DNS, refused connection, timeout): the network may be down."""


class Failed(Exception):
    """An answer that stayed an error after the retries (429/5xx, or not JSON)."""


@dataclass
class Lookup:
    """What one movie's look-up gave: details, or found=False for a clean 'not found'."""

    found: bool
    details: MovieDetails | None
    requests: int


@dataclass
class Client:
    """One OMDb endpoint + key; `lookup` is safe to call from several threads at once."""

    base_url: str
    api_key: str
    timeout: float = 10.0
    retries: int = 4  # further attempts after a 429/5xx/timeout, with exponential back-off
    backoff: float = 1.0  # first pause (s); doubled per attempt, with jitter; Retry-After wins when given
    max_pause: float = 30.0
    sleep: Callable[[float], None] = time.sleep

    def _url(self, title: str, year: int | None) -> str:
        params = {"apikey": self.api_key, "t": title, "type": "movie", "plot": "short", "r": "json"}
        if year is not None:
            params["y"] = str(year)
        sep = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{sep}{urllib.parse.urlencode(params)}"

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        pause = self.backoff * (2**attempt) * (0.75 + 0.5 * random.random())  # noqa: S311 - jitter, not crypto
        if retry_after and retry_after.strip().isdigit():
            pause = float(retry_after.strip())
        self.sleep(min(pause, self.max_pause))

    def get(self, title: str, year: int | None) -> tuple[Any, int]:
        """GET one title; returns (parsed JSON body, requests made). Retries 429/5xx/timeouts/resets."""
        request = urllib.request.Request(self._url(title, year), headers={"accept": "application/json"})
        last = ""
        for attempt in range(self.retries + 1):
            retry_after: str | None = None
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                    raw = resp.read()
                try:
                    body = json.loads(raw)
                except ValueError:
                    last = "an answer that is not JSON"
                else:
                    _check_key(body)
                    return body, attempt + 1
            except urllib.error.HTTPError as exc:
                body = _json_or_none(exc)
                error = str(body.get("Error", "")) if isinstance(body, dict) else ""
                if exc.code == 401:
                    raise KeyRefused(error or "HTTP 401") from None  # never chain: the URL holds the key
                _check_key(body)
                if exc.code not in _RETRY_STATUSES:
                    raise Failed(f"HTTP {exc.code} {error}".strip()) from None
                last, retry_after = f"HTTP {exc.code}", exc.headers.get("Retry-After")
            except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, resets, cut-off bodies
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
                if attempt == 0 and not _transient(reason):
                    raise Unreachable(last) from None  # refused/DNS: retrying will not help, and says "no network"
            if attempt < self.retries:
                self._pause(attempt, retry_after)
        if last.startswith("HTTP") or "JSON" in last:
            raise Failed(f"{last} after {self.retries + 1} attempts")
        raise Unreachable(f"{last} after {self.retries + 1} attempts")

    def lookup(self, movie_id: int, title: str, year: int | None) -> Lookup:
        """Title + year; when OMDb has no such movie, the title alone, accepted only within a year of ours
        (MovieLens and IMDb years differ by one for festival releases). Raises KeyRefused, Unreachable, Failed."""
        name = query_title(title)
        body, made = self.get(name, year)
        details = parse_response(movie_id, body)
        if details is None and year is not None:
            body, more = self.get(name, None)
            made += more
            found_year = _year(body)
            if found_year is not None and abs(found_year - year) <= 1:
                details = parse_response(movie_id, body)
        return Lookup(found=details is not None, details=details, requests=made)


def _check_key(body: Any) -> None:
    """OMDb's 'Invalid API key!' / 'Request limit reached!' (sent with 401, sometimes with 200)."""
    error = str(body.get("Error", "")) if isinstance(body, dict) else ""
    if "api key" in error.lower() or "limit reached" in error.lower():
        raise KeyRefused(error)


def _transient(reason: Any) -> bool:
    """A timeout or a reset connection may pass; a refused connection or an unknown host will not."""
    if isinstance(reason, (TimeoutError, ConnectionResetError, ConnectionAbortedError, http.client.HTTPException)):
        return True
    return "timed out" in str(reason).lower()


def _json_or_none(exc: urllib.error.HTTPError) -> Any:
    try:
        return json.loads(exc.read() or b"null")
    except (ValueError, OSError):
        return None


def _year(body: Any) -> int | None:
    if not isinstance(body, dict) or str(body.get("Response", "")).lower() != "true":
        return None
    m = re.match(r"^\s*(\d{4})", str(body.get("Year", "")))
    return int(m.group(1)) if m else None
