"""The combination and ranking rules the API applies to search hits."""

from __future__ import annotations

import math

import numpy as np
import pytest

from handlers.api_app.recommender import combine, dedupe, rank


def test_combine_is_the_normalised_mean_of_unit_vectors() -> None:
    # the second vector is long; after per-vector normalisation it must not dominate
    q = combine([[1.0, 0.0], [0.0, 10.0]])
    assert q == pytest.approx([math.sqrt(0.5), math.sqrt(0.5)])
    assert float(np.linalg.norm(q)) == pytest.approx(1.0)


def test_combine_of_one_vector_is_that_direction() -> None:
    assert combine([[3.0, 4.0]]) == pytest.approx([0.6, 0.8])


def test_combine_of_opposite_vectors_falls_back_to_the_most_recent() -> None:
    # vectors are given oldest first (shared/serving/recipe.py): the last one is the most recent
    assert combine([[1.0, 0.0], [-1.0, 0.0]]) == pytest.approx([-1.0, 0.0])


def test_combine_applies_a_recipe_recency_weights() -> None:
    from shared.serving.recipe import Recipe

    q = combine([[1.0, 0.0], [0.0, 1.0]], Recipe(last_k=2, decay=0.5))  # the newer one weighs twice as much
    assert q == pytest.approx(list(np.array([0.5, 1.0]) / np.linalg.norm([0.5, 1.0])))


def test_rank_orders_by_score_then_movie_id_and_drops_banned() -> None:
    hits = [(9, 0.5), (3, 0.9), (7, 0.5), (5, 0.5), (1, 0.99), (2, 0.7)]
    assert rank(hits, banned={1}, k=4) == [(3, 0.9), (2, 0.7), (5, 0.5), (7, 0.5)]


def test_rank_treats_float_noise_as_a_tie_and_skips_non_finite() -> None:
    hits = [(8, 0.30000001), (4, 0.3), (6, float("nan")), (2, float("inf"))]
    assert rank(hits, banned=set(), k=10) == [(4, 0.3), (8, 0.3)]


def test_rank_keeps_best_score_of_duplicates() -> None:
    assert rank([(4, 0.1), (4, 0.8), (4, 0.3)], banned=set(), k=5) == [(4, 0.8)]


def test_dedupe_keeps_first_occurrence_order() -> None:
    assert dedupe([5, 3, 5, 1, 3]) == [5, 3, 1]


def test_tie_detection_asks_for_a_wider_search_only_when_cut_inside_a_tie() -> None:
    from handlers.api_app.recommender import _tie_may_continue

    tied = [(i, 1.0) for i in range(10)]
    assert _tie_may_continue(tied, rank(tied, set(), 3), limit=10, k=3)
    assert not _tie_may_continue(tied, rank(tied, set(), 3), limit=11, k=3)  # index had nothing more
    mixed = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.6)]
    assert not _tie_may_continue(mixed, rank(mixed, set(), 2), limit=4, k=2)
