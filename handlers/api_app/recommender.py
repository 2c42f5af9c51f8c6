"""Recommendation logic over the stores: combine liked vectors, one vector search, attach metadata.

Why a normalised mean and one search (instead of the seed demo's "search each liked movie, keep 100/n of
each"): the mean of L2-normalised vectors points at what the liked movies have in common, so one outlier
like does not claim a fixed share of the list, the cost is one search whatever the number of likes, and the
scores are comparable across results. bench/eval_combination.py measures both strategies (HR@10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from handlers.api_app.errors import NotFound, UnknownMovies
from handlers.api_app.stores import MetadataReader, VectorReader
from shared import schemas

if TYPE_CHECKING:  # pragma: no cover
    from handlers.api_app.local_index import LocalIndexCache

# Ask the index for a few more hits than needed, so movies tied on score at the k-th place are chosen by
# movie_id (deterministic) rather than by whatever order the index returns them in; if the whole answer
# is one tie group, search again wider (rare: needs identical embeddings).
TIE_SLACK = 8
SCORE_DECIMALS = 6
MAX_SEARCH = 16384  # Milvus' top-k ceiling
# A user's taste is built from their most recent movies (histories are stored oldest first).
HISTORY_WINDOW = 50


def combine(vectors: Sequence[Sequence[float]]) -> list[float]:
    """Normalised mean of the L2-normalised vectors; (n, dim) -> (dim,)."""
    arr = np.asarray(vectors, dtype=np.float64)  # (n, dim)
    arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)  # (n, dim) unit rows
    mean = arr.mean(axis=0)  # (dim,)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-9:  # liked vectors cancel out exactly: fall back to the first one rather than noise
        return [float(x) for x in arr[0]]
    return [float(x) for x in mean / norm]


def rank(hits: Iterable[tuple[int, float]], banned: set[int], k: int) -> list[tuple[int, float]]:
    """Drop banned/non-finite hits, round scores, order by (score desc, movie_id asc), keep k."""
    best: dict[int, float] = {}
    for movie_id, score in hits:
        mid, value = int(movie_id), float(score)
        if mid in banned or not math.isfinite(value):
            continue
        value = round(value, SCORE_DECIMALS)
        if value > best.get(mid, -math.inf):
            best[mid] = value
    return sorted(best.items(), key=lambda item: (-item[1], item[0]))[:k]


def _tie_may_continue(hits: list[tuple[int, float]], ranked: list[tuple[int, float]], limit: int, k: int) -> bool:
    """True when the search was cut off inside a group of movies tied with the k-th result."""
    if len(hits) < limit or len(ranked) < k:
        return False  # the index returned everything that matches
    lowest = min(round(float(s), SCORE_DECIMALS) for _, s in hits)
    return lowest >= ranked[-1][1]


def dedupe(ids: Iterable[int]) -> list[int]:
    return list(dict.fromkeys(int(i) for i in ids))


def to_movie(record: object) -> schemas.Movie:
    return schemas.Movie(
        movie_id=int(record.movie_id),  # type: ignore[attr-defined]
        title=str(record.title),  # type: ignore[attr-defined]
        year=record.year,  # type: ignore[attr-defined]
        genres=list(record.genres),  # type: ignore[attr-defined]
    )


class MovieSource(Protocol):
    def get_movies(self, run_id: str, movie_ids: Sequence[int]) -> dict[int, Any]: ...


class RunSource(Protocol):
    @property
    def run_id(self) -> str: ...


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
        self, liked: Sequence[int], k: int, genres: Sequence[str] | None = None, exclude: Sequence[int] = ()
    ) -> schemas.Recommendations:
        liked = dedupe(liked)
        found = self.vectors.get_vectors(self.run_id, liked)
        unknown = [m for m in liked if m not in found]
        if unknown:
            raise UnknownMovies(unknown)
        banned = dedupe([*liked, *exclude])
        return self._recommend([found[m] for m in liked], k, banned, genres)

    def similar(self, movie_id: int, k: int) -> schemas.Recommendations:
        found = self.vectors.get_vectors(self.run_id, [movie_id])
        if movie_id not in found:
            raise NotFound(f"movie {movie_id} is not in the live model (run {self.run_id}).")
        return self._recommend([found[movie_id]], k, [movie_id], None)

    def for_user(self, user_id: int, k: int) -> schemas.Recommendations:
        history = self.meta.user_history(self.run_id, user_id)
        if not history:
            raise NotFound(f"user {user_id} has no history in the live model (run {self.run_id}).")
        recent = dedupe(reversed(history))[:HISTORY_WINDOW]
        found = self.vectors.get_vectors(self.run_id, recent)
        if not found:
            return schemas.Recommendations(run_id=self.run_id, items=[])
        return self._recommend([found[m] for m in recent if m in found], k, dedupe(history), None)

    def _recommend(
        self, liked_vectors: list[list[float]], k: int, banned: list[int], genres: Sequence[str] | None
    ) -> schemas.Recommendations:
        query = combine(liked_vectors)
        limit = k + TIE_SLACK
        while True:
            found = self.vectors.search(self.run_id, [query], limit, exclude_ids=banned, genres=genres or None)
            hits = found[0] if found else []
            ranked = rank(hits, set(banned), k)
            if not _tie_may_continue(hits, ranked, limit, k) or limit >= MAX_SEARCH:
                break
            limit = min(limit * 4, MAX_SEARCH)  # movies tied with the k-th may lie beyond: look further
        movies = self.movies.get_movies(self.run_id, [m for m, _ in ranked])
        items = [
            schemas.Recommendation(**to_movie(movies[m]).model_dump(), score=score)
            for m, score in ranked
            if m in movies
        ]
        return schemas.Recommendations(run_id=self.run_id, items=items)
