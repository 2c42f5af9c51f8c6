"""The loader's store clients, created once per container (Lambda reuses them across invocations)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.loader.retry import RETRY
from shared.config.settings import Settings, get_settings

if TYPE_CHECKING:  # pragma: no cover
    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore

_meta: MetadataStore | None = None
_vectors: VectorStore | None = None


def get_stores(settings: Settings | None = None) -> tuple[MetadataStore, VectorStore]:
    """Stores created once per container (Lambda reuses them across invocations); schema ensured once."""
    global _meta, _vectors
    settings = settings or get_settings()
    if _meta is None:
        from shared.stores.mysql.store import MetadataStore

        # Bulk statements need a longer budget than the API's few seconds, but still a bounded one.
        meta = MetadataStore.from_settings(settings, statement_timeout=settings.loader_store_timeout)
        RETRY.call("ensure_schema", meta.ensure_schema)
        _meta = meta
    if _vectors is None:
        from shared.stores.milvus.store import VectorStore

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
