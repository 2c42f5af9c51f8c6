"""The data product's files: Parquet tables under `<output>/batch/<run_id>/<table>/`, one file per shard.

Layout (a Glue partition per run, whose location is the run's table folder, so Athena reads only it):

    <output>/batch/<run_id>/user_recommendations/shard-00000-of-00004.parquet   (one per shard)
    <output>/batch/<run_id>/similar_movies/shard-00000-of-00004.parquet        (one per shard)
    <output>/batch/<run_id>/movie_audience/part-00000.parquet                  (the commit merges the shards)
    <output>/batch/<run_id>/_shards/shard-00000-of-00004.json                  (a shard's completion marker)
    <output>/batch/<run_id>/_shards/audience-00000-of-00004.parquet            (a shard's partial audience)
    <output>/batch/<run_id>/_SUCCESS.json                                      (the manifest, written last)

Files are streamed block by block into a local Parquet file (memory = one block), hashed, then uploaded.
Names starting with `_` are ignored by Athena and Hive readers.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from shared.contract import objectstore

USER_RECOMMENDATIONS = "user_recommendations"
SIMILAR_MOVIES = "similar_movies"
MOVIE_AUDIENCE = "movie_audience"
TABLES = (USER_RECOMMENDATIONS, SIMILAR_MOVIES, MOVIE_AUDIENCE)
SUCCESS = "_SUCCESS.json"
SHARDS_DIR = "_shards"

SCHEMAS: dict[str, pa.Schema] = {
    USER_RECOMMENDATIONS: pa.schema(
        [
            ("user_id", pa.int64()),
            ("rank", pa.int32()),
            ("movie_id", pa.int64()),
            ("score", pa.float64()),
            ("because", pa.list_(pa.int64())),
        ]
    ),
    SIMILAR_MOVIES: pa.schema(
        [("movie_id", pa.int64()), ("rank", pa.int32()), ("similar_movie_id", pa.int64()), ("score", pa.float64())]
    ),
    MOVIE_AUDIENCE: pa.schema(
        [("movie_id", pa.int64()), ("rank", pa.int32()), ("user_id", pa.int64()), ("score", pa.float64())]
    ),
}
# The same columns as Glue/Athena types (awswrangler's columns_types).
GLUE_TYPES: dict[str, dict[str, str]] = {
    USER_RECOMMENDATIONS: {"user_id": "bigint", "rank": "int", "movie_id": "bigint", "score": "double", "because": "array<bigint>"},
    SIMILAR_MOVIES: {"movie_id": "bigint", "rank": "int", "similar_movie_id": "bigint", "score": "double"},
    MOVIE_AUDIENCE: {"movie_id": "bigint", "rank": "int", "user_id": "bigint", "score": "double"},
}


def batch_root(output: str, run_id: str) -> str:
    return objectstore.join(output, "batch", run_id)


def shard_name(shard: int, shards: int) -> str:
    return f"shard-{shard:05d}-of-{shards:05d}"


def table_dir(output: str, run_id: str, table: str) -> str:
    return objectstore.join(batch_root(output, run_id), table)


@dataclass(frozen=True)
class WrittenFile:
    uri: str
    rows: int
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"uri": self.uri, "rows": self.rows, "bytes": self.bytes, "sha256": self.sha256}


class TableFile:
    """One Parquet file written row group by row group to a local temp file, uploaded on `finish`."""

    def __init__(self, uri: str, schema: pa.Schema) -> None:
        self.uri, self.schema, self.rows = uri, schema, 0
        fd, self._path = tempfile.mkstemp(suffix=".parquet")
        os.close(fd)
        self._writer: pq.ParquetWriter | None = pq.ParquetWriter(self._path, schema, compression="zstd")

    def write(self, columns: dict[str, Any]) -> None:
        table = pa.table(columns, schema=self.schema)
        if table.num_rows and self._writer is not None:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def finish(self) -> WrittenFile:
        assert self._writer is not None
        self._writer.close()
        self._writer = None
        digest = hashlib.sha256()
        with open(self._path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
        size = os.path.getsize(self._path)
        try:
            objectstore.upload_file(self._path, self.uri)
        finally:
            os.unlink(self._path)
        return WrittenFile(self.uri, self.rows, size, digest.hexdigest())

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if os.path.exists(self._path):
            os.unlink(self._path)


def sha256_of(uri: str) -> tuple[str, int]:
    digest, n = hashlib.sha256(), 0
    with objectstore.open_read(uri) as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            n += len(chunk)
    return digest.hexdigest(), n


def delete(uri: str) -> None:
    """Remove one object/file if present."""
    if objectstore.is_s3(uri):
        bucket, key = objectstore.split_s3(uri)
        objectstore.s3_client().delete_object(Bucket=bucket, Key=key)
    elif os.path.exists(uri):
        os.unlink(uri)


def check_writable(output: str, run_id: str, shard: int) -> None:
    """Write and remove a probe under the run's batch folder: an output the job may not write fails first,
    before any computing (raises OSError / botocore ClientError)."""
    probe = objectstore.join(batch_root(output, run_id), SHARDS_DIR, f".probe-{shard}")
    objectstore.write_bytes(probe, b"probe")
    delete(probe)
