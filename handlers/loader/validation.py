"""Full contract check of a run folder before any store is touched (checksums, dim, ids, finite unit
vectors, values that fit the stores), and the size check against the live run."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from handlers.loader.errors import RunTooSmall
from handlers.loader.retry import RETRY
from shared.config.log import get_logger
from shared.config.settings import Settings
from shared.contract import artifacts
from shared.contract.artifacts import RunFormatError, RunReader

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pyarrow as pa

    from shared.stores.mysql.store import MetadataStore

logger = get_logger(__name__)

NORM_TOLERANCE = 1e-3  # |‖v‖ - 1| allowed for "L2-normalised" float32 vectors
# What the stores can hold, checked before any write (a value that does not fit is bad data, not a
# transient error): movies.title VARCHAR(1024), movies.year SMALLINT (and a plausible film year),
# user_histories.movie_ids MEDIUMTEXT (16 MiB of JSON: at most ~800k ids of <= 20 characters).
MAX_TITLE_CHARS = 1024
YEAR_RANGE = (1800, 2100)
MAX_HISTORY_LEN = 800_000


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


def embedding_matrix(col: pa.Array, dim: int, where: str) -> np.ndarray:
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


def check_movie_fields(reader: RunReader, movies: pa.Table, movie_ids: np.ndarray, settings: Settings) -> None:
    """Every value of movies.parquet fits the stores and can be served: ids >= 0, titles <= 1024
    characters, years in YEAR_RANGE, at most MAX_GENRES genres of <= MAX_GENRE_LEN characters."""
    import numpy as np
    import pyarrow.compute as pc

    from shared.stores.milvus.schema import MAX_GENRE_LEN, MAX_GENRES

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


def _check_count(name: str, rows: int, declared: int, what: str) -> None:
    """The file has as many rows as the manifest declares, and at least one."""
    if rows != declared:
        raise RunFormatError(f"{name} has {rows} rows, manifest counts.{what}={declared}")
    if rows == 0:
        raise RunFormatError(f"{name} has no {what}: an empty run can never serve")


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
    check_movie_fields(reader, movies, movie_ids, settings)
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
        vecs = embedding_matrix(batch.column("embedding"), m.dim, where)
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
    _check_count(artifacts.EMBEDDINGS, n_emb, m.counts.embeddings, "embeddings")

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
    _check_count(artifacts.USER_HISTORY, n_users, m.counts.users, "users")
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
