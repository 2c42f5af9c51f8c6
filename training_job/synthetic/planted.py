"""The `planted` synthetic profile: MovieLens-1M-format data with planted, learnable structure (same files, latin-1, `::`).

Why synthetic data: there is no network in CI, and real data cannot tell us whether the model learned
the *right* thing. Here the right thing is planted:

- taste clusters = genre combos (1-3 of the 18 MovieLens genres) with their own era (year) and their own
  title vocabulary, so genres, year and title tokens all carry signal;
- franchises inside clusters ("Crimson Harbor", "Crimson Harbor II", ...) that share title tokens and
  are watched in order;
- Zipf-like popularity, so many long-tail movies have few co-ratings: only their features (genres,
  title tokens, year) tie them to their cluster — that is where a feature+graph model beats item-kNN;
- users with 1-3 taste clusters (linked to gender/age) whose mixture drifts slowly over time, and a
  time order that follows taste: the next movie is often the next one of the same franchise or cluster,
  so a user's latest rating (the test item) is predictable from the recent ones;
- ratings 1-5 higher inside the user's taste, timestamps strictly increasing per user.

The movies (clusters, franchises, titles, popularity) are made in synthetic_planted_catalogue.py; this module
draws the users, their tastes, their time-ordered sequences, ratings and timestamps.

Generation is vectorised across users (one numpy step per position in the sequences), so MovieLens-1M
size (1,000,209 ratings) takes a few seconds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training_job.synthetic.files import AGE_P as _AGE_P
from training_job.synthetic.files import AGES, RatingsTable, write_movielens
from training_job.synthetic.planted_catalogue import PlantedCatalogue, choice_p, make_catalogue

T_START = 956_703_932  # first and last ML-1M timestamps (2000-04-25 .. 2003-02-28)
T_END = 1_046_454_590


def _counts_per_user(rng: np.random.Generator, n_users: int, n_movies: int, n_ratings: int) -> np.ndarray:
    """Long-tailed ratings per user, ML-1M-like (min 20, mean ~165), summing to exactly n_ratings."""
    cap = max(1, int(0.6 * n_movies))
    base = min(20, n_ratings // n_users, cap)
    weights = rng.lognormal(0.0, 1.1, size=n_users)
    counts = base + rng.multinomial(n_ratings - base * n_users, weights / weights.sum())
    for _ in range(100):  # move the excess of anyone over the cap to users with room
        excess = np.clip(counts - cap, 0, None)
        if not excess.any():
            break
        counts -= excess
        room = cap - counts
        counts += rng.multinomial(int(excess.sum()), room / room.sum())
    counts = np.minimum(counts, cap)
    short = n_ratings - int(counts.sum())
    while short > 0:  # deterministic fill of what the cap left over (only in tiny, tight configs)
        room = np.flatnonzero(counts < cap)
        take = room[: min(short, len(room))]
        counts[take] += 1
        short -= len(take)
    return counts.astype(np.int64)


class _ClusterSampler:
    """Popularity-weighted draws of a movie inside given clusters, vectorised over users."""

    def __init__(self, cluster: np.ndarray, pop: np.ndarray, n_clusters: int) -> None:
        self.order = np.argsort(cluster, kind="stable")  # movies grouped by cluster
        c_sorted = cluster[self.order]
        w = pop[self.order]
        cum = np.zeros(len(w))
        for c in range(n_clusters):
            sl = c_sorted == c
            if sl.any():
                cs = np.cumsum(w[sl])
                cum[sl] = c + cs / cs[-1]  # cluster c occupies (c, c+1]
        self.cum = cum
        self.global_cum = np.cumsum(pop) / pop.sum()

    def draw(self, rng: np.random.Generator, clusters: np.ndarray) -> np.ndarray:
        u = clusters + rng.random(len(clusters)) * (1 - 1e-12)
        pos = np.searchsorted(self.cum, u, side="left")
        return self.order[np.minimum(pos, len(self.order) - 1)]

    def draw_global(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.global_cum, rng.random(size)), len(self.global_cum) - 1)


def _user_tastes(
    rng: np.random.Generator,
    n_users: int,
    n_clusters: int,
    cluster_pop: np.ndarray,
    gender: np.ndarray,
    age: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-3 taste clusters per user (demographics shift the prior) and start/end mixture weights."""
    aff_g = rng.normal(0, 0.6, size=(2, n_clusters))
    aff_a = rng.normal(0, 0.6, size=(len(AGES), n_clusters))
    logits = np.log(cluster_pop)[None, :] + aff_g[gender] + aff_a[age]  # (U, C)
    gumbel = -np.log(-np.log(rng.random((n_users, n_clusters))))
    top = np.argsort(-(logits + gumbel), axis=1)[:, :3]  # (U, 3) distinct clusters
    k = rng.choice([1, 2, 3], size=n_users, p=[0.3, 0.45, 0.25])
    k = np.minimum(k, n_clusters)
    mask = np.arange(3)[None, :] < k[:, None]  # (U, 3)
    w0 = rng.dirichlet(np.ones(3), size=n_users) * mask
    w1 = rng.dirichlet(np.ones(3), size=n_users) * mask
    w0 /= w0.sum(1, keepdims=True)
    w1 /= w1.sum(1, keepdims=True)
    top = np.where(mask, top, top[:, :1])
    return top, w0, w1


def _sequences(
    rng: np.random.Generator,
    cat: PlantedCatalogue,
    counts: np.ndarray,
    tastes: np.ndarray,
    w0: np.ndarray,
    w1: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each user's movies in time order. Returns flat (user_idx, movie_idx, in_taste) arrays."""
    n_users = len(counts)
    n_movies = len(cat.cluster)
    cluster = cat.cluster
    sampler = _ClusterSampler(cluster, cat.pop, len(cat.combos))
    nxt = cat.nxt
    release = cat.release
    logpop = np.log(cat.pop)
    p_franchise, p_stay, p_explore = 0.45, 0.3, 0.05  # else: switch to a taste cluster drawn at time t

    out_u, out_m, out_t = [], [], []
    order = np.argsort(-counts, kind="stable")  # longest first: active users are a prefix
    chunk = max(1, min(n_users, (64 << 20) // max(n_movies, 1)))  # seen matrix <= 64 MB
    for start in range(0, n_users, chunk):
        users = order[start : start + chunk]
        n = len(users)
        seen = np.zeros((n, n_movies), dtype=bool)
        lengths = counts[users]
        items = np.full((n, int(lengths.max())), -1, dtype=np.int64)
        cur = np.full(n, -1, dtype=np.int64)
        cur_c = tastes[users, 0].copy()
        for t in tqdm(
            range(int(lengths.max())), desc="synthetic ratings", unit="step", leave=False, disable=None
        ):
            a = int(np.searchsorted(-lengths, -t, side="left"))  # users with length > t (sorted desc)
            act = np.arange(a)
            a_users = users[act]
            tau = np.minimum(t / np.maximum(lengths[act] - 1, 1), 1.0)
            w = (1 - tau)[:, None] * w0[a_users] + tau[:, None] * w1[a_users]  # (A, 3) drifting mixture
            pick = (rng.random(a)[:, None] > np.cumsum(w, axis=1)).sum(1).clip(0, 2)
            switch_c = tastes[a_users, pick]
            u = rng.random(a)
            choice = np.full(a, -1, dtype=np.int64)
            # 1) next movie of the current franchise (skipping ones already seen)
            fr = (u < p_franchise) & (cur[act] >= 0)
            cand = np.where(fr, nxt[np.maximum(cur[act], 0)], -1)
            for _ in range(3):
                c0 = np.maximum(cand, 0)
                bad = (cand >= 0) & (seen[act, c0] | (release[c0] > tau))
                cand = np.where(bad, nxt[c0], cand)
            c0 = np.maximum(cand, 0)
            choice = np.where((cand >= 0) & ~seen[act, c0] & (release[c0] <= tau), cand, -1)
            # 2) same cluster, 3) another taste cluster (drifting), 4) exploration anywhere
            explore = (u >= p_franchise + p_stay) & (u < p_franchise + p_stay + p_explore) & (cur[act] >= 0)
            stay = (u >= p_franchise) & (u < p_franchise + p_stay) & (cur[act] >= 0)
            target_c = np.where(stay | fr, cur_c[act], switch_c)
            need = (choice < 0) & ~explore
            for _ in range(8):
                idx = np.flatnonzero(need)
                if not len(idx):
                    break
                draw = sampler.draw(rng, target_c[idx])
                ok = ~seen[act[idx], draw] & (release[draw] <= tau[idx])
                choice[idx[ok]] = draw[ok]
                need[idx[ok]] = False
            need = choice < 0
            for _ in range(8):
                idx = np.flatnonzero(need)
                if not len(idx):
                    break
                draw = sampler.draw_global(rng, len(idx))
                ok = ~seen[act[idx], draw] & (release[draw] <= tau[idx])
                choice[idx[ok]] = draw[ok]
                need[idx[ok]] = False
            idx = np.flatnonzero(choice < 0)
            if len(idx):  # heavy users: exact popularity-weighted draw among what they have not seen
                scores = logpop[None, :] + rng.gumbel(size=(len(idx), n_movies))  # (k, M)
                scores[seen[act[idx]]] = -np.inf
                unreleased = release[None, :] > tau[idx, None]  # (k, M)
                scores -= 1e6 * unreleased  # unreleased only when everything released was seen
                choice[idx] = np.argmax(scores, axis=1)
            seen[act, choice] = True
            items[act, t] = choice
            cur[act] = choice
            cur_c[act] = np.where(explore, cur_c[act], cluster[choice])
        valid = items >= 0
        rows = np.broadcast_to(users[:, None], items.shape)[valid]
        movies_flat = items[valid]
        in_taste = (tastes[rows] == cluster[movies_flat][:, None]).any(1)
        out_u.append(rows)
        out_m.append(movies_flat)
        out_t.append(in_taste)
    return np.concatenate(out_u), np.concatenate(out_m), np.concatenate(out_t)


def generate(out_dir: str | Path, *, users: int, movies: int, ratings: int, seed: int) -> dict[str, Any]:
    """Write the planted profile's three files (sizes already validated by synthetic.generate)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_clusters = int(np.clip(movies // 150, 4, 30))

    cat = make_catalogue(rng, movies, n_clusters)
    gender = (rng.random(users) < 0.283).astype(np.int64)  # 0 = M, 1 = F (ML-1M: 28% F)
    age = choice_p(rng, _AGE_P, users)
    cluster_pop = np.bincount(cat.cluster, weights=cat.pop, minlength=n_clusters) + 1e-9
    tastes, w0, w1 = _user_tastes(rng, users, n_clusters, cluster_pop, gender, age)

    counts = _counts_per_user(rng, users, movies, ratings)
    u_idx, m_idx, in_taste = _sequences(rng, cat, counts, tastes, w0, w1)

    # Ratings: higher inside the user's taste, plus item quality and user bias.
    quality = rng.normal(0, 0.45, size=movies)
    bias = rng.normal(0, 0.35, size=users)
    score = np.where(in_taste, 4.0, 2.9) + quality[m_idx] + bias[u_idx] + rng.normal(0, 0.75, size=len(u_idx))
    stars = np.clip(np.rint(score), 1, 5).astype(np.int64)

    # Timestamps: strictly increasing per user; sessions of quick ratings separated by days.
    grp_start = np.r_[0, np.flatnonzero(np.diff(u_idx)) + 1]  # u_idx is grouped by user, in time order
    gaps = np.where(
        rng.random(len(u_idx)) < 0.9, rng.exponential(90, len(u_idx)), rng.exponential(5 * 86400, len(u_idx))
    )
    gaps = 1 + gaps.astype(np.int64)
    user_start = T_START + (rng.random(users) ** 1.5 * (T_END - T_START) * 0.9).astype(np.int64)
    gaps[grp_start] = user_start[u_idx[grp_start]]
    csum = np.cumsum(gaps)
    offsets = np.repeat(csum[grp_start] - gaps[grp_start], np.diff(np.r_[grp_start, len(u_idx)]))
    ts = csum - offsets

    files = write_movielens(
        out, rng, RatingsTable(u_idx, m_idx, stars, ts), cat.title, cat.year, cat.genres, users,
        gender=gender, age=age,
    )

    summary = {
        "profile": "planted",
        "out_dir": str(out),
        "users": users,
        "movies": movies,
        "ratings": int(len(u_idx)),
        "seed": seed,
        "clusters": n_clusters,
        "franchises": int(cat.n_franchises),
        "movies_in_franchises": int((cat.franchise >= 0).sum()),
        "movies_rated": int(len(np.unique(m_idx))),
        "ratings_in_taste": round(float(in_taste.mean()), 4),
        "mean_rating": round(float(stars.mean()), 4),
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return summary
