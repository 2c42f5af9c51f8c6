"""shared/serving/recipe.py: the one implementation of query forming and ranking used by the API and the evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from shared.serving.recipe import LEGACY, ExactIndex, Recipe, rank


def unit(v: list[float]) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    return a / np.linalg.norm(a)


def test_select_takes_the_latest_distinct_movies_oldest_first() -> None:
    r = Recipe(last_k=3, decay=0.5)
    assert r.select([1, 2, 3, 4, 5]) == [3, 4, 5]
    # a repeated movie counts once, at its latest position
    assert r.select([1, 2, 3, 1]) == [2, 3, 1]
    assert r.select([7]) == [7]


def test_query_weights_the_newest_most() -> None:
    r = Recipe(last_k=2, decay=0.5)
    old, new = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    q = r.query(np.stack([old, new]))
    assert q.dtype == np.float32
    np.testing.assert_allclose(q, unit([0.5, 1.0]), rtol=1e-6)
    # decay 1 = plain mean; order does not matter then
    flat = Recipe(last_k=2, decay=1.0)
    np.testing.assert_allclose(flat.query(np.stack([old, new])), flat.query(np.stack([new, old])))


def test_query_of_opposite_vectors_falls_back_to_the_newest() -> None:
    q = Recipe(last_k=2, decay=1.0).query(np.array([[1.0, 0.0], [-1.0, 0.0]]))
    np.testing.assert_allclose(q, [-1.0, 0.0])


def test_invalid_recipes_and_empty_queries_are_refused() -> None:
    with pytest.raises(ValueError, match="last_k"):
        Recipe(last_k=0)
    with pytest.raises(ValueError, match="decay"):
        Recipe(decay=0.0)
    with pytest.raises(ValueError, match="at least one"):
        Recipe().query(np.zeros((0, 4)))


def test_stored_recipes_round_trip_and_old_runs_get_the_legacy_rule() -> None:
    r = Recipe(last_k=5, decay=0.8)
    assert Recipe.from_dict(r.to_dict()) == r
    assert Recipe.from_dict({**r.to_dict(), "future_field": 1}) == r
    assert Recipe.from_dict(None) == Recipe(**LEGACY) == Recipe.from_dict({})


def test_exact_index_orders_by_rounded_score_then_id_and_skips_banned() -> None:
    ids = [30, 10, 20, 40]
    m = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    ix = ExactIndex(ids, m)
    assert ix.ids.tolist() == [10, 20, 30, 40]
    hits = ix.search(np.array([1.0, 0.0], dtype=np.float32), 3)
    assert [h[0] for h in hits] == [10, 30, 40]  # 10 and 30 tie: lower id first
    assert ix.search(np.array([1.0, 0.0]), 3, banned=[10, 99]) == [(30, 1.0), (40, 0.6), (20, 0.0)]
    allowed = np.array([False, True, False, True])
    assert [h[0] for h in ix.search(np.array([1.0, 0.0]), 5, allowed=allowed)] == [40, 20]
    assert ix.search(np.array([1.0, 0.0]), 5, banned=ids) == []


def test_exact_index_resolves_large_tie_groups_by_id() -> None:
    n = 100
    ix = ExactIndex(np.arange(n)[::-1], np.ones((n, 3), dtype=np.float32))  # every score ties
    hits = ix.search(np.ones(3, dtype=np.float32) / np.sqrt(3), 5, banned=[0])
    assert [h[0] for h in hits] == [1, 2, 3, 4, 5]


def test_exact_index_agrees_with_the_api_rank_function() -> None:
    rng = np.random.default_rng(0)
    ids = rng.choice(10_000, size=500, replace=False)
    ix = ExactIndex(ids, rng.normal(size=(500, 16)).astype(np.float32))
    q = Recipe(last_k=3, decay=0.7).query(ix.vectors(ids[:5].tolist()))
    banned = set(ids[:5].tolist())
    full = [(int(m), float(s)) for m, s in zip(ix.ids, ix.matrix @ q, strict=True)]
    assert ix.search(q, 10, banned=banned) == rank(full, banned, 10)
