"""Multi-interest queries, their merge, diversity (MMR) and explanations - ONE implementation (numpy only).

Why: one averaged query vector collapses a person with several tastes onto the strongest one (or onto a
point between them that matches none). Following PinnerSage (Pal et al., KDD 2020), the movies a recipe
selects are clustered into interests, each interest queries the index, and the answers are merged so
that every interest gets a share of the list proportional to its weight (size x recency). The training
job's served evaluation and the API both call `plan()` / `merge()` / `because()` below, so what the run
reports is what the API serves.

Choices (see docs/multi-interest.md for the measurements behind them):

- **Average-linkage agglomerative clustering on cosine distance** (1 - cos of unit vectors), merged while
  the closest pair of clusters is within `Recipe.threshold`. PinnerSage uses Ward; average linkage is used
  here because its threshold is in the same unit as every score the product shows (a mean cosine between
  two groups of movies), it has no centroid drift on the unit sphere, and the Lance-Williams update keeps
  it O(n^2) with a cached nearest neighbour per row - 500 movies cluster in a few milliseconds without
  scipy (not in the API package). Ties are broken by row order, so the result is deterministic.
- **The `Recipe.interests` heaviest clusters are kept** (PinnerSage keeps the top few medoids); a lone
  outlier therefore cannot take a share from a real interest, and the rest of the list is not distorted
  by forcing unrelated movies into one cluster.
- **Query per interest = the recency-weighted mean of its members; the strongest interest is anchored
  on the whole selection** (`Recipe.query` over every selected movie, today's query). PinnerSage's medoid
  was measured and rejected: on the realistic profile a medoid query (one movie) lost 0.08 validation
  HR@10, a per-cluster mean 0.04-0.008, the anchored variant 0.004 (docs/multi-interest.md). One interest
  (or `interests == 1`) is exactly the single-vector query, as before.
- **Merge:** D'Hondt allocation - the next slot goes to the interest with the largest
  weight / (1 + slots it already has), which takes its best unused candidate. Shares are proportional to
  the weights and the strongest interest leads.
- **Diversity** lambda in [0, 1]: within the chosen interest, the candidate maximising
  (1 - lambda) * score - lambda * max cosine to the items already picked (maximal marginal relevance).
  lambda = 0 is pure relevance (today's order).
- **because**: the selected movies most similar to the item, strongest first: the best one always, the
  next ones while within `BECAUSE_MARGIN` of it, at most `MAX_BECAUSE`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from shared.serving.recipe import Recipe

MAX_BECAUSE = 3
BECAUSE_MARGIN = 0.1  # cosine below the best supporting movie still cited
POOL_SLACK = 10  # extra candidates per interest beyond k when merging or diversifying


@dataclass(frozen=True)
class Interest:
    """One cluster of the selected movies."""

    rows: tuple[int, ...]  # row numbers into the selected movies (oldest first), ascending
    weight: float  # share of the recency weight of the kept interests (sums to 1 over the plan)
    query: np.ndarray  # (D,) float32 unit query vector


@dataclass(frozen=True)
class Plan:
    """How one request queries the index: the selected movies and one query per kept interest."""

    selected: tuple[int, ...]  # movie ids, oldest first
    vectors: np.ndarray  # (n, D) float32 unit rows of the selected movies
    interests: tuple[Interest, ...]  # strongest first

    @property
    def queries(self) -> list[np.ndarray]:
        return [i.query for i in self.interests]

    def pool(self, k: int, diversity: float) -> int:
        """Candidates to fetch per query: k for one interest without diversity (exactly today's search)."""
        if len(self.interests) == 1 and diversity <= 0.0:
            return k
        return 2 * k + POOL_SLACK


def _unit(vectors: np.ndarray) -> np.ndarray:
    arr = np.asarray(vectors, dtype=np.float64)  # (n, D)
    return arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)


def cluster(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """Average-linkage agglomerative clustering of (n, D) vectors on cosine distance.

    Merges the closest pair of clusters while their mean pairwise distance is <= `threshold`. Returns the
    clusters as ascending row lists, ordered by their first row. O(n^2) memory and time: each row caches
    its nearest active cluster; average linkage is reducible (a merged cluster is never closer to a third
    cluster than the nearer of its parts), so only rows whose nearest was one of the merged pair rescan.
    """
    unit = _unit(vectors)  # (n, D)
    n = len(unit)
    if n <= 1:
        return [list(range(n))]
    dist = 1.0 - unit @ unit.T  # (n, n) cosine distance
    np.clip(dist, 0.0, 2.0, out=dist)
    np.fill_diagonal(dist, np.inf)
    size = np.ones(n, dtype=np.float64)  # (n,) members per active cluster (row = its smallest row)
    members: list[list[int]] = [[i] for i in range(n)]
    active = np.ones(n, dtype=bool)
    nearest = np.argmin(dist, axis=1)  # (n,)
    nearest_d = dist[np.arange(n), nearest]  # (n,)
    for left in range(n - 1, 0, -1):  # `left` = active clusters after this merge
        i = int(np.argmin(nearest_d))
        if not nearest_d[i] <= threshold:
            break
        j = int(nearest[i])
        a, b = (i, j) if i < j else (j, i)  # b joins a
        merged = (size[a] * dist[a] + size[b] * dist[b]) / (size[a] + size[b])  # (n,) Lance-Williams
        dist[a, :] = merged
        dist[:, a] = merged
        dist[a, a] = np.inf
        dist[b, :] = np.inf
        dist[:, b] = np.inf
        size[a] += size[b]
        members[a].extend(members[b])
        members[b] = []
        active[b] = False
        nearest_d[b] = np.inf
        if left == 1:
            break
        stale_mask = (nearest == a) | (nearest == b)  # (n,) rows whose nearest cluster changed
        stale_mask[a] = True
        stale = np.flatnonzero(stale_mask & active)
        sub = dist[stale]  # (s, n)
        nearest[stale] = np.argmin(sub, axis=1)
        nearest_d[stale] = sub[np.arange(len(stale)), nearest[stale]]
    groups = [sorted(m) for m in members if m]
    return sorted(groups, key=lambda g: g[0])




def _weighted_query(unit: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(m, D) unit rows, (m,) weights -> (D,) float32 unit weighted mean (the recipe's query over a cluster)."""
    mean = weights.astype(np.float64) @ unit.astype(np.float64)  # (D,)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-9:
        return unit[-1].astype(np.float32)
    return (mean / norm).astype(np.float32)


def plan(recipe: Recipe, selected: Sequence[int], vectors: np.ndarray) -> Plan:
    """The recipe's interests over `selected` (oldest first) with their (n, D) vectors.

    One interest = the single-vector query of `recipe.query` over every selected movie (today's query).
    """
    raw = np.asarray(vectors, dtype=np.float32)  # (n, D) as stored: the single query is bit-for-bit today's
    unit = _unit(raw).astype(np.float32)  # (n, D)
    sel = tuple(int(m) for m in selected)
    weights = recipe.weights(len(sel))  # (n,) recency, newest = 1
    groups = cluster(unit, recipe.threshold) if recipe.interests > 1 and len(sel) > 1 else [list(range(len(sel)))]
    if len(groups) > 1:
        mass = [float(weights[g].sum()) for g in groups]
        # heaviest first; ties: the group with the most recent movie first
        order = sorted(range(len(groups)), key=lambda c: (-mass[c], -groups[c][-1]))[: recipe.interests]
        groups = [groups[c] for c in order]
    if len(groups) == 1:
        return Plan(sel, unit, (Interest(tuple(range(len(sel))), 1.0, recipe.query(raw)),))
    total = float(sum(weights[g].sum() for g in groups))
    interests = []
    for c, g in enumerate(groups):
        rows = np.asarray(g, dtype=np.int64)
        # the strongest interest is anchored on the whole taste (today's query); the others on their own
        query = recipe.query(raw) if c == 0 else _weighted_query(unit[rows], weights[rows])
        interests.append(Interest(tuple(g), float(weights[rows].sum()) / total, query))
    return Plan(sel, unit, tuple(interests))


@dataclass(frozen=True)
class Pick:
    movie_id: int
    score: float  # rounded cosine to the query of the interest it was taken for
    interest: int  # index into Plan.interests


def merge(
    plan_: Plan,
    lists: Sequence[Sequence[tuple[int, float]]],
    k: int,
    diversity: float,
    vectors_of: Callable[[Sequence[int]], np.ndarray],
) -> list[Pick]:
    """k picks from the per-interest ranked lists ((movie_id, rounded score), best first, banned removed).

    `vectors_of(ids)` -> (len(ids), D) unit item vectors; called only when diversity > 0.
    One interest and diversity 0: the list's first k, unchanged.
    """
    if len(plan_.interests) == 1 and diversity <= 0.0:
        return [Pick(m, s, 0) for m, s in list(lists[0])[:k]]
    cand_ids = list(dict.fromkeys(m for lst in lists for m, _ in lst))
    pos = {m: i for i, m in enumerate(cand_ids)}
    sim = np.zeros((0, 0))
    redundancy = np.zeros(len(cand_ids))  # (c,) max cosine of each candidate to the picked movies
    if diversity > 0.0 and cand_ids:
        mat = _unit(vectors_of(cand_ids))  # (c, D)
        sim = mat @ mat.T  # (c, c) computed once; each pick updates `redundancy` with one row
    picked: list[Pick] = []
    taken: set[int] = set()
    count = [0] * len(plan_.interests)
    cursor = [0] * len(plan_.interests)  # first possibly-unused position of each list
    weights = [i.weight for i in plan_.interests]
    while len(picked) < k:
        for c in range(len(lists)):  # skip movies another interest already took
            while cursor[c] < len(lists[c]) and lists[c][cursor[c]][0] in taken:
                cursor[c] += 1
        open_ = [c for c in range(len(lists)) if cursor[c] < len(lists[c])]
        if not open_:
            break
        c = max(open_, key=lambda j: (weights[j] / (1 + count[j]), -j))  # D'Hondt; ties: stronger interest
        chosen = lists[c][cursor[c]]
        if diversity > 0.0 and picked:
            free = [(m, s) for m, s in lists[c][cursor[c] :] if m not in taken]
            rows = np.asarray([pos[m] for m, _ in free], dtype=np.int64)  # (f,)
            scores = np.asarray([s for _, s in free], dtype=np.float64)  # (f,)
            # maximal marginal relevance; rounded so that float noise cannot reorder equal values
            value = np.round((1.0 - diversity) * scores - diversity * redundancy[rows], 9)  # (f,)
            chosen = free[int(np.argmax(value))]  # ties: the earlier (more relevant) candidate
        picked.append(Pick(int(chosen[0]), float(chosen[1]), c))
        taken.add(int(chosen[0]))
        count[c] += 1
        if diversity > 0.0:
            row = sim[pos[int(chosen[0])]]  # (c,)
            redundancy = row if len(picked) == 1 else np.maximum(redundancy, row)
    return picked


def because(plan_: Plan, item_vectors: np.ndarray) -> list[list[int]]:
    """For each of (m, D) item vectors: the selected movies supporting it most, strongest first (>= 1).

    Support = cosine between the item and a selected movie; ties: the more recent movie first. The best
    one always; the next while within BECAUSE_MARGIN of the best and positive; at most MAX_BECAUSE.
    """
    if len(item_vectors) == 0:
        return []
    sims = np.round(_unit(item_vectors) @ plan_.vectors.T.astype(np.float64), 6)  # (m, n)
    n = len(plan_.selected)
    recency = np.broadcast_to(-np.arange(n), sims.shape)  # (m, n) ties: the more recent movie first
    order = np.lexsort((recency, -sims), axis=1)[:, :MAX_BECAUSE]  # (m, <=3) strongest first
    out = []
    for row, best_rows in zip(sims, order, strict=True):
        best = row[best_rows[0]]
        keep = [int(best_rows[0])] + [int(j) for j in best_rows[1:] if row[j] >= best - BECAUSE_MARGIN and row[j] > 0]
        out.append([plan_.selected[j] for j in keep])
    return out


Search = Callable[[list[np.ndarray], int], list[list[tuple[int, float]]]]


def serve(
    plan_: Plan, search: Search, k: int, diversity: float, vectors_of: Callable[[Sequence[int]], np.ndarray]
) -> list[Pick]:
    """One batched search for the plan's queries, merged into k picks.

    `search(queries, n)` returns for each query its exact top n (movie_id, rounded score), ordered by
    (score desc, movie_id asc), excluded movies removed - `ExactIndex.search` in the training job, the
    VectorReader (in-memory index or Milvus) with tie widening in the API.
    """
    lists = search(plan_.queries, plan_.pool(k, diversity))
    return merge(plan_, lists, k, diversity, vectors_of)
