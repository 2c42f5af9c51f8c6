"""Evaluation of what is SERVED: the API's own query + ranking code (shared/recipe.py) run over held-out targets.

Why not the vectorised scorer of evaluate.py: that one is a fast approximation used for the per-epoch
learning curve; the numbers a run reports as PinSage's test metrics must be the ones a user would get
from the API. So the recipe is chosen here on the validation split, user by user, with
`shared.recipe.ExactIndex` (the API's in-memory index), and the test split is scored the same way once.
The per-user loop costs ~0.1 ms per user (one (N, D) x (D,) product).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from shared.recipe import ExactIndex, Recipe
from training_job.graph import Interactions

# The recipes tried on validation (last_k, decay); the best HR@10 (ties: NDCG@10) is what the run serves.
RECIPE_GRID: tuple[tuple[int, float], ...] = (
    (1, 1.0),
    (3, 1.0),
    (3, 0.7),
    (5, 0.8),
    (5, 0.6),
    (10, 0.9),
    (10, 0.7),
    (20, 0.9),
    (50, 0.95),
    (50, 1.0),
    (100000, 1.0),
)


@dataclass(frozen=True)
class Targets:
    """One evaluated user per row: their history (raw movie ids, oldest first) and the held-out movie."""

    user_ids: list[int]
    histories: list[list[int]]
    targets: list[int]


def histories(inter: Interactions, user_ids: np.ndarray, movie_ids: np.ndarray) -> dict[int, list[int]]:
    """{raw user_id: raw movie_ids oldest first} of interactions sorted by (user, time)."""
    if len(inter) == 0:
        return {}
    bounds = np.flatnonzero(np.r_[True, inter.user[1:] != inter.user[:-1], True])
    mids = movie_ids[inter.item]
    return {
        int(user_ids[inter.user[s]]): mids[s:e].tolist() for s, e in zip(bounds[:-1], bounds[1:], strict=True)
    }


def targets_for(history: Interactions, held_out: Interactions, user_ids: np.ndarray, movie_ids: np.ndarray) -> Targets:
    """Evaluated users (those with a held-out movie and a non-empty history) in user order."""
    hist = histories(history, user_ids, movie_ids)
    rows = [
        (int(user_ids[u]), int(movie_ids[i])) for u, i in zip(held_out.user.tolist(), held_out.item.tolist(), strict=True)
    ]
    rows = [(u, m) for u, m in rows if hist.get(u)]
    return Targets([u for u, _ in rows], [hist[u] for u, _ in rows], [m for _, m in rows])


def recommend(index: ExactIndex, recipe: Recipe, history: Sequence[int], k: int = 10) -> list[int]:
    """What the API answers for this history: the recipe's query, rated movies excluded, top k ids."""
    selected = [m for m in recipe.select(history) if m in index.row]
    if not selected:
        return []
    query = recipe.query(index.vectors(selected))
    return [m for m, _ in index.search(query, k, banned=history)]


def ranking_metrics(ranked: Iterable[Sequence[int]], targets: Sequence[int], catalogue: int, k: int = 10) -> dict[str, float]:
    """HR@k, NDCG@k, coverage (share of the catalogue in at least one top k) and the number of users."""
    hits, ndcg, shown, n = 0, 0.0, set(), 0
    for ids, target in zip(ranked, targets, strict=True):
        top = list(ids)[:k]
        shown.update(top)
        n += 1
        if target in top:
            hits += 1
            ndcg += 1.0 / math.log2(top.index(target) + 2)
    if n == 0:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "coverage": 0.0, "users": 0}
    return {f"hr@{k}": hits / n, f"ndcg@{k}": ndcg / n, "coverage": len(shown) / max(catalogue, 1), "users": n}


def served_metrics(index: ExactIndex, recipe: Recipe, t: Targets, k: int = 10) -> tuple[dict[str, float], list[list[int]]]:
    """Metrics of the served rankings for every target, and the rankings themselves."""
    ranked = [recommend(index, recipe, h, k) for h in t.histories]
    return ranking_metrics(ranked, t.targets, len(index), k), ranked


def select_recipe(
    index: ExactIndex, val: Targets, grid: Iterable[tuple[int, float]] = RECIPE_GRID
) -> tuple[Recipe, dict[str, dict[str, float]]]:
    """The recipe with the best validation HR@10 (ties: NDCG@10, then the simpler = earlier one)."""
    results: dict[str, dict[str, float]] = {}
    best: tuple[float, float] | None = None
    best_recipe = Recipe(*next(iter(RECIPE_GRID)))
    for last_k, decay in grid:
        recipe = Recipe(last_k=last_k, decay=decay)
        m, _ = served_metrics(index, recipe, val)
        results[recipe.name] = m
        key = (m["hr@10"], m["ndcg@10"])
        if best is None or key > best:
            best, best_recipe = key, recipe
    return best_recipe, results
