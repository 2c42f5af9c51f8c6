"""How should several liked movies be combined into recommendations? Measures two strategies by HR@10.

- mean (what the API does): one search with the normalised mean of the liked movies' unit vectors
  (handlers.api_app.recommender.combine + rank - the API's own code).
- per-item (the seed demo): search each liked movie separately, keep the top 100/n of each, merge
  (max score per movie), sort by score and take the top 10. This is the kindest reading of the demo.

Protocol: for each user, hold out one movie they liked, give the others as `liked`, and count a hit when
the held-out movie is in the top 10 (liked movies excluded, as the API does). Search is exact inner
product over unit vectors in numpy - what Milvus Lite's FLAT/IP index computes.

Data (one command, no flags needed):
  planted-clusters   tests.helpers.factories.make_run data (genre clusters; users like 5 movies of one cluster)
  planted-mixed      make_run-style, harder and closer to real histories: movies sit in niches inside
                     genres, each user likes movies of one niche plus a couple of unrelated ones
  --run PATH         a training run folder (or its manifest.json); --protocol set: liked = n random movies
                     of a user's history, held-out = another random one (the API's question); --protocol
                     next: held-out = the user's last movie, liked = the n just before it (sequential)

Usage:  .venv/bin/python bench/eval_combination.py [--run PATH] [--protocol set next] [--users 2000] [--liked 3 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from handlers.api_app.recommender import combine, rank  # noqa: E402

K = 10
POOL = 100  # the seed demo's total candidate budget, split evenly across liked movies

Search = Callable[[np.ndarray, int, set[int]], list[tuple[int, float]]]


class ExactIndex:
    """Brute-force inner-product search over unit vectors (== Milvus FLAT/IP)."""

    def __init__(self, movie_ids: np.ndarray, vectors: np.ndarray) -> None:
        self.ids = np.asarray(movie_ids, dtype=np.int64)  # (n,)
        v = np.asarray(vectors, dtype=np.float32)  # (n, dim)
        self.vectors = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        self.row = {int(m): i for i, m in enumerate(self.ids)}

    def vector(self, movie_id: int) -> np.ndarray:
        return self.vectors[self.row[movie_id]]  # (dim,)

    def search(self, query: np.ndarray, k: int, banned: set[int]) -> list[tuple[int, float]]:
        scores = self.vectors @ np.asarray(query, dtype=np.float32)  # (n,)
        take = min(len(scores), k + len(banned))
        top = np.argpartition(-scores, take - 1)[:take]
        top = top[np.argsort(-scores[top], kind="stable")]
        out = [(int(self.ids[i]), float(scores[i])) for i in top if int(self.ids[i]) not in banned]
        return out[:k]


def mean_strategy(index: ExactIndex, liked: Sequence[int]) -> list[int]:
    banned = set(liked)
    query = np.asarray(combine([index.vector(m) for m in liked]))
    return [m for m, _ in rank(index.search(query, K + 8, banned), banned, K)]


def per_item_strategy(index: ExactIndex, liked: Sequence[int]) -> list[int]:
    banned = set(liked)
    per = max(1, POOL // len(liked))
    hits: list[tuple[int, float]] = []
    for m in liked:
        hits += index.search(index.vector(m), per, banned)
    return [m for m, _ in rank(hits, banned, K)]


def hit_rate(index: ExactIndex, cases: list[tuple[list[int], int]]) -> dict[str, float]:
    out = {}
    for name, strategy in (("mean (API)", mean_strategy), ("per-item 100/n (seed)", per_item_strategy)):
        hits = sum(held in strategy(index, liked) for liked, held in cases)
        out[name] = hits / max(1, len(cases))
    return out


def planted_clusters(seed: int) -> tuple[ExactIndex, list[tuple[list[int], int]]]:
    """tests.helpers.factories.make_run itself: hold out each user's last movie."""
    from tests.helpers.factories import make_run

    with tempfile.TemporaryDirectory() as tmp:
        run = make_run(tmp, n_movies=400, n_users=400, dim=32, seed=seed)
    index = ExactIndex(run.movie_ids, run.embeddings)
    cases = [(h[:-1], h[-1]) for h in run.user_histories.values() if len(h) >= 2]
    return index, cases


def planted_mixed(seed: int, n_users: int) -> tuple[ExactIndex, list[tuple[list[int], int]]]:
    """Genres > niches > movies; users like 5 movies of one niche + 2 random others, hold out one niche movie."""
    rng = np.random.default_rng(seed)
    dim, n_genres, niches_per_genre, per_niche = 32, 8, 12, 25
    genre_c = rng.normal(size=(n_genres, dim))  # (G, dim)
    niche_c = genre_c.repeat(niches_per_genre, 0) + 0.8 * rng.normal(size=(n_genres * niches_per_genre, dim))
    niche = np.arange(n_genres * niches_per_genre).repeat(per_niche)  # (n,)
    emb = niche_c[niche] + 0.7 * rng.normal(size=(len(niche), dim))  # (n, dim)
    ids = np.arange(1, len(niche) + 1)
    index = ExactIndex(ids, emb)
    cases = []
    for _ in range(n_users):
        nch = rng.integers(niche.max() + 1)
        own = rng.choice(ids[niche == nch], size=6, replace=False)
        others = rng.choice(ids[niche != nch], size=2, replace=False)
        liked = [int(x) for x in rng.permutation(np.concatenate([own[:5], others]))]
        cases.append((liked, int(own[5])))
    return index, cases


def real_run(
    path: str, n_users: int, n_liked: int, seed: int, protocol: str = "set"
) -> tuple[ExactIndex, list[tuple[list[int], int]]]:
    """Cases from a run's user histories.

    protocol "set" (what the API's `liked` is: an unordered set of movies a person picked): n+1 random movies
    of the user's history, one of them held out. protocol "next" (a sequential task the API does not pose):
    the user's last movie held out, the n just before it liked - this rewards recency and sequels, which a
    per-item max captures and an order-free mean deliberately does not.
    """
    from shared.contract.artifacts import EMBEDDINGS, USER_HISTORY, RunReader

    reader = RunReader(path)
    ids, vecs = [], []
    for batch in reader.iter_batches(EMBEDDINGS):
        ids += batch.column("movie_id").to_pylist()
        vecs += batch.column("embedding").to_pylist()
    index = ExactIndex(np.asarray(ids), np.asarray(vecs, dtype=np.float32))
    histories = [
        [int(m) for m in h if int(m) in index.row]
        for batch in reader.iter_batches(USER_HISTORY)
        for h in batch.column("movie_ids").to_pylist()
    ]
    histories = [h for h in histories if len(h) > n_liked]
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(histories), size=min(n_users, len(histories)), replace=False)
    if protocol == "next":
        return index, [(histories[i][-n_liked - 1 : -1], histories[i][-1]) for i in picked]
    cases = []
    for i in picked:
        pick = rng.choice(len(histories[i]), size=n_liked + 1, replace=False)  # (n+1,) distinct positions
        cases.append(([histories[i][j] for j in pick[:-1]], histories[i][pick[-1]]))
    return index, cases


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a real run folder or its manifest.json (local or s3://)")
    parser.add_argument("--users", type=int, default=2000, help="users evaluated (default 2000)")
    parser.add_argument("--liked", type=int, nargs="+", default=[3, 10], help="liked movies per case (--run)")
    parser.add_argument(
        "--protocol", nargs="+", choices=["set", "next"], default=["set", "next"],
        help="how --run cases are drawn: random liked set + random held-out, or last movie after the n before it",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rows: list[tuple[str, int, dict[str, float]]] = []
    index, cases = planted_clusters(args.seed)
    rows.append(("planted-clusters (make_run)", len(cases), hit_rate(index, cases)))
    index, cases = planted_mixed(args.seed, args.users)
    rows.append(("planted-mixed (niche + 2 off-taste)", len(cases), hit_rate(index, cases)))
    if args.run:
        name = Path(args.run.rstrip("/")).name
        for protocol in args.protocol:
            for n in args.liked:
                index, cases = real_run(args.run, args.users, n, args.seed, protocol)
                rows.append((f"run {name[-8:]}, {protocol}, {n} liked", len(cases), hit_rate(index, cases)))

    print(f"HR@{K} of a held-out liked movie (higher is better)")
    print(f"{'data':42s} {'cases':>6s} {'mean (API)':>11s} {'per-item (seed)':>16s}")
    for name, n, res in rows:
        print(f"{name:42s} {n:6d} {res['mean (API)']:11.3f} {res['per-item 100/n (seed)']:16.3f}")


if __name__ == "__main__":
    main()
