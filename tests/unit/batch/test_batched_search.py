"""shared/serving/batched.py ranks a block of queries exactly like ExactIndex.search, one query at a time."""

from __future__ import annotations

import numpy as np

from shared.serving.batched import search_block
from shared.serving.recipe import ExactIndex


def _index(n: int, dim: int, seed: int, duplicates: int = 0) -> ExactIndex:
    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, dim)).astype(np.float32)
    if duplicates:  # identical vectors: tie groups larger than the pool
        m[:duplicates] = m[0]
    ids = rng.permutation(np.arange(10, 10 + 3 * n, 3))
    return ExactIndex(ids, m)


def test_block_equals_per_query_search_ids_order_and_scores() -> None:
    index = _index(3000, 32, 1)
    rng = np.random.default_rng(2)
    q = rng.normal(size=(300, 32)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    ks = [int(k) for k in rng.integers(1, 60, size=300)]
    banned = [[int(m) for m in rng.choice(index.ids, size=int(rng.integers(0, 200)), replace=False)] + [7] for _ in q]
    got = search_block(index, q, ks, banned)
    want = [index.search(qi, k, banned=b) for qi, k, b in zip(q, ks, banned, strict=True)]
    assert got == want


def test_ties_beyond_the_pool_and_everything_banned() -> None:
    index = _index(400, 8, 3, duplicates=120)
    q = np.repeat(index.matrix[:1], 3, axis=0)
    banned = [[], [int(m) for m in index.ids], [int(index.ids[0])]]
    got = search_block(index, q, [50, 5, 400], banned)
    assert got == [index.search(qi, k, banned=b) for qi, k, b in zip(q, [50, 5, 400], banned, strict=True)]
    assert got[1] == [] and len(got[2]) == 399
