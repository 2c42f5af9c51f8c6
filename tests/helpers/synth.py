"""A tiny in-memory MovieLens-shaped dataset with planted structure, for the model tests.

Movies belong to C clusters (one main genre each); every user likes one cluster and watches, over time,
mostly movies of that cluster in a popularity-skewed order. So "co-watched" carries the cluster, the
next movie of a user is predictable from the previous ones, and a good recommender beats popularity.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Animation", "Thriller"]


def make_data(
    n_users: int = 120, n_movies: int = 80, per_user: int = 15, n_clusters: int = 4, seed: int = 0, noise: float = 0.1
) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    cluster = np.arange(n_movies) % n_clusters  # (N,)
    movie_ids = np.arange(1, n_movies + 1, dtype=np.int64) * 3  # non-contiguous raw ids on purpose
    movies = pd.DataFrame(
        {
            "movie_id": movie_ids,
            "title": [f"Movie {GENRES[c]} tale number {i}" for i, c in enumerate(cluster)],
            "year": pd.array([None if i % 11 == 0 else 1950 + i % 50 for i in range(n_movies)], dtype="Int64"),
            "genres": [[GENRES[c]] + (["Drama"] if i % 5 == 0 and GENRES[c] != "Drama" else []) for i, c in enumerate(cluster)],
        }
    )
    user_ids = np.arange(1, n_users + 1, dtype=np.int64) * 7
    rows = []
    pop = 1.0 / np.arange(1, n_movies + 1) ** 0.5  # item popularity (by index)
    for u, uid in enumerate(user_ids):
        c = u % n_clusters
        own = np.flatnonzero(cluster == c)
        k = min(per_user, len(own))
        p = pop[own] / pop[own].sum()
        chosen = list(rng.choice(own, size=k, replace=False, p=p))
        for j in range(k):  # swap in some noise movies from other clusters
            if rng.random() < noise:
                other = int(rng.integers(0, n_movies))
                if other not in chosen:
                    chosen[j] = other
        t0 = 1_000_000 + int(rng.integers(0, 1000))
        for j, m in enumerate(chosen):
            rows.append((uid, movie_ids[m], float(rng.integers(1, 6)), t0 + 60 * j))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "timestamp"])
    ratings = ratings.astype({"user_id": "int64", "movie_id": "int64", "rating": "float32", "timestamp": "int64"})
    users = pd.DataFrame(
        {"user_id": user_ids, "gender": "M", "age": "25", "occupation": "0", "zip": "00000"}
    )
    return SimpleNamespace(
        users=users,
        movies=movies,
        ratings=ratings.sample(frac=1.0, random_state=seed).reset_index(drop=True),  # file order != time
        report=SimpleNamespace(to_dict=lambda: {"total_rejected": 0}),
        source={"kind": "test-synth", "seed": seed},
        cluster=cluster,
    )
