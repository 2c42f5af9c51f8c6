"""Blocked exact search: many queries against one `ExactIndex` at once, ranked exactly like `ExactIndex.search`.

Why: the batch job (training_job/batch/) answers every user and every movie of a run. One query at a
time is a matrix-vector product per user; a block of queries is one matrix-matrix product (BLAS level 3,
or a GPU), an order of magnitude faster. The answer must still be the API's, to the id and the order:

1. the block's scores are a float32 product (B, D) x (D, N) - fast, approximate: summed in another order
   than the per-query product, so they differ in the last bits;
2. per query, the candidates are every movie whose float32 score is within `eps` of the k-th best one,
   where `eps` bounds the float32 rounding error of a D-term dot product of unit vectors twice over (plus
   the SCORE_DECIMALS rounding step), so no movie of the exact answer can be missed;
3. the candidates are rescored in float64 - what `ExactIndex.search` scores with - rounded to
   SCORE_DECIMALS and ordered by (score desc, movie_id asc).

A query whose candidate pool does not fit (huge tie groups) falls back to `ExactIndex.search` itself.
numpy only (the API imports shared/serving/); a GPU scorer can be passed in by the training job.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from shared.serving.recipe import SCORE_DECIMALS, ExactIndex

# (B, D) float32 queries, (N, D) float32 unit rows -> (B, N) float32 scores
Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]
POOL_EXTRA = 32  # candidates beyond k taken from the float32 scores before the exactness check


def numpy_scores(queries: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    return np.asarray(queries, dtype=np.float32) @ matrix.T  # (B, N)


def error_bound(dim: int) -> float:
    """Largest |float32 score - float64 score| for unit vectors of `dim` terms, with margin (x2 + 2e-6)."""
    return 2.0 * dim * float(np.finfo(np.float32).eps) + 2e-6


def masked_scores(
    index: ExactIndex, queries: np.ndarray, banned_rows: Sequence[np.ndarray], scorer: Scorer = numpy_scores
) -> np.ndarray:
    """(B, N) float32 scores of the block with each query's banned rows set to -inf."""
    scores = np.asarray(scorer(np.asarray(queries, dtype=np.float32), index.matrix), dtype=np.float32)
    lengths = [len(r) for r in banned_rows]
    if sum(lengths):
        rows = np.repeat(np.arange(len(banned_rows)), lengths)
        scores[rows, np.concatenate([np.asarray(r, dtype=np.int64) for r in banned_rows])] = -np.inf
    return scores


def top_from_scores(
    index: ExactIndex,
    queries: np.ndarray,
    scores: np.ndarray,
    ks: Sequence[int],
    banned: Sequence[Sequence[int]],
) -> list[list[tuple[int, float]]]:
    """Each query's exact top ks[i] (movie_id, rounded float64 score), as `index.search(q, k, banned)` gives.

    `scores` are the block's masked float32 scores (masked_scores); `banned` the same exclusions as ids
    (used only by the fallback)."""
    b, n = scores.shape
    out: list[list[tuple[int, float]]] = [[] for _ in range(b)]
    if b == 0 or n == 0:
        return out
    finite = np.isfinite(scores).sum(axis=1)  # (B,)
    take = np.minimum(np.asarray(ks, dtype=np.int64), finite)  # (B,)
    pool = int(min(n, int(take.max(initial=0)) + POOL_EXTRA))
    if pool <= 0:
        return out
    part = np.argpartition(-scores, pool - 1, axis=1)[:, :pool] if pool < n else np.tile(np.arange(n), (b, 1))
    s32 = np.take_along_axis(scores, part, axis=1)  # (B, P)
    desc = -np.sort(-s32, axis=1)  # (B, P)
    eps = error_bound(index.matrix.shape[1])
    kth = desc[np.arange(b), np.maximum(take - 1, 0)]  # (B,) the float32 k-th best
    complete = (pool == n) | (desc[:, -1] < kth - eps)  # every movie near the k-th lies inside the pool
    q64 = np.asarray(queries, dtype=np.float32).astype(np.float64)  # (B, D)
    s64 = np.einsum("bpd,bd->bp", index.matrix64[part], q64)  # (B, P) what ExactIndex.search scores
    rounded = np.round(s64, SCORE_DECIMALS)
    keep = np.isfinite(s32) & (s32 >= (kth - eps)[:, None])  # (B, P) the candidates
    key = np.where(keep, -rounded, np.inf)
    ids = index.ids[part]  # (B, P)
    order = np.lexsort((ids, key), axis=-1)  # (B, P) by (rounded score desc, id asc)
    for i in range(b):
        t = int(take[i])
        if t <= 0:
            continue
        if not complete[i]:
            out[i] = index.search(queries[i], int(ks[i]), banned=banned[i])
            continue
        best = order[i, :t]
        out[i] = list(zip(ids[i, best].tolist(), rounded[i, best].tolist(), strict=True))
    return out


def search_block(
    index: ExactIndex,
    queries: np.ndarray,
    ks: Sequence[int],
    banned: Sequence[Sequence[int]],
    scorer: Scorer = numpy_scores,
) -> list[list[tuple[int, float]]]:
    """`[index.search(q, k, banned=b) for q, k, b in zip(queries, ks, banned)]`, computed as one block."""
    rows = [index.rows_of(b) for b in banned]
    scores = masked_scores(index, queries, rows, scorer)
    return top_from_scores(index, queries, scores, ks, banned)
