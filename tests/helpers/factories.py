"""Builders for test data that honour the real contracts (run folder format), with planted structure.

`make_run` writes a small, valid run: movies belong to genre clusters and their embeddings point in the
cluster's direction, so "similar" and "recommend" have a known right answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.contract import artifacts

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Animation", "Thriller"]


@dataclass
class FakeRun:
    run_id: str
    run_uri: str
    manifest_uri: str
    movie_ids: np.ndarray  # (n,)
    embeddings: np.ndarray  # (n, dim) float32, L2-normalised
    cluster: np.ndarray  # (n,) index into GENRES
    user_histories: dict[int, list[int]]
    dim: int


def make_run(
    output_uri: str,
    *,
    n_movies: int = 200,
    n_users: int = 50,
    dim: int = 16,
    seed: int = 0,
    run_id: str | None = None,
    id_offset: int = 1,
    recipe: dict[str, Any] | None = None,
) -> FakeRun:
    rng = np.random.default_rng(seed)
    n_clusters = len(GENRES)
    centers = rng.normal(size=(n_clusters, dim)).astype(np.float32)  # (C, dim)
    cluster = np.arange(n_movies) % n_clusters  # (n,)
    emb = centers[cluster] + 0.3 * rng.normal(size=(n_movies, dim)).astype(np.float32)  # (n, dim)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    movie_ids = np.arange(id_offset, id_offset + n_movies, dtype=np.int64)
    titles = [f"Movie {int(m)} {GENRES[c]} Story" for m, c in zip(movie_ids, cluster, strict=True)]
    years = [None if i % 17 == 0 else 1950 + i % 50 for i in range(n_movies)]
    genres = [[GENRES[c]] + ([GENRES[(c + 1) % n_clusters]] if i % 3 == 0 else []) for i, c in enumerate(cluster)]
    histories: dict[int, list[int]] = {}
    for u in range(1, n_users + 1):
        c = u % n_clusters
        pool = movie_ids[cluster == c]
        histories[u] = [int(x) for x in rng.choice(pool, size=min(5, len(pool)), replace=False)]

    writer = artifacts.RunWriter(output_uri, run_id)
    writer.write_table(artifacts.EMBEDDINGS, artifacts.embeddings_table(movie_ids, emb))
    writer.write_table(artifacts.MOVIES, artifacts.movies_table(movie_ids, titles, years, genres))
    writer.write_table(
        artifacts.USER_HISTORY, artifacts.user_history_table(list(histories), list(histories.values()))
    )
    writer.write_json(artifacts.METRICS, {"test": {"hr@10": 0.5}})
    writer.write_json(artifacts.CONFIG, {"dim": dim, "seed": seed, "fake": True})
    writer.finish(
        dim=dim,
        counts=artifacts.Counts(movies=n_movies, users=n_users, embeddings=n_movies, ratings=5 * n_users),
        metrics={"hr@10": 0.5},
        source={"kind": "fake", "seed": seed},
        config={"dim": dim},
        recipe=recipe,
    )
    return FakeRun(
        run_id=writer.run_id,
        run_uri=writer.run_uri,
        manifest_uri=writer.uri(artifacts.MANIFEST),
        movie_ids=movie_ids,
        embeddings=emb,
        cluster=cluster,
        user_histories=histories,
        dim=dim,
    )
