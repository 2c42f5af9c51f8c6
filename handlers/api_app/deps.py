"""FastAPI dependencies (`Annotated[..., Depends()]` aliases) for settings, stores and the live run id.

- Store clients are created once per container (per settings) and reused: a Lambda container serves many
  requests, and a MySQL handshake or Milvus connect per request would dominate latency.
- The store modules are imported here, lazily, on the first request: they pull in pymilvus/pymysql, which
  must not weigh on `import handlers.api` (see stores.py).
- The live run id is cached for `settings.live_run_cache_seconds`, so a switch by the loader shows up within
  that many seconds without a MySQL round trip on every request.
- No dependency does I/O: store clients connect on first use, the live run resolves inside the endpoint
  (see LiveRun), so invalid input is a 422 even while a store is down.
- Dependencies are `async def` on purpose: sync dependencies run in a thread pool (a thread hop each), and the
  store clients are shared objects, so running them on the event loop keeps them single-threaded.
Tests override `settings_dep`, `metadata_dep` or `vectors_dep` through `app.dependency_overrides`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends

from handlers.api_app.errors import NoLiveRun
from handlers.api_app.local_index import CACHE as LOCAL_INDEX
from handlers.api_app.recommender import Recommender
from handlers.api_app.stores import MetadataReader, VectorReader
from shared.settings import Settings, get_settings

_clients: dict[tuple[Any, ...], Any] = {}


async def settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]


def _metadata_key(settings: Settings) -> tuple[Any, ...]:
    return ("mysql", settings.mysql_host, settings.mysql_port, settings.mysql_user, settings.mysql_database,
            settings.mysql_secret_arn)


def _vectors_key(settings: Settings) -> tuple[Any, ...]:
    return ("milvus", settings.milvus_uri, settings.milvus_token_secret_arn, settings.milvus_token is not None)


def _metadata_store(settings: Settings) -> MetadataReader:
    key = _metadata_key(settings)
    store = _clients.get(key)
    if store is None:  # a failed construction is not cached: the next request retries
        from shared.metadata_store import MetadataStore

        store = _clients[key] = MetadataStore.from_settings(settings)
    return store  # type: ignore[no-any-return]


def _vector_store(settings: Settings) -> VectorReader:
    key = _vectors_key(settings)
    store = _clients.get(key)
    if store is None:
        from shared.vector_store import VectorStore

        store = _clients[key] = VectorStore.from_settings(settings)
    return store  # type: ignore[no-any-return]


async def metadata_dep(settings: SettingsDep) -> MetadataReader:
    return _metadata_store(settings)


async def vectors_dep(settings: SettingsDep) -> VectorReader:
    return _vector_store(settings)


async def stores_or_errors_dep(settings: SettingsDep) -> tuple[MetadataReader | Exception, VectorReader | Exception]:
    """For /health: a store that cannot even be constructed is reported, not raised."""
    built: list[Any] = []
    for build in (_metadata_store, _vector_store):
        try:
            built.append(build(settings))
        except Exception as exc:  # reported as "unavailable" by the health check
            built.append(exc)
    return built[0], built[1]


MetadataDep = Annotated[MetadataReader, Depends(metadata_dep)]
VectorsDep = Annotated[VectorReader, Depends(vectors_dep)]
StoresOrErrorsDep = Annotated[
    tuple[MetadataReader | Exception, VectorReader | Exception], Depends(stores_or_errors_dep)
]


@dataclass
class _CachedRun:
    owner: int  # id() of the metadata store it came from: a different store (test, new settings) misses
    run_id: str
    expires: float


_live: _CachedRun | None = None


class LiveRun:
    """Resolves the live run id on first use (cached per container for live_run_cache_seconds).

    Lazy on purpose: FastAPI resolves dependencies before it validates query/body parameters, so a
    dependency that queried MySQL would turn a malformed request into a 503 whenever MySQL is down.
    Resolving inside the endpoint means bad input is always a 422. Misses are not cached, so the first
    load becomes visible immediately.
    """

    def __init__(self, meta: MetadataReader, ttl_seconds: float) -> None:
        self._meta = meta
        self._ttl = ttl_seconds
        self._run_id: str | None = None

    @property
    def run_id(self) -> str:
        global _live
        if self._run_id is not None:
            return self._run_id
        now = time.monotonic()
        cached = _live
        if cached is not None and cached.owner == id(self._meta) and now < cached.expires:
            self._run_id = cached.run_id
            return cached.run_id
        record = self._meta.live_run()
        if record is None:
            _live = None
            raise NoLiveRun()
        _live = _CachedRun(id(self._meta), record.run_id, now + self._ttl)
        self._run_id = record.run_id
        return record.run_id


async def live_run_dep(settings: SettingsDep, meta: MetadataDep) -> LiveRun:
    return LiveRun(meta, settings.live_run_cache_seconds)


LiveRunDep = Annotated[LiveRun, Depends(live_run_dep)]


async def recommender_dep(live: LiveRunDep, meta: MetadataDep, vectors: VectorsDep) -> Recommender:
    return Recommender(meta, vectors, live, LOCAL_INDEX)


RecommenderDep = Annotated[Recommender, Depends(recommender_dep)]


def reset_caches() -> None:
    """Forget store clients and the cached live run (tests; never needed in Lambda)."""
    global _live
    _live = None
    _clients.clear()
    LOCAL_INDEX.clear()
