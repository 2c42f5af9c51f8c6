"""FastAPI dependencies (`Annotated[..., Depends()]` aliases) for settings, stores and the live run id.

- Store clients are created once per container (per settings) and reused: a Lambda container serves many
  requests, and a MySQL handshake or Milvus connect per request would dominate latency.
- No dependency does I/O, and none blocks the event loop: the stores are handed out as lazy handles that
  build the client (importing pymilvus/pymysql, maybe fetching a secret) on first use - and first use
  happens inside `run_blocking` (offload.py), in a worker thread bounded by the request's deadline. So
  invalid input is a 422 even while a store is down, and a hung store never stalls other requests.
- The live run id is cached for `settings.live_run_cache_seconds`. When the cache expires one request asks
  MySQL while the others keep answering with the last known run (stale-while-revalidate), and while MySQL
  cannot be asked the last known run keeps serving for up to `live_run_stale_seconds`.
- A switch to a new run builds the new run's in-memory index in the one request that noticed the switch;
  the others keep answering from the previous run's index meanwhile (no latency cliff at a switch).
Tests override `settings_dep`, `metadata_dep`, `vectors_dep` or `live_run_dep` through
`app.dependency_overrides`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends

from handlers.api_app.errors import NoLiveRun
from handlers.api_app.local_index import CACHE as LOCAL_INDEX
from handlers.api_app.people import PeopleStore
from handlers.api_app.recommender import Recommender
from handlers.api_app.stores import MetadataReader, RunInfo, VectorReader
from shared.config.log import get_logger
from shared.config.settings import Settings, get_settings
from shared.errors import StoreUnavailable
from shared.serving.recipe import Recipe

logger = get_logger(__name__)

_clients: dict[tuple[Any, ...], Any] = {}
_clients_lock = threading.Lock()


async def settings_dep() -> Settings:
    return get_settings()


SettingsDep = Annotated[Settings, Depends(settings_dep)]


def _metadata_key(settings: Settings) -> tuple[Any, ...]:
    return (
        "mysql",
        settings.mysql_host,
        settings.mysql_port,
        settings.mysql_user,
        settings.mysql_database,
        settings.mysql_secret_arn,
        settings.mysql_read_timeout,
        settings.api_mysql_connections,
    )


def _vectors_key(settings: Settings) -> tuple[Any, ...]:
    return (
        "milvus",
        settings.milvus_uri,
        settings.milvus_token_secret_arn,
        settings.milvus_token is not None,
        settings.milvus_timeout,
    )


class LazyStore:
    """Stands in for a store client; builds it on first attribute access (in a worker thread).

    A failed construction is not kept: the next use retries (the store may be back). One handle per
    settings key, so its identity is stable across requests (the live-run cache is keyed by it).
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build
        self._target: Any = None
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        target = self._target
        if target is None:
            with self._lock:
                if self._target is None:
                    self._target = self._build()
                target = self._target
        return getattr(target, name)


class StorePool:
    """Up to `size` clients of one store (each with its own connection), one checked out per call.

    Why: MetadataStore serialises its calls on one connection; with many requests in worker threads, every
    MySQL request queued behind the slowest one. Clients are built on demand (none at import, none before
    the first call); a call that finds all `size` busy waits at most `wait` seconds, then StoreUnavailable
    (503): a pool exhausted by a hung server answers in bounded time too.
    """

    def __init__(self, build: Callable[[], Any], size: int, wait: float) -> None:
        self._build = build
        self._size = size
        self._wait = wait
        self._free: list[Any] = []
        self._count = 0
        self._cond = threading.Condition()

    def _checkout(self) -> Any:
        with self._cond:
            deadline = time.monotonic() + self._wait
            while not self._free and self._count >= self._size:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StoreUnavailable(
                        f"all {self._size} MySQL connections stayed busy for {self._wait:g} s"
                    )
                self._cond.wait(left)
            if self._free:
                return self._free.pop()  # LIFO: the warmest connection
            self._count += 1
        try:
            return self._build()
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _checkin(self, store: Any) -> None:
        with self._cond:
            self._free.append(store)
            self._cond.notify()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> Any:
            store = self._checkout()
            try:
                return getattr(store, name)(*args, **kwargs)
            finally:
                self._checkin(store)

        return call


def _handle(key: tuple[Any, ...], build: Callable[[], Any]) -> Any:
    with _clients_lock:
        handle = _clients.get(key)
        if handle is None:
            handle = _clients[key] = build()
        return handle


def _build_metadata(settings: Settings) -> Any:
    from shared.stores.mysql.store import MetadataStore

    return MetadataStore.from_settings(settings)


def _build_vectors(settings: Settings) -> Any:
    from shared.stores.milvus.store import VectorStore

    return VectorStore.from_settings(settings)


def _metadata_store(settings: Settings) -> MetadataReader:
    def pool() -> StorePool:
        return StorePool(
            lambda: _build_metadata(settings), settings.api_mysql_connections, settings.mysql_read_timeout
        )

    return cast(MetadataReader, _handle(_metadata_key(settings), pool))


def _vector_store(settings: Settings) -> VectorReader:
    # One MilvusClient serves concurrent calls (gRPC multiplexes them on one channel).
    return cast(
        VectorReader, _handle(_vectors_key(settings), lambda: LazyStore(lambda: _build_vectors(settings)))
    )


async def metadata_dep(settings: SettingsDep) -> MetadataReader:
    return _metadata_store(settings)


async def vectors_dep(settings: SettingsDep) -> VectorReader:
    return _vector_store(settings)


async def stores_or_errors_dep(
    settings: SettingsDep,
) -> tuple[MetadataReader | Exception, VectorReader | Exception]:
    """For /health: both store handles (a store that cannot be built is reported by the check, not raised)."""
    return _metadata_store(settings), _vector_store(settings)


async def people_dep(settings: SettingsDep) -> PeopleStore:
    """Profiles and events live in MySQL beside the run tables: the same connection pool serves them."""
    return cast(PeopleStore, _metadata_store(settings))


MetadataDep = Annotated[MetadataReader, Depends(metadata_dep)]
PeopleDep = Annotated[PeopleStore, Depends(people_dep)]
VectorsDep = Annotated[VectorReader, Depends(vectors_dep)]
StoresOrErrorsDep = Annotated[
    tuple[MetadataReader | Exception, VectorReader | Exception], Depends(stores_or_errors_dep)
]


@dataclass
class _CachedRun:
    owner: int  # id() of the metadata store it came from: a different store (test, new settings) misses
    run_id: str
    recipe: Recipe  # how the run forms queries (stored with the run by the loader)
    expires: float  # ask MySQL again after this
    stale_until: float  # serve it without MySQL's confirmation until then (refresh in flight, MySQL down)


_live: _CachedRun | None = None


def recipe_of(record: RunInfo | None) -> Recipe:
    return Recipe.of_run(record)


_refresh_lock = threading.Lock()


class LiveRun:
    """Resolves the live run id on first use (cached per container for live_run_cache_seconds).

    Lazy on purpose: FastAPI resolves dependencies before it validates query/body parameters, so a
    dependency that queried MySQL would turn a malformed request into a 503 whenever MySQL is down.
    Resolving inside the endpoint (in its worker thread) means bad input is always a 422. Misses are not
    cached, so the first load becomes visible immediately.
    """

    def __init__(
        self,
        meta: MetadataReader,
        ttl_seconds: float,
        stale_seconds: float = 0.0,
        vectors: VectorReader | None = None,
    ) -> None:
        self._meta = meta
        self._ttl = ttl_seconds
        self._stale = stale_seconds
        self._vectors = vectors
        self._run_id: str | None = None
        self._recipe: Recipe | None = None  # pinned with the run id for answers computed on the event loop

    @property
    def run_id(self) -> str:
        if self._run_id is None:
            self._run_id = self._resolve()
        return self._run_id

    @property
    def recipe(self) -> Recipe:
        """The live run's query recipe (cached with the run id; runs without one get `recipe.LEGACY`)."""
        if self._recipe is not None:
            return self._recipe
        run_id = self.run_id
        cached = self._cached()
        if cached is not None and cached.run_id == run_id:
            return cached.recipe
        record = self._meta.get_run(run_id)  # the cache moved on to another run meanwhile: ask for this one
        return recipe_of(record)

    def _cached(self) -> _CachedRun | None:
        cached = _live
        return cached if cached is not None and cached.owner == id(self._meta) else None

    def _resolve(self) -> str:
        now = time.monotonic()
        cached = self._cached()
        if cached is not None and now < cached.expires:
            return cached.run_id
        if cached is not None and now < cached.stale_until:
            # One request asks MySQL; the others keep the last known run instead of queueing behind it.
            if not _refresh_lock.acquire(blocking=False):
                return cached.run_id
            try:
                return self._refresh(cached)
            except NoLiveRun:
                raise
            except Exception as exc:  # MySQL unreachable/slow: the last known run keeps serving
                logger.warning(
                    "live run refresh failed; serving the last known live run",
                    extra={"run_id": cached.run_id, "error_type": type(exc).__name__},
                )
                cached.expires = time.monotonic() + min(self._ttl, 1.0)  # back off before asking again
                return cached.run_id
            finally:
                _refresh_lock.release()
        with _refresh_lock:
            cached = self._cached()
            if cached is not None and time.monotonic() < cached.expires:
                return cached.run_id  # refreshed by another request while we waited
            return self._refresh(cached)

    def _refresh(self, cached: _CachedRun | None) -> str:
        """Ask MySQL which run is live (the caller holds _refresh_lock)."""
        global _live
        record = self._meta.live_run()
        if record is None:
            _live = None
            raise NoLiveRun()
        run_id = record.run_id
        if (
            cached is not None
            and cached.run_id != run_id
            and self._vectors is not None
            and LOCAL_INDEX.has(cached.run_id)
        ):
            # A switch: build the new run's in-memory copy here, while the other requests keep answering
            # from the previous run's copy (they see `cached` as stale-but-valid and do not wait).
            LOCAL_INDEX.get(run_id, self._meta, self._vectors)
        now = time.monotonic()
        _live = _CachedRun(
            id(self._meta), run_id, recipe_of(record), now + self._ttl, now + max(self._stale, self._ttl)
        )
        return run_id


async def live_run_dep(settings: SettingsDep, meta: MetadataDep, vectors: VectorsDep) -> LiveRun:
    return LiveRun(meta, settings.live_run_cache_seconds, settings.live_run_stale_seconds, vectors)


LiveRunDep = Annotated[LiveRun, Depends(live_run_dep)]


async def recommender_dep(live: LiveRunDep, meta: MetadataDep, vectors: VectorsDep) -> Recommender:
    return Recommender(meta, vectors, live, LOCAL_INDEX)


RecommenderDep = Annotated[Recommender, Depends(recommender_dep)]


def answerable_from_memory(live: LiveRun) -> bool:
    """True when the request needs no I/O at all: the live run id is cached and fresh and its in-memory
    index is built. The run id is then pinned for the request, so nothing can trigger a MySQL refresh, and
    the route may compute on the event loop (about a millisecond of numpy) instead of paying a thread hop."""
    cached = live._cached()  # noqa: SLF001 - same module family
    if cached is None or not LOCAL_INDEX.has(cached.run_id):
        return False
    now = time.monotonic()
    fresh = now < cached.expires
    # Expired but another request is already asking MySQL: this one would take the stale answer anyway.
    stale_in_flight = now < cached.stale_until and _refresh_lock.locked()
    if not (fresh or stale_in_flight):
        return False  # this request goes to a worker thread and refreshes
    live._run_id, live._recipe = cached.run_id, cached.recipe  # noqa: SLF001 - nothing left to look up
    return True


def reset_caches() -> None:
    """Forget store clients and the cached live run (tests; never needed in Lambda)."""
    global _live
    _live = None
    with _clients_lock:
        _clients.clear()
    LOCAL_INDEX.clear()
