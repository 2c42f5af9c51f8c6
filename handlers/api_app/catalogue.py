"""Movie look-ups (sample, title search, by id) against the live run's metadata."""

from __future__ import annotations

from handlers.api_app.errors import InvalidInput, NotFound
from handlers.api_app.recommender import to_movie
from handlers.api_app.stores import MetadataReader
from shared import schemas


def list_movies(
    meta: MetadataReader, run_id: str, *, sample: int | None, q: str | None, limit: int
) -> schemas.MovieList:
    if (sample is None) == (q is None):
        raise InvalidInput("Pass exactly one of ?sample=N (random movies) or ?q=TEXT (title search).")
    if q is not None:
        text = q.strip()
        if not text:
            raise InvalidInput("q must contain some text to search for in titles.")
        records = meta.search_movies(run_id, text, limit)
    else:
        records = meta.sample_movies(run_id, sample or 1)
    return schemas.MovieList(run_id=run_id, items=[to_movie(r) for r in records])


def get_movie(meta: MetadataReader, run_id: str, movie_id: int) -> schemas.Movie:
    found = meta.get_movies(run_id, [movie_id])
    if movie_id not in found:
        raise NotFound(f"movie {movie_id} is not in the live model (run {run_id}).")
    return to_movie(found[movie_id])
