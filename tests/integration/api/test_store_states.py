"""Degraded states with real stores: nothing live yet, MySQL down, a new run switched in, tied scores."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers.api_app import deps
from shared.config.settings import Settings, clear_settings_cache, get_settings
from tests.helpers.factories import make_run
from tests.helpers.live import free_port, load_live


def test_no_live_run_yet_is_503_with_a_clear_message(mysql_settings: Settings, call: Any) -> None:
    from shared.stores.mysql.store import MetadataStore

    MetadataStore.from_settings(mysql_settings).ensure_schema()
    code, _, body = call("GET", "/health")
    assert (code, body["status"], body["run_id"]) == (503, "no_live_run", None)
    for method, path, kw in (
        ("POST", "/recommendations", {"body": {"liked": [1]}}),
        ("GET", "/movies", {"query": "sample=5"}),
        ("GET", "/users/1/recommendations", {}),
    ):
        code, headers, body = call(method, path, **kw)
        assert code == 503 and "No model is live yet" in body["detail"]
        assert headers["retry-after"] == "5"


def test_empty_database_without_schema_is_503_not_500(mysql_settings: Settings, call: Any) -> None:
    code, _, body = call("POST", "/recommendations", body={"liked": [1]})
    assert code == 503 and "unreachable" in body["detail"]


def test_mysql_down_gives_json_503(mysql_settings: Settings, monkeypatch: pytest.MonkeyPatch, call: Any) -> None:
    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", str(free_port()))  # a closed port
    clear_settings_cache()
    code, headers, body = call("GET", "/health")
    assert code == 503
    assert body["status"] == "unavailable" and body["stores"]["metadata"] == "unavailable"
    assert headers["content-type"] == "application/json"
    code, _, body = call("POST", "/recommendations", body={"liked": [1, 2]}, request_id="down-1")
    assert code == 503 and body == {
        "detail": "A data store is unreachable right now; retry in a few seconds.",
        "request_id": "down-1",
    }
    assert call("POST", "/recommendations", body={"liked": [1], "k": 0})[0] == 422  # bad input stays a 422


def test_mysql_going_down_after_a_good_answer(
    mysql_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Any
) -> None:
    live = load_live(mysql_settings, make_run(str(tmp_path / "runs"), seed=3))
    assert call("GET", "/movies/1")[0] == 200
    pool = deps._metadata_store(get_settings())
    for store in pool._free:  # type: ignore[attr-defined]  # every pooled client
        store._kwargs["port"] = free_port()  # next reconnect goes nowhere
        store._drop_conn()  # as if the server closed the connection
    code, _, body = call("GET", "/users/1/recommendations")
    assert code == 503 and "unreachable" in body["detail"]
    assert live.run.run_id  # the run stayed loaded; only the connection is gone


def test_milvus_collection_missing_is_503(mysql_settings: Settings, tmp_path: Path, call: Any) -> None:
    from shared.stores.milvus.store import VectorStore

    live = load_live(mysql_settings, make_run(str(tmp_path / "runs"), seed=4))
    vs = VectorStore.from_settings(mysql_settings)
    vs.client.drop_alias(vs.alias)
    vs.drop(live.run.run_id)  # the live run's vectors vanish behind the API's back
    code, _, body = call("POST", "/recommendations", body={"liked": [1]})
    assert code == 503 and "unreachable" in body["detail"]
    code, _, body = call("GET", "/health")
    assert code == 503


def test_new_live_run_is_served_after_the_cache_expires(
    mysql_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Any
) -> None:
    monkeypatch.setenv("GRAPHREC_LIVE_RUN_CACHE_SECONDS", "0")
    clear_settings_cache()
    settings = get_settings()
    first = load_live(settings, make_run(str(tmp_path / "runs"), seed=5))
    assert call("GET", "/movies/1")[2]["title"].startswith("Movie 1 ")
    assert call("POST", "/recommendations", body={"liked": [1]})[2]["run_id"] == first.run.run_id
    # the second run has different ids: 1001..1200
    second = load_live(settings, make_run(str(tmp_path / "runs"), seed=6, id_offset=1001))
    code, _, body = call("POST", "/recommendations", body={"liked": [1001, 1002]})
    assert code == 200 and body["run_id"] == second.run.run_id
    assert all(i["movie_id"] > 1000 for i in body["items"])
    code, _, body = call("POST", "/recommendations", body={"liked": [1]})
    assert code == 422 and body["unknown_movie_ids"] == [1]  # movie 1 belongs to the retired run
    assert call("GET", "/health")[2]["run_id"] == second.run.run_id


def test_live_run_id_is_cached(mysql_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: Any) -> None:
    monkeypatch.setenv("GRAPHREC_LIVE_RUN_CACHE_SECONDS", "300")
    clear_settings_cache()
    first = load_live(get_settings(), make_run(str(tmp_path / "runs"), seed=5))
    assert call("GET", "/movies/1")[0] == 200
    load_live(get_settings(), make_run(str(tmp_path / "runs"), seed=6, id_offset=1001))
    code, _, body = call("POST", "/recommendations", body={"liked": [1]})  # still the cached (old) run
    assert code == 200 and body["run_id"] == first.run.run_id


@pytest.mark.parametrize("local_index_max", ["50000", "0"])
def test_ties_are_broken_by_movie_id(
    mysql_settings: Settings, tmp_path: Path, call: Any, monkeypatch: pytest.MonkeyPatch, local_index_max: str
) -> None:
    monkeypatch.setenv("GRAPHREC_API_LOCAL_INDEX_MAX", local_index_max)  # both the in-memory copy and Milvus search
    clear_settings_cache()
    run = make_run(str(tmp_path / "runs"), n_movies=60, seed=8)
    emb = run.embeddings.copy()
    emb[1:40] = emb[0]  # movies 2..40 are exact copies of movie 1: all tie with score 1.0
    load_live(mysql_settings, dataclasses.replace(run, embeddings=emb))
    code, _, body = call("POST", "/recommendations", body={"liked": [1], "k": 12, "exclude": [5]})
    assert code == 200
    assert [i["movie_id"] for i in body["items"]] == [2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    assert {i["score"] for i in body["items"]} == {1.0}
    again = call("POST", "/recommendations", body={"liked": [1], "k": 12, "exclude": [5]})[2]
    assert again == body
    assert np.isclose(float(np.linalg.norm(emb[0])), 1.0)
