"""Bulk import against the Milvus server fixture: `milvus-lite server` speaks gRPC only (no Import RPC, no
REST API), so a real server-side import cannot run here. This pins down what the loader then says: a clear,
non-retried BulkImportError instead of an HTTP parsing exception. With TEST_MILVUS_SERVER_URI pointing at a
real Milvus the import protocol is still only exercised against the stand-in in test_bulk_import.py."""

from __future__ import annotations

import os

import pytest

from shared.errors import BulkImportError
from shared.milvus_bulk import run_bulk_import
from shared.vector_store import VectorStore


def test_the_test_milvus_server_has_no_import_service(milvus_backend: str, milvus_server: str) -> None:
    if milvus_backend != "server" or os.environ.get("TEST_MILVUS_SERVER_URI"):
        pytest.skip("about the milvus-lite server fixture only")
    store = VectorStore(milvus_server)
    with pytest.raises(BulkImportError, match="does not speak the REST API|no REST import service"):
        run_bulk_import(store, "20260101T000000Z_abcdef12", ["s3://bucket/x.parquet"], timeout_s=5, poll_s=0.1)
