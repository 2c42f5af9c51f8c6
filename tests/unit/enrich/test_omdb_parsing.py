"""The OMDb side of `enrich` without a network: which title is asked, how an answer becomes details."""

from __future__ import annotations

import socket

import pytest

from shared.stores.mysql.details import MovieDetails, details_from_row, details_row
from training_job.enrich.command import Target, cached_details, omdb


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Matrix, The (1999)", "The Matrix"),
        ("Christmas Carol, A (1938)", "A Christmas Carol"),
        ("American President, An (1995)", "An American President"),
        ("City of Lost Children, The (Cité des enfants perdus, La) (1995)", "The City of Lost Children"),
        ("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)", "Shanghai Triad"),
        ("Misérables, Les (1995)", "Les Misérables"),
        ("Toy Story (1995)", "Toy Story"),
        ("The Matrix", "The Matrix"),  # already normalised (as stored in MySQL): unchanged
        ("  Heat   (1995) ", "Heat"),
        ("(Untitled)", "(Untitled)"),  # nothing left after stripping: keep the title
        ("(500) Days of Summer (2009)", "(500) Days of Summer"),  # only trailing groups go
    ],
)
def test_query_title(title: str, expected: str) -> None:
    assert omdb.query_title(title) == expected


MATRIX = {
    "Title": "The Matrix",
    "Year": "1999",
    "Runtime": "136 min",
    "Director": "Lana Wachowski, Lilly Wachowski",
    "Actors": "Keanu Reeves, Laurence Fishburne, Carrie-Anne Moss",
    "Plot": "When a beautiful stranger leads computer hacker Neo to a forbidding underworld...",
    "Poster": "https://m.media-amazon.com/images/M/MV5BNzQzOTk3OTAtNDQ0Zi00ZTVkLWI0MTEtMDllZjNkYzNjNTc4L2ltYWdlXkEyXkFqcGdeQXVyNjU0OTQ0OTY@._V1_SX300.jpg",
    "imdbID": "tt0133093",
    "Response": "True",
}


def test_a_found_movie_becomes_details() -> None:
    d = omdb.parse_response(2571, MATRIX)
    assert d is not None
    assert (d.movie_id, d.director, d.runtime_minutes, d.source) == (
        2571,
        "Lana Wachowski, Lilly Wachowski",
        136,
        "omdb",
    )
    assert d.cast == ["Keanu Reeves", "Laurence Fishburne", "Carrie-Anne Moss"]
    assert d.plot is not None and d.plot.startswith("When a beautiful stranger")
    assert d.poster_url == MATRIX["Poster"]


def test_na_fields_are_unknown() -> None:
    body = {**MATRIX, "Plot": "N/A", "Director": "N/A", "Actors": "N/A", "Runtime": "N/A", "Poster": "N/A"}
    d = omdb.parse_response(1, body)
    assert d == MovieDetails(1, None, None, [], None, None, "omdb")


@pytest.mark.parametrize(
    "body",
    [
        {"Response": "False", "Error": "Movie not found!"},
        {"Response": "False", "Error": "Too many results."},
        None,
        [],
        "True",
    ],
)
def test_misses_and_garbage_are_not_found(body: object) -> None:
    assert omdb.parse_response(1, body) is None


@pytest.mark.parametrize(
    ("raw", "minutes"),
    [("142 min", 142), ("90 MIN", 90), ("N/A", None), (None, None), ("0 min", None), ("1 h 30 min", None), ("99999 min", None)],
)
def test_runtime(raw: str | None, minutes: int | None) -> None:
    assert omdb.parse_runtime(raw) == minutes


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("https://m.media-amazon.com/images/M/x.jpg", True),
        ("http://ia.media-imdb.com/images/M/x.jpg", True),
        ("javascript:alert(1)", False),
        ("data:image/png;base64,AAAA", False),
        ("//evil.example/x.jpg", False),
        ('https://x.example/a.jpg" onerror="alert(1)', False),
        ("N/A", False),
        ("", False),
    ],
)
def test_only_plain_http_poster_urls_are_kept(raw: str, kept: bool) -> None:
    assert (omdb.safe_poster_url(raw) == raw) is kept


def test_refused_key_messages_stop_the_run() -> None:
    for error in ("Invalid API key!", "Request limit reached!"):
        with pytest.raises(omdb.KeyRefused):
            omdb._check_key({"Response": "False", "Error": error})
    omdb._check_key({"Response": "False", "Error": "Movie not found!"})  # a plain miss is not a refusal


def test_the_request_url_carries_title_year_and_key_but_errors_never_show_it() -> None:
    client = omdb.Client("http://127.0.0.1:9/omdb", "SECRET-KEY")
    url = client._url("The Matrix", 1999)
    assert url.startswith("http://127.0.0.1:9/omdb?") and "t=The+Matrix" in url and "y=1999" in url
    assert "apikey=SECRET-KEY" in url
    assert "&y=" not in client._url("x", None)
    with_query = omdb.Client("http://127.0.0.1:9/?v=1", "k")._url("x", None)
    assert with_query.startswith("http://127.0.0.1:9/?v=1&")
    with socket.socket() as s:  # a loopback port nobody listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    refused = omdb.Client(f"http://127.0.0.1:{port}/", "SECRET-KEY", timeout=2, retries=0)
    with pytest.raises(omdb.Unreachable) as caught:
        refused.lookup(1, "Matrix, The", 1999)
    assert "SECRET-KEY" not in str(caught.value) and caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_db_row_bounds_and_round_trip() -> None:
    long = MovieDetails(7, "p" * 20_000, "d" * 600, [f"a{i}" for i in range(30)], 40_000, "https://x/" + "y" * 3000, "omdb")
    row = details_row(long)
    assert len(row[1]) == 8000 and len(row[2]) == 512 and row[4] is None and row[5] is None  # a cut URL is no URL
    back = details_from_row(row)
    assert len(back.cast) == 20 and back.runtime_minutes is None
    empty = details_row(MovieDetails(8))
    assert empty[1:6] == (None, None, None, None, None)
    assert details_from_row((9, None, None, "not json", None, None, None, None)).cast == []


def test_cache_entries_become_details_only_when_found() -> None:
    t = Target(1, "Matrix, The", 1999)
    assert t.key == "1|The Matrix|1999" and Target(2, "Heat", None).key == "2|Heat|"
    found = {"status": "found", "details": {"plot": "x", "cast": ["A"], "poster_url": "javascript:x", "fetched_at": None}}
    d = cached_details(t, found)
    assert d is not None and d.plot == "x" and d.cast == ["A"] and d.poster_url is None and d.source == "omdb"
    assert cached_details(t, {"status": "not_found", "details": None}) is None
