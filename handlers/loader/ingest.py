"""Rows into the stores: movies and user histories into MySQL, vectors into the run's Milvus collection
(row inserts, or bulk import for big runs against a server), then the counts checked in both stores."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from handlers.loader.bulk import bulk_load_vectors, bulk_staging_uri
from handlers.loader.errors import LoadError
from handlers.loader.retry import RETRY
from handlers.loader.validation import ValidatedRun, embedding_matrix
from shared.config.settings import Settings
from shared.contract import artifacts
from shared.contract.artifacts import RunReader

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not enabled, file=sys.stderr)


def _advance(bar: Any, n: int, _future: Any) -> None:
    bar.update(n)


def _batches(reader: RunReader, name: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    yield from reader.iter_batches(name, batch_size)


def load_metadata(
    reader: RunReader, v: ValidatedRun, meta: MetadataStore, settings: Settings, progress: bool
) -> tuple[float, float]:
    """Movies then user histories into MySQL, batch by batch (upserts: a retried batch is harmless)."""
    from shared.stores.mysql.store import Movie

    run_id = v.manifest.run_id
    t0 = time.perf_counter()
    with _progress(v.n_movies, "movies -> MySQL", progress) as bar:
        for batch in _batches(reader, artifacts.MOVIES, settings.load_batch_size):
            d = batch.to_pydict()
            movies = [
                Movie(int(mid), str(title or ""), None if year is None else int(year), list(genres or []))
                for mid, title, year, genres in zip(
                    d["movie_id"], d["title"], d["year"], d["genres"], strict=True
                )
            ]
            RETRY.call("insert_movies", partial(meta.insert_movies, run_id, movies))
            bar.update(len(movies))
    t1 = time.perf_counter()
    with _progress(v.n_users, "histories -> MySQL", progress) as bar:
        for batch in _batches(reader, artifacts.USER_HISTORY, settings.load_batch_size):
            d = batch.to_pydict()
            rows = [(int(u), list(h or [])) for u, h in zip(d["user_id"], d["movie_ids"], strict=True)]
            RETRY.call("insert_histories", partial(meta.insert_histories, run_id, rows))
            bar.update(len(rows))
    return t1 - t0, time.perf_counter() - t1


def vector_batches(
    reader: RunReader, v: ValidatedRun, batch_size: int
) -> Iterator[tuple[Any, Any, list, list]]:
    """(ids, vectors (n, dim), genres, years) per batch, genres/year joined from movies.parquet."""
    import numpy as np
    import pyarrow as pa

    genres_col = v.movies.column("genres")
    year_col = v.movies.column("year")
    for batch in _batches(reader, artifacts.EMBEDDINGS, batch_size):
        ids = batch.column("movie_id").to_numpy(zero_copy_only=False).astype(np.int64)
        vecs = embedding_matrix(batch.column("embedding"), v.manifest.dim, artifacts.EMBEDDINGS)  # (n, dim)
        rows = pa.array(v.movie_order[np.searchsorted(v.movie_ids_sorted, ids)])
        yield ids, vecs, genres_col.take(rows).to_pylist(), year_col.take(rows).to_pylist()


def load_vectors(
    reader: RunReader, v: ValidatedRun, vectors: VectorStore, settings: Settings, progress: bool
) -> tuple[float, float]:
    """Embeddings into the run's collection. While Milvus ingests one batch the next one is decoded
    (a one-slot pipeline: the gRPC call releases the GIL), which is worth ~1.5x on Milvus Lite."""
    from concurrent.futures import Future, ThreadPoolExecutor

    run_id = v.manifest.run_id
    t0 = time.perf_counter()
    staging = bulk_staging_uri(vectors, v.n_embeddings, settings)
    if staging is not None:
        return bulk_load_vectors(v, vector_batches(reader, v, settings.load_batch_size), vectors, staging)
    RETRY.call("create_collection", lambda: vectors.create_collection(run_id, v.manifest.dim))
    t_setup = time.perf_counter() - t0
    pending: Future[None] | None = None
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        _progress(v.n_embeddings, "vectors -> Milvus", progress) as bar,
    ):
        for ids, vecs, genres, years in vector_batches(reader, v, settings.load_batch_size):
            prepared = vectors.prepare_rows(ids, vecs, genres, years)
            if pending is not None:
                pending.result()
            pending = pool.submit(
                RETRY.call, "insert_vectors", partial(vectors.insert_prepared, run_id, prepared)
            )
            pending.add_done_callback(partial(_advance, bar, len(ids)))
        if pending is not None:
            pending.result()
    if not vectors.is_lite:
        RETRY.call("flush", lambda: vectors.flush(run_id))
    return t_setup, time.perf_counter() - t0 - t_setup


def verify_counts(
    v: ValidatedRun, meta: MetadataStore, vectors: VectorStore, settings: Settings
) -> dict[str, int]:
    """Both stores hold exactly the run's rows. The vector count is what a search sees at the serving
    consistency once the index is built and loaded (VectorStore.wait_searchable): "live" means every movie
    is findable from the first request after the switch, not merely stored."""
    run_id = v.manifest.run_id
    wait = settings.milvus_searchable_timeout
    got = {
        "embeddings": RETRY.call(
            "count_vectors", lambda: vectors.wait_searchable(run_id, v.n_embeddings, timeout=wait)
        ),
        "movies": RETRY.call("count_movies", lambda: meta.count_movies(run_id)),
        "users": RETRY.call("count_users", lambda: meta.count_users(run_id)),
    }
    want = {"embeddings": v.n_embeddings, "movies": v.n_movies, "users": v.n_users}
    if got != want:
        raise LoadError(f"count mismatch after load: stores have {got}, run has {want}")
    return got
