"""GET /movies?sample=N | ?q=TEXT, GET /movies/{movie_id}, GET /movies/{movie_id}/similar.

Store work runs through run_blocking (worker thread, request deadline): see offload.py."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from handlers.api_app import catalogue
from handlers.api_app.deps import LiveRunDep, MetadataDep, RecommenderDep, answerable_from_memory
from handlers.api_app.offload import run_blocking
from handlers.api_app.routes._responses import NOT_FOUND, STANDARD
from shared.schemas import INT64_MAX, MAX_K, MovieList, MovieWithDetails, Recommendations

router = APIRouter(tags=["movies"], responses=STANDARD)
MovieIdPath = Annotated[int, Path(ge=0, le=INT64_MAX, description="Movie id")]
K = Annotated[int, Query(ge=1, le=MAX_K, description="How many results (1-100)")]


@router.get("/movies", response_model=MovieList)
async def list_movies(
    live: LiveRunDep,
    meta: MetadataDep,
    sample: Annotated[int | None, Query(ge=1, le=100, description="Random movies to show")] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Title contains")] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Max search results")] = 20,
) -> MovieList:
    return await run_blocking(
        lambda: catalogue.list_movies(meta, live.run_id, sample=sample, q=q, limit=limit)
    )


@router.get("/movies/{movie_id}", response_model=MovieWithDetails, responses=NOT_FOUND)
async def get_movie(movie_id: MovieIdPath, live: LiveRunDep, meta: MetadataDep) -> MovieWithDetails:
    """One movie of the live run, with its plot, director, cast, runtime and poster when known (null otherwise)."""
    return await run_blocking(lambda: catalogue.get_movie(meta, live.run_id, movie_id))


@router.get("/movies/{movie_id}/similar", response_model=Recommendations, responses=NOT_FOUND)
async def similar(movie_id: MovieIdPath, rec: RecommenderDep, live: LiveRunDep, k: K = 10) -> Recommendations:
    return await run_blocking(rec.similar, movie_id, k, inline=answerable_from_memory(live))
