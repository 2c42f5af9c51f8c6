"""Fixtures for the loader/store tests: real MariaDB (fresh database per test) and Milvus Lite (temp file)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.metadata_store import MetadataStore
from shared.settings import Settings
from shared.vector_store import VectorStore, close_all_clients


@pytest.fixture
def meta(mysql_settings: Settings) -> Iterator[MetadataStore]:
    store = MetadataStore.from_settings(mysql_settings)
    store.ensure_schema()
    yield store
    store.close()


@pytest.fixture
def vectors(mysql_settings: Settings) -> Iterator[VectorStore]:
    store = VectorStore.from_settings(mysql_settings)
    yield store
    close_all_clients()
