"""Loader: puts a finished training run into the stores and makes it live, safely.

Triggered by S3 `ObjectCreated` on `<prefix>/<run_id>/manifest.json` (the manifest is written last, so its
arrival means the run is complete), by a direct `{"manifest_uri": ...}` invocation, or from the CLI.

Why it is built this way:
- Validate everything before touching the stores (checksums, dim, ids, finite unit vectors), so a bad
  run costs nothing but a `failed` row with the reason.
- Load beside the live run (per-run collection + per-run rows), verify counts in both stores, and only
  then flip the Milvus alias and the MySQL live marker: a crash at any point leaves the old run serving.
- Idempotent: a live run is never reloaded; a retried run reuses its partial collection (upserts), so a
  duplicate or retried event never duplicates data or leaves two live runs.

CLI:  python -m handlers.loader MANIFEST_URI | --latest | --list | --rollback [--to RUN_ID] | --help
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from shared import artifacts, objectstore
from shared.artifacts import RUN_ID_RE, RunFormatError, RunReader
from shared.errors import StoreUnavailable
from shared.log import get_logger, log_to_stderr
from shared.run_status import RunStatus
from shared.settings import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from shared.metadata_store import MetadataStore
    from shared.vector_store import VectorStore

logger = get_logger("loader")
T = TypeVar("T")

NORM_TOLERANCE = 1e-3  # |‖v‖ - 1| allowed for "L2-normalised" float32 vectors
PRUNED = "pruned: data dropped (keep_runs)"
# What the stores can hold, checked before any write (a value that does not fit is bad data, not a
# transient error): movies.title VARCHAR(1024), movies.year SMALLINT (and a plausible film year),
# user_histories.movie_ids MEDIUMTEXT (16 MiB of JSON: at most ~800k ids of <= 20 characters).
MAX_TITLE_CHARS = 1024
YEAR_RANGE = (1800, 2100)
MAX_HISTORY_LEN = 800_000


class LoadError(RuntimeError):
    """A run cannot be loaded for a reason that retrying will not fix (bad data, inconsistent counts)."""


class RunTooSmall(LoadError):
    """The run is drastically smaller than the live one: loading it needs an explicit --force."""


def _is_bad_data(exc: BaseException) -> bool:
    """Errors a store raises for values it cannot hold (too long, out of range, duplicate key, invalid
    parameter): retrying the same run can never succeed, so they are permanent failures."""
    pymysql = sys.modules.get("pymysql")
    if pymysql is not None and isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
        return True
    exceptions = sys.modules.get("pymilvus.exceptions")
    return exceptions is not None and isinstance(exc, exceptions.ParamError | exceptions.DataTypeNotMatchException)


# ----------------------------------------------------------------------------------- retries
@dataclass
class RetryPolicy:
    """Exponential backoff for transient store errors (StoreUnavailable): base, 2*base, 4*base ... <= cap."""

    attempts: int = 5
    base_seconds: float = 0.5
    cap_seconds: float = 8.0

    def call(self, what: str, fn: Callable[[], T]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return fn()
            except StoreUnavailable as exc:
                if attempt == self.attempts:
                    raise
                delay = min(self.cap_seconds, self.base_seconds * 2 ** (attempt - 1))
                logger.warning(
                    "transient store error, retrying",
                    extra={"op": what, "attempt": attempt, "delay_s": delay, "error": str(exc)},
                )
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


RETRY = RetryPolicy(base_seconds=float(os.environ.get("LOADER_RETRY_BASE_SECONDS", "0.5")))


# ----------------------------------------------------------------------------------- stores (lazy)
_meta: MetadataStore | None = None
_vectors: VectorStore | None = None


def get_stores(settings: Settings | None = None) -> tuple[MetadataStore, VectorStore]:
    """Stores created once per container (Lambda reuses them across invocations); schema ensured once."""
    global _meta, _vectors
    settings = settings or get_settings()
    if _meta is None:
        from shared.metadata_store import MetadataStore

        # Bulk statements need a longer budget than the API's few seconds, but still a bounded one.
        meta = MetadataStore.from_settings(settings, statement_timeout=settings.loader_store_timeout)
        RETRY.call("ensure_schema", meta.ensure_schema)
        _meta = meta
    if _vectors is None:
        from shared.vector_store import VectorStore

        vectors = VectorStore.from_settings(settings)
        vectors.timeout = settings.loader_store_timeout  # counts/loads of big collections take a while
        _vectors = vectors
    return _meta, _vectors


def reset_stores() -> None:
    """Forget the cached stores (tests; after settings change)."""
    global _meta, _vectors
    if _meta is not None:
        _meta.close()
    _meta = None
    _vectors = None


# ----------------------------------------------------------------------------------- events
def manifest_uris_from_event(event: dict[str, Any]) -> list[str]:
    """Manifest URIs named by an event; non-manifest objects are ignored (logged).

    Accepts: S3 notifications (`Records[].s3`, keys URL-encoded), the same wrapped in SQS/SNS records,
    EventBridge "Object Created" events, and `{"manifest_uri": "..."}` for direct invocation.
    """
    uris: list[str] = []
    if isinstance(event.get("manifest_uri"), str):
        uris.append(event["manifest_uri"])
    for rec in event.get("Records") or []:
        if "s3" in rec:
            bucket = rec["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
            if not str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                logger.info(
                    "ignoring non-create event", extra={"event_name": rec.get("eventName"), "key": key}
                )
                continue
            uris.append(f"s3://{bucket}/{key}")
        elif rec.get("eventSource") == "aws:sqs" and rec.get("body"):
            uris += manifest_uris_from_event(json.loads(rec["body"]))
        elif rec.get("EventSource") == "aws:sns" and rec.get("Sns", {}).get("Message"):
            uris += manifest_uris_from_event(json.loads(rec["Sns"]["Message"]))
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        d = event["detail"]
        uris.append(f"s3://{d['bucket']['name']}/{d['object']['key']}")
    out = []
    for uri in uris:
        if objectstore.basename(uri) != artifacts.MANIFEST:
            logger.info("ignoring object that is not a manifest", extra={"uri": uri})
            continue
        if uri not in out:
            out.append(uri)
    return out


def run_id_from_uri(uri: str) -> str | None:
    """The run_id a manifest URI's folder names (even when the manifest itself is unreadable)."""
    folder = objectstore.basename(
        objectstore.parent(uri) if uri.rstrip("/").endswith(artifacts.MANIFEST) else uri
    )
    return folder if RUN_ID_RE.match(folder) else None


# ----------------------------------------------------------------------------------- validation
@dataclass
class ValidatedRun:
    """What the load needs from validation: counts and the movie lookup for Milvus' scalar fields."""

    manifest: artifacts.Manifest
    n_movies: int
    n_users: int
    n_embeddings: int
    movie_ids_sorted: np.ndarray  # (n_movies,) int64
    movie_order: np.ndarray  # (n_movies,) positions into `movies` sorted by id
    movies: pa.Table  # movie_id, year, genres
    history_unknown_ids: int = 0


def _embedding_matrix(col: pa.Array, dim: int, where: str) -> np.ndarray:
    """(n, dim) float32 view of a list/fixed-size-list column; rejects nulls and ragged rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        raise RunFormatError(f"{where}: {col.null_count} null embeddings")
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        if width != dim:
            raise RunFormatError(f"{where}: embeddings are {width}-d but the manifest says dim={dim}")
    elif pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(lengths != dim)
        if bad.size:
            raise RunFormatError(
                f"{where}: embedding width {int(lengths[bad[0]])} at row {int(bad[0])} but the manifest says dim={dim}"
            )
    else:
        raise RunFormatError(f"{where}: embedding column has type {col.type}, expected a list of float")
    values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    return values.reshape(len(col), dim)  # (n, dim)


def _check_movie_fields(reader: RunReader, movies: pa.Table, movie_ids: np.ndarray, settings: Settings) -> None:
    """Every value of movies.parquet fits the stores and can be served: ids >= 0, titles <= 1024
    characters, years in YEAR_RANGE, at most MAX_GENRES genres of <= MAX_GENRE_LEN characters."""
    import numpy as np
    import pyarrow.compute as pc

    from shared.vector_store import MAX_GENRE_LEN, MAX_GENRES

    where = artifacts.MOVIES
    if int(movie_ids.min()) < 0:
        raise RunFormatError(f"{where}: negative movie_id {int(movie_ids.min())} (the API only serves ids >= 0)")
    years = movies.column("year").to_numpy(zero_copy_only=False).astype(np.float64)  # (n,) NaN = no year
    lo, hi = YEAR_RANGE
    bad = np.flatnonzero(~np.isnan(years) & ((years < lo) | (years > hi)))
    if bad.size:
        i = int(bad[0])
        raise RunFormatError(f"{where}: movie {int(movie_ids[i])} has year {int(years[i])}, outside {lo}-{hi}")
    genres = movies.column("genres")
    n_genres = pc.list_value_length(genres).to_numpy(zero_copy_only=False)
    n_genres = np.nan_to_num(n_genres.astype(np.float64), nan=0)
    if n_genres.size and n_genres.max() > MAX_GENRES:
        i = int(n_genres.argmax())
        raise RunFormatError(f"{where}: movie {int(movie_ids[i])} has {int(n_genres[i])} genres (max {MAX_GENRES})")
    flat = pc.list_flatten(genres)
    if len(flat) and (pc.max(pc.utf8_length(flat)).as_py() or 0) > MAX_GENRE_LEN:
        raise RunFormatError(f"{where}: a genre name is longer than {MAX_GENRE_LEN} characters")
    for batch in reader.iter_batches(where, settings.load_batch_size):
        lengths = pc.utf8_length(batch.column("title")).to_numpy(zero_copy_only=False).astype(np.float64)
        lengths = np.nan_to_num(lengths, nan=0)
        if lengths.size and lengths.max() > MAX_TITLE_CHARS:
            i = int(lengths.argmax())
            mid = batch.column("movie_id")[i].as_py()
            raise RunFormatError(
                f"{where}: the title of movie {mid} is {int(lengths[i])} characters (max {MAX_TITLE_CHARS})"
            )


def check_size_against_live(v: ValidatedRun, meta: MetadataStore, ratio: float) -> None:
    """RunTooSmall when the run has under `ratio` of the live run's movies, vectors or users: such a
    shrink is far more often a broken training input than an intended change, so it needs --force."""
    live = RETRY.call("live_run", meta.live_run)
    if live is None or live.run_id == v.manifest.run_id or ratio <= 0:
        return
    have = {"movies": v.n_movies, "embeddings": v.n_embeddings, "users": v.n_users}
    for key, n in have.items():
        before = int((live.counts or {}).get(key) or 0)
        if before and n < ratio * before:
            raise RunTooSmall(
                f"run {v.manifest.run_id} has {n} {key}, under {ratio:.0%} of the live run "
                f"{live.run_id}'s {before}; load it with --force (Lambda: force=true) if that is intended"
            )


def validate_run(reader: RunReader, settings: Settings) -> ValidatedRun:
    """Full contract check of a run (no store is touched). Raises RunFormatError with the reason."""
    import numpy as np
    import pyarrow.compute as pc

    t0 = time.perf_counter()
    m = reader.manifest()
    reader.verify_files()

    movies_pf = reader.open_parquet(artifacts.MOVIES)
    cols = set(movies_pf.schema_arrow.names)
    if not {"movie_id", "title", "year", "genres"} <= cols:
        raise RunFormatError(
            f"{artifacts.MOVIES} lacks columns {sorted({'movie_id', 'title', 'year', 'genres'} - cols)}"
        )
    movies = movies_pf.read(columns=["movie_id", "year", "genres"])
    if movies.column("movie_id").null_count:
        raise RunFormatError(f"{artifacts.MOVIES}: null movie_id")
    movie_ids = movies.column("movie_id").to_numpy().astype(np.int64)  # (n_movies,)
    if movie_ids.size == 0:
        raise RunFormatError(f"{artifacts.MOVIES} has no movies: an empty run can never serve")
    _check_movie_fields(reader, movies, movie_ids, settings)
    order = np.argsort(movie_ids, kind="stable")
    sorted_ids = movie_ids[order]
    dup = sorted_ids[1:][sorted_ids[1:] == sorted_ids[:-1]]
    if dup.size:
        raise RunFormatError(f"{artifacts.MOVIES}: duplicate movie_id {sorted(set(dup.tolist()))[:10]}")
    if len(movie_ids) != m.counts.movies:
        raise RunFormatError(
            f"{artifacts.MOVIES} has {len(movie_ids)} rows, manifest counts.movies={m.counts.movies}"
        )

    seen_emb = np.zeros(len(movie_ids), dtype=bool)
    n_emb = 0
    for batch in reader.open_parquet(artifacts.EMBEDDINGS).iter_batches(batch_size=settings.load_batch_size):
        where = f"{artifacts.EMBEDDINGS} rows {n_emb}..{n_emb + batch.num_rows - 1}"
        ids = batch.column("movie_id").to_numpy(zero_copy_only=False).astype(np.int64)
        vecs = _embedding_matrix(batch.column("embedding"), m.dim, where)
        pos = np.searchsorted(sorted_ids, ids)
        pos = np.minimum(pos, len(sorted_ids) - 1) if len(sorted_ids) else pos
        unknown = ids[(len(sorted_ids) == 0) | (sorted_ids[pos] != ids)] if len(ids) else ids
        if unknown.size:
            raise RunFormatError(f"{where}: movie ids not in {artifacts.MOVIES}: {unknown[:10].tolist()}")
        if seen_emb[pos].any() or len(np.unique(pos)) != len(pos):
            raise RunFormatError(f"{where}: duplicate movie_id in embeddings")
        seen_emb[pos] = True
        if not np.isfinite(vecs).all():
            raise RunFormatError(f"{where}: non-finite values (NaN/inf) in embeddings")
        norms = np.linalg.norm(vecs, axis=1)  # (n,)
        bad = np.flatnonzero(np.abs(norms - 1.0) > NORM_TOLERANCE)
        if bad.size:
            raise RunFormatError(
                f"{where}: embedding of movie {int(ids[bad[0]])} has norm {float(norms[bad[0]]):.4f}, "
                "expected L2-normalised vectors"
            )
        n_emb += batch.num_rows
    if n_emb != m.counts.embeddings:
        raise RunFormatError(
            f"{artifacts.EMBEDDINGS} has {n_emb} rows, manifest counts.embeddings={m.counts.embeddings}"
        )
    if n_emb == 0:
        raise RunFormatError(f"{artifacts.EMBEDDINGS} has no embeddings: an empty run can never serve")

    n_users = 0
    unknown_hist = 0
    seen_users: set[int] = set()
    for batch in reader.iter_batches(artifacts.USER_HISTORY, settings.load_batch_size):
        if batch.column("user_id").null_count:
            raise RunFormatError(f"{artifacts.USER_HISTORY}: null user_id")
        uids = batch.column("user_id").to_numpy(zero_copy_only=False).astype(np.int64)
        if uids.size and int(uids.min()) < 0:
            raise RunFormatError(
                f"{artifacts.USER_HISTORY}: negative user_id {int(uids.min())} (the API only serves ids >= 0)"
            )
        lengths = pc.list_value_length(batch.column("movie_ids")).to_numpy(zero_copy_only=False)
        if lengths.size and np.nan_to_num(lengths, nan=0).max() > MAX_HISTORY_LEN:
            at = int(np.nanargmax(lengths))
            raise RunFormatError(
                f"{artifacts.USER_HISTORY}: user {int(uids[at])} has {int(lengths[at])} movies "
                f"(at most {MAX_HISTORY_LEN} fit in the store)"
            )
        dups = len(uids) - len(set(uids.tolist()))
        if dups or not seen_users.isdisjoint(uids.tolist()):
            raise RunFormatError(f"{artifacts.USER_HISTORY}: duplicate user_id")
        seen_users.update(uids.tolist())
        flat = pc.list_flatten(batch.column("movie_ids")).to_numpy(zero_copy_only=False)
        if flat.size and len(sorted_ids):
            p = np.minimum(np.searchsorted(sorted_ids, flat), len(sorted_ids) - 1)
            unknown_hist += int((sorted_ids[p] != flat).sum())
        n_users += batch.num_rows
    if n_users != m.counts.users:
        raise RunFormatError(
            f"{artifacts.USER_HISTORY} has {n_users} rows, manifest counts.users={m.counts.users}"
        )
    if n_users == 0:
        raise RunFormatError(f"{artifacts.USER_HISTORY} has no users: an empty run can never serve")
    if unknown_hist:
        logger.warning(
            "user histories reference movies missing from movies.parquet (kept, ignored by the API)",
            extra={"run_id": m.run_id, "unknown_ids": unknown_hist},
        )
    logger.info(
        "run validated",
        extra={
            "run_id": m.run_id,
            "movies": len(movie_ids),
            "embeddings": n_emb,
            "users": n_users,
            "dim": m.dim,
            "seconds": round(time.perf_counter() - t0, 3),
        },
    )
    return ValidatedRun(m, len(movie_ids), n_users, n_emb, sorted_ids, order, movies, unknown_hist)


# ----------------------------------------------------------------------------------- loading
@dataclass
class LoadResult:
    manifest_uri: str
    run_id: str | None
    outcome: str  # "live" | "noop" | "failed" | "busy" (another loader holds this run; retry later)
    reason: str | None = None
    previous_live: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    transient: bool = False  # failure that a retry may fix (store down)


def _progress(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="row", unit_scale=True, disable=not enabled, file=sys.stderr)


def _advance(bar: Any, n: int, _future: Any) -> None:
    bar.update(n)


def _batches(reader: RunReader, name: str, batch_size: int) -> Iterator[pa.RecordBatch]:
    yield from reader.iter_batches(name, batch_size)


def _load_metadata(
    reader: RunReader, v: ValidatedRun, meta: MetadataStore, settings: Settings, progress: bool
) -> tuple[float, float]:
    """Movies then user histories into MySQL, batch by batch (upserts: a retried batch is harmless)."""
    from shared.metadata_store import Movie

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


def _vector_batches(
    reader: RunReader, v: ValidatedRun, batch_size: int
) -> Iterator[tuple[Any, Any, list, list]]:
    """(ids, vectors (n, dim), genres, years) per batch, genres/year joined from movies.parquet."""
    import numpy as np
    import pyarrow as pa

    genres_col = v.movies.column("genres")
    year_col = v.movies.column("year")
    for batch in _batches(reader, artifacts.EMBEDDINGS, batch_size):
        ids = batch.column("movie_id").to_numpy(zero_copy_only=False).astype(np.int64)
        vecs = _embedding_matrix(batch.column("embedding"), v.manifest.dim, artifacts.EMBEDDINGS)  # (n, dim)
        rows = pa.array(v.movie_order[np.searchsorted(v.movie_ids_sorted, ids)])
        yield ids, vecs, genres_col.take(rows).to_pylist(), year_col.take(rows).to_pylist()


def _load_vectors(
    reader: RunReader, v: ValidatedRun, vectors: VectorStore, settings: Settings, progress: bool
) -> tuple[float, float]:
    """Embeddings into the run's collection. While Milvus ingests one batch the next one is decoded
    (a one-slot pipeline: the gRPC call releases the GIL), which is worth ~1.5x on Milvus Lite."""
    from concurrent.futures import Future, ThreadPoolExecutor

    run_id = v.manifest.run_id
    t0 = time.perf_counter()
    staging = bulk_staging_uri(vectors, v.n_embeddings)
    if staging is not None:
        return _bulk_load_vectors(reader, v, vectors, settings, staging)
    RETRY.call("create_collection", lambda: vectors.create_collection(run_id, v.manifest.dim))
    t_setup = time.perf_counter() - t0
    pending: Future[None] | None = None
    with (
        ThreadPoolExecutor(max_workers=1) as pool,
        _progress(v.n_embeddings, "vectors -> Milvus", progress) as bar,
    ):
        for ids, vecs, genres, years in _vector_batches(reader, v, settings.load_batch_size):
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


def bulk_staging_uri(vectors: VectorStore, n_vectors: int) -> str | None:
    """Where to stage files for Milvus bulk import, or None for row inserts.

    Bulk import is used only against a Milvus/Zilliz server (Lite has no import service), for runs of at
    least MILVUS_BULK_MIN_ROWS vectors (default 200,000), and when MILVUS_BULK_STAGING_URI names a prefix in
    the bucket the Milvus server reads from (s3://milvus-bucket/graphrec-import).
    """
    staging = os.environ.get("MILVUS_BULK_STAGING_URI", "").strip()
    min_rows = int(os.environ.get("MILVUS_BULK_MIN_ROWS", "200000"))
    if vectors.is_lite or not staging or n_vectors < min_rows:
        return None
    return staging


def _bulk_load_vectors(
    reader: RunReader, v: ValidatedRun, vectors: VectorStore, settings: Settings, staging: str
) -> tuple[float, float]:
    """Stage Parquet files, run Milvus' import job, then remove the staged files."""
    from shared.vector_store import run_bulk_import, stage_bulk_files

    run_id = v.manifest.run_id
    t0 = time.perf_counter()
    if RETRY.call("count_vectors", lambda: vectors.count(run_id)) > 0:
        # Import appends: a partial collection from a crashed attempt must go first (no duplicates).
        RETRY.call("drop_partial", lambda: vectors.drop(run_id))
    RETRY.call("create_collection", lambda: vectors.create_collection(run_id, v.manifest.dim))
    t_setup = time.perf_counter() - t0
    uris = stage_bulk_files(run_id, _vector_batches(reader, v, settings.load_batch_size), staging)
    logger.info("bulk import staged", extra={"run_id": run_id, "files": len(uris), "staging_uri": staging})
    job = run_bulk_import(vectors, run_id, uris)
    logger.info("bulk import done", extra={"run_id": run_id, "job_id": job})
    objectstore.delete_prefix(objectstore.join(staging, artifacts.collection_name(run_id)))
    return t_setup, time.perf_counter() - t0 - t_setup


def _verify_counts(v: ValidatedRun, meta: MetadataStore, vectors: VectorStore) -> dict[str, int]:
    run_id = v.manifest.run_id
    got = {
        "embeddings": RETRY.call("count_vectors", lambda: vectors.count(run_id)),
        "movies": RETRY.call("count_movies", lambda: meta.count_movies(run_id)),
        "users": RETRY.call("count_users", lambda: meta.count_users(run_id)),
    }
    want = {"embeddings": v.n_embeddings, "movies": v.n_movies, "users": v.n_users}
    if got != want:
        raise LoadError(f"count mismatch after load: stores have {got}, run has {want}")
    return got


def _cleanup(run_id: str, meta: MetadataStore, vectors: VectorStore) -> None:
    """Best effort: remove a failed run's partial data (the runs row stays, with the reason)."""
    try:
        if vectors.alias_target() != artifacts.collection_name(run_id):
            vectors.drop(run_id)
        meta.delete_run_data(run_id)
    except Exception as exc:  # noqa: BLE001 - stores may be the reason we are failing
        logger.warning("cleanup of failed run incomplete", extra={"run_id": run_id, "error": str(exc)})


def _mark_failed(run_id: str, reason: str, meta: MetadataStore, manifest_uri: str) -> bool:
    """Record the failure; False when the run is live or retired (never demoted) or MySQL is down."""
    try:
        rec = meta.get_run(run_id)
        if rec is not None and rec.status in (RunStatus.LIVE, RunStatus.RETIRED):
            return False  # a concurrent/earlier load already succeeded: never demote a good run
        if rec is None:
            meta.upsert_run(run_id, status=RunStatus.FAILED, dim=0, counts={}, metrics={}, manifest_uri=manifest_uri)
        meta.set_status(run_id, RunStatus.FAILED, reason[:2000])
        return True
    except Exception as exc:  # noqa: BLE001
        logger.error(
            "could not record failure", extra={"run_id": run_id, "reason": reason, "error": str(exc)}
        )
        return True


def load_run(
    manifest_uri: str,
    *,
    settings: Settings | None = None,
    meta: MetadataStore | None = None,
    vectors: VectorStore | None = None,
    progress: bool = False,
    force: bool = False,
    reload: bool = False,
) -> LoadResult:
    """Validate, load, verify and switch one run. Never raises for a bad run: returns outcome 'failed'.

    force: load even when the run is drastically smaller than the live one (LOADER_MIN_SIZE_RATIO).
    reload: a *retired* run is made live again, re-ingested from its folder when its data was pruned or
    is incomplete (the CLI's default; an S3 event for a retired run stays a no-op, so a late duplicate
    event can never switch production back to an old run).
    """
    settings = settings or get_settings()
    if meta is None or vectors is None:
        meta, vectors = get_stores(settings)
    run_id = run_id_from_uri(manifest_uri)
    res = LoadResult(manifest_uri=manifest_uri, run_id=run_id, outcome="failed")
    t_start = time.perf_counter()
    log = {"run_id": run_id, "manifest_uri": manifest_uri}
    logger.info("load requested", extra=log)
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(meta.run_lock(run_id or manifest_uri))
        except StoreUnavailable as exc:
            res.reason, res.transient = f"store unavailable: {exc}", True
            logger.error("load failed; live run unchanged", extra={**log, "reason": res.reason})
            return res
        if not held:
            # One loader per run at a time (duplicate events delivered concurrently); see run_lock().
            res.outcome, res.transient = "busy", True
            res.reason = "another loader is loading this run right now; retry later (a no-op if that load succeeds)"
            logger.warning("run is being loaded by another loader", extra=log)
            return res
        return _load_locked(manifest_uri, res, settings, meta, vectors, progress, t_start, force, reload)


def _load_locked(
    manifest_uri: str,
    res: LoadResult,
    settings: Settings,
    meta: MetadataStore,
    vectors: VectorStore,
    progress: bool,
    t_start: float,
    force: bool = False,
    reload: bool = False,
) -> LoadResult:
    """load_run() once the run's lock is held: validate, load, verify, switch; record any failure."""
    run_id = res.run_id
    log = {"run_id": run_id, "manifest_uri": manifest_uri}
    try:
        if run_id is not None:
            existing = RETRY.call("get_run", partial(meta.get_run, run_id))
            if existing is not None and (
                existing.status == RunStatus.LIVE or (existing.status == RunStatus.RETIRED and not reload)
            ):
                logger.info("run already loaded; nothing to do", extra={**log, "status": existing.status})
                res.outcome, res.reason = "noop", f"run is already {existing.status}"
                if existing.status == RunStatus.RETIRED:
                    res.reason += "; load it from the CLI (or with \"reload\": true) to make it live again"
                return res
        reader = RunReader(manifest_uri)
        v = validate_run(reader, settings)
        run_id = res.run_id = v.manifest.run_id
        res.seconds["validate"] = round(time.perf_counter() - t_start, 3)
        if not force:
            check_size_against_live(v, meta, settings.loader_min_size_ratio)

        existing = RETRY.call("get_run", lambda: meta.get_run(run_id))
        reuse = existing is not None and existing.status == RunStatus.RETIRED and _complete(existing, meta, vectors)
        if existing is not None and (existing.status == RunStatus.FAILED or (existing.status == RunStatus.RETIRED and not reuse)):
            # A failed attempt has no concurrent loader: start clean (fast inserts, no stale rows). A retired
            # run whose data was pruned (or is partial) is re-ingested from its folder the same way.
            RETRY.call("cleanup", lambda: _cleanup(run_id, meta, vectors))
            if existing.status == RunStatus.RETIRED:
                logger.info("re-ingesting a retired run", extra={**log, "run_id": run_id, "reason": existing.reason})
        if reuse:
            logger.info("retired run is complete in the stores; making it live again", extra={**log, "run_id": run_id})
        elif existing is None or existing.status != RunStatus.READY:
            RETRY.call(
                "upsert_run",
                lambda: meta.upsert_run(
                    run_id,
                    status=RunStatus.LOADING,
                    dim=v.manifest.dim,
                    counts=v.manifest.counts.model_dump(),
                    metrics={**v.manifest.metrics, "recipe": v.manifest.recipe},
                    manifest_uri=manifest_uri,
                ),
            )
            t_movies, t_hist = _load_metadata(reader, v, meta, settings, progress)
            t_setup, t_insert = _load_vectors(reader, v, vectors, settings, progress)
            res.seconds.update(
                mysql_movies=round(t_movies, 3),
                mysql_histories=round(t_hist, 3),
                mysql=round(t_movies + t_hist, 3),
                milvus_setup=round(t_setup, 3),
                milvus_insert=round(t_insert, 3),
                milvus=round(t_setup + t_insert, 3),
            )
        res.counts = _verify_counts(v, meta, vectors)
        metrics = dict(v.manifest.metrics)
        metrics["recipe"] = v.manifest.recipe  # the API forms queries with it (shared/recipe.py)
        metrics["load"] = {
            "seconds": res.seconds,
            "vectors_per_s": round(v.n_embeddings / res.seconds["milvus"], 1)
            if res.seconds.get("milvus")
            else None,
            "history_unknown_ids": v.history_unknown_ids,
        }
        if not reuse:  # a complete retired run goes live as it is (switch_live accepts retired runs)
            RETRY.call(
                "mark_ready",
                lambda: meta.upsert_run(
                    run_id,
                    status=RunStatus.READY,
                    dim=v.manifest.dim,
                    counts=v.manifest.counts.model_dump(),
                    metrics=metrics,
                    manifest_uri=manifest_uri,
                ),
            )
        res.previous_live = _go_live(run_id, meta, vectors)
        res.outcome = "live"
        prune_retired(meta, vectors, settings.keep_runs)
    except (RunFormatError, LoadError, ValueError, KeyError) as exc:
        res.reason = f"{type(exc).__name__}: {exc}"
    except StoreUnavailable as exc:
        res.reason, res.transient = f"store unavailable: {exc}", True
    except Exception as exc:  # noqa: BLE001 - any other failure must still leave the live run serving
        if _is_bad_data(exc):  # a value the store cannot hold: permanent, named, never redelivered
            res.reason = f"bad data, not retried: {type(exc).__name__}: {exc}"
        else:
            res.reason, res.transient = f"{type(exc).__name__}: {exc}", True
            logger.exception("unexpected loader error", extra=log)
    res.seconds["total"] = round(time.perf_counter() - t_start, 3)
    if res.outcome == "failed":
        logger.error("load failed; live run unchanged", extra={**log, "run_id": run_id, "reason": res.reason})
        # Partial data goes only when the run is now marked failed: a live or retired run (e.g. a reload
        # refused as too small) keeps its data.
        marked = run_id is not None and _mark_failed(run_id, res.reason or "unknown", meta, manifest_uri)
        if marked and run_id is not None and not res.transient:
            _cleanup(run_id, meta, vectors)
    else:
        logger.info(
            "run is live",
            extra={**log, "previous_live": res.previous_live, "counts": res.counts, "seconds": res.seconds},
        )
    return res


def _go_live(run_id: str, meta: MetadataStore, vectors: VectorStore) -> str | None:
    """Alias first, then the MySQL marker (the API's source of truth); on failure put the alias back."""
    before = RETRY.call("alias_target", vectors.alias_target)
    RETRY.call("set_alias", lambda: vectors.set_alias(run_id))
    try:
        return RETRY.call("switch_live", lambda: meta.switch_live(run_id))
    except BaseException:
        previous = artifacts.run_id_of_collection(before)
        if previous is not None:
            try:
                vectors.set_alias(previous)
            except Exception as exc:  # noqa: BLE001
                logger.error("could not restore alias", extra={"alias_target": before, "error": str(exc)})
        raise


def prune_retired(meta: MetadataStore, vectors: VectorStore, keep: int) -> list[str]:
    """Keep the `keep` most recently retired runs with data; drop collections + rows of older ones."""
    retired = [r for r in meta.list_runs() if r.status == RunStatus.RETIRED and r.reason != PRUNED]
    retired.sort(key=lambda r: r.updated_at, reverse=True)
    pruned = []
    for rec in retired[max(keep, 0) :]:
        try:
            RETRY.call("drop", partial(vectors.drop, rec.run_id))
            RETRY.call("delete_run_data", partial(meta.delete_run_data, rec.run_id))
            meta.set_status(rec.run_id, RunStatus.RETIRED, PRUNED)
            pruned.append(rec.run_id)
        except Exception as exc:  # noqa: BLE001 - pruning is housekeeping; never fail a load for it
            logger.warning("prune failed", extra={"run_id": rec.run_id, "error": str(exc)})
    if pruned:
        logger.info("pruned retired runs", extra={"pruned": pruned, "keep_runs": keep})
    return pruned


def _complete(rec: Any, meta: MetadataStore, vectors: VectorStore) -> bool:
    want = rec.counts or {}
    try:
        return (
            rec.reason != PRUNED
            and vectors.count(rec.run_id) == want.get("embeddings", -1)
            and meta.count_movies(rec.run_id) == want.get("movies", -1)
            and meta.count_users(rec.run_id) == want.get("users", -1)
        )
    except StoreUnavailable:
        raise
    except Exception:  # noqa: BLE001 - e.g. collection missing
        return False


def rollback(
    meta: MetadataStore, vectors: VectorStore, to: str | None = None, settings: Settings | None = None
) -> tuple[str, str | None]:
    """Make the most recently retired complete run (or `to`) live again. Returns (new_live, old_live).

    A `to` run whose data was pruned (or is partial) is re-ingested from its run folder (the manifest URI
    its row remembers) and then switched live, like any load."""
    if to is not None:
        rec = meta.get_run(to)
        if rec is None or rec.status not in (RunStatus.RETIRED, RunStatus.READY):
            raise LoadError(f"run {to} is {'unknown' if rec is None else rec.status}; cannot roll back to it")
        if not _complete(rec, meta, vectors):
            if not rec.manifest_uri:
                raise LoadError(f"run {to} is incomplete in the stores (pruned or partial) and has no manifest URI")
            res = load_run(rec.manifest_uri, settings=settings, meta=meta, vectors=vectors, force=True, reload=True)
            if res.outcome != "live":
                raise LoadError(f"run {to} could not be re-ingested from {rec.manifest_uri}: {res.reason}")
            logger.info("rolled back (re-ingested)", extra={"run_id": to, "previous_live": res.previous_live})
            return to, res.previous_live
        target: Any = rec
    else:
        candidates = sorted(
            (r for r in meta.list_runs() if r.status == RunStatus.RETIRED), key=lambda r: r.updated_at, reverse=True
        )
        target = next((r for r in candidates if _complete(r, meta, vectors)), None)
        if target is None:
            raise LoadError("no retired run with complete data to roll back to")
    old = _go_live(target.run_id, meta, vectors)
    logger.info("rolled back", extra={"run_id": target.run_id, "previous_live": old})
    return target.run_id, old


# ----------------------------------------------------------------------------------- Lambda
def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point. Loads every manifest the event names; raises (so Lambda/SQS retries) only when
    a failure was transient (store unavailable); bad runs are recorded as failed and not retried."""
    uris = manifest_uris_from_event(event or {})
    if not uris:
        logger.info("event names no manifest; nothing to do")
        return {"results": []}
    # Direct invocations may ask for {"force": true} (a much smaller run) and {"reload": true} (a retired
    # run made live again); S3 notifications never carry them.
    force, reload = event.get("force") is True, event.get("reload") is True
    results = [load_run(uri, force=force, reload=reload) for uri in uris]
    body = {"results": [asdict(r) for r in results]}
    transient = [r for r in results if r.outcome in ("failed", "busy") and r.transient]
    if transient:
        raise RuntimeError(
            f"transient failure loading {[r.run_id for r in transient]}: {transient[0].reason}"
        )
    return body


# ----------------------------------------------------------------------------------- CLI
def latest_manifest(artifact_uri: str) -> str | None:
    """The newest complete run under artifact_uri (run ids sort by time)."""
    runs = sorted(
        {
            objectstore.basename(objectstore.parent(u))
            for u in objectstore.list_uris(artifact_uri)
            if u.endswith("/" + artifacts.MANIFEST) and run_id_from_uri(u)
        }
    )
    return objectstore.join(artifact_uri, runs[-1], artifacts.MANIFEST) if runs else None


def _print_runs(meta: MetadataStore, vectors: VectorStore) -> None:
    target = vectors.alias_target()
    rows = meta.list_runs()
    if not rows:
        print("no runs")
        return
    print(
        f"{'run_id':<28} {'status':<8} {'dim':>4} {'movies':>8} {'users':>8} {'vectors':>9}  updated_at           reason"
    )
    for r in rows:
        c = r.counts or {}
        mark = " *alias" if artifacts.run_id_of_collection(target) == r.run_id else ""
        print(
            f"{r.run_id:<28} {r.status:<8} {r.dim:>4} {c.get('movies', ''):>8} {c.get('users', ''):>8} "
            f"{c.get('embeddings', ''):>9}  {r.updated_at:%Y-%m-%d %H:%M:%S}  {r.reason or ''}{mark}"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m handlers.loader",
        description=(
            "Load a training run (its manifest.json) into Milvus + MySQL and make it live. The run is "
            "validated first (checksums, dim, ids, unit-norm vectors), loaded beside the live run, its "
            "counts verified, and only then switched live; a failure leaves the live run serving and records "
            "the run as failed with the reason. Re-running for a live run is a no-op."
        ),
        epilog=(
            "examples:\n"
            "  python -m handlers.loader s3://bucket/runs/20261123T091500Z_1a2b3c4d/manifest.json\n"
            "  python -m handlers.loader .local/runs/20261123T091500Z_1a2b3c4d   # a run folder works too\n"
            "  python -m handlers.loader --latest        # newest run under ARTIFACT_URI\n"
            "  python -m handlers.loader --list          # runs, their status and counts\n"
            "  python -m handlers.loader --rollback      # back to the most recent complete retired run\n"
            "\nstores come from the environment: MILVUS_URI/MILVUS_TOKEN, MYSQL_* or MYSQL_SECRET_ARN "
            "(see shared/settings.py); KEEP_RUNS retired runs are kept for rollback, LOAD_BATCH_SIZE rows per batch."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("manifest_uri", nargs="?", help="manifest.json (or run folder) path or s3:// URI")
    g.add_argument("--latest", action="store_true", help="load the newest run under ARTIFACT_URI")
    g.add_argument("--list", action="store_true", help="list runs (newest first) and exit")
    g.add_argument("--rollback", action="store_true", help="make the previous complete run live again")
    p.add_argument("--to", metavar="RUN_ID", help="with --rollback: the run to make live (re-ingested if pruned)")
    p.add_argument(
        "--force",
        action="store_true",
        help="load even when the run has under LOADER_MIN_SIZE_RATIO (default 50%%) of the live run's "
        "movies, vectors or users",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    log_to_stderr()  # stdout carries the result (JSON) only
    settings = get_settings()
    try:
        meta, vectors = get_stores(settings)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.list:
        _print_runs(meta, vectors)
        return 0
    if args.rollback:
        try:
            new, old = rollback(meta, vectors, args.to, settings)
        except LoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"live: {new} (was {old})")
        return 0
    uri = args.manifest_uri
    if args.latest:
        uri = latest_manifest(settings.artifact_uri)
        if uri is None:
            print(f"error: no run with a manifest under {settings.artifact_uri}", file=sys.stderr)
            return 1
    if not uri.rstrip("/").endswith(artifacts.MANIFEST):
        uri = objectstore.join(uri, artifacts.MANIFEST)
    # An operator naming a run means "make it live": a retired (even pruned) run is re-ingested.
    res = load_run(
        uri, settings=settings, meta=meta, vectors=vectors, progress=not args.no_progress, force=args.force, reload=True
    )
    print(json.dumps(asdict(res), indent=2, default=str))
    if res.outcome == "failed":
        return 2
    if res.outcome == "busy":
        return 4  # another loader holds this run; run again later
    return 0


if __name__ == "__main__":
    sys.exit(main())
