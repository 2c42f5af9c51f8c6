"""Test metrics of a trained run: PinSage as served (served_eval.py) beside popularity, item-kNN and EASE.

Everything here is computed on the leave-last-out split with the user's rated movies excluded; each
method's query rule / recipe is chosen on validation, never on test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from shared.serving.recipe import ExactIndex, Recipe
from training_job.evaluation.baselines import (
    cosine_item_similarity,
    ease_similarity,
    item_knn_scorer,
    popularity_scorer,
)
from training_job.evaluation.franchises import coherence, top_k_lists
from training_job.evaluation.scorer import QueryRule, history_weights, rank_metrics, seen_matrix, select_query
from training_job.evaluation.served import choose_and_score, targets_for
from training_job.model.graph import GraphData, Interactions


def concat(a: Interactions, b: Interactions) -> Interactions:
    """Union of two interaction sets, re-sorted by (user, time)."""
    user = np.concatenate([a.user, b.user])
    ts = np.concatenate([a.ts, b.ts])
    order = np.lexsort((np.arange(len(user)), ts, user))
    return Interactions(
        user[order], np.concatenate([a.item, b.item])[order], ts[order], np.concatenate([a.rating, b.rating])[order]
    )


def genre_agreement(sim: np.ndarray, genres: torch.Tensor, k: int = 10) -> float:
    """Share of each movie's top-k most similar movies that share at least one genre with it (mean).

    Shows taste coherence of "similar movies" lists beside HR: (N, N) similarities, (N, G) multi-hot genres.
    """
    s = np.array(sim, dtype=np.float32, copy=True)  # (N, N)
    np.fill_diagonal(s, -np.inf)
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]  # (N, k)
    g = genres.numpy() > 0  # (N, G)
    shared = (g[top] & g[:, None, :]).any(-1)  # (N, k)
    return float(shared.mean())


def similar_lists(index: ExactIndex, recipe: Recipe, k: int = 10) -> dict[int, list[int]]:
    """Every movie's top-k similar list as GET /movies/{id}/similar forms it: the recipe's query of the one
    movie's vector, exact search, the movie itself excluded."""
    out: dict[int, list[int]] = {}
    for mid in index.ids.tolist():
        query = recipe.query(index.vectors([mid]))
        out[int(mid)] = [m for m, _ in index.search(query, k, banned={int(mid)})]
    return out


def evaluate_all(
    gd: GraphData,
    embeddings: np.ndarray,
    franchise: dict[int, int] | None = None,
    movie_genres: dict[int, frozenset[str]] | None = None,
) -> dict[str, Any]:
    """Test metrics of PinSage AS SERVED (recipe chosen on validation) and of the baselines.

    PinSage runs through `served_eval` = the API's query and ranking code, so its numbers are what the API
    serves for these users. The baselines (popularity, item-kNN, EASE) are scored with the vectorised
    scorer and their own query rules chosen on validation, on the same split and exclusions.
    """
    nu, ni = gd.num_users, gd.num_items
    seen_val = seen_matrix(gd.train, nu, ni)
    test_hist = concat(gd.train, gd.val)
    seen_test = seen_matrix(test_hist, nu, ni)
    index = ExactIndex(gd.movie_ids, embeddings)
    val_t = targets_for(gd.train, gd.val, gd.user_ids, gd.movie_ids)
    test_t = targets_for(test_hist, gd.test, gd.user_ids, gd.movie_ids)
    recipe, pinsage_test, recipe_grid, multi_interest = choose_and_score(index, val_t, test_t)

    test = {"pinsage": pinsage_test, "popularity": rank_metrics(popularity_scorer(gd.train, ni), gd.test, seen_test, ni)}
    rules: dict[str, Any] = {}
    grids: dict[str, Any] = {"pinsage": recipe_grid}
    sims = {"item_knn": cosine_item_similarity(gd.train, nu, ni), "ease": ease_similarity(gd.train, nu, ni)}
    for name, sim in sims.items():

        def on(history: Interactions, sim: torch.Tensor = sim) -> Callable[[QueryRule], Any]:
            return lambda rule: item_knn_scorer(sim, history_weights(history, nu, ni, rule))

        chosen, grids[name] = select_query(on(gd.train), gd.val, seen_val, ni)
        rules[name] = chosen.to_dict()
        test[name] = rank_metrics(on(test_hist)(chosen), gd.test, seen_test, ni)
    emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    agreement = {
        "pinsage": genre_agreement((emb @ emb.T).numpy(), gd.features.genres),
        "item_knn": genre_agreement(sims["item_knn"].numpy(), gd.features.genres),
    }
    similar: dict[str, Any] = {}
    if franchise is not None and movie_genres is not None:
        lists = {
            "pinsage": similar_lists(index, recipe),
            "item_knn": top_k_lists(gd.movie_ids, sims["item_knn"].numpy()),
        }
        similar = {name: coherence(ls, franchise, movie_genres) for name, ls in lists.items()}
    return {
        "test": test,
        "similar@10": similar,
        "recipe": recipe.to_dict(),
        "query_rule": {"pinsage": recipe.to_dict(), **rules},
        "multi_interest": multi_interest,
        "validation_query_grid": grids,
        "similar_genre_agreement@10": agreement,
    }
