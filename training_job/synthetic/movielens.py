"""A *realistic* synthetic MovieLens-1M (`synthetic --profile movielens`): calibrated to published ML-1M facts.

Why a second generator: the planted profile (synthetic.py) hands the model franchises watched in order
and genre-pure taste clusters, and defaults tuned on it failed on the real dataset (item-kNN won there,
a mean-of-history query served popularity-level results). This profile has none of that structure and
copies what is known about ML-1M instead:

- 6,040 users, each with >= 20 ratings, median ~96 and mean ~166 (a shifted log-normal, capped at 2,314);
  3,706 movies, all rated; a heavy popularity head (the most-rated movie has ~3,400 ratings, i.e. more
  than half of the users) and a long tail;
- ratings 1-5 with mean ~3.6 (5.6 / 10.8 / 26.1 / 34.9 / 22.6 % in ML-1M), higher for movies that fit
  the user's taste and for "good" movies;
- tastes are a 16-d latent space in which genres explain only part of a movie's position
  (`GENRE_SHARE`), the decade a little, the rest is invisible to any feature;
- time: most of a user's ratings are entered in a burst at sign-up (many equal or near-equal
  timestamps, so the order inside a burst is noise), the rest in later, smaller sessions; movies of the
  last year are only rated after their release, so late ratings lean towards new releases;
- a short-term browsing context: what a user rates next leans towards what they just rated (a decaying
  context vector in the taste space), so recent movies predict the next one better than the whole
  history does — the property of real ML-1M that made "last few movies" queries win;
- the world's structure (issue 17): **franchises** (~11 % of the movies in series of 2-5; sequels come
  out later, share the original's title stem - "X II", "X: Part 3", "X: The Word Word" - its genres, most
  of its taste vector and part of its audience: a user who rated one entry is much likelier to rate the
  others, and mostly the earlier one first) and **directors** active in one era (a small shared part of
  their movies' taste vectors). A franchise is not a deterministic sequence: its movies are a small
  share of all ratings and the order inside a sign-up burst is still noise. The ground truth is written
  beside the ML-1M files as `franchises.dat` (`movie_id::franchise_id::position`), for measuring
  similar-list coherence (training_job/evaluation/franchises.py); on real data it is derived from titles.

Choices are drawn with the Gumbel/exponential-race trick over the whole catalogue, vectorised over users
(`BLOCK` movies per draw, without replacement): ML-1M size takes well under a minute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from training_job.synthetic.files import (
    _PATTERNS,
    _TITLE_WORDS,
    GENRE_WEIGHT,
    GENRES,
    RatingsTable,
    write_movielens,
)

DIM = 16
GENRE_SHARE = 0.45  # share of a movie's taste vector explained by its genres
DECADE_SHARE = 0.15  # ... by its decade
DIRECTOR_SHARE = 0.1  # ... by its director's style; the rest is latent
DIRECTOR_MOVIES = 2.2  # mean movies per director (ML-1M's ~3,700 movies have ~1,700 directors)
FRANCHISE_SHARE = 0.11  # movies that belong to a series of 2-5
FRANCHISE_SIZE_P = np.array([0.55, 0.27, 0.12, 0.06])  # sizes 2, 3, 4, 5
FRANCHISE_KEEP = 0.8  # a sequel's taste vector: this much of the original's (mixed on the sphere)
FRANCHISE_BOOST = 1.5  # logit bonus for a movie of a franchise the user has already rated an entry of
OUT_OF_ORDER = 1.5  # logit penalty for a sequel whose predecessor the user has not rated yet
TASTE_SCALE = 5.0  # how strongly long-term taste drives choices (logit units per cosine)
CONTEXT_SCALE = 20.0  # how strongly the recent-browsing context drives them
CONTEXT_DECAY = 0.3  # context <- decay * context + (1 - decay) * mean(vectors just rated)
POP_SIGMA = 1.5  # log-popularity spread: heavy head, long tail
HEAD = 3.0  # log-popularity above which the head is compressed (most-rated movie ~3,400 ratings)
BLOCK = 3  # movies drawn per context update
T_START = 956_703_932  # ML-1M's first and last timestamps (2000-04-25 .. 2003-02-28)
T_END = 1_046_454_590
STAR_P = np.array([0.056, 0.108, 0.261, 0.349, 0.226])  # ML-1M rating distribution, 1..5


@dataclass(frozen=True)
class Catalogue:
    """The movies: features anyone can see, and the latent quantities that generate behaviour."""

    genres: list[list[str]]
    year: np.ndarray  # (M,) int
    title: list[str]
    vec: np.ndarray  # (M, DIM) unit taste vectors
    log_pop: np.ndarray  # (M,) base popularity (logit)
    quality: np.ndarray  # (M,) rating offset
    release_ts: np.ndarray  # (M,) first timestamp at which the movie can be rated
    franchise: np.ndarray  # (M,) franchise index, -1 for standalone movies
    position: np.ndarray  # (M,) 0 = the original, 1 = the first sequel, ... (-1 standalone)
    director: np.ndarray  # (M,) director index


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _titles(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct titles from the shared word list, re-drawn on a clash (never 'X 2': that reads as a sequel)."""
    used: set[str] = set()
    out: list[str] = []
    words = np.array(_TITLE_WORDS)
    while len(out) < n:
        a, b, c = words[rng.integers(0, len(words), 3)]
        title = _PATTERNS[int(rng.integers(0, len(_PATTERNS)))].format(a=a, b=b)
        if title in used:
            title = f"{title} {c}"  # a third word, still no number
        if title in used:
            continue
        used.add(title)
        out.append(title)
    return out


_ROMAN = ("", "II", "III", "IV", "V")


def _sequel_title(rng: np.random.Generator, base: str, position: int, style: int) -> str:
    """The title of entry `position` (>= 1) of a series whose original is `base`, in one of four styles."""
    if style == 0:
        return f"{base} {_ROMAN[position]}"
    if style == 1:
        return f"{base} {position + 1}"
    if style == 2:
        return f"{base}: Part {_ROMAN[position]}"
    a, b = np.array(_TITLE_WORDS)[rng.integers(0, len(_TITLE_WORDS), 2)]
    return f"{base}: The {a} {b}"


def _franchises(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(franchise, position) per movie row: random rows grouped into series of 2-5 (-1 = standalone)."""
    franchise = np.full(n, -1, dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    target = int(FRANCHISE_SHARE * n)
    rows = rng.permutation(n)
    at, f = 0, 0
    while at + 2 <= target:
        size = min(int(rng.choice(len(FRANCHISE_SIZE_P), p=FRANCHISE_SIZE_P)) + 2, target - at)
        if size < 2:
            break
        members = rows[at : at + size]
        franchise[members] = f
        position[members] = np.arange(size)
        at, f = at + size, f + 1
    return franchise, position


def _directors(rng: np.random.Generator, year: np.ndarray) -> np.ndarray:
    """Director index per movie: consecutive runs of movies of about the same era (a career) share one."""
    order = np.argsort(year + rng.normal(0, 3.0, size=len(year)), kind="stable")
    sizes = rng.geometric(1.0 / DIRECTOR_MOVIES, size=len(year))
    run_of = np.repeat(np.arange(len(sizes)), sizes)[: len(year)]
    director = np.empty(len(year), dtype=np.int64)
    director[order] = run_of
    return director


def _catalogue(rng: np.random.Generator, n: int) -> Catalogue:
    n_genres = rng.choice([1, 2, 3, 4], size=n, p=[0.5, 0.33, 0.13, 0.04])  # ML-1M: 1.65 genres per movie
    gp = GENRE_WEIGHT / GENRE_WEIGHT.sum()
    multi = np.zeros((n, len(GENRES)), dtype=np.float64)
    genres: list[list[str]] = []
    for m in range(n):
        gs = sorted(rng.choice(len(GENRES), size=int(n_genres[m]), replace=False, p=gp).tolist())
        multi[m, gs] = 1.0
        genres.append([GENRES[g] for g in gs])
    # ML-1M years: mostly the 1990s, a long tail back to 1919.
    year = np.clip(2000 - np.floor(rng.exponential(9.0, size=n)), 1919, 2000).astype(np.int64)
    # Series: sequels come out 1-5 years after the entry before, keep its genres (and often its director).
    franchise, position = _franchises(rng, n)
    n_franchises = int(franchise.max()) + 1
    members = [np.flatnonzero(franchise == f) for f in range(n_franchises)]
    members = [m[np.argsort(position[m])] for m in members]
    for rows in members:
        gaps = rng.integers(1, 6, size=len(rows) - 1)
        first = min(int(year[rows[0]]), 2000 - int(gaps.sum()))
        year[rows] = first + np.r_[0, np.cumsum(gaps)]
        multi[rows[1:]] = multi[rows[0]]
        for r in rows[1:]:
            genres[r] = list(genres[rows[0]])
    decade = np.clip((year - 1910) // 10, 0, 9)
    director = _directors(rng, year)
    for rows in members:
        same = rows[1:][rng.random(len(rows) - 1) < 0.6]
        director[same] = director[rows[0]]

    genre_axes = _unit(rng.normal(size=(len(GENRES), DIM)))
    decade_axes = _unit(rng.normal(size=(10, DIM)))
    director_axes = _unit(rng.normal(size=(int(director.max()) + 1, DIM)))
    g_part = _unit(multi @ genre_axes)
    latent = _unit(rng.normal(size=(n, DIM)))
    vec = _unit(
        np.sqrt(GENRE_SHARE) * g_part
        + np.sqrt(DECADE_SHARE) * decade_axes[decade]
        + np.sqrt(DIRECTOR_SHARE) * director_axes[director]
        + np.sqrt(1 - GENRE_SHARE - DECADE_SHARE - DIRECTOR_SHARE) * latent
    )
    log_pop = rng.normal(0.0, POP_SIGMA, size=n) + 0.25 * (year >= 1990)
    for rows in members:  # a sequel: most of the original's taste and a little less of its audience
        vec[rows[1:]] = _unit(np.sqrt(FRANCHISE_KEEP) * vec[rows[0]] + np.sqrt(1 - FRANCHISE_KEEP) * vec[rows[1:]])
        log_pop[rows[1:]] = log_pop[rows[0]] - 0.3 * np.arange(1, len(rows)) + rng.normal(0, 0.4, len(rows) - 1)
    log_pop = np.where(log_pop > HEAD, HEAD + 0.5 * (log_pop - HEAD), log_pop)  # ML-1M's head is not a spike
    quality = 0.35 * (log_pop - log_pop.mean()) / POP_SIGMA + rng.normal(0, 0.35, size=n)
    # Movies of the data's last year come out while users are rating (a series' entries in order).
    new = year == 2000
    release = np.where(new, T_START + rng.uniform(-0.1, 0.35, size=n) * (T_END - T_START), 0).astype(np.int64)
    titles = _titles(rng, n)
    for rows in members:
        style = int(rng.integers(0, 4))
        release[rows] = np.maximum.accumulate(release[rows])
        for r in rows[1:]:
            titles[r] = _sequel_title(rng, titles[rows[0]], int(position[r]), style)
    return Catalogue(
        genres, year, titles, vec.astype(np.float32), log_pop, quality, release, franchise, position, director
    )


def _counts(rng: np.random.Generator, n_users: int, n_ratings: int, cap: int) -> np.ndarray:
    """>= 20 per user, shifted log-normal (ML-1M median 96, mean 166), rescaled to sum to n_ratings."""
    floor = min(20, n_ratings // n_users, cap)
    extra = rng.lognormal(np.log(76.0), 1.14, size=n_users)
    extra *= (n_ratings - floor * n_users) / extra.sum()
    counts = np.minimum(floor + np.floor(extra).astype(np.int64), cap)
    short = n_ratings - int(counts.sum())
    while short > 0:  # rounding and the cap: hand the remainder to users with room, heaviest first
        room = np.flatnonzero(counts < cap)
        take = room[np.argsort(-counts[room], kind="stable")][:short]
        counts[take] += 1
        short -= len(take)
    return counts


def _timestamps(rng: np.random.Generator, counts: np.ndarray) -> list[np.ndarray]:
    """Per user, non-decreasing timestamps: a sign-up burst, then later sessions (equal stamps are common)."""
    out = []
    signup = T_START + (rng.random(len(counts)) ** 2.2 * (T_END - T_START) * 0.95).astype(np.int64)
    for u, n in enumerate(counts.tolist()):
        burst = n if rng.random() < 0.45 else max(min(n, 20), int(n * rng.uniform(0.3, 0.9)))
        gaps = np.where(rng.random(n) < 0.55, 0, rng.integers(1, 40, size=n))  # seconds inside a session
        gaps[0] = 0
        rest = n - burst
        if rest > 0:  # later sessions: 1-30 ratings each, days to months apart
            starts = []
            i = burst
            while i < n:
                starts.append(i)
                i += int(rng.integers(1, 31))
            left = T_END - signup[u]
            for s in starts:
                gaps[s] = int(min(rng.exponential(20 * 86400), max(left // (len(starts) + 1), 1))) + 3600
        out.append(signup[u] + np.cumsum(gaps))
    return out


def _draw(
    rng: np.random.Generator, cat: Catalogue, taste: np.ndarray, counts: np.ndarray, ts: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Every user's movies in time order: (user_idx, movie_idx) flat arrays, users grouped."""
    n_users, n_movies = len(counts), len(cat.log_pop)
    order = np.argsort(-counts, kind="stable")  # longest first: the active users are always a prefix
    lengths = counts[order]
    steps = int(lengths.max())
    items = np.full((n_users, steps), -1, dtype=np.int64)
    ts_mat = np.zeros((n_users, steps), dtype=np.int64)
    for r, u in enumerate(order.tolist()):
        ts_mat[r, : counts[u]] = ts[u]
    seen = np.zeros((n_users, n_movies), dtype=bool)
    context = np.zeros((n_users, DIM), dtype=np.float32)
    vec_t = cat.vec.T.copy()  # (DIM, M)
    base = cat.log_pop.astype(np.float32)
    # Franchises: a bonus for the entries of a series the user has rated an entry of; a penalty for a
    # sequel whose predecessor they have not rated yet (series are mostly watched in order).
    fm = np.flatnonzero(cat.franchise >= 0)  # (Mf,) franchise movies
    fm_franchise = cat.franchise[fm]
    seq = np.flatnonzero(cat.position > 0)  # (Ms,) sequels
    row_of = {(int(cat.franchise[m]), int(cat.position[m])): int(m) for m in fm}
    prev = np.array([row_of[(int(cat.franchise[m]), int(cat.position[m]) - 1)] for m in seq], dtype=np.int64)
    fseen = np.zeros((n_users, int(cat.franchise.max()) + 1), dtype=bool)
    t = 0
    with tqdm(total=int(counts.sum()), desc="synthetic ratings", unit="rating", disable=None, leave=False) as bar:
        while t < steps:
            a = int(np.searchsorted(-lengths, -t, side="left"))  # users with more than t ratings
            b = min(BLOCK, steps - t)
            q = TASTE_SCALE * taste[order[:a]] + CONTEXT_SCALE * context[:a]  # (A, DIM)
            logits = base + q @ vec_t  # (A, M)
            if len(fm):
                logits[:, fm] += FRANCHISE_BOOST * fseen[:a][:, fm_franchise]
                logits[:, seq] -= OUT_OF_ORDER * ~seen[:a][:, prev]
            logits[seen[:a]] = -np.inf
            logits[cat.release_ts[None, :] > ts_mat[:a, t : t + 1]] = -np.inf
            race = rng.standard_exponential(size=logits.shape, dtype=np.float32)
            logits -= np.log(np.maximum(race, 1e-30, out=race), out=race)  # exponential race = Gumbel-max
            top = np.argpartition(-logits, b - 1, axis=1)[:, :b]  # (A, b) unordered
            top_score = np.take_along_axis(logits, top, axis=1)
            top = np.take_along_axis(top, np.argsort(-top_score, axis=1), axis=1)  # best first
            take = (t + np.arange(b))[None, :] < lengths[:a, None]  # (A, b) users may end mid-block
            rows = np.repeat(np.arange(a), b).reshape(a, b)
            items[rows[take], (t + np.arange(b))[None, :].repeat(a, 0)[take]] = top[take]
            seen[rows[take], top[take]] = True
            in_series = cat.franchise[top[take]] >= 0
            fseen[rows[take][in_series], cat.franchise[top[take][in_series]]] = True
            mean_vec = (cat.vec[top] * take[..., None]).sum(1) / np.maximum(take.sum(1, keepdims=True), 1)
            context[:a] = CONTEXT_DECAY * context[:a] + (1 - CONTEXT_DECAY) * mean_vec
            # a gap of more than an hour starts a new session: the browsing context mostly resets
            nxt = np.minimum(t + b, lengths[:a] - 1)
            new_session = ts_mat[np.arange(a), nxt] - ts_mat[np.arange(a), t] > 3600
            context[:a][new_session] *= 0.2
            bar.update(int(take.sum()))
            t += b
    valid = items >= 0
    user_rows = np.broadcast_to(order[:, None], items.shape)[valid]
    return user_rows, items[valid]


def _stars(rng: np.random.Generator, affinity: np.ndarray, quality: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """1-5 stars with ML-1M's distribution: a latent score cut at its quantiles."""
    score = 1.0 * affinity + quality + bias + rng.normal(0, 0.8, size=len(affinity))
    cuts = np.quantile(score, np.cumsum(STAR_P)[:-1])
    return 1 + np.searchsorted(cuts, score).astype(np.int64)


FRANCHISE_FILE = "franchises.dat"


def _write_franchises(out: Path, cat: Catalogue) -> int:
    """franchises.dat beside movies.dat: `movie_id::franchise_id::position` for every movie of a series.

    The movie ids are the ones movies.dat was written with (its lines are in catalogue row order)."""
    ids = [int(line.split("::", 1)[0]) for line in (out / "movies.dat").read_bytes().decode("latin-1").splitlines()]
    lines = "".join(
        f"{ids[m]}::{int(cat.franchise[m]) + 1}::{int(cat.position[m])}\n" for m in np.flatnonzero(cat.franchise >= 0)
    )
    (out / FRANCHISE_FILE).write_text(lines, encoding="latin-1")
    return (out / FRANCHISE_FILE).stat().st_size


def generate(out_dir: str | Path, *, users: int, movies: int, ratings: int, seed: int) -> dict[str, Any]:
    """Write the three .dat files (ML-1M format) into out_dir; return a summary of what was generated."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng, movies)
    taste = _unit(rng.normal(size=(users, DIM)) + 0.6 * cat.vec[rng.integers(0, movies, size=users)])
    taste = taste.astype(np.float32)
    counts = _counts(rng, users, ratings, cap=int(0.6 * movies))
    ts = _timestamps(rng, counts)
    u_idx, m_idx = _draw(rng, cat, taste, counts, ts)
    ts_by_user = {int(u): ts[int(u)] for u in np.unique(u_idx)}
    # re-group by user id (ascending) keeping each user's time order
    grp = np.argsort(u_idx, kind="stable")
    u_idx, m_idx = u_idx[grp], m_idx[grp]
    ts_flat = np.concatenate([ts_by_user[int(u)] for u in np.unique(u_idx)])
    affinity = np.einsum("ed,ed->e", taste[u_idx], cat.vec[m_idx])
    stars = _stars(rng, affinity, cat.quality[m_idx], rng.normal(0, 0.4, size=users)[u_idx])
    table = RatingsTable(user=u_idx, movie=m_idx, stars=stars, ts=ts_flat)
    files = write_movielens(out_dir, rng, table, cat.title, cat.year, cat.genres, users)
    files[FRANCHISE_FILE] = _write_franchises(Path(out_dir), cat)
    per_movie = np.bincount(m_idx, minlength=movies)
    per_user = np.bincount(u_idx, minlength=users)
    same_ts = float(np.mean(ts_flat[1:][u_idx[1:] == u_idx[:-1]] == ts_flat[:-1][u_idx[1:] == u_idx[:-1]]))
    return {
        "profile": "movielens",
        "out_dir": str(out_dir),
        "users": users,
        "movies": movies,
        "ratings": int(len(u_idx)),
        "seed": seed,
        "movies_rated": int((per_movie > 0).sum()),
        "max_ratings_per_movie": int(per_movie.max()),
        "median_ratings_per_user": float(np.median(per_user)),
        "mean_ratings_per_user": round(float(per_user.mean()), 1),
        "min_ratings_per_user": int(per_user.min()),
        "mean_rating": round(float(stars.mean()), 3),
        "share_equal_to_previous_timestamp": round(same_ts, 3),
        "franchises": int(cat.franchise.max()) + 1,
        "franchise_movies": int((cat.franchise >= 0).sum()),
        "directors": int(len(np.unique(cat.director))),
        "files": files,
        "seconds": round(time.perf_counter() - t0, 3),
    }
