"""The users–movies heterograph PinSage trains on, the leave-last-out split and the movie features.

Why a heterograph with both edge directions: PinSage's importance neighbourhoods are random walks
movie -> user -> movie (`watched-by` then `watched`), and DGL's PinSAGESampler needs both edge types.
Only TRAIN edges are put in the graph: the validation/test ratings must not leak into the walks.

Split (same protocol as the DGL PinSage example): per user, ratings sorted by time; the latest is test,
the one before it validation, the rest train. Users with fewer than 3 ratings keep everything in train
(they are never evaluated).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dgl
import numpy as np
import pandas as pd
import torch

if TYPE_CHECKING:  # pragma: no cover
    from training_job.data.report import MovieLensData

USER = "user"
MOVIE = "movie"
WATCHED = "watched"
WATCHED_BY = "watched-by"

YEAR_MIN = 1910  # ML-1M spans 1919-2000: decade buckets 1..N, 0 = unknown
YEAR_BUCKETS = 14
_TOKEN_RE = re.compile(r"[a-z0-9]+")
_YEAR_IN_TITLE_RE = re.compile(r"\(\s*\d{4}\s*\)\s*$")


@dataclass
class Interactions:
    """Ratings as contiguous indices, sorted by (user, time): `user`, `item`, `ts`, `rating` are (E,)."""

    user: np.ndarray
    item: np.ndarray
    ts: np.ndarray
    rating: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> Interactions:
        return Interactions(self.user[mask], self.item[mask], self.ts[mask], self.rating[mask])


@dataclass
class MovieFeatures:
    """Dense tensors over the whole catalogue (N movies) fed to the model's feature encoder."""

    genres: torch.Tensor  # (N, G) float32 multi-hot
    year: torch.Tensor  # (N, 1) float32, standardised, 0 when unknown
    year_bucket: torch.Tensor  # (N,) int64 decade bucket, 0 when unknown
    title_tokens: torch.Tensor  # (N, L) int64 hashed title words, 0 = padding
    genre_vocab: list[str]
    title_buckets: int

    @property
    def num_genres(self) -> int:
        return len(self.genre_vocab)


@dataclass
class GraphData:
    """Everything the trainer needs: the train graph, index<->id maps, features and the three splits."""

    graph: dgl.DGLGraph
    user_ids: np.ndarray  # (U,) raw user_id of each user index
    movie_ids: np.ndarray  # (N,) raw movie_id of each movie index
    features: MovieFeatures
    all: Interactions  # every rating, sorted by (user, time)
    train: Interactions
    val: Interactions
    test: Interactions
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_items(self) -> int:
        return len(self.movie_ids)


def tokenize_title(title: str) -> list[str]:
    """Lower-cased words of a title without its trailing '(1995)' year."""
    return _TOKEN_RE.findall(_YEAR_IN_TITLE_RE.sub("", title or "").lower())


def hash_token(token: str, buckets: int) -> int:
    """Stable (crc32, not Python's salted hash) bucket in 1..buckets-1; 0 is the padding index."""
    return 1 + zlib.crc32(token.encode()) % (buckets - 1)


def movie_features(movies: pd.DataFrame, title_buckets: int = 4096, max_title_tokens: int = 12) -> MovieFeatures:
    """Multi-hot genres, year (standardised + decade bucket) and hashed title bag-of-words, row i = movie i."""
    n = len(movies)
    genre_lists = [list(g) if g is not None else [] for g in movies["genres"]]
    vocab = sorted({g for gs in genre_lists for g in gs})
    gidx = {g: i for i, g in enumerate(vocab)}
    genres = np.zeros((n, max(len(vocab), 1)), dtype=np.float32)  # (N, G)
    for row, gs in enumerate(genre_lists):
        for g in gs:
            genres[row, gidx[g]] = 1.0

    years = pd.array(movies["year"], dtype="Int64")
    known = ~np.asarray(years.isna())
    yv = np.asarray(years.fillna(0), dtype=np.float64)
    year = np.zeros((n, 1), dtype=np.float32)  # (N, 1)
    bucket = np.zeros(n, dtype=np.int64)  # (N,)
    if known.any():
        mu, sd = yv[known].mean(), yv[known].std() or 1.0
        year[known, 0] = ((yv[known] - mu) / sd).astype(np.float32)
        bucket[known] = np.clip((yv[known] - YEAR_MIN) // 10 + 1, 1, YEAR_BUCKETS - 1).astype(np.int64)

    tokens = np.zeros((n, max_title_tokens), dtype=np.int64)  # (N, L)
    for row, title in enumerate(movies["title"]):
        ids = [hash_token(t, title_buckets) for t in tokenize_title(str(title))][:max_title_tokens]
        tokens[row, : len(ids)] = ids
    return MovieFeatures(
        genres=torch.from_numpy(genres),
        year=torch.from_numpy(year),
        year_bucket=torch.from_numpy(bucket),
        title_tokens=torch.from_numpy(tokens),
        genre_vocab=vocab,
        title_buckets=title_buckets,
    )


def index_ratings(
    ratings: pd.DataFrame, user_ids: np.ndarray, movie_ids: np.ndarray
) -> tuple[Interactions, int]:
    """Map raw ids to indices and sort by (user, timestamp, input order); drops ratings of unknown movies.

    Returns the interactions and how many ratings were dropped (movie/user absent from the catalogue).
    """
    uidx = pd.Index(user_ids).get_indexer(ratings["user_id"].to_numpy())
    midx = pd.Index(movie_ids).get_indexer(ratings["movie_id"].to_numpy())
    ok = (uidx >= 0) & (midx >= 0)
    ts = ratings["timestamp"].to_numpy(dtype=np.int64)[ok]
    order = np.lexsort((np.arange(int(ok.sum())), ts, uidx[ok]))  # stable: ties keep file order
    inter = Interactions(
        user=uidx[ok][order].astype(np.int64),
        item=midx[ok][order].astype(np.int64),
        ts=ts[order],
        rating=ratings["rating"].to_numpy(dtype=np.float32)[ok][order],
    )
    return inter, int((~ok).sum())


def split_by_time(inter: Interactions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boolean masks (train, val, test) over `inter` (which is sorted by user then time)."""
    n = len(inter)
    if n == 0:
        empty = np.zeros(0, dtype=bool)
        return empty, empty, empty
    last_of_user = np.r_[inter.user[1:] != inter.user[:-1], True]  # (E,)
    starts = np.r_[True, inter.user[1:] != inter.user[:-1]]
    start_idx = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    end_idx = np.flip(np.minimum.accumulate(np.flip(np.where(last_of_user, np.arange(n), n))))
    count = end_idx - start_idx + 1  # ratings of this row's user
    pos_from_end = end_idx - np.arange(n)  # 0 = latest
    evaluated = count >= 3
    test = evaluated & (pos_from_end == 0)
    val = evaluated & (pos_from_end == 1)
    return ~(test | val), val, test


def build_graph(inter: Interactions, num_users: int, num_items: int) -> dgl.DGLGraph:
    """Heterograph user -watched-> movie and movie -watched-by-> user with per-edge timestamp and rating."""
    u = torch.from_numpy(inter.user)
    i = torch.from_numpy(inter.item)
    g = dgl.heterograph(
        {(USER, WATCHED, MOVIE): (u, i), (MOVIE, WATCHED_BY, USER): (i, u)},
        num_nodes_dict={USER: num_users, MOVIE: num_items},
    )
    ts = torch.from_numpy(inter.ts)
    rating = torch.from_numpy(inter.rating)
    for etype in (WATCHED, WATCHED_BY):
        g.edges[etype].data["timestamp"] = ts
        g.edges[etype].data["rating"] = rating
    return g


def build(data: MovieLensData, title_buckets: int = 4096) -> GraphData:
    """From a MovieLensData (users, movies, ratings DataFrames) to the train graph, features and splits."""
    movies = data.movies.reset_index(drop=True)
    movie_ids = movies["movie_id"].to_numpy(dtype=np.int64)
    user_ids = np.union1d(
        data.users["user_id"].to_numpy(dtype=np.int64) if len(data.users) else np.zeros(0, np.int64),
        data.ratings["user_id"].to_numpy(dtype=np.int64),
    )
    inter, dropped = index_ratings(data.ratings, user_ids, movie_ids)
    train_m, val_m, test_m = split_by_time(inter)
    train = inter.subset(train_m)
    graph = build_graph(train, len(user_ids), len(movie_ids))
    return GraphData(
        graph=graph,
        user_ids=user_ids,
        movie_ids=movie_ids,
        features=movie_features(movies, title_buckets=title_buckets),
        all=inter,
        train=train,
        val=inter.subset(val_m),
        test=inter.subset(test_m),
        stats={
            "users": len(user_ids),
            "movies": len(movie_ids),
            "ratings": len(inter),
            "ratings_dropped_unknown_id": dropped,
            "train_edges": int(train_m.sum()),
            "val_edges": int(val_m.sum()),
            "test_edges": int(test_m.sum()),
        },
    )
