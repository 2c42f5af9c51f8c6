"""Recommendation logic over the stores: the live run's recipe forms the queries, one batched vector search,
metadata and explanations.

The queries are formed by `shared.serving.recipe.Recipe` + `shared.serving.interests` (one query per interest of the
person's movies; one interest = the single-vector query) - the same code the training job evaluated the
run with, with the parameters it chose on validation (stored with the run). Ranking ties are broken the
same way as in the training job's evaluation (`shared.serving.recipe.rank`), the per-interest lists are merged and
diversified by `shared.serving.interests.merge`, and every item carries `because` (`shared.serving.interests.because`),
so the API serves what the run's metrics describe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from handlers.api_app.errors import NotFound, UnknownMovies
from handlers.api_app.stores import MetadataReader, MovieRecord, VectorReader
from shared import schemas
from shared.serving.event_fold import Event, fold_history
from shared.serving.interests import because, plan, serve
from shared.serving.recipe import SCORE_DECIMALS, Recipe, rank

if TYPE_CHECKING:  # pragma: no cover
    from handlers.api_app.local_index import LocalIndexCache

# Ask the index for a few more hits than needed, so movies tied on score at the k-th place are chosen by
# movie_id (deterministic) rather than by whatever order the index returns them in; if the whole answer
# is one tie group, search again wider (rare: needs identical embeddings).
TIE_SLACK = 8
MAX_SEARCH = 16384  # Milvus' top-k ceiling


def combine(vectors: Sequence[Sequence[float]], recipe: Recipe | None = None) -> list[float]:
    """The recipe's query over vectors given oldest first; (n, dim) -> (dim,). Default: plain mean."""
    recipe = recipe or Recipe(last_k=max(1, len(vectors)), decay=1.0)
    return [float(x) for x in recipe.query(np.asarray(vectors, dtype=np.float32))]


def _tie_may_continue(hits: list[tuple[int, float]], ranked: list[tuple[int, float]], limit: int, k: int) -> bool:
    """True when the search was cut off inside a group of movies tied with the k-th result."""
    if len(hits) < limit or len(ranked) < k:
        return False  # the index returned everything that matches
    lowest = min(round(float(s), SCORE_DECIMALS) for _, s in hits)
    return lowest >= ranked[-1][1]


def dedupe(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(int(i) for i in ids))


def to_movie(record: MovieRecord) -> schemas.Movie:
    return schemas.Movie(
        movie_id=int(record.movie_id), title=str(record.title), year=record.year, genres=list(record.genres)
    )


class MovieSource(Protocol):
    def get_movies(self, run_id: str, movie_ids: Sequence[int]) -> Mapping[int, MovieRecord]: ...


class RunSource(Protocol):
    @property
    def run_id(self) -> str: ...
    @property
    def recipe(self) -> Recipe: ...


class Recommender:
    """Answers the three recommendation questions for the live run (resolved on first use)."""

    def __init__(
        self, meta: MetadataReader, vectors: VectorReader, live: RunSource, local: LocalIndexCache | None = None
    ) -> None:
        self.meta = meta
        self._stores = (vectors, meta)
        self._live = live
        self._local = local
        self._backend: tuple[VectorReader, MovieSource] | None = None

    @property
    def run_id(self) -> str:
        return self._live.run_id

    @property
    def recipe(self) -> Recipe:
        return self._live.recipe

    @property
    def vectors(self) -> VectorReader:
        return self._resolve()[0]

    @property
    def movies(self) -> MovieSource:
        return self._resolve()[1]

    def _resolve(self) -> tuple[VectorReader, MovieSource]:
        """The in-memory copy of the run when it is small enough (see local_index.py), else the stores."""
        if self._backend is not None:
            return self._backend
        vectors, meta = self._stores
        index = self._local.get(self.run_id, meta, vectors) if self._local is not None else None
        if index is None:
            self._backend = (vectors, meta)
            return vectors, meta
        self._backend = (index, index)
        return index, index

    def for_liked(
        self,
        liked: Sequence[int],
        k: int,
        genres: Sequence[str] | None = None,
        exclude: Sequence[int] = (),
        diversity: float | None = None,
    ) -> schemas.Recommendations:
        """`liked` in the client's order, read as oldest first: the recipe's recency weights favour the end."""
        liked = [int(m) for m in liked]
        found = self.vectors.get_vectors(self.run_id, dedupe(liked))
        unknown = [m for m in dedupe(liked) if m not in found]
        if unknown:
            raise UnknownMovies(unknown)
        banned = dedupe([*liked, *exclude])
        return self._for_movies(self.recipe.select(liked), found, k, banned, genres, diversity)

    def similar(self, movie_id: int, k: int) -> schemas.Recommendations:
        found = self.vectors.get_vectors(self.run_id, [movie_id])
        if movie_id not in found:
            raise NotFound(f"movie {movie_id} is not in the live model (run {self.run_id}).")
        query = [float(x) for x in self.recipe.query(np.asarray([found[movie_id]], dtype=np.float32))]
        ranked = self._ranked([query], k, [movie_id], None)[0]
        movies = self.movies.get_movies(self.run_id, [m for m, _ in ranked])
        items = [
            schemas.Recommendation(**to_movie(movies[m]).model_dump(), score=score) for m, score in ranked if m in movies
        ]
        return schemas.Recommendations(run_id=self.run_id, items=items)

    def for_user(
        self,
        user_id: int,
        k: int,
        diversity: float | None = None,
        events: Sequence[Event] = (),
        *,
        known: bool = False,
    ) -> schemas.Recommendations:
        """The user's stored history (oldest first) and then their newer events (shared/serving/event_fold.py: an
        unlike removes the movie) through the run's recipe; every movie they touched is excluded.

        `known`: the person exists even with no history (signed in): an empty answer, not a 404."""
        stored = self.meta.user_history(self.run_id, user_id) or []
        if not stored and not events and not known:
            raise NotFound(f"user {user_id} has no history in the live model (run {self.run_id}).")
        folded = fold_history(stored, events)
        selected = self.recipe.select(folded.history)
        found = self.vectors.get_vectors(self.run_id, selected) if selected else {}
        usable = [m for m in selected if m in found]
        if not usable:
            return schemas.Recommendations(run_id=self.run_id, items=[])
        return self._for_movies(usable, found, k, sorted(folded.seen), None, diversity)

    def _for_movies(
        self,
        selected: Sequence[int],
        vectors: dict[int, list[float]],
        k: int,
        banned: list[int],
        genres: Sequence[str] | None,
        diversity: float | None,
    ) -> schemas.Recommendations:
        """The recipe's interests over `selected` (oldest first, all in `vectors`): one batched search,
        merged (shared/serving/interests.py, as in the training job's evaluation), each item with its `because`."""
        p = plan(self.recipe, selected, np.asarray([vectors[m] for m in selected], dtype=np.float32))
        fetched: dict[int, list[float]] = {}

        def vectors_of(ids: Sequence[int]) -> np.ndarray:
            missing = [m for m in ids if m not in fetched]
            if missing:
                fetched.update(self.vectors.get_vectors(self.run_id, missing))
            return np.asarray([fetched[m] for m in ids], dtype=np.float32)  # (len(ids), D)

        def search(queries: list[np.ndarray], n: int) -> list[list[tuple[int, float]]]:
            return self._ranked([[float(x) for x in q] for q in queries], n, banned, genres)

        d = self.recipe.diversity if diversity is None else float(diversity)
        picks = serve(p, search, k, d, vectors_of)
        if not picks:
            return schemas.Recommendations(run_id=self.run_id, items=[])
        cited = because(p, vectors_of([x.movie_id for x in picks]))
        movies = self.movies.get_movies(self.run_id, dedupe([*(x.movie_id for x in picks), *(c for cs in cited for c in cs)]))
        items = [
            schemas.Recommendation(
                **to_movie(movies[x.movie_id]).model_dump(),
                score=x.score,
                because=[schemas.BecauseMovie(movie_id=c, title=str(movies[c].title)) for c in cs if c in movies],
            )
            for x, cs in zip(picks, cited, strict=True)
            if x.movie_id in movies
        ]
        return schemas.Recommendations(run_id=self.run_id, items=items)

    def _ranked(
        self, queries: list[list[float]], k: int, banned: list[int], genres: Sequence[str] | None
    ) -> list[list[tuple[int, float]]]:
        """Each query's exact top k (rounded score desc, movie_id asc) from ONE batched vector search.

        Asks for TIE_SLACK more than k and widens when a list is cut inside a tie group at its k-th place,
        so the in-memory index and Milvus return the same lists (the ExactIndex's).
        """
        limit = k + TIE_SLACK
        banned_set = set(banned)
        while True:
            found = self.vectors.search(self.run_id, queries, limit, exclude_ids=banned, genres=genres or None)
            found = list(found) + [[] for _ in range(len(queries) - len(found))]
            ranked = [rank(hits, banned_set, k) for hits in found]
            cut = any(_tie_may_continue(h, r, limit, k) for h, r in zip(found, ranked, strict=True))
            if not cut or limit >= MAX_SEARCH:
                return ranked
            limit = min(limit * 4, MAX_SEARCH)  # movies tied with the k-th may lie beyond: look further
