"""Live" means every row is searchable: on a Milvus server a Bounded-consistency search right after insert +
flush can see none of the rows (measured on Milvus 2.3.5: 0 of 3,000). After wait_searchable() and the alias
switch, a search with no sleep finds every movie, including one without a year and one without genres
(stored as the year sentinel / an empty array: Milvus < 2.5 has no nullable fields). Runs on every backend."""

from __future__ import annotations

import numpy as np

from shared.stores.milvus.schema import year_of_stored
from shared.stores.milvus.store import VectorStore

RUN = "20260101T000000Z_abcdef12"


def test_every_movie_is_findable_immediately_after_the_alias_switch(vectors: VectorStore) -> None:
    n, dim = 400, 16
    rng = np.random.default_rng(5)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = list(range(1, n + 1))
    genres = [["Drama"] if i % 2 else ["Comedy"] for i in ids]
    genres[1] = []  # movie 2: no genres
    years = [1950 + i % 50 for i in ids]
    years_opt: list[int | None] = list(years)
    years_opt[0] = None  # movie 1: no year (real ML-1M has one)
    vectors.create_collection(RUN, dim)
    vectors.insert(RUN, ids, vecs, genres, years_opt)
    if not vectors.is_lite:
        vectors.flush(RUN)
    assert vectors.wait_searchable(RUN, n, timeout=120) == n
    vectors.set_alias(RUN)
    hits = vectors.search(RUN, vecs.tolist(), 1)  # no sleep: the collection's own (Bounded) consistency
    assert [h[0][0] for h in hits] == ids
    drama = vectors.search(RUN, [vecs[1].tolist()], n, genres=["Drama", "Comedy"])[0]
    assert 2 not in {m for m, _ in drama} and len(drama) == n - 1
    old = vectors.search(RUN, [vecs[0].tolist()], n, exclude_ids=[3])[0]
    assert len(old) == n - 1
    expr = vectors.build_filter(year_max=1960)
    got = vectors.client.query(f"movies_{RUN}", filter=expr, output_fields=["movie_id", "year"], limit=n)
    assert {int(r["movie_id"]) for r in got} == {i for i, y in zip(ids, years_opt, strict=True) if y is not None and y <= 1960}
    row = vectors.client.get(f"movies_{RUN}", ids=[1], output_fields=["year"])[0]
    assert year_of_stored(row["year"]) is None
