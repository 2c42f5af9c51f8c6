"""shared/serving/interests.py: clustering into interests, the merge, diversity and explanations (API = evaluation)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shared.serving.interests import MAX_BECAUSE, Plan, because, cluster, merge, plan, serve
from shared.serving.recipe import ExactIndex, Recipe

MULTI = Recipe(last_k=500, decay=0.9, interests=3, threshold=0.5)


def tastes(n_per: int, dim: int = 16, k: int = 3, seed: int = 0, noise: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(k * n_per, dim) unit vectors around k orthogonal directions, interleaved in time; (n,) true labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(k * n_per) % k  # (n,)
    vec = np.eye(dim)[labels] + noise * rng.normal(size=(len(labels), dim))  # (n, dim)
    return vec / np.linalg.norm(vec, axis=1, keepdims=True), labels


def catalogue(seed: int = 1, per: int = 40, dim: int = 16, k: int = 3) -> ExactIndex:
    """An index of `k * per` movies (ids 1000+) around the same k directions."""
    vec, _ = tastes(per, dim=dim, k=k, seed=seed, noise=0.15)
    return ExactIndex(np.arange(1000, 1000 + len(vec)), vec)


def run(index: ExactIndex, recipe: Recipe, liked: list[int], vectors: np.ndarray, k: int = 10, diversity: float = 0.0) -> tuple[Plan, list[int]]:
    p = plan(recipe, liked, vectors)
    picks = serve(p, lambda qs, n: [index.search(q, n, banned=liked) for q in qs], k, diversity, index.vectors)
    return p, [x.movie_id for x in picks]


def test_cluster_recovers_planted_tastes() -> None:
    vec, labels = tastes(5)
    groups = cluster(vec, threshold=0.3)
    assert sorted(sorted(set(labels[g].tolist())) for g in groups) == [[0], [1], [2]]
    assert sorted(len(g) for g in groups) == [5, 5, 5]
    assert cluster(vec, threshold=2.0) == [list(range(15))]  # everything within reach: one cluster
    assert len(cluster(vec, threshold=0.0)) == 15  # nothing merges


def test_cluster_edge_cases() -> None:
    assert cluster(np.zeros((0, 4)), 0.5) == [[]]
    assert cluster(np.ones((1, 4)), 0.5) == [[0]]
    same = np.tile(np.array([[0.6, 0.8, 0.0]]), (7, 1))  # identical embeddings
    assert cluster(same, 0.0) == [list(range(7))]


def test_cluster_of_500_is_fast_and_deterministic() -> None:
    vec, labels = tastes(167, dim=32, k=3, seed=3, noise=0.1)  # 501 movies
    started = time.perf_counter()
    groups = cluster(vec[:500], threshold=0.4)
    assert time.perf_counter() - started < 1.0  # O(n^2): a few ms on a laptop, generous on a busy CI core
    assert len(groups) == 3 and sum(len(g) for g in groups) == 500
    assert all(len(set(labels[g].tolist())) == 1 for g in groups)
    assert cluster(vec[:500], threshold=0.4) == groups


def test_one_like_or_one_interest_is_exactly_the_single_vector() -> None:
    index = catalogue()
    single = Recipe(last_k=500, decay=0.9)
    liked = [1000]
    assert run(index, MULTI, liked, index.vectors(liked))[1] == run(index, single, liked, index.vectors(liked))[1]
    tight = [1000, 1003, 1006, 1009]  # all of taste 0
    p, ids = run(index, MULTI, tight, index.vectors(tight))
    assert len(p.interests) == 1
    np.testing.assert_array_equal(p.interests[0].query, single.query(index.vectors(tight)))
    assert ids == [m for m, _ in index.search(single.query(index.vectors(tight)), 10, banned=tight)]


def test_identical_likes_form_one_interest() -> None:
    index = catalogue()
    vec = np.tile(index.vectors([1000]), (4, 1))  # four movies with the same embedding
    p = plan(MULTI, [1, 2, 3, 4], vec)
    assert len(p.interests) == 1 and p.interests[0].weight == 1.0


def test_three_tastes_each_get_a_share_and_explanations_cite_them() -> None:
    index = catalogue()
    liked = [1000, 1001, 1002, 1003, 1004, 1005]  # tastes 0, 1, 2, 0, 1, 2 (newest last)
    p, ids = run(index, MULTI, liked, index.vectors(liked))
    assert len(p.interests) == 3
    assert sum(i.weight for i in p.interests) == pytest.approx(1.0)
    assert [i.weight for i in p.interests] == sorted((i.weight for i in p.interests), reverse=True)
    taste = {m: (m - 1000) % 3 for m in index.ids.tolist()}
    picks = serve(p, lambda qs, n: [index.search(q, n, banned=liked) for q in qs], 10, 0.0, index.vectors)
    assert [sum(x.interest == c for x in picks) for c in range(3)] == [4, 3, 3]  # D'Hondt shares of ~.37/.33/.30
    for x in picks:  # the minor interests serve their own taste (the strongest is anchored on the whole taste)
        if x.interest > 0:
            assert taste[x.movie_id] == taste[liked[p.interests[x.interest].rows[0]]]
    single_ids = run(index, Recipe(last_k=500, decay=0.9), liked, index.vectors(liked))[1]
    assert len({taste[m] for m in ids}) >= max(2, len({taste[m] for m in single_ids}))
    cited = because(p, index.vectors(ids))
    for item, reasons in zip(ids, cited, strict=True):
        assert 1 <= len(reasons) <= MAX_BECAUSE
        assert set(reasons) <= set(liked)
        assert taste[reasons[0]] == taste[item]  # the strongest reason is a movie of the same taste
        sims = [float(index.vectors([item])[0] @ index.vectors([r])[0]) for r in reasons]
        assert sims == sorted(sims, reverse=True)


def test_because_is_always_a_subset_of_the_selected_movies() -> None:
    index = catalogue()
    rng = np.random.default_rng(4)
    for _ in range(20):
        liked = [int(x) for x in rng.choice(index.ids, size=int(rng.integers(1, 30)), replace=False)]
        recipe = Recipe(last_k=int(rng.integers(1, 20)), decay=0.8, interests=3, threshold=0.5)
        selected = recipe.select(liked)
        p, ids = run(index, recipe, selected, index.vectors(selected))
        assert ids and all(len(r) >= 1 and set(r) <= set(selected) for r in because(p, index.vectors(ids)))


def test_merge_shares_follow_the_weights() -> None:
    vec = np.eye(3)
    p = Plan((1, 2, 3), vec.astype(np.float32), ())
    from shared.serving.interests import Interest

    p = Plan(p.selected, p.vectors, (Interest((0,), 0.6, vec[0]), Interest((1,), 0.3, vec[1]), Interest((2,), 0.1, vec[2])))
    lists = [[(100 + i, 0.9 - i / 100) for i in range(20)], [(200 + i, 0.8) for i in range(20)], [(300 + i, 0.7) for i in range(20)]]
    picks = merge(p, lists, 10, 0.0, lambda ids: np.zeros((len(ids), 3)))
    counts = [sum(1 for x in picks if x.interest == c) for c in range(3)]
    assert counts == [6, 3, 1]
    assert picks[0].movie_id == 100  # the strongest interest leads
    # a movie in two lists is taken once
    lists[1] = [(100, 0.8), *lists[1]]
    ids = [x.movie_id for x in merge(p, lists, 10, 0.0, lambda ids: np.zeros((len(ids), 3)))]
    assert len(ids) == len(set(ids)) == 10


def test_diversity_zero_is_relevance_and_one_spreads() -> None:
    index = catalogue(per=60)
    liked = [1000]
    single = Recipe(last_k=10, decay=0.9)
    relevance = run(index, single, liked, index.vectors(liked))[1]
    assert run(index, single, liked, index.vectors(liked), diversity=0.0)[1] == relevance
    varied = run(index, single, liked, index.vectors(liked), diversity=0.7)[1]
    assert varied[0] == relevance[0] and varied != relevance

    def spread(ids: list[int]) -> float:
        v = index.vectors(ids)
        return float((v @ v.T)[np.triu_indices(len(ids), 1)].mean())

    assert spread(varied) < spread(relevance)  # less alike on average


def test_recipe_fields_validate_and_old_recipes_stay_single() -> None:
    assert Recipe.from_dict({"last_k": 10, "decay": 0.9}) == Recipe(last_k=10, decay=0.9, interests=1, diversity=0.0)
    r = Recipe(last_k=10, decay=0.9, interests=3, threshold=0.35, diversity=0.1)
    assert Recipe.from_dict(r.to_dict()) == r
    assert r.name == "last10_decay0.9_interests3_t0.35_div0.1"
    for bad in ({"interests": 0}, {"threshold": -0.1}, {"diversity": 1.5}):
        with pytest.raises(ValueError):
            Recipe(**bad)  # type: ignore[arg-type]
