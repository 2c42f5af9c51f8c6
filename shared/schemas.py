"""Request/response models of the recommendation API (the public contract, rendered at /docs).

Why strict models: a recommender that silently coerces `"k": "10"` or ignores a misspelt `"liked_ids"`
answers a different question than the one asked. Requests are `strict` + `extra="forbid"`, so wrong types
and unknown fields come back as a 422 that names the field. Bounds (k 1-100, at most 500 liked ids,
64-bit ids) keep every request cheap and keep values inside what MySQL BIGINT / Milvus INT64 can hold.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_K = 100
MAX_LIKED = 500
MAX_EXCLUDE = 500
MAX_GENRES = 32
INT64_MAX = 2**63 - 1

MovieId = Annotated[int, Field(ge=0, le=INT64_MAX, description="MovieLens movie id.")]
# Genres end up inside a Milvus filter expression: a narrow alphabet rules out expression injection.
Genre = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        pattern=r"^[A-Za-z0-9(][A-Za-z0-9 '&/().,-]*$",
        description="A genre name as in the data, e.g. 'Comedy', 'Sci-Fi', \"Children's\".",
    ),
]


class RecommendRequest(BaseModel):
    """Recommend from a set of liked movies (the web page's 'like' clicks)."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        json_schema_extra={"examples": [{"liked": [1, 2355, 3114], "k": 10, "genres": ["Comedy"]}]},
    )

    liked: list[MovieId] = Field(
        min_length=1,
        max_length=MAX_LIKED,
        description=(
            "Movies the person liked (1-500 ids), oldest first: the LAST id counts as the most recent. "
            "The live run's recipe decides how many of the latest ones form the query and how much more "
            "recent ones weigh (GET /health shows it); a repeated id counts once, at its latest position."
        ),
    )
    k: int = Field(default=10, ge=1, le=MAX_K, description="How many recommendations (1-100).")
    genres: list[Genre] | None = Field(
        default=None,
        max_length=MAX_GENRES,
        description="Only recommend movies having at least one of these genres.",
    )
    exclude: list[MovieId] = Field(
        default_factory=list,
        max_length=MAX_EXCLUDE,
        description="Movies never to recommend (e.g. already seen). Unknown ids are ignored.",
    )
    diversity: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description=(
            "0 = pure relevance ... 1 = most varied: re-ranks with maximal marginal relevance over the "
            "movies' embeddings. Omitted: the live run's default (GET /health, recipe.diversity)."
        ),
    )


class Movie(BaseModel):
    movie_id: int
    title: str
    year: int | None
    genres: list[str]


class MovieDetails(BaseModel):
    """What is known about a movie beyond the training data (filled by `python -m training_job enrich`).

    Every field is null when unknown: a movie never looked up, not found, or looked up without a poster.
    Clients render a placeholder for each missing field (docs/api.md, "Movie details")."""

    plot: str | None = Field(default=None, description="Short plot summary, or null.")
    director: str | None = Field(default=None, description="Director(s), comma-separated as published, or null.")
    cast: list[str] | None = Field(default=None, description="Leading actors, billing order; null when unknown.")
    runtime_minutes: int | None = Field(default=None, description="Running time in minutes, or null.")
    poster_url: str | None = Field(
        default=None,
        description="An http(s) URL of a poster image on the source's servers (hot-linked, not copied), or null: "
        "show a placeholder.",
    )
    source: str | None = Field(
        default=None, description="Where the details came from (e.g. 'omdb'); null when nothing is known."
    )


class MovieWithDetails(Movie):
    details: MovieDetails = Field(
        default_factory=MovieDetails,
        description="Plot, director, cast, runtime and poster; always present, its fields null when unknown.",
    )


class MovieList(BaseModel):
    run_id: str = Field(description="The live model run that served this answer.")
    items: list[Movie]


class BecauseMovie(BaseModel):
    movie_id: int
    title: str


class Recommendation(Movie):
    score: float = Field(
        description="Cosine similarity to the query of the interest this movie was found for; higher is better."
    )
    because: list[BecauseMovie] = Field(
        default_factory=list,
        description=(
            "The person's movies (from the liked list or the stored history) that support this "
            "recommendation most, strongest first; at least one. Empty for similar-movie lists."
        ),
    )


class Recommendations(BaseModel):
    run_id: str = Field(description="The live model run that produced these recommendations.")
    items: list[Recommendation] = Field(
        description=(
            "Best first. One interest: by score, ties by ascending movie_id. Several interests (see "
            "GET /health, recipe.interests): each interest's best movies take turns in proportion to the "
            "interest's weight, so scores need not decrease down the list."
        )
    )


class Health(BaseModel):
    status: Literal["ok", "no_live_run", "unavailable"]
    run_id: str | None = None
    counts: dict[str, int] = Field(default_factory=dict)
    stores: dict[str, Literal["ok", "unavailable"]] = Field(default_factory=dict)
    detail: str | None = None
    recipe: dict[str, float | int] | None = Field(
        default=None, description="How the live run forms a query from liked movies / a history (shared/serving/recipe.py)."
    )


class ErrorBody(BaseModel):
    """Every 4xx/503 has this shape: a sentence a person can act on, plus the request id for support."""

    detail: str
    request_id: str | None = None
    unknown_movie_ids: list[int] | None = None
    errors: list[dict[str, object]] | None = None
