"""Movie look-ups (sample, title search, by id with its details) against the live run's metadata."""

from __future__ import annotations

from handlers.api_app.errors import InvalidInput, NotFound
from handlers.api_app.recommender import to_movie
from handlers.api_app.stores import MetadataReader
from shared import schemas
from shared.config.log import get_logger
from shared.errors import StoreUnavailable

logger = get_logger(__name__)


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


def get_movie(meta: MetadataReader, run_id: str, movie_id: int) -> schemas.MovieWithDetails:
    found = meta.get_movies(run_id, [movie_id])
    if movie_id not in found:
        raise NotFound(f"movie {movie_id} is not in the live model (run {run_id}).")
    movie = to_movie(found[movie_id])
    return schemas.MovieWithDetails(**movie.model_dump(), details=movie_details(meta, movie_id))


def movie_details(meta: MetadataReader, movie_id: int) -> schemas.MovieDetails:
    """The movie's details, or all-null ones: details are optional, so a failed look-up (MySQL hiccup after
    the movie itself was read) degrades to the placeholder instead of failing the request."""
    try:
        record = meta.get_movie_details([movie_id]).get(movie_id)
    except StoreUnavailable as exc:
        logger.warning("movie details unavailable; answering without them", extra={"movie_id": movie_id, "error": str(exc)})
        return schemas.MovieDetails()
    if record is None:
        return schemas.MovieDetails()
    return schemas.MovieDetails(
        plot=record.plot,
        director=record.director,
        cast=list(record.cast) or None,
        runtime_minutes=record.runtime_minutes,
        poster_url=record.poster_url,
        source=record.source,
    )
