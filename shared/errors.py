"""Exceptions the stores raise, in a module with no imports so any layer (API, loader, settings) can
catch them without pulling in pymilvus or pymysql."""

from __future__ import annotations

__all__ = ["BulkImportError", "StoreUnavailable"]


class StoreUnavailable(RuntimeError):
    """The backing store (Milvus or MySQL) cannot be reached or cannot serve the request. API -> 503."""


class BulkImportError(RuntimeError):
    """The Milvus import job failed or timed out."""
