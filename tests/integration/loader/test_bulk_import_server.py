"""Bulk import against the Milvus server fixture: `milvus-lite server` speaks gRPC only (no Import RPC, no
REST API), so a real server-side import cannot run here. This pins down what the loader then says: a clear,
non-retried BulkImportError instead of an HTTP parsing exception. With TEST_MILVUS_SERVER_URI pointing at a
real Milvus the import protocol is still only exercised against the stand-in in test_bulk_import.py."""

from __future__ import annotations

import os

import pytest

from shared.errors import BulkImportError
from shared.stores.milvus.bulk import run_bulk_import
from shared.stores.milvus.store import VectorStore


@pytest.fixture(autouse=True)
def milvus_backend() -> str:
    """This module is about the Milvus server fixture only: it runs once, not once per backend."""
    return "server"


@pytest.mark.skipif(
    bool(os.environ.get("TEST_MILVUS_SERVER_URI")),
    reason="TEST_MILVUS_SERVER_URI points at a real Milvus, which may well have an import service",
)
def test_the_test_milvus_server_has_no_import_service(milvus_server: str) -> None:
    store = VectorStore(milvus_server)
    with pytest.raises(BulkImportError, match="does not speak the REST API|no REST import service"):
        run_bulk_import(store, "20260101T000000Z_abcdef12", ["s3://bucket/x.parquet"], timeout_s=5, poll_s=0.1)
