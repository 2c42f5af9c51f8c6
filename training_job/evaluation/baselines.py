"""Baselines PinSage must beat on the same split: popularity and item-kNN (cosine co-occurrence).

Both are computed from TRAIN edges only, like PinSage's graph. Item-kNN scores a candidate j for a user
as sum_i w_i * cos(i, j) over the user's recent items i with the same QueryRule weights as PinSage
(evaluate.history_weights), so the comparison differs only in the item-item similarity.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from training_job.evaluation.scorer import ScoreFn
from training_job.model.graph import Interactions


def popularity_scorer(train: Interactions, num_items: int) -> ScoreFn:
    """Every user gets the most-rated movies (train ratings count)."""
    pop = torch.from_numpy(np.bincount(train.item, minlength=num_items).astype(np.float32))  # (N,)

    def score(users: np.ndarray) -> torch.Tensor:
        return pop.view(1, -1).expand(len(users), -1)  # (C, N)

    return score


def cosine_item_similarity(train: Interactions, num_users: int, num_items: int) -> torch.Tensor:
    """Dense (N, N) cosine similarity of items' user sets (co-occurrence / sqrt(deg_i deg_j)), zero diagonal.

    Dense is fine for MovieLens-sized catalogues (3.7k items -> 55 MB); a million-item catalogue would
    keep the top neighbours per item instead.
    """
    x = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float32), (train.user, train.item)), shape=(num_users, num_items)
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    co = torch.from_numpy((x.T @ x).toarray().astype(np.float32))  # (N, N) co-occurrence counts
    deg = co.diagonal().clone().clamp(min=1.0)  # (N,)
    sim = co / torch.sqrt(deg.view(-1, 1) * deg.view(1, -1))
    sim.fill_diagonal_(0.0)
    return sim


def item_knn_scorer(sim: torch.Tensor, query_weights: sp.csr_matrix) -> ScoreFn:
    """scores[u, j] = sum_i w[u, i] * sim[i, j] with w from evaluate.history_weights."""
    sim_np = sim.numpy()

    def score(users: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(query_weights[users] @ sim_np, dtype=np.float32))  # (C, N)

    return score


def ease_similarity(train: Interactions, num_users: int, num_items: int, l2: float = 500.0) -> torch.Tensor:
    """EASE (Steck 2019): the item-item weights B = I - P / diag(P), P = (X^T X + l2 I)^-1, zero diagonal.

    A strong linear baseline on MovieLens; dense inverse of an (N, N) Gram matrix (fine for ~10k items).
    """
    x = sp.csr_matrix(
        (np.ones(len(train), dtype=np.float64), (train.user, train.item)), shape=(num_users, num_items)
    )
    x.sum_duplicates()
    x.data[:] = 1.0
    gram = (x.T @ x).toarray()  # (N, N)
    gram[np.diag_indices(num_items)] += l2
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]
    b[np.diag_indices(num_items)] = 0.0
    return torch.from_numpy(b.astype(np.float32))
