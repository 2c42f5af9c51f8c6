"""Ranking metrics, seen-item exclusion, the user query rule and the baselines on hand-made cases."""

from __future__ import annotations

import math

import numpy as np
import torch

from training_job.evaluation.baselines import cosine_item_similarity, item_knn_scorer, popularity_scorer
from training_job.evaluation.scorer import (
    QueryRule,
    embedding_scorer,
    history_weights,
    rank_metrics,
    seen_matrix,
    select_query,
)
from training_job.model.graph import Interactions


def _inter(users: list[int], items: list[int]) -> Interactions:
    n = len(users)
    return Interactions(
        np.array(users, dtype=np.int64), np.array(items, dtype=np.int64), np.arange(n, dtype=np.int64), np.ones(n, np.float32)
    )


def test_hr_ndcg_coverage_with_seen_items_excluded() -> None:
    num_items = 20
    scores = torch.arange(num_items, 0, -1, dtype=torch.float32)  # item 0 best, item 19 worst

    def score(users: np.ndarray) -> torch.Tensor:
        return scores.view(1, -1).expand(len(users), -1)

    seen = seen_matrix(_inter([0, 0, 1], [0, 1, 5]), 3, num_items)
    targets = _inter([0, 1, 2], [2, 9, 15])
    m = rank_metrics(score, targets, seen, num_items, k=10)
    # user 0: items 0,1 excluded -> target 2 at rank 0; user 1: item 5 excluded -> target 9 at rank 8;
    # user 2: nothing excluded -> target 15 at rank 15, a miss
    assert m["hr@10"] == 2 / 3
    assert math.isclose(m["ndcg@10"], (1.0 + 1 / math.log2(10)) / 3, rel_tol=1e-6)
    # top-10s: {2..11}, {0..4,6..10}, {0..9} -> items 0..11
    assert m["coverage"] == 12 / 20
    assert m["users"] == 3


def test_history_weights_keep_last_k_with_decay() -> None:
    hist = _inter([0, 0, 0, 1], [4, 5, 6, 7])  # user 0 watched 4, 5, 6 (6 most recent)
    w = history_weights(hist, 2, 10, QueryRule(last_k=2, decay=0.5)).toarray()
    assert w[0].tolist() == [0, 0, 0, 0, 0, 0.5, 1.0, 0, 0, 0]
    assert w[1, 7] == 1.0


def test_embedding_scorer_is_cosine_to_recency_weighted_mean() -> None:
    emb = np.eye(3, dtype=np.float32)
    qw = history_weights(_inter([0, 0], [0, 1]), 1, 3, QueryRule(last_k=5, decay=0.5))
    s = embedding_scorer(emb, qw)(np.array([0]))
    expected = np.array([0.5, 1.0, 0.0]) / math.sqrt(1.25)
    np.testing.assert_allclose(s.numpy()[0], expected, rtol=1e-6)


def test_item_knn_similarity_and_scores() -> None:
    train = _inter([0, 0, 1, 1, 2], [0, 1, 0, 1, 2])  # items 0 and 1 always together; 2 alone
    sim = cosine_item_similarity(train, 3, 4)
    assert torch.allclose(sim, sim.T)
    assert sim.diagonal().abs().sum() == 0
    assert math.isclose(float(sim[0, 1]), 1.0, rel_tol=1e-6)
    assert float(sim[0, 2]) == 0.0 and float(sim[3].abs().sum()) == 0.0
    qw = history_weights(_inter([2], [0]), 3, 4, QueryRule(1, 1.0))
    scores = item_knn_scorer(sim, qw)(np.array([2]))
    assert int(scores[0].argmax()) == 1


def test_popularity_and_select_query() -> None:
    train = _inter([0, 1, 2, 2], [3, 3, 3, 1])
    pop = popularity_scorer(train, 5)(np.array([0, 1]))
    assert pop.shape == (2, 5) and int(pop[0].argmax()) == 3
    # user 0 history: item 0 long ago, item 4 most recent; target is 4's twin -> last-1 must win
    emb = np.array([[1, 0], [1, 0], [0, 1], [0.9, 0.1], [0, 1]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    hist = _inter([0, 0, 0], [0, 1, 4])
    seen = seen_matrix(hist, 1, 5)
    targets = _inter([0], [2])

    def make(rule: QueryRule):  # type: ignore[no-untyped-def]
        return embedding_scorer(emb, history_weights(hist, 1, 5, rule))

    rule, grid = select_query(make, targets, seen, 5, grid=((100, 1.0), (1, 1.0)))
    assert rule == QueryRule(1, 1.0)
    assert set(grid) == {"last100_decay1.0", "last1_decay1.0"}
