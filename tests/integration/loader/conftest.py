"""Fixtures for the loader/store tests: real MariaDB (fresh database per test) and Milvus, every test
twice: Milvus Lite (temp file, in-process) and a Milvus server over the network (fresh database on the
session's server), with the same code and only GRAPHREC_MILVUS_URI differing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers import loader
from shared.config.settings import Settings, clear_settings_cache
from shared.stores.milvus.store import VectorStore, close_all_clients
from shared.stores.mysql.store import MetadataStore
from tests.conftest import MILVUS_BACKENDS, milvus_backend_uri
from tests.helpers.live import migrated


@pytest.fixture(params=MILVUS_BACKENDS, autouse=True)
def milvus_backend(
    request: pytest.FixtureRequest, _isolated_settings: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """Which Milvus this test runs against ("lite", "server" or "standalone"); sets GRAPHREC_MILVUS_URI accordingly."""
    for uri in milvus_backend_uri(request, request.param, tmp_path):
        monkeypatch.setenv("GRAPHREC_MILVUS_URI", uri)
        clear_settings_cache()
        yield request.param
        close_all_clients()


@pytest.fixture
def meta(mysql_settings: Settings) -> Iterator[MetadataStore]:
    with migrated(MetadataStore, mysql_settings) as store:
        yield store


@pytest.fixture
def vectors(mysql_settings: Settings) -> Iterator[VectorStore]:
    store = VectorStore.from_settings(mysql_settings)
    yield store
    close_all_clients()


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fast retries and no store clients cached across tests (the loader keeps them per container)."""
    # Every loader module holds the same RetryPolicy object: change it in place.
    monkeypatch.setattr(loader.RETRY, "attempts", 3)
    monkeypatch.setattr(loader.RETRY, "base_seconds", 0.01)
    loader.reset_stores()
    yield
    loader.reset_stores()
    close_all_clients()


@pytest.fixture
def stores(mysql_settings: Settings) -> tuple[MetadataStore, VectorStore]:
    return loader.get_stores(mysql_settings)
