"""The run-folder format: the contract between the training job (writer) and the loader (reader).

A run is a folder `OUTPUT_URI/<run_id>/` (local path or s3:// prefix) holding:

- item_embeddings.parquet  movie_id int64, embedding list<float32> (L2-normalised, `dim` values)
- movies.parquet           movie_id int64, title string, year int32 (nullable), genres list<string>
- user_history.parquet     user_id int64, movie_ids list<int64> (chronological, oldest first)
- metrics.json             data counts + rejected lines, training curve, HR/NDCG/coverage vs baselines, timings
- learning_curve.png       the training curve as an image
- config.json              the exact configuration the run was trained with
- manifest.json            written LAST: run_id, created_at, dim, counts, every file with size + sha256,
                           metrics summary, source data. Its presence means the run is complete.

pyarrow is imported lazily: the API Lambda imports `shared` but never reads run folders.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from shared.config.names import LIVE_ALIAS  # noqa: F401 - part of the run contract's names
from shared.contract import objectstore

if TYPE_CHECKING:  # pragma: no cover
    import pyarrow as pa

FORMAT_VERSION = 1
EMBEDDINGS = "item_embeddings.parquet"
MOVIES = "movies.parquet"
USER_HISTORY = "user_history.parquet"
METRICS = "metrics.json"
LEARNING_CURVE = "learning_curve.png"
CONFIG = "config.json"
MANIFEST = "manifest.json"
REQUIRED_FILES = (EMBEDDINGS, MOVIES, USER_HISTORY, METRICS, CONFIG)

RUN_ID_RE = re.compile(r"^[0-9]{8}T[0-9]{6}Z_[0-9a-f]{6,16}$")


class RunFormatError(ValueError):
    """The run folder does not honour the contract (missing file, checksum mismatch, bad manifest...)."""


class FileEntry(BaseModel):
    size: int
    sha256: str


class Counts(BaseModel):
    movies: int
    users: int
    embeddings: int
    ratings: int = 0


class Manifest(BaseModel):
    format_version: int = FORMAT_VERSION
    run_id: str
    created_at: str
    dim: int = Field(gt=0)
    counts: Counts
    files: dict[str, FileEntry]
    metrics: dict[str, Any] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    # How the API forms a query from a user's movies (shared/serving/recipe.py), chosen on validation by the
    # training job. Empty in runs written before recipes existed: the API then uses recipe.LEGACY.
    recipe: dict[str, Any] = Field(default_factory=dict)


def new_run_id(now: datetime | None = None) -> str:
    """Sortable, unique, and safe inside Milvus collection names: '20261123T091500Z_1a2b3c4d'."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}_{secrets.token_hex(4)}"


def validate_run_id(run_id: str) -> str:
    if not RUN_ID_RE.match(run_id):
        raise RunFormatError(f"run_id {run_id!r} does not look like 'YYYYMMDDTHHMMSSZ_<hex>'")
    return run_id


# Milvus names, all derived here: one collection per run, and an alias naming the live one.
COLLECTION_PREFIX = "movies_"


def collection_name(run_id: str) -> str:
    """Milvus collection holding one run's vectors (letters, digits and underscores only)."""
    return f"{COLLECTION_PREFIX}{validate_run_id(run_id)}"


def run_id_of_collection(name: str | None) -> str | None:
    """The run id a collection name belongs to (None for a name that is not a run's collection)."""
    if name is None or not name.startswith(COLLECTION_PREFIX):
        return None
    run_id = name[len(COLLECTION_PREFIX) :]
    return run_id if RUN_ID_RE.match(run_id) else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def table_to_parquet_bytes(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


class RunWriter:
    """Writes one run; `finish()` writes manifest.json last so a half-written run is never 'complete'."""

    def __init__(self, output_uri: str, run_id: str | None = None) -> None:
        self.run_id = validate_run_id(run_id or new_run_id())
        self.run_uri = objectstore.join(output_uri, self.run_id)
        self.files: dict[str, FileEntry] = {}

    def uri(self, name: str) -> str:
        return objectstore.join(self.run_uri, name)

    def write_bytes(self, name: str, data: bytes) -> None:
        objectstore.write_bytes(self.uri(name), data)
        self.files[name] = FileEntry(size=len(data), sha256=sha256_bytes(data))

    def write_json(self, name: str, obj: Any) -> None:
        self.write_bytes(name, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def write_table(self, name: str, table: pa.Table) -> None:
        self.write_bytes(name, table_to_parquet_bytes(table))

    def finish(
        self,
        *,
        dim: int,
        counts: Counts,
        metrics: dict[str, Any] | None = None,
        source: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
        recipe: dict[str, Any] | None = None,
    ) -> Manifest:
        missing = [f for f in REQUIRED_FILES if f not in self.files]
        if missing:
            raise RunFormatError(f"cannot finish run {self.run_id}: missing {missing}")
        manifest = Manifest(
            run_id=self.run_id,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            dim=dim,
            counts=counts,
            files=dict(self.files),
            metrics=metrics or {},
            source=source or {},
            config=config or {},
            recipe=recipe or {},
        )
        objectstore.write_bytes(self.uri(MANIFEST), manifest.model_dump_json(indent=2).encode())
        return manifest


class RunReader:
    """Reads and verifies a run given the URI of its manifest.json (or of the run folder)."""

    def __init__(self, uri: str) -> None:
        self.run_uri = objectstore.parent(uri) if uri.rstrip("/").endswith(MANIFEST) else uri.rstrip("/")
        self._manifest: Manifest | None = None

    @property
    def manifest_uri(self) -> str:
        return objectstore.join(self.run_uri, MANIFEST)

    def uri(self, name: str) -> str:
        return objectstore.join(self.run_uri, name)

    def manifest(self) -> Manifest:
        if self._manifest is None:
            try:
                raw = objectstore.read_bytes(self.manifest_uri)
            except FileNotFoundError as exc:
                raise RunFormatError(f"no manifest at {self.manifest_uri}") from exc
            try:
                self._manifest = Manifest.model_validate_json(raw)
            except ValueError as exc:
                raise RunFormatError(f"invalid manifest {self.manifest_uri}: {exc}") from exc
            validate_run_id(self._manifest.run_id)
            if objectstore.basename(self.run_uri) != self._manifest.run_id:
                raise RunFormatError(
                    f"manifest run_id {self._manifest.run_id!r} does not match its folder {self.run_uri!r}"
                )
        return self._manifest

    def verify_files(self) -> None:
        """Every required file is listed and present with the recorded size and sha256 (streamed)."""
        m = self.manifest()
        missing_in_manifest = [f for f in REQUIRED_FILES if f not in m.files]
        if missing_in_manifest:
            raise RunFormatError(f"manifest of {m.run_id} does not list {missing_in_manifest}")
        for name, entry in m.files.items():
            uri = self.uri(name)
            if not objectstore.exists(uri):
                raise RunFormatError(f"run {m.run_id}: file {name} listed in manifest is missing")
            digest = hashlib.sha256()
            n = 0
            with objectstore.open_read(uri) as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    n += len(chunk)
            if n != entry.size:
                raise RunFormatError(f"run {m.run_id}: {name} is {n} bytes, manifest says {entry.size}")
            if digest.hexdigest() != entry.sha256:
                raise RunFormatError(f"run {m.run_id}: {name} sha256 mismatch (corrupted or replaced)")

    def open_parquet(self, name: str) -> Any:
        """A pyarrow ParquetFile (local files are memory-mapped; S3 objects are read once into memory)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        uri = self.uri(name)
        if objectstore.is_s3(uri):
            return pq.ParquetFile(pa.BufferReader(objectstore.read_bytes(uri)))
        return pq.ParquetFile(uri, memory_map=True)

    def iter_batches(self, name: str, batch_size: int = 5000) -> Iterator[pa.RecordBatch]:
        """Bounded-memory iteration over a parquet file's rows."""
        yield from self.open_parquet(name).iter_batches(batch_size=batch_size)

    def num_rows(self, name: str) -> int:
        return int(self.open_parquet(name).metadata.num_rows)

    def read_json(self, name: str) -> Any:
        return json.loads(objectstore.read_bytes(self.uri(name)))


def embeddings_table(movie_ids: Any, embeddings: Any) -> pa.Table:
    """Build item_embeddings.parquet's table from ids (n,) and a float32 matrix (n, dim)."""
    import numpy as np
    import pyarrow as pa

    emb = np.ascontiguousarray(embeddings, dtype=np.float32)  # (n, dim)
    n, dim = emb.shape
    values = pa.array(emb.reshape(-1), type=pa.float32())
    col = pa.FixedSizeListArray.from_arrays(values, dim)
    return pa.table({"movie_id": pa.array(np.asarray(movie_ids, dtype=np.int64)), "embedding": col})


def movies_table(movie_ids: Any, titles: list[str], years: list[int | None], genres: list[list[str]]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "movie_id": pa.array(list(movie_ids), type=pa.int64()),
            "title": pa.array(titles, type=pa.string()),
            "year": pa.array(years, type=pa.int32()),
            "genres": pa.array(genres, type=pa.list_(pa.string())),
        }
    )


def user_history_table(user_ids: Any, histories: list[list[int]]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "user_id": pa.array(list(user_ids), type=pa.int64()),
            "movie_ids": pa.array(histories, type=pa.list_(pa.int64())),
        }
    )
