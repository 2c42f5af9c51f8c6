"""Milvus bulk-import staging (server path): files written to S3 (moto over HTTP) in Milvus' import layout.

The import job itself needs a Milvus server, which this machine does not have; everything up to the REST
call is exercised here.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from handlers import loader
from shared.config.settings import clear_settings_cache, get_settings
from shared.contract import artifacts, objectstore
from shared.stores.milvus.bulk import import_request, run_bulk_import, stage_bulk_files
from shared.stores.milvus.store import VectorStore
from tests.helpers.factories import make_run


def test_staged_files_hold_the_run_in_milvus_layout(s3_bucket: str) -> None:
    run = make_run(f"s3://{s3_bucket}/runs", n_movies=200, dim=16)
    v = loader.validate_run(artifacts.RunReader(run.manifest_uri), get_settings())
    staging = f"s3://{s3_bucket}/milvus-import"
    batches = loader.vector_batches(artifacts.RunReader(run.manifest_uri), v, 50)
    uris = stage_bulk_files(run.run_id, batches, staging, rows_per_file=100)  # 4 batches -> 2 files
    assert uris == [f"{staging}/{artifacts.collection_name(run.run_id)}/part-{i:05d}.parquet" for i in range(2)]
    assert sorted(objectstore.list_uris(staging)) == uris

    table = pa.concat_tables([pq.read_table(io.BytesIO(objectstore.read_bytes(u))) for u in uris])
    assert table.schema.names == ["movie_id", "embedding", "genres", "year"]
    assert table.schema.field("movie_id").type == pa.int64()
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    assert table.schema.field("genres").type == pa.list_(pa.string())
    assert table.schema.field("year").type == pa.int32()
    assert table.num_rows == 200
    ids = table.column("movie_id").to_numpy()
    assert sorted(ids.tolist()) == run.movie_ids.tolist()
    emb = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)  # (200, 16)
    order = np.argsort(ids)
    np.testing.assert_allclose(emb[order], run.embeddings, atol=1e-7)
    movies = pq.read_table(io.BytesIO(objectstore.read_bytes(objectstore.join(run.run_uri, artifacts.MOVIES))))
    want = dict(zip(movies.column("movie_id").to_pylist(), movies.column("year").to_pylist(), strict=True))
    got = dict(zip(ids.tolist(), table.column("year").to_pylist(), strict=True))
    from shared.stores.milvus.schema import YEAR_UNKNOWN

    # unknown years as the sentinel (Milvus < 2.5 has no nullable fields), mapped back to None on read
    assert got == {m: YEAR_UNKNOWN if y is None else y for m, y in want.items()}

    body = import_request(artifacts.collection_name(run.run_id), uris)
    assert body["collectionName"] == artifacts.collection_name(run.run_id)
    assert body["files"] == [[objectstore.split_s3(u)[1]] for u in uris]  # relative to the Milvus bucket


def test_bulk_path_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    server = VectorStore("http://milvus.internal:19530")
    lite = VectorStore("/tmp/x.db")
    monkeypatch.delenv("GRAPHREC_MILVUS_BULK_STAGING_URI", raising=False)
    clear_settings_cache()
    assert loader.bulk_staging_uri(server, 10**6) is None  # not configured
    monkeypatch.setenv("GRAPHREC_MILVUS_BULK_STAGING_URI", "s3://milvus-bucket/import")
    clear_settings_cache()
    assert loader.bulk_staging_uri(server, 10**6) == "s3://milvus-bucket/import"
    assert loader.bulk_staging_uri(server, 1000) is None  # small run: row inserts
    assert loader.bulk_staging_uri(lite, 10**6) is None  # Lite has no import service
    with pytest.raises(ValueError, match="Lite"):
        run_bulk_import(lite, artifacts.new_run_id(), ["s3://b/k.parquet"])


class _ImportService:
    """A stand-in for Milvus' REST import service on 127.0.0.1 (real HTTP): records requests and answers
    with the documented v2 shapes, so our client's protocol handling (auth, polling, failures) is exercised."""

    def __init__(self, states: list[dict[str, object]]) -> None:
        import http.server
        import threading

        self.requests: list[tuple[str, dict[str, object], str | None]] = []
        states_left = list(states)
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append((self.path, body, self.headers.get("Authorization")))
                if self.path.endswith("/import/create"):
                    out: dict[str, object] = {"code": 0, "data": {"jobId": "job-42"}}
                else:
                    out = {"code": 0, "data": states_left.pop(0) if len(states_left) > 1 else states_left[0]}
                raw = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_bulk_import_job_is_created_and_polled_until_completed() -> None:
    svc = _ImportService([{"state": "Pending"}, {"state": "InProgress", "progress": 50}, {"state": "Completed"}])
    try:
        store = VectorStore(svc.url, token="root:Milvus")
        run_id = artifacts.new_run_id()
        job = run_bulk_import(store, run_id, ["s3://milvus-bucket/import/a.parquet"], poll_s=0.01)
        assert job == "job-42"
        paths = [p for p, _, _ in svc.requests]
        assert paths == ["/v2/vectordb/jobs/import/create"] + ["/v2/vectordb/jobs/import/describe"] * 3
        assert svc.requests[0][1] == {"collectionName": artifacts.collection_name(run_id), "files": [["import/a.parquet"]]}
        assert svc.requests[1][1] == {"jobId": "job-42"}
        assert all(auth == "Bearer root:Milvus" for _, _, auth in svc.requests)
    finally:
        svc.close()


def test_bulk_import_failure_and_timeout_are_reported() -> None:
    from shared.errors import BulkImportError

    svc = _ImportService([{"state": "Failed", "reason": "field embedding: dim mismatch"}])
    try:
        with pytest.raises(BulkImportError, match="dim mismatch"):
            run_bulk_import(VectorStore(svc.url), artifacts.new_run_id(), ["s3://b/k.parquet"], poll_s=0.01)
    finally:
        svc.close()
    svc = _ImportService([{"state": "InProgress"}])
    try:
        with pytest.raises(BulkImportError, match="still 'InProgress'"):
            run_bulk_import(VectorStore(svc.url), artifacts.new_run_id(), ["s3://b/k.parquet"], timeout_s=0.05, poll_s=0.01)
    finally:
        svc.close()
