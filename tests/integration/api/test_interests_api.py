"""Multi-interest recommendations, `because` and `diversity` through the Mangum handler, over a live run whose
recipe has several interests, in real MariaDB + Milvus (Lite and server, see conftest.py).

Planted clusters (tests/helpers/factories.py: one genre per cluster, tight embeddings) make the right answers
known; both serving paths (in-memory index, Milvus search) must return exactly what the training job's
served evaluation computes for the same likes (training_job.evaluation.served.recommend).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.config.settings import clear_settings_cache
from shared.serving.recipe import ExactIndex, Recipe
from tests.helpers.live import LiveRun, http_api_event, invoke, live_in_stores
from training_job.evaluation.served import recommend

RECIPE = Recipe(last_k=50, decay=0.9, interests=3, threshold=0.5, diversity=0.0)
N_MOVIES = 600  # room for 500 distinct likes


@pytest.fixture(scope="module")
def _module_live(_module_stores: dict[str, str]) -> Iterator[LiveRun]:
    """This module's run: like the API tests' one, with a multi-interest recipe stored with it."""
    with live_in_stores(_module_stores, n_movies=N_MOVIES, n_users=40, dim=16, seed=11, recipe=RECIPE.to_dict()) as live:
        yield live


PATHS = {"local-index": "50000", "milvus-search": "0"}


@pytest.fixture
def handlers(live: LiveRun, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """One call function per serving path (in-memory copy, Milvus search), built on demand."""

    def for_path(path: str) -> Any:
        def go(method: str, url: str, **kw: Any) -> tuple[int, dict[str, str], Any]:
            monkeypatch.setenv("GRAPHREC_API_LOCAL_INDEX_MAX", PATHS[path])
            clear_settings_cache()
            deps.reset_caches()
            return invoke(Mangum(create_app(), lifespan="off"), http_api_event(method, url, **kw))

        return go

    yield {p: for_path(p) for p in PATHS}
    deps.reset_caches()


def index_of(live: LiveRun) -> ExactIndex:
    return ExactIndex(live.run.movie_ids, live.run.embeddings)


def cluster_of(live: LiveRun) -> dict[int, int]:
    return {int(m): int(c) for m, c in zip(live.run.movie_ids, live.run.cluster, strict=True)}


def members(live: LiveRun, cluster: int) -> list[int]:
    return [m for m, c in cluster_of(live).items() if c == cluster]


def same_answers(a: dict[str, Any], b: dict[str, Any]) -> None:
    """Same movies, order and reasons; scores equal up to Milvus' float rounding (1e-6 after rounding)."""
    strip = [{k: v for k, v in i.items() if k != "score"} for i in a["items"]]
    assert strip == [{k: v for k, v in i.items() if k != "score"} for i in b["items"]]
    assert [i["score"] for i in a["items"]] == pytest.approx([i["score"] for i in b["items"]], abs=2e-6)


def post(call: Any, body: dict[str, Any]) -> dict[str, Any]:
    code, _, answer = call("POST", "/recommendations", body=body)
    assert code == 200, answer
    return answer  # type: ignore[no-any-return]


def test_health_shows_the_multi_interest_recipe(handlers: dict[str, Any]) -> None:
    _, _, body = handlers["local-index"]("GET", "/health")
    assert body["recipe"] == RECIPE.to_dict()


def test_three_tastes_come_back_explained_on_both_paths_as_the_trainer_computes(
    handlers: dict[str, Any], live: LiveRun
) -> None:
    clusters = cluster_of(live)
    liked = [members(live, 0)[0], members(live, 3)[0], members(live, 6)[0]]  # Action, Horror, Animation
    expected = recommend(index_of(live), RECIPE, liked, 10)
    answers = {path: post(call, {"liked": liked, "k": 10}) for path, call in handlers.items()}
    for body in answers.values():
        items = body["items"]
        assert [i["movie_id"] for i in items] == expected  # same ids, same order as the served evaluation
        for item in items:
            reasons = [b["movie_id"] for b in item["because"]]
            assert len(reasons) >= 1 and set(reasons) <= set(liked)
            assert clusters[reasons[0]] == clusters[item["movie_id"]]  # cited for its own taste
            assert [b["title"] for b in item["because"]] == [live.movies[m]["title"] for m in reasons]
        cited = {item["because"][0]["movie_id"] for item in items}
        assert cited == set(liked)  # every taste is represented and explained
    same_answers(answers["local-index"], answers["milvus-search"])


def test_one_like_and_one_tight_taste_behave_like_the_single_vector(handlers: dict[str, Any], live: LiveRun) -> None:
    index = index_of(live)
    single = Recipe(last_k=RECIPE.last_k, decay=RECIPE.decay)
    for liked in ([members(live, 2)[0]], members(live, 5)[:6]):
        expected = recommend(index, single, liked, 10)
        for call in handlers.values():
            body = post(call, {"liked": liked, "k": 10})
            assert [i["movie_id"] for i in body["items"]] == expected
            scores = [i["score"] for i in body["items"]]
            assert scores == sorted(scores, reverse=True)


def test_identical_likes_count_once(handlers: dict[str, Any], live: LiveRun) -> None:
    m = members(live, 1)[0]
    call = handlers["local-index"]
    assert post(call, {"liked": [m] * 7})["items"] == post(call, {"liked": [m]})["items"]


def test_500_likes(handlers: dict[str, Any], live: LiveRun) -> None:
    liked = [int(m) for m in live.run.movie_ids[:500]]  # every taste, many times over
    expected = recommend(index_of(live), RECIPE, liked, 10)
    for call in handlers.values():
        items = post(call, {"liked": liked, "k": 10})["items"]
        assert [i["movie_id"] for i in items] == expected
        assert all(set(b["movie_id"] for b in i["because"]) <= set(RECIPE.select(liked)) for i in items)


def test_unknown_likes_are_422_as_before(handlers: dict[str, Any], live: LiveRun) -> None:
    code, _, body = handlers["local-index"]("POST", "/recommendations", body={"liked": [1, 90001, 2]})
    assert code == 422 and body["unknown_movie_ids"] == [90001]


@pytest.mark.parametrize("bad", [-0.1, 1.01, "0.5", None, True])
def test_diversity_out_of_range_or_wrong_type_is_422(handlers: dict[str, Any], bad: Any) -> None:
    code, _, body = handlers["local-index"]("POST", "/recommendations", body={"liked": [1], "diversity": bad})
    if bad is None:  # explicit null = the run's default
        assert code == 200
        return
    assert code == 422 and "diversity" in str(body["errors"])


def test_diversity_reranks_the_same_way_on_both_paths(handlers: dict[str, Any], live: LiveRun) -> None:
    liked = members(live, 4)[:3]
    index = index_of(live)
    plain = post(handlers["local-index"], {"liked": liked, "k": 10})
    assert post(handlers["local-index"], {"liked": liked, "k": 10, "diversity": 0})["items"] == plain["items"]
    expected = recommend(index, RECIPE, liked, 10, diversity=0.9)
    varied = {path: post(call, {"liked": liked, "k": 10, "diversity": 0.9}) for path, call in handlers.items()}
    assert [i["movie_id"] for i in varied["local-index"]["items"]] == expected
    same_answers(varied["local-index"], varied["milvus-search"])
    assert expected != [i["movie_id"] for i in plain["items"]]


def test_user_recommendations_explain_from_the_history(handlers: dict[str, Any], live: LiveRun) -> None:
    user, history = next(iter(live.run.user_histories.items()))
    for call in handlers.values():
        code, _, body = call("GET", f"/users/{user}/recommendations", query="k=5")
        assert code == 200 and len(body["items"]) == 5
        for item in body["items"]:
            assert item["because"] and {b["movie_id"] for b in item["because"]} <= set(history)
    code, _, _ = handlers["local-index"]("GET", f"/users/{user}/recommendations", query="k=5&diversity=2")
    assert code == 422


def test_similar_movies_need_no_explanation(handlers: dict[str, Any], live: LiveRun) -> None:
    m = members(live, 0)[0]
    code, _, body = handlers["local-index"]("GET", f"/movies/{m}/similar", query="k=5")
    assert code == 200 and all(item["because"] == [] for item in body["items"])
