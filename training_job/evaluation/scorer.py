"""Leave-last-out ranking metrics over the full catalogue: HR@10, NDCG@10 and catalogue coverage.

Protocol: for every evaluated user the target is one held-out movie (validation: the second latest
rating; test: the latest). Every movie of the catalogue is a candidate except the ones the user has
already rated in the history the model may see (train for validation, train + validation for test).
HR@K = fraction of users whose target is in their top K; NDCG@K = mean 1/log2(rank + 2) of hits;
coverage = fraction of the catalogue that appears in at least one user's top K.

This module is the fast, vectorised scorer (torch, whole user batches) used for the per-epoch learning
curve and for the baselines (popularity, item-kNN, EASE). PinSage's reported test metrics do NOT come from
here: they come from `served_eval.py`, which runs the API's own query and ranking code (shared/serving/recipe.py).
A query rule here is the same shape as a recipe: the L2-normalised weighted mean of the user's `last_k`
most recent items, the i-th most recent weighted `decay**i`; `select_query` picks it on VALIDATION.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import numpy as np
import scipy.sparse as sp
import torch

from training_job.model.graph import Interactions

ScoreFn = Callable[[np.ndarray], torch.Tensor]  # user indices (C,) -> scores (C, N)

QUERY_GRID: tuple[tuple[int, float], ...] = (
    (1, 1.0),
    (3, 1.0),
    (5, 0.8),
    (10, 0.9),
    (20, 0.9),
    (50, 0.95),
    (100000, 1.0),
)


@dataclass(frozen=True)
class QueryRule:
    """Weighted mean of the last `last_k` items, the i-th most recent weighted decay**i."""

    last_k: int
    decay: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def history_weights(history: Interactions, num_users: int, num_items: int, rule: QueryRule) -> sp.csr_matrix:
    """Sparse (U, N) weights of each user's recent items under `rule` (history sorted by user, time)."""
    n = len(history)
    if n == 0:
        return sp.csr_matrix((num_users, num_items), dtype=np.float32)
    last = np.r_[history.user[1:] != history.user[:-1], True]
    end = np.flip(np.minimum.accumulate(np.flip(np.where(last, np.arange(n), n))))
    age = end - np.arange(n)  # 0 = most recent
    keep = age < rule.last_k
    w = np.power(rule.decay, age[keep]).astype(np.float32)
    m = sp.csr_matrix((w, (history.user[keep], history.item[keep])), shape=(num_users, num_items))
    m.sum_duplicates()
    return m


def seen_matrix(history: Interactions, num_users: int, num_items: int) -> sp.csr_matrix:
    """Binary (U, N) matrix of already-rated movies, excluded from the candidates."""
    m = sp.csr_matrix(
        (np.ones(len(history), dtype=np.float32), (history.user, history.item)), shape=(num_users, num_items)
    )
    m.sum_duplicates()
    return m


def embedding_scorer(emb: np.ndarray, query_weights: sp.csr_matrix) -> ScoreFn:
    """Cosine scores of a weighted-mean-of-recent-items query against every item embedding."""
    e = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))  # (N, D)

    def score(users: np.ndarray) -> torch.Tensor:
        q = torch.from_numpy(np.asarray(query_weights[users] @ emb, dtype=np.float32))  # (C, D)
        q = q / q.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return q @ e.T  # (C, N)

    return score


def rank_metrics(
    score_fn: ScoreFn,
    targets: Interactions,
    seen: sp.csr_matrix,
    num_items: int,
    k: int = 10,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """HR@k, NDCG@k and coverage of `score_fn` for one target per user in `targets`."""
    users, items = targets.user, targets.item
    if len(users) == 0:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "coverage": 0.0, "users": 0}
    hits = 0.0
    ndcg = 0.0
    recommended = np.zeros(num_items, dtype=bool)
    for start in range(0, len(users), chunk_size):
        u = users[start : start + chunk_size]
        t = torch.from_numpy(items[start : start + chunk_size])
        scores = score_fn(u).to(torch.float32).clone()  # (C, N)
        excl = seen[u].tocoo()
        scores[torch.from_numpy(excl.row.astype(np.int64)), torch.from_numpy(excl.col.astype(np.int64))] = -np.inf
        top = torch.topk(scores, min(k, num_items), dim=1).indices  # (C, k)
        match = top == t.view(-1, 1)  # (C, k)
        rank = match.float().argmax(dim=1)  # (C,)
        hit = match.any(dim=1)
        hits += float(hit.sum())
        ndcg += float((hit.float() / torch.log2(rank.float() + 2.0)).sum())
        recommended[top.reshape(-1).numpy()] = True
    n = len(users)
    return {f"hr@{k}": hits / n, f"ndcg@{k}": ndcg / n, "coverage": float(recommended.mean()), "users": n}


def select_query(
    make_scorer: Callable[[QueryRule], ScoreFn],
    targets: Interactions,
    seen: sp.csr_matrix,
    num_items: int,
    grid: Iterable[tuple[int, float]] = QUERY_GRID,
) -> tuple[QueryRule, dict[str, dict[str, float]]]:
    """The query rule with the best HR@10 (ties: NDCG@10) on `targets`, and every rule's metrics."""
    results: dict[str, dict[str, float]] = {}
    best: tuple[float, float] | None = None
    best_rule = QueryRule(*next(iter(QUERY_GRID)))
    for last_k, decay in grid:
        rule = QueryRule(last_k, decay)
        m = rank_metrics(make_scorer(rule), targets, seen, num_items)
        results[f"last{last_k}_decay{decay}"] = m
        key = (m["hr@10"], m["ndcg@10"])
        if best is None or key > best:
            best, best_rule = key, rule
    return best_rule, results
