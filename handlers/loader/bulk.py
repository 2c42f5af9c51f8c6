"""Milvus bulk import for big runs: stage Parquet files where the server reads, run its import job."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from handlers.loader.retry import RETRY
from shared.config.log import get_logger
from shared.config.settings import Settings, get_settings
from shared.contract import artifacts, objectstore

if TYPE_CHECKING:  # pragma: no cover
    from handlers.loader.validation import ValidatedRun
    from shared.stores.milvus.store import VectorStore

logger = get_logger(__name__)


def bulk_staging_uri(vectors: VectorStore, n_vectors: int, settings: Settings | None = None) -> str | None:
    """Where to stage files for Milvus bulk import, or None for row inserts.

    Bulk import is used only against a Milvus/Zilliz server (Lite has no import service), for runs of at
    least GRAPHREC_MILVUS_BULK_MIN_ROWS vectors (default 200,000), and when GRAPHREC_MILVUS_BULK_STAGING_URI names a prefix in
    the bucket the Milvus server reads from (s3://milvus-bucket/graphrec-import).
    """
    settings = settings or get_settings()
    staging = settings.milvus_bulk_staging_uri.strip()
    min_rows = settings.milvus_bulk_min_rows
    if vectors.is_lite or not staging or n_vectors < min_rows:
        return None
    return staging


def bulk_load_vectors(
    v: ValidatedRun, batches: Iterable[tuple[Any, Any, list, list]], vectors: VectorStore, staging: str
) -> tuple[float, float]:
    """Stage Parquet files, run Milvus' import job, then remove the staged files."""
    from shared.stores.milvus.bulk import run_bulk_import, stage_bulk_files

    run_id = v.manifest.run_id
    t0 = time.perf_counter()
    if RETRY.call("count_vectors", lambda: vectors.count(run_id)) > 0:
        # Import appends: a partial collection from a crashed attempt must go first (no duplicates).
        RETRY.call("drop_partial", lambda: vectors.drop(run_id))
    RETRY.call("create_collection", lambda: vectors.create_collection(run_id, v.manifest.dim))
    t_setup = time.perf_counter() - t0
    uris = stage_bulk_files(run_id, batches, staging)
    logger.info("bulk import staged", extra={"run_id": run_id, "files": len(uris), "staging_uri": staging})
    job = run_bulk_import(vectors, run_id, uris)
    logger.info("bulk import done", extra={"run_id": run_id, "job_id": job})
    objectstore.delete_prefix(objectstore.join(staging, artifacts.collection_name(run_id)))
    return t_setup, time.perf_counter() - t0 - t_setup
