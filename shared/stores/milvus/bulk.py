"""Milvus bulk import: for large runs on a Milvus/Zilliz *server*, row inserts through the proxy are the
slow path; Milvus' bulk import reads Parquet files straight from object storage into sealed, indexed
segments. The files must live in the bucket the Milvus server reads from (self-hosted: its MinIO/S3
bucket). The import job is driven through Milvus' REST API v2 (its own small client below).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from shared.contract.artifacts import collection_name
from shared.errors import BulkImportError, StoreUnavailable
from shared.stores.milvus.schema import GENRES, PK, VECTOR, YEAR, stored_year


class ImportTarget(Protocol):
    """What a bulk import needs of the vector store (a VectorStore fits): its server's address and token.
    A Protocol, not the class, so that this module and store.py do not import each other."""

    uri: str
    is_lite: bool
    _token: str | None

BULK_ROWS_PER_FILE = 500_000


def bulk_file_table(ids: Any, vectors: Any, genres: Sequence[list[str]], years: Sequence[int | None]) -> Any:
    """One batch as a pyarrow Table in Milvus' import layout (column names = field names)."""
    import numpy as np
    import pyarrow as pa

    vecs = np.ascontiguousarray(vectors, dtype=np.float32)  # (n, dim)
    n, _dim = vecs.shape
    offsets = pa.array(np.arange(0, vecs.size + 1, vecs.shape[1], dtype=np.int32))
    return pa.table(
        {
            PK: pa.array(np.asarray(ids, dtype=np.int64)),
            VECTOR: pa.ListArray.from_arrays(offsets, pa.array(vecs.reshape(-1), type=pa.float32())),
            GENRES: pa.array([list(g or []) for g in genres], type=pa.list_(pa.string())),
            YEAR: pa.array([stored_year(y) for y in years], type=pa.int32()),
        }
    )


def stage_bulk_files(
    run_id: str,
    batches: Iterable[tuple[Any, Any, Sequence[list[str]], Sequence[int | None]]],
    staging_uri: str,
    rows_per_file: int = BULK_ROWS_PER_FILE,
) -> list[str]:
    """Write the run's rows as Parquet files under `staging_uri/<collection>/` (s3:// or local);
    returns their URIs. Memory stays bounded by one file's worth of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shared.contract import objectstore

    base = objectstore.join(staging_uri, collection_name(run_id))
    uris: list[str] = []
    pending: list[Any] = []
    n_pending = 0

    def flush() -> None:
        nonlocal pending, n_pending
        if not pending:
            return
        import io

        buf = io.BytesIO()
        pq.write_table(pa.concat_tables(pending), buf, compression="zstd")
        uri = objectstore.join(base, f"part-{len(uris):05d}.parquet")
        objectstore.write_bytes(uri, buf.getvalue())
        uris.append(uri)
        pending, n_pending = [], 0

    for ids, vecs, genres, years in batches:
        pending.append(bulk_file_table(ids, vecs, genres, years))
        n_pending += len(ids)
        if n_pending >= rows_per_file:
            flush()
    flush()
    return uris


def import_request(collection: str, file_uris: Sequence[str], db_name: str = "") -> dict[str, Any]:
    """Body of Milvus' REST `POST /v2/vectordb/jobs/import/create`: one file per group, paths relative
    to the server's bucket (the s3://bucket/ part is dropped)."""
    files = []
    for uri in file_uris:
        key = uri.split("://", 1)[1].split("/", 1)[1] if "://" in uri else uri
        files.append([key])
    body: dict[str, Any] = {"collectionName": collection, "files": files}
    if db_name:
        body["dbName"] = db_name
    return body


def _rest(
    base_url: str, path: str, body: dict[str, Any], token: str | None, timeout: float = 30
) -> dict[str, Any]:
    import urllib.request

    req = urllib.request.Request(
        base_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
        method="POST",
    )
    import http.client
    import urllib.error

    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured Milvus URL
            out = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405, 501):  # a server without the REST import service: not worth retrying
            raise BulkImportError(f"Milvus at {base_url} has no REST import service ({path}: HTTP {exc.code})") from exc
        raise StoreUnavailable(f"Milvus REST {path} failed: HTTP {exc.code}") from exc
    except http.client.HTTPException as exc:  # e.g. a gRPC-only port answering HTTP/2 frames
        raise BulkImportError(
            f"Milvus at {base_url} does not speak the REST API ({path}: {type(exc).__name__}); bulk import needs "
            "Milvus 2.4+ or Zilliz Cloud with RESTful v2"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StoreUnavailable(f"Milvus REST {path} unreachable: {exc}") from exc
    if out.get("code", 0) != 0:
        raise BulkImportError(f"Milvus REST {path} failed: code {out.get('code')}: {out.get('message')}")
    return dict(out.get("data") or {})


def run_bulk_import(
    store: ImportTarget, run_id: str, file_uris: Sequence[str], *, timeout_s: float = 3600, poll_s: float = 5
) -> str:
    """Start a Milvus bulk import of staged files into the run's (existing) collection and wait for it.
    Returns the job id. Needs a Milvus/Zilliz server (Milvus Lite has no import service)."""
    import time

    if store.is_lite:
        raise ValueError("bulk import needs a Milvus server; Milvus Lite has no import service")
    name = collection_name(run_id)
    job = _rest(store.uri, "/v2/vectordb/jobs/import/create", import_request(name, file_uris), store._token)
    job_id = str(job.get("jobId", ""))
    deadline = time.monotonic() + timeout_s
    while True:
        state = _rest(store.uri, "/v2/vectordb/jobs/import/describe", {"jobId": job_id}, store._token)
        status = str(state.get("state", ""))
        if status == "Completed":
            return job_id
        if status == "Failed":
            raise BulkImportError(f"import job {job_id} failed: {state.get('reason')}")
        if time.monotonic() > deadline:
            raise BulkImportError(f"import job {job_id} still {status!r} after {timeout_s:.0f} s")
        time.sleep(poll_s)
