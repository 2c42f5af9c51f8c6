"""What the API would answer, for a block of users or movies at once - with the API's own serving functions.

Per user the API (handlers/api_app/recommender.py `for_user`) folds events into the stored history
(`fold_history`), selects movies (`Recipe.select`), plans the interests (`interests.plan`), searches one
list per interest with every seen movie excluded, merges and diversifies them (`interests.serve`) and
explains each pick (`interests.because`). This module calls exactly those functions; only the search is
different in HOW it is computed: the interest queries of a whole block of users go through one blocked
product (shared/serving/batched.py), whose lists equal `ExactIndex.search` (the API's in-memory index)
query by query, then each list goes through `rank` like the API's. Similar movies: `Recipe.query` over the
movie's vector, the movie excluded, as `Recommender.similar`.

The "audience" of a movie (the users most likely to like it; no API equivalent): a user's score for a
movie is the best float32 cosine of the user's interest queries to it, movies the user has seen excluded;
the top users per movie are kept across blocks (ties: smaller user_id), so memory is k x movies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shared.serving.batched import Scorer, masked_scores, numpy_scores, top_from_scores
from shared.serving.event_fold import Event, fold_history
from shared.serving.interests import Plan, because, plan, serve
from shared.serving.recipe import SCORE_DECIMALS, ExactIndex, Recipe, rank


@dataclass(frozen=True)
class UserInput:
    user_id: int
    history: Sequence[int]  # stored history, oldest first
    events: Sequence[Event] = ()  # a signed-in person's newer events (the API's real-time fold)


@dataclass(frozen=True)
class UserAnswer:
    user_id: int
    movie_ids: list[int]
    scores: list[float]
    because: list[list[int]]


@dataclass
class Audience:
    """Running top-k users per movie: (k, N) scores and user ids, -inf / -1 where empty."""

    k: int
    n_movies: int
    scores: np.ndarray = field(init=False)
    users: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.scores = np.full((self.k, self.n_movies), -np.inf, dtype=np.float64)
        self.users = np.full((self.k, self.n_movies), -1, dtype=np.int64)

    def add(self, user_ids: np.ndarray, user_scores: np.ndarray) -> None:
        """Fold in (U,) users with their (U, N) scores (-inf = not a candidate)."""
        if len(user_ids) == 0:
            return
        s = np.round(user_scores.astype(np.float64), SCORE_DECIMALS)
        u = np.broadcast_to(np.asarray(user_ids, dtype=np.int64)[:, None], s.shape)
        if len(user_ids) > self.k:  # only each movie's best k of this block can matter
            part = np.argpartition(-s, self.k - 1, axis=0)[: self.k]
            s, u = np.take_along_axis(s, part, axis=0), np.take_along_axis(u, part, axis=0)
        self.merge(s, u)

    def merge(self, s: np.ndarray, u: np.ndarray) -> None:
        """Fold in another (m, N) set of candidates (e.g. a shard's partial audience)."""
        all_s = np.concatenate([self.scores, s], axis=0)
        all_u = np.concatenate([self.users, u], axis=0)
        user_key = np.where(all_u < 0, np.iinfo(np.int64).max, all_u)
        order = np.lexsort((user_key, -all_s), axis=0)[: self.k]  # (k, N) score desc, user asc
        self.scores = np.take_along_axis(all_s, order, axis=0)
        self.users = np.take_along_axis(all_u, order, axis=0)


class Computer:
    """The run's index and recipe; answers blocks of users and movies like the API does."""

    def __init__(self, index: ExactIndex, recipe: Recipe, k: int, scorer: Scorer = numpy_scores) -> None:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.index, self.recipe, self.k, self.scorer = index, recipe, k, scorer
        self.diversity = recipe.diversity  # what the API uses when a request gives none

    def _plan(self, user: UserInput) -> tuple[Plan | None, list[int]]:
        """As Recommender.for_user: fold, select, the selected movies the run knows, the interests."""
        folded = fold_history(user.history, user.events)
        selected = self.recipe.select(folded.history)
        usable = [m for m in selected if m in self.index.row]
        banned = sorted(folded.seen)
        if not usable:
            return None, banned
        return plan(self.recipe, usable, self.index.vectors(usable)), banned

    def users(self, block: Sequence[UserInput], audience: Audience | None = None) -> list[UserAnswer]:
        """Every user's top k (empty when none of their movies is in the run), in block order."""
        plans = [self._plan(u) for u in block]
        queries: list[np.ndarray] = []
        ks: list[int] = []
        bans: list[list[int]] = []
        owner: list[int] = []
        for i, (p, banned) in enumerate(plans):
            if p is None:
                continue
            for q in p.queries:
                queries.append(q)
                ks.append(p.pool(self.k, self.diversity))
                bans.append(banned)
                owner.append(i)
        dim = self.index.matrix.shape[1]
        q = np.asarray(queries, dtype=np.float32).reshape(len(queries), dim)  # (Q, D)
        scores = masked_scores(self.index, q, [self.index.rows_of(b) for b in bans], self.scorer)  # (Q, N)
        lists = top_from_scores(self.index, q, scores, ks, bans)
        if audience is not None and len(owner):
            starts = np.flatnonzero(np.r_[True, np.diff(owner) != 0])  # first query row of each planned user
            audience.add(np.asarray([block[owner[s]].user_id for s in starts]), np.maximum.reduceat(scores, starts, axis=0))
        by_user: dict[int, list[list[tuple[int, float]]]] = {}
        for i, hits in zip(owner, lists, strict=True):
            by_user.setdefault(i, []).append(hits)
        answers = []
        for i, (p, banned) in enumerate(plans):
            if p is None:
                answers.append(UserAnswer(block[i].user_id, [], [], []))
                continue
            answers.append(self._answer(block[i].user_id, p, banned, by_user[i]))
        return answers

    def _answer(self, user_id: int, p: Plan, banned: list[int], lists: list[list[tuple[int, float]]]) -> UserAnswer:
        banned_set = set(banned)
        pool = p.pool(self.k, self.diversity)

        def search(queries: list[np.ndarray], n: int) -> list[list[tuple[int, float]]]:
            if n != pool or len(queries) != len(lists):  # serve() asked for something else: compute it exactly
                return [rank(self.index.search(q, n, banned=banned_set), banned_set, n) for q in queries]
            return [rank(hits, banned_set, n) for hits in lists]  # the API's rank() over the index's hits

        picks = serve(p, search, self.k, self.diversity, self.index.vectors)
        cited = because(p, self.index.vectors([x.movie_id for x in picks])) if picks else []
        return UserAnswer(user_id, [x.movie_id for x in picks], [x.score for x in picks], cited)

    def similar(self, movie_ids: Sequence[int]) -> list[list[tuple[int, float]]]:
        """As Recommender.similar: the recipe's query over the movie's vector, the movie itself excluded."""
        queries = np.asarray([self.recipe.query(self.index.vectors([m])) for m in movie_ids], dtype=np.float32)
        bans = [[int(m)] for m in movie_ids]
        scores = masked_scores(self.index, queries.reshape(len(bans), -1), [self.index.rows_of(b) for b in bans], self.scorer)
        lists = top_from_scores(self.index, queries, scores, [self.k] * len(bans), bans)
        return [rank(hits, set(b), self.k) for hits, b in zip(lists, bans, strict=True)]


def torch_scorer(device: str) -> Scorer:
    """A GPU (or CPU torch) block product; the catalogue is copied to the device once."""
    import torch

    cache: dict[int, object] = {}

    def scores(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
        key = id(matrix)
        if key not in cache:
            cache.clear()
            cache[key] = torch.from_numpy(np.ascontiguousarray(matrix)).to(device)
        m = cache[key]
        q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
        return (q @ m.T).cpu().numpy()  # type: ignore[attr-defined, no-any-return]

    return scores


def default_scorer(device: str = "auto") -> tuple[Scorer, str]:
    """numpy on CPU; torch on a GPU when the job has one (device 'auto' or 'cuda')."""
    if device in ("auto", "cuda"):
        try:
            import torch

            if torch.cuda.is_available():
                return torch_scorer("cuda"), "cuda"
        except ImportError:  # pragma: no cover - torch is in the training image
            pass
        if device == "cuda":
            raise ValueError("--device cuda: no GPU is available")
    return numpy_scores, "cpu"
