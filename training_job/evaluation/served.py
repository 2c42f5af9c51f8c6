"""Evaluation of what is SERVED: the API's own query + ranking code (shared/serving/recipe.py) run over held-out targets.

Why not the vectorised scorer of evaluate.py: that one is a fast approximation used for the per-epoch
learning curve; the numbers a run reports as PinSage's test metrics must be the ones a user would get
from the API. So the recipe is chosen here on the validation split, user by user, with
`shared.serving.recipe.ExactIndex` (the API's in-memory index), and the test split is scored the same way once.
The per-user loop costs ~0.1 ms per user (one (N, D) x (D,) product).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from shared.serving.interests import Plan, because, plan, serve
from shared.serving.recipe import ExactIndex, Recipe
from training_job.model.graph import Interactions

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


def plan_for(index: ExactIndex, recipe: Recipe, history: Sequence[int]) -> Plan | None:
    """The recipe's interests over the history's selected movies (those the run knows); None if none."""
    selected = [m for m in recipe.select(history) if m in index.row]
    if not selected:
        return None
    return plan(recipe, selected, index.vectors(selected))


def recommend(
    index: ExactIndex, recipe: Recipe, history: Sequence[int], k: int = 10, diversity: float | None = None
) -> list[int]:
    """What the API answers for this history: the recipe's interests, rated movies excluded, top k ids."""
    p = plan_for(index, recipe, history)
    if p is None:
        return []
    banned = set(history)
    picks = serve(
        p,
        lambda queries, n: [index.search(q, n, banned=banned) for q in queries],
        k,
        recipe.diversity if diversity is None else diversity,
        index.vectors,
    )
    return [pick.movie_id for pick in picks]


def ranking_metrics(
    ranked: Iterable[Sequence[int]], targets: Sequence[int | Collection[int]], catalogue: int, k: int = 10
) -> dict[str, float]:
    """HR@k, NDCG@k, coverage (share of the catalogue in at least one top k) and the number of users.

    A target is one held-out movie or several (a hit when any is in the top k, ranked by the first found).
    """
    hits, ndcg, shown, n = 0, 0.0, set(), 0
    for ids, target in zip(ranked, targets, strict=True):
        top = list(ids)[:k]
        shown.update(top)
        n += 1
        wanted = {target} if isinstance(target, int) else set(target)
        ranks = [r for r, m in enumerate(top) if m in wanted]
        if ranks:
            hits += 1
            ndcg += 1.0 / math.log2(ranks[0] + 2)
    if n == 0:
        return {f"hr@{k}": 0.0, f"ndcg@{k}": 0.0, "coverage": 0.0, "users": 0}
    coverage = len(shown) / catalogue if catalogue else 0.0
    return {f"hr@{k}": hits / n, f"ndcg@{k}": ndcg / n, "coverage": coverage, "users": n}


def served_metrics(index: ExactIndex, recipe: Recipe, t: Targets, k: int = 10) -> tuple[dict[str, float], list[list[int]]]:
    """Metrics of the served rankings for every target, and the rankings themselves."""
    ranked = [recommend(index, recipe, h, k) for h in t.histories]
    return ranking_metrics(ranked, t.targets, len(index), k), ranked


# Interest coverage is measured against ONE reference clustering of each user's selected movies (the
# same for every recipe compared), so a recipe cannot look better by finding fewer interests: average
# linkage at the median within-user cosine distance of the run (`typical_distance`; embeddings of
# different runs spread differently), the REFERENCE_INTERESTS heaviest clusters.
REFERENCE_INTERESTS = 3


def typical_distance(index: ExactIndex, recipe: Recipe, t: Targets, users: int = 2000) -> float:
    """Median cosine distance between two selected movies of the same user (first `users` users)."""
    parts = []
    for history in t.histories[:users]:
        selected = [m for m in recipe.select(history) if m in index.row]
        vec = index.vectors(selected)  # (n, D) unit rows
        parts.append((1.0 - vec @ vec.T)[np.triu_indices(len(selected), 1)])
    flat = np.concatenate(parts) if parts else np.zeros(0)
    return round(float(np.median(flat)), 4) if len(flat) else 0.5


def interest_coverage(
    index: ExactIndex, recipe: Recipe, t: Targets, ranked: Sequence[Sequence[int]], reference_threshold: float
) -> dict[str, float]:
    """For users whose selected movies span >= 2 reference interests: mean share of them in the top k.

    A recommended movie represents the interest of its first `because` (its most similar selected movie)
    when it is as close to that movie as the reference clustering's threshold - a movie close to none of
    the user's movies represents no interest. Also reports how many users qualified.
    """
    reference = replace(recipe, interests=REFERENCE_INTERESTS, threshold=reference_threshold, diversity=0.0)
    shares: list[float] = []
    for history, ids in zip(t.histories, ranked, strict=True):
        p = plan_for(index, reference, history)
        if p is None or len(p.interests) < 2 or not ids:
            continue
        owner = {row: c for c, interest in enumerate(p.interests) for row in interest.rows}
        row_of = {m: r for r, m in enumerate(p.selected)}
        items = index.vectors(list(ids))  # (k, D) unit rows
        cited = set()
        for item, reasons in zip(items, because(p, items), strict=True):
            best = row_of[reasons[0]]
            if 1.0 - float(item @ p.vectors[best]) <= reference_threshold:
                cited.add(owner.get(best))
        shares.append(len(cited - {None}) / len(p.interests))
    return {"interest_coverage": float(np.mean(shares)) if shares else 0.0, "multi_interest_users": len(shares)}


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


# Multi-interest candidates tried on validation once last_k/decay are chosen: (max interests, clustering
# threshold as a multiple of the run's typical within-user distance). Then the default diversity.
INTEREST_GRID: tuple[tuple[int, float], ...] = ((2, 1.0), (2, 1.25), (3, 1.0), (3, 1.25))
DIVERSITY_GRID: tuple[float, ...] = (0.1, 0.2)
# Multi-interest may cost at most this much validation HR@10 against the single vector.
HR_BUDGET = 0.005


def _scored(index: ExactIndex, recipe: Recipe, t: Targets, reference: float) -> dict[str, float]:
    m, ranked = served_metrics(index, recipe, t)
    return {**m, **interest_coverage(index, recipe, t, ranked, reference)}


def select_interests(
    index: ExactIndex,
    single: Recipe,
    val: Targets,
    interest_grid: Iterable[tuple[int, float]] = INTEREST_GRID,
    diversity_grid: Iterable[float] = DIVERSITY_GRID,
    budget: float = HR_BUDGET,
) -> tuple[Recipe, Recipe, dict[str, object]]:
    """Single vector vs multi-interest on validation, then the default diversity.

    Multi-interest candidates within HR_BUDGET of the single vector's validation HR@10 compete on interest
    coverage (ties: HR@10): that is what they are for. None within budget -> the single vector is kept and
    the report says so. The default diversity is the one with the best validation HR@10 (ties: the
    smaller), 0 included, so it never costs accuracy on validation. Returns (chosen recipe, the best multi
    candidate by HR@10 - reported on test whether chosen or not, the validation report).
    """
    reference = typical_distance(index, single, val)
    results: dict[str, dict[str, float]] = {single.name: _scored(index, single, val, reference)}
    base = results[single.name]
    best_multi: Recipe | None = None
    best_multi_key: tuple[float, float] | None = None
    eligible: list[tuple[tuple[float, float], Recipe]] = []
    for interests, factor in interest_grid:
        recipe = replace(single, interests=interests, threshold=round(reference * factor, 4))
        m = results[recipe.name] = _scored(index, recipe, val, reference)
        key = (m["hr@10"], m["ndcg@10"])
        if best_multi_key is None or key > best_multi_key:
            best_multi, best_multi_key = recipe, key
        if m["hr@10"] >= base["hr@10"] - budget:
            eligible.append(((m["interest_coverage"], m["hr@10"]), recipe))
    if eligible:
        chosen = max(eligible, key=lambda e: e[0])[1]  # max() keeps the first (simpler) of equal keys
        note = f"multi-interest chosen: validation HR@10 within {budget} of the single vector"
    else:
        chosen = single
        note = f"single vector kept: every multi-interest candidate lost more than {budget} validation HR@10"
    best_d, best_key = 0.0, (results[chosen.name]["hr@10"], results[chosen.name]["ndcg@10"])
    for d in diversity_grid:
        recipe = replace(chosen, diversity=d)
        m = results[recipe.name] = _scored(index, recipe, val, reference)
        if (m["hr@10"], m["ndcg@10"]) > best_key:
            best_d, best_key = d, (m["hr@10"], m["ndcg@10"])
    multi = chosen if chosen.interests > 1 else (best_multi or replace(single, interests=2, threshold=reference))
    chosen = replace(chosen, diversity=best_d)
    report: dict[str, object] = {
        "reference_threshold": reference,
        "hr_budget": budget,
        "note": note,
        "grid": results,
    }
    return chosen, multi, report


def multi_interest_report(
    index: ExactIndex, chosen: Recipe, multi: Recipe, val: Targets, test: Targets, selection: dict[str, object]
) -> dict[str, object]:
    """Single vector vs multi-interest on validation (from the selection) and on test, for metrics.json."""
    reference = float(selection["reference_threshold"])  # type: ignore[arg-type]
    single = replace(chosen, interests=1, diversity=0.0)
    multi = replace(multi, diversity=0.0)
    grid: dict[str, dict[str, float]] = selection["grid"]  # type: ignore[assignment]
    on_test = {r.name: _scored(index, r, test, reference) for r in (single, multi, chosen)}
    return {
        "chosen": chosen.to_dict(),
        "note": selection["note"],
        "reference_threshold": reference,
        "hr_budget": selection["hr_budget"],
        "validation": {"single": grid[single.name], "multi": grid[multi.name], "chosen": grid[chosen.name]},
        "test": {
            "single": on_test[single.name],
            "multi": {**on_test[multi.name], "recipe": multi.to_dict()},
            "chosen": on_test[chosen.name],
        },
        "validation_grid": grid,
    }


def choose_and_score(
    index: ExactIndex, val: Targets, test: Targets
) -> tuple[Recipe, dict[str, float], dict[str, dict[str, float]], dict[str, object]]:
    """The whole served-quality step of a run: recipe (last_k/decay, then interests and diversity) chosen on
    validation; test metrics of the chosen recipe (what the API serves); the last_k/decay grid; the
    single-vs-multi-interest report for metrics.json["multi_interest"]."""
    single, grid = select_recipe(index, val)
    chosen, multi, selection = select_interests(index, single, val)
    report = multi_interest_report(index, chosen, multi, val, test, selection)
    test_chosen: dict[str, float] = report["test"]["chosen"]  # type: ignore[index]
    served = {k: test_chosen[k] for k in ("hr@10", "ndcg@10", "coverage", "users")}
    return chosen, served, grid, report
