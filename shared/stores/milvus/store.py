"""Milvus access for movie embeddings: one collection per run, an alias naming the live one.

Why one collection per run: a new run loads beside the live one and the switch is a pointer change
(MySQL `runs.status` + the Milvus alias), so a broken or half-loaded run never serves traffic and a
rollback is instant. The API searches the live run's collection BY NAME (MySQL is the source of truth);
the alias is kept in step for external tools.

Works with Milvus Lite (a local `*.db` file: FLAT index, exact search) and a Milvus/Zilliz server
(`http(s)://...`: HNSW, or AUTOINDEX on Zilliz Cloud). Vectors are L2-normalised and searched by inner
product, so scores are cosine similarities in [-1, 1].

The collection's layout (fields, index, row conversion, filter expressions) is shared/stores/milvus/schema.py;
connections and error translation are shared/stores/milvus/client.py. pymilvus is imported lazily so that
importing this module stays cheap (Lambda cold start).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shared.contract.artifacts import COLLECTION_PREFIX, LIVE_ALIAS, collection_name, run_id_of_collection  # noqa: F401 - COLLECTION_PREFIX re-exported
from shared.errors import BulkImportError, StoreUnavailable  # noqa: F401 - re-exported: store.py is this package's entry point for callers
from shared.stores.milvus.client import (  # noqa: F401 - import_pymilvus, is_lite_uri, close_all_clients: store.py is this package's entry point for callers
    NOT_FOUND_CODES,
    NOT_LOADED_CODES,
    client_for,
    close_all_clients,
    error_code,
    guard,
    import_pymilvus,
    is_lite_uri,
)
from shared.stores.milvus.schema import (  # noqa: F401 - the layout's names, re-exported: store.py is this package's entry point for callers
    GENRES,
    MAX_GENRE_LEN,
    MAX_GENRES,
    MAX_TOPK,
    PK,
    VECTOR,
    YEAR,
    PreparedRows,
    build_filter,
    index_params,
    prepare_rows,
    schema,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from pymilvus import MilvusClient

    from shared.config.settings import Settings

class VectorStore:
    """Per-run Milvus collections of movie embeddings (see module docstring)."""

    def __init__(
        self, uri: str, token: str | None = None, alias: str = LIVE_ALIAS, timeout: float | None = None
    ) -> None:
        self.uri = uri
        # gRPC deadline of every serving-side request (ping, count, get, search, load); None = no deadline
        # (pymilvus then retries a dead server for a long time). The loader's bulk writes do not use it.
        self.timeout = timeout
        self._token = token
        self.alias = alias
        self.is_lite = is_lite_uri(uri)
        self._loaded: set[str] = set()
        # Collections created empty by this process whose every insert succeeded: plain (fast) inserts
        # of ids not seen before are equivalent to upserts there. Maps collection -> ids inserted so far.
        self._fresh: dict[str, set[int]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> VectorStore:
        return cls(
            settings.milvus_uri, settings.resolved_milvus_token(), settings.milvus_alias, settings.milvus_timeout
        )

    def __repr__(self) -> str:  # never show the token
        return f"VectorStore(uri={self.uri!r}, alias={self.alias!r})"

    @property
    def client(self) -> MilvusClient:
        return client_for(self.uri, self._token, self.timeout)

    # ------------------------------------------------------------------ health
    def ping(self) -> None:
        """Raise StoreUnavailable unless Milvus answers a cheap request."""
        with guard("ping"):
            try:
                self.client.list_collections(timeout=self.timeout)
            except StoreUnavailable:
                raise
            except Exception as exc:
                raise StoreUnavailable(f"Milvus ping failed: {exc}") from exc

    # ------------------------------------------------------------------ loader side
    def collection_dim(self, run_id: str) -> int | None:
        """The vector width of a run's collection, or None when it does not exist."""
        name = collection_name(run_id)
        with guard("describe_collection"):
            if not self.client.has_collection(name):
                return None
            desc = self.client.describe_collection(name)
        for field in desc["fields"]:
            if field["name"] == VECTOR:
                return int(field["params"]["dim"])
        raise ValueError(f"collection {name} has no {VECTOR!r} field")

    def create_collection(self, run_id: str, dim: int) -> None:
        """Create (or reuse, if it exists with the same dim) the run's collection, indexed and loaded."""
        if dim <= 0:
            raise ValueError(f"dim must be positive, got {dim}")
        name = collection_name(run_id)
        existing = self.collection_dim(run_id)
        if existing is not None:
            if existing != dim:
                raise ValueError(f"collection {name} exists with dim {existing}, not {dim}")
            self._ensure_loaded(name)
            return
        with guard("create_collection"):
            self.client.create_collection(
                name, schema=schema(dim), consistency_level="Strong" if self.is_lite else "Bounded"
            )
            # Index separately with sync=False: the synchronous variant polls index state with 0.5 s sleeps
            # (and an RPC Milvus Lite does not implement); load_collection waits for the index anyway.
            self.client.create_index(name, index_params(self.client, self.uri, self.is_lite), sync=False)
            self.client.load_collection(name)
        self._loaded.add(name)
        self._fresh[name] = set()

    def prepare_rows(
        self,
        movie_ids: Sequence[int],
        vectors: np.ndarray,
        genres: Sequence[list[str]],
        years: Sequence[int | None],
    ) -> PreparedRows:
        """shared.stores.milvus.schema.prepare_rows (kept as a method: the loader prepares through its store)."""
        return prepare_rows(movie_ids, vectors, genres, years)

    def insert(
        self,
        run_id: str,
        movie_ids: Sequence[int],
        vectors: np.ndarray,
        genres: Sequence[list[str]],
        years: Sequence[int | None],
    ) -> None:
        """Write rows with upsert semantics: re-sending a movie replaces it, never duplicates it."""
        self.insert_prepared(run_id, self.prepare_rows(movie_ids, vectors, genres, years))

    def insert_prepared(self, run_id: str, prepared: PreparedRows) -> None:
        """insert() for rows from prepare_rows().

        Plain insert (faster, especially on Milvus Lite) is used only when it is provably equivalent to
        upsert: the collection was created empty by this process, every earlier write succeeded and none
        of the ids was written before. Anything else (a retry after a crash or an error) upserts.
        """
        name = collection_name(run_id)
        ids, rows = prepared.ids, prepared.rows
        if not rows:
            return
        fresh = self._fresh.get(name)
        batch_ids = set(ids)
        use_insert = fresh is not None and len(batch_ids) == len(ids) and fresh.isdisjoint(batch_ids)
        try:
            with guard("insert"):
                if use_insert:
                    self.client.insert(name, rows)
                else:
                    self.client.upsert(name, rows)
        except BaseException:
            self._fresh.pop(name, None)  # state unknown now: upsert from here on
            raise
        if use_insert and fresh is not None:
            fresh.update(batch_ids)

    def flush(self, run_id: str) -> None:
        """Seal growing segments (servers); a no-op cost on Milvus Lite. Call once after a load."""
        with guard("flush"):
            self.client.flush(collection_name(run_id))

    def count(self, run_id: str) -> int:
        """Rows in the run's collection (0 when the collection does not exist). Strongly consistent."""
        name = collection_name(run_id)
        with guard("count"):
            if not self.client.has_collection(name, timeout=self.timeout):
                return 0
            self._ensure_loaded(name)
            res = self.client.query(
                name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout
            )
        return int(res[0]["count(*)"])

    def searchable_count(self, run_id: str) -> int:
        """Rows a search sees right now at the collection's own consistency level (Bounded on servers: the
        level the API searches at), as opposed to count(), which is Strong."""
        name = collection_name(run_id)
        with guard("count"):
            res = self.client.query(name, filter="", output_fields=["count(*)"], timeout=self.timeout)
        return int(res[0]["count(*)"])

    def _index_done(self, name: str, expected: int) -> bool:
        """The vector index covers `expected` rows with none pending (servers report indexed/pending rows)."""
        with guard("describe_index"):
            desc = self.client.describe_index(name, VECTOR, timeout=self.timeout)
        indexed = int(desc.get("indexed_rows", expected))
        return indexed >= expected and int(desc.get("pending_index_rows", 0)) == 0

    def wait_searchable(self, run_id: str, expected: int, timeout: float, poll: float = 0.25) -> int:
        """Wait until every one of `expected` rows is searchable: the index built over them, the collection
        loaded, and a count at the serving consistency (Bounded) seeing them all. Returns the rows a search
        sees (== expected, or fewer when `timeout` seconds passed first).

        Why: on a Milvus server a search right after insert + flush at Bounded consistency may see none of
        the rows yet (measured on 2.3.5: 0 of 3,000 before the flush returned); going live then would serve
        an empty or partial catalogue. Milvus Lite is strongly consistent: its count is the answer.
        """
        import time

        name = collection_name(run_id)
        if self.is_lite:
            return self.count(run_id)
        self._ensure_loaded(name)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with guard("get_load_state"):
                state = str(self.client.get_load_state(name, timeout=self.timeout).get("state", ""))
            if state.endswith("Loaded") and self._index_done(name, expected):
                seen = self.searchable_count(run_id)
                if seen >= expected:
                    return seen
            if time.monotonic() > deadline:
                return seen
            time.sleep(poll)

    def set_alias(self, run_id: str) -> None:
        """Point the alias at the run's collection (create it, or move it atomically)."""
        name = collection_name(run_id)
        with guard("set_alias"):
            if not self.client.has_collection(name):
                raise ValueError(f"cannot alias {self.alias} to missing collection {name}")
            if self._alias_target() is not None:
                self.client.alter_alias(name, self.alias)
            else:
                self.client.create_alias(name, self.alias)

    def _aliases(self) -> list[str]:
        # list_aliases instead of describe_alias: a missing alias is normal, not an error worth logging.
        res = self.client.list_aliases()
        return list(res.get("aliases", []) if isinstance(res, dict) else res)

    def _alias_target(self) -> str | None:
        if self.alias in self._aliases():
            return str(self.client.describe_alias(self.alias)["collection_name"])
        if self.is_lite:
            return None
        # Milvus 2.3 lists no aliases unless asked per collection (and has no DescribeAlias): a collection
        # described by its alias name answers with the collection the alias points to.
        try:
            desc = self.client.describe_collection(self.alias)
        except Exception as exc:
            msg = str(getattr(exc, "message", "") or exc).lower()
            if error_code(exc) in NOT_FOUND_CODES or "not found" in msg or "not exist" in msg or "can't find" in msg:
                return None
            raise
        target = str(desc["collection_name"])
        return target if self.alias in (desc.get("aliases") or []) or target != self.alias else None

    def alias_target(self) -> str | None:
        """Collection name the alias points to, or None when the alias does not exist."""
        with guard("alias_target"):
            return self._alias_target()

    def drop(self, run_id: str) -> None:
        """Drop the run's collection (no-op when absent). Refuses the collection the alias points to."""
        name = collection_name(run_id)
        if self.alias_target() == name:
            raise ValueError(f"refusing to drop {name}: alias {self.alias} points to it")
        with guard("drop"):
            if self.client.has_collection(name):
                self.client.drop_collection(name)
        self._loaded.discard(name)
        self._fresh.pop(name, None)

    def list_run_ids(self) -> list[str]:
        """run_ids that have a collection here, sorted oldest first."""
        with guard("list_collections"):
            names = self.client.list_collections()
        return sorted(r for r in map(run_id_of_collection, names) if r is not None)

    # ------------------------------------------------------------------ serving side
    def _ensure_loaded(self, name: str) -> None:
        """Collections are 'released' after a restart (and on new processes); load once per process."""
        if name in self._loaded:
            return
        with guard("load_collection"):
            self.client.load_collection(name, timeout=self.timeout)
        self._loaded.add(name)

    def _read(self, name: str, what: str, fn: Any) -> Any:
        """Run a read; load the collection and retry once if it was released; a missing collection
        means the live run cannot be served -> StoreUnavailable."""
        for attempt in (0, 1):
            try:
                self._ensure_loaded(name)
                with guard(what):
                    return fn()
            except StoreUnavailable:
                raise
            except Exception as exc:
                code = error_code(exc)
                if code in NOT_FOUND_CODES:
                    raise StoreUnavailable(f"Milvus collection {name} does not exist") from exc
                if code in NOT_LOADED_CODES and attempt == 0:
                    self._loaded.discard(name)
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def get_vectors(self, run_id: str, movie_ids: Sequence[int]) -> dict[int, list[float]]:
        """Stored vectors of the given movies; ids that are not in the run are simply absent."""
        ids = list(dict.fromkeys(int(m) for m in movie_ids))
        if not ids:
            return {}
        name = collection_name(run_id)
        rows = self._read(name, "get", lambda: self.client.get(name, ids=ids, output_fields=[PK, VECTOR], timeout=self.timeout))
        return {int(r[PK]): [float(x) for x in r[VECTOR]] for r in rows}

    build_filter = staticmethod(build_filter)

    def search(
        self,
        run_id: str,
        vectors: Sequence[Sequence[float]],
        k: int,
        *,
        exclude_ids: Sequence[int] = (),
        genres: Sequence[str] | None = None,
    ) -> list[list[tuple[int, float]]]:
        """Top-k by inner product for each query vector: [(movie_id, score), ...] best first.

        exclude_ids: never returned. genres: keep movies having ANY of these genres (exact, case-
        sensitive names such as "Sci-Fi"); None or empty = no genre filter. Fewer than k results when
        the filters leave fewer movies.
        """
        if not 1 <= k <= MAX_TOPK:
            raise ValueError(f"k must be in 1..{MAX_TOPK}, got {k}")
        data = [[float(x) for x in v] for v in vectors]
        if not data:
            return []
        name = collection_name(run_id)
        expr = self.build_filter(exclude_ids, genres)
        params: dict[str, Any] = {"metric_type": "IP"}
        if not self.is_lite:
            params["params"] = {"ef": max(64, k)}
        res = self._read(
            name,
            "search",
            lambda: self.client.search(
                name,
                data=data,
                limit=k,
                filter=expr,
                output_fields=[PK],
                search_params=params,
                timeout=self.timeout,
            ),
        )
        out: list[list[tuple[int, float]]] = []
        for hits in res:
            row = []
            for h in hits:
                ent = h.get("entity") or {}
                mid = ent.get(PK, h.get("id", h.get(PK)))
                row.append((int(mid), float(h["distance"])))
            out.append(row)
        return out
