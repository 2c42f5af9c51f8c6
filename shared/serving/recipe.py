"""The recipe: how a user's movies become a query, and how the catalogue is ranked for it — ONE implementation.

Why this module exists: the training job used to report metrics for one query rule (recency-weighted
mean of the last few movies) while the API served another (plain mean of the last 50), so offline numbers
described a system nobody was served. Now the training job chooses a `Recipe` on the validation split,
writes it into the run (manifest.json -> the loader stores it with the run), and both the training job's
evaluation and the API call the functions below with it. numpy only: the API imports this module and must
not import torch.

Order: a user's movies are always given oldest first (a stored history is chronological; the liked list of
`POST /recommendations` is read in the order the client sent it, so its LAST element counts as the most
recent). A movie given twice counts once, at its latest position.

Ranking: exact inner product over unit vectors (= cosine), scores rounded to `SCORE_DECIMALS`, ties broken
by ascending movie_id, excluded movies removed. `ExactIndex.search` is what the API's in-memory index runs
and what the training job's evaluation runs, so for the same run the two give the same ids in the same
order; Milvus (used for catalogues too big for the in-memory copy) returns the same order up to float
rounding of its own kernels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

SCORE_DECIMALS = 6
# What runs written before recipes existed were served with (mean of the last 50 movies, no decay).
LEGACY = {"last_k": 50, "decay": 1.0}


@dataclass(frozen=True)
class Recipe:
    """Query = L2-normalised weighted mean of the unit vectors of the user's `last_k` most recent movies;
    the i-th most recent (i = 0 for the latest) is weighted `decay ** i`."""

    last_k: int = 10
    decay: float = 0.9
    # Multi-interest (shared/serving/interests.py): at most `interests` clusters of the selected movies query the
    # index, clusters merged while their average cosine distance is <= `threshold`; 1 = one query vector.
    interests: int = 1
    threshold: float = 0.5
    # Default maximal-marginal-relevance lambda when a request does not give one (0 = pure relevance).
    diversity: float = 0.0

    def __post_init__(self) -> None:
        if self.last_k < 1:
            raise ValueError(f"recipe last_k must be >= 1, got {self.last_k}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"recipe decay must be in (0, 1], got {self.decay}")
        if self.interests < 1:
            raise ValueError(f"recipe interests must be >= 1, got {self.interests}")
        if not 0.0 <= self.threshold <= 2.0:
            raise ValueError(f"recipe threshold must be a cosine distance in [0, 2], got {self.threshold}")
        if not 0.0 <= self.diversity <= 1.0:
            raise ValueError(f"recipe diversity must be in [0, 1], got {self.diversity}")

    @property
    def name(self) -> str:
        base = f"last{self.last_k}_decay{self.decay:g}"
        if self.interests > 1:
            base += f"_interests{self.interests}_t{self.threshold:g}"
        if self.diversity > 0:
            base += f"_div{self.diversity:g}"
        return base

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Recipe:
        """A run's stored recipe; runs without one get what they were served with before (LEGACY).

        Recipes stored before multi-interest existed have no `interests` / `threshold` / `diversity`: they
        get one query vector and no diversity, i.e. exactly what they were served with.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in (raw or LEGACY).items() if k in known}
        return cls(
            last_k=int(values.get("last_k", LEGACY["last_k"])),
            decay=float(values.get("decay", 1.0)),
            interests=int(values.get("interests", 1)),
            threshold=float(values.get("threshold", 0.5)),
            diversity=float(values.get("diversity", 0.0)),
        )

    @classmethod
    def of_run(cls, record: object) -> Recipe:
        """The recipe stored with a run record (the loader keeps it in the record's metrics)."""
        metrics = getattr(record, "metrics", None)
        return cls.from_dict(metrics.get("recipe") if isinstance(metrics, dict) else None)

    def select(self, movie_ids: Iterable[int]) -> list[int]:
        """The movies (oldest first, each once at its latest position) the query is built from."""
        latest_first = list(dict.fromkeys(int(m) for m in reversed(list(movie_ids))))
        return list(reversed(latest_first[: self.last_k]))

    def weights(self, n: int) -> np.ndarray:
        """(n,) weights of n selected movies given oldest first: the newest gets 1, the one before `decay`..."""
        age = np.arange(n - 1, -1, -1, dtype=np.float64)  # (n,) 0 = most recent
        return np.power(self.decay, age)

    def query(self, vectors: np.ndarray) -> np.ndarray:
        """(n, D) vectors of the selected movies, oldest first -> (D,) float32 unit query vector."""
        arr = np.asarray(vectors, dtype=np.float64)  # (n, D)
        if arr.ndim != 2 or len(arr) == 0:
            raise ValueError("a query needs at least one movie vector")
        arr = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)  # (n, D) unit rows
        mean = self.weights(len(arr)) @ arr  # (D,)
        norm = float(np.linalg.norm(mean))
        if norm < 1e-9:  # the vectors cancel out exactly: fall back to the most recent one rather than noise
            return arr[-1].astype(np.float32)
        return (mean / norm).astype(np.float32)


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


class ExactIndex:
    """Unit vectors of a run's movies (sorted by movie_id) searched exactly; shared by API and evaluation."""

    def __init__(self, ids: Sequence[int] | np.ndarray, matrix: np.ndarray) -> None:
        order = np.argsort(np.asarray(ids, dtype=np.int64), kind="stable")
        self.ids = np.asarray(ids, dtype=np.int64)[order]  # (n,) ascending
        m = np.asarray(matrix, dtype=np.float32)[order]  # (n, D)
        self.matrix = m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        self.row = {int(m): i for i, m in enumerate(self.ids.tolist())}
        self._matrix64: np.ndarray | None = None

    @property
    def matrix64(self) -> np.ndarray:
        """(n, D) float64 copy of `matrix`: scores are float64 inner products of the float32 unit rows.

        Why float64: float32 matrix-vector and matrix-matrix products sum in different orders, and after
        rounding to SCORE_DECIMALS ~1.4% of scores differ between the two; in float64 the difference is
        ~1e-16 and the rounded scores agree, so the batch job's blocked products (shared/serving/batched.py)
        rank exactly like this per-query search.
        """
        if self._matrix64 is None:
            self._matrix64 = self.matrix.astype(np.float64)
        return self._matrix64

    def __len__(self) -> int:
        return len(self.ids)

    def vectors(self, movie_ids: Sequence[int]) -> np.ndarray:
        """(n, D) rows of the given (known) movies, in the given order."""
        return self.matrix[[self.row[int(m)] for m in movie_ids]]

    def rows_of(self, movie_ids: Iterable[int]) -> np.ndarray:
        """Row numbers of the known movies among `movie_ids` (unknown ids are skipped)."""
        arr = np.fromiter((int(m) for m in movie_ids), dtype=np.int64)
        pos = np.searchsorted(self.ids, arr)
        pos = np.minimum(pos, max(len(self.ids) - 1, 0))
        return pos[self.ids[pos] == arr] if len(self.ids) else pos[:0]

    def search(
        self, query: np.ndarray, k: int, banned: Iterable[int] = (), allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top k (movie_id, rounded score) by inner product, (score desc, id asc); banned/disallowed skipped.

        `allowed` is an optional (n,) bool row mask (e.g. a genre filter).
        """
        scores = self.matrix64 @ np.asarray(query, dtype=np.float32).astype(np.float64)  # (n,)
        if allowed is not None:
            scores[~allowed] = -np.inf
        scores[self.rows_of(banned)] = -np.inf
        finite = int(np.isfinite(scores).sum())
        take = min(k, finite)
        if take <= 0:
            return []
        # Rank a small pool by raw score, then order it by (rounded score desc, id asc). If the pool's
        # lowest rounded score still ties the k-th, the tie group may extend beyond it: rank everything.
        pool_size = min(take + 16, len(scores))
        pool = np.argpartition(-scores, pool_size - 1)[:pool_size]
        while True:
            rounded = np.round(scores[pool], SCORE_DECIMALS)
            order = np.lexsort((self.ids[pool], -rounded))
            kth = rounded[order[take - 1]]
            if pool_size == len(scores) or rounded.min() < kth:
                break
            pool_size = len(scores)
            pool = np.arange(len(scores))
        best = order[:take]
        return [(int(self.ids[pool[i]]), float(rounded[i])) for i in best]
