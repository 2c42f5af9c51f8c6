"""The two stores against real MariaDB and Milvus Lite: the behaviour the API and the loader rely on."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from shared.config.settings import Settings
from shared.contract.artifacts import collection_name, new_run_id
from shared.contract.run_status import RunStatus
from shared.stores.milvus.store import StoreUnavailable, VectorStore, close_all_clients
from shared.stores.mysql.store import MetadataStore, Movie
from tests.helpers.factories import GENRES


def _vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)  # (n, dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _fill(vs: VectorStore, run_id: str, n: int = 60, dim: int = 8) -> np.ndarray:
    vs.create_collection(run_id, dim)
    v = _vectors(n, dim)
    ids = list(range(1, n + 1))
    genres = [[GENRES[i % 4]] + (["Drama"] if i % 5 == 0 else []) for i in range(n)]
    years = [None if i % 7 == 0 else 1980 + i for i in range(n)]
    vs.insert(run_id, ids, v, genres, years)
    return v


# ------------------------------------------------------------------------------------------ vectors
def test_vector_search_filters_and_get(vectors: VectorStore) -> None:
    run = new_run_id()
    v = _fill(vectors, run)
    assert vectors.count(run) == 60
    assert run in vectors.list_run_ids()

    # Nearest neighbour of movie 5's own vector is movie 5 with score ~1 (IP on unit vectors).
    res = vectors.search(run, [v[4].tolist()], k=3)
    assert res[0][0][0] == 5 and res[0][0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in res[0]] == sorted((s for _, s in res[0]), reverse=True)

    # Exclusion removes the id; genre filter is any-of.
    res = vectors.search(run, [v[4].tolist()], k=5, exclude_ids=[5])
    assert 5 not in [m for m, _ in res[0]]
    res = vectors.search(run, [v[4].tolist()], k=60, genres=["Comedy", "Horror"])
    got = {m for m, _ in res[0]}
    want = {i + 1 for i in range(60) if GENRES[i % 4] in ("Comedy", "Horror")}
    assert got == want
    res = vectors.search(run, [v[0].tolist()], k=60, genres=["Drama"], exclude_ids=[1])
    assert {m for m, _ in res[0]} == {i + 1 for i in range(1, 60) if i % 5 == 0 or GENRES[i % 4] == "Drama"}
    # Two query vectors -> two result lists; unknown genre -> empty list, not an error.
    assert len(vectors.search(run, [v[0].tolist(), v[1].tolist()], k=2)) == 2
    assert vectors.search(run, [v[0].tolist()], k=5, genres=['x" or true or "']) == [[]]

    got_vec = vectors.get_vectors(run, [3, 4, 999])
    assert set(got_vec) == {3, 4}
    np.testing.assert_allclose(got_vec[3], v[2], atol=1e-6)
    with pytest.raises(ValueError):
        vectors.search(run, [v[0].tolist()], k=0)


def test_vector_insert_is_upsert_and_survives_reopen(vectors: VectorStore, mysql_settings: Settings) -> None:
    run = new_run_id()
    v = _fill(vectors, run, n=20)
    # Re-sending rows (a retried batch) replaces, never duplicates.
    vectors.insert(run, [1, 2], v[[5, 6]], [["Action"], ["Action"]], [2000, 2001])
    assert vectors.count(run) == 20
    np.testing.assert_allclose(vectors.get_vectors(run, [1])[1], v[5], atol=1e-6)
    vectors.create_collection(run, 8)  # idempotent
    with pytest.raises(ValueError):
        vectors.create_collection(run, 16)

    # A new process (fresh client): the collection is 'released' and must be loaded transparently.
    close_all_clients()
    again = VectorStore.from_settings(mysql_settings)
    assert again.search(run, [v[7].tolist()], k=1)[0][0][0] == 8
    again.insert(run, [3], v[[9]], [["Drama"]], [None])  # not fresh here -> upsert path
    assert again.count(run) == 20


def test_alias_switch_and_drop(vectors: VectorStore) -> None:
    a, b = new_run_id(), new_run_id()
    _fill(vectors, a, n=5)
    _fill(vectors, b, n=5)
    assert vectors.alias_target() is None
    vectors.set_alias(a)
    assert vectors.alias_target() == collection_name(a)
    vectors.set_alias(b)
    assert vectors.alias_target() == collection_name(b)
    with pytest.raises(ValueError):
        vectors.drop(b)  # the aliased (live) collection is protected
    vectors.drop(a)
    vectors.drop(a)  # no-op when absent
    assert vectors.list_run_ids() == [b]
    assert vectors.count(a) == 0
    with pytest.raises(StoreUnavailable):
        vectors.search(a, [[0.0] * 8], k=1)  # the live collection vanished -> 503, not 500


def test_vector_store_unreachable_server() -> None:
    vs = VectorStore("http://127.0.0.1:9", None)
    with pytest.raises(StoreUnavailable):
        vs.ping()


def test_filter_expression_is_escaped() -> None:
    expr = VectorStore.build_filter([3, 1], ['a"] or movie_id > 0 or ["'])
    assert expr == 'movie_id not in [1, 3] and ARRAY_CONTAINS_ANY(genres, ["a\\"] or movie_id > 0 or [\\""])'
    assert VectorStore.build_filter() == ""


# ------------------------------------------------------------------------------------------ metadata
def _movies(n: int = 30) -> list[Movie]:
    return [
        Movie(i, f"Movie {i} {GENRES[i % 3]} Story", None if i % 4 == 0 else 1990 + i, [GENRES[i % 3]])
        for i in range(1, n + 1)
    ] + [Movie(1000, "100% Pure_Fun 'quoted' \"title\"", 2001, ["Comedy", "Drama"])]


def test_schema_is_idempotent(meta: MetadataStore) -> None:
    meta.ensure_schema()
    meta.ensure_schema()
    assert meta.schema_version() >= 1


def test_movies_histories_roundtrip(meta: MetadataStore) -> None:
    run, other = new_run_id(), new_run_id()
    assert meta.insert_movies(run, _movies()) == 31
    assert meta.insert_movies(run, _movies()[:5]) == 5  # retry: upsert, no duplicates
    meta.insert_movies(other, _movies(3))
    assert meta.count_movies(run) == 31 and meta.count_movies(other) == 4
    meta.insert_histories(run, [(7, [3, 1, 2]), (8, [])])
    meta.insert_histories(run, [(7, [3, 1, 2, 9])])
    assert meta.count_users(run) == 2
    assert meta.user_history(run, 7) == [3, 1, 2, 9]  # order preserved
    assert meta.user_history(run, 8) == []
    assert meta.user_history(run, 999) is None  # unknown user
    assert meta.user_history(other, 7) is None  # per-run isolation

    got = meta.get_movies(run, [1, 4, 1000, 5555])
    assert set(got) == {1, 4, 1000}
    assert got[4].year is None and got[1].genres == [GENRES[1]]
    assert got[1000].title == "100% Pure_Fun 'quoted' \"title\""

    meta.delete_run_data(run)
    assert meta.count_movies(run) == 0 and meta.count_users(run) == 0 and meta.count_movies(other) == 4


def test_title_search_is_literal_and_case_insensitive(meta: MetadataStore) -> None:
    run = new_run_id()
    meta.insert_movies(run, _movies())
    assert [m.movie_id for m in meta.search_movies(run, " movie 1 COMEDY", 10)] == [1]
    assert {m.movie_id for m in meta.search_movies(run, "COMEDY", 100)} == {
        i for i in range(1, 31) if i % 3 == 1
    }
    assert len(meta.search_movies(run, "story", 5)) == 5
    # Wildcards and quotes are literal text, not SQL.
    assert [m.movie_id for m in meta.search_movies(run, "100%", 10)] == [1000]
    assert meta.search_movies(run, "%", 10)[0].movie_id == 1000
    assert [m.movie_id for m in meta.search_movies(run, "_", 10)] == [1000]
    assert meta.search_movies(run, "' OR '1'='1", 10) == []
    assert meta.search_movies(run, "x'); DROP TABLE movies; --", 10) == []
    assert meta.count_movies(run) == 31
    assert [m.movie_id for m in meta.search_movies(run, "'quoted'", 10)] == [1000]


def test_sample_movies(meta: MetadataStore) -> None:
    run = new_run_id()
    meta.insert_movies(run, _movies())
    sample = meta.sample_movies(run, 10)
    assert len(sample) == 10 and len({m.movie_id for m in sample}) == 10
    assert len(meta.sample_movies(run, 100)) == 31
    assert meta.sample_movies(new_run_id(), 5) == []


def test_runs_lifecycle_and_switch(meta: MetadataStore) -> None:
    a, b = new_run_id(), new_run_id()
    for r in (a, b):
        meta.upsert_run(
            r, status="loading", dim=8, counts={"movies": 3}, metrics={"hr": 0.5}, manifest_uri="s3://x"
        )
    assert meta.live_run() is None
    with pytest.raises(ValueError):
        meta.switch_live(a)  # loading runs never go live
    meta.set_status(a, "ready")
    assert meta.switch_live(a) is None
    assert meta.live_run().run_id == a  # type: ignore[union-attr]
    assert meta.switch_live(a) == a  # already live: no change
    meta.set_status(b, "ready")
    assert meta.switch_live(b) == a
    rec = meta.get_run(a)
    assert rec is not None and rec.status == "retired" and rec.counts == {"movies": 3}
    assert rec.status is RunStatus.RETIRED  # rows come back typed, not as bare strings
    assert meta.live_run().run_id == b  # type: ignore[union-attr]
    meta.set_status(a, "failed", "checksum mismatch")
    assert meta.get_run(a).reason == "checksum mismatch"  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        meta.set_status(a, "live")
    with pytest.raises(ValueError):
        meta.set_status(a, "bogus")
    with pytest.raises(KeyError):
        meta.set_status(new_run_id(), "failed")
    with pytest.raises(KeyError):
        meta.switch_live(new_run_id())
    assert {r.run_id for r in meta.list_runs()} == {a, b}
    assert meta.get_run(new_run_id()) is None


def test_switch_live_concurrent_leaves_exactly_one_live(
    meta: MetadataStore, mysql_settings: Settings
) -> None:
    runs = [new_run_id() for _ in range(6)]
    for r in runs:
        meta.upsert_run(r, status="ready", dim=8, counts={}, metrics={}, manifest_uri="x")
    errors: list[BaseException] = []

    def worker(ids: list[str]) -> None:
        store = MetadataStore.from_settings(mysql_settings)  # own connection, like another Lambda
        try:
            for r in ids:
                store.switch_live(r)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(runs[i::3],)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    statuses = [r.status for r in meta.list_runs()]
    assert statuses.count("live") == 1 and statuses.count("retired") == 5


def test_reconnects_after_connection_killed(meta: MetadataStore) -> None:
    run = new_run_id()
    meta.insert_movies(run, _movies(3))
    conn_id = meta._fetchall("SELECT CONNECTION_ID()")[0][0]
    import pymysql

    killer = pymysql.connect(**{**meta._kwargs})
    with killer.cursor() as cur:
        cur.execute("KILL %s", (conn_id,))
    killer.close()
    assert meta.count_movies(run) == 4  # transparently reconnected


def test_unreachable_and_missing_schema(mysql_settings: Settings) -> None:
    down = MetadataStore({**mysql_settings.resolved_mysql(), "port": 9, "connect_timeout": 2})
    with pytest.raises(StoreUnavailable):
        down.ping()
    fresh = MetadataStore(mysql_settings.resolved_mysql())  # schema not created yet
    with pytest.raises(StoreUnavailable):
        fresh.live_run()
    fresh.close()
