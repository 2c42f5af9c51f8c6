"""What both synthetic profiles share: the MovieLens vocabularies and writing the three `.dat` files.

The files are written exactly as ML-1M ships them: latin-1, `::`-separated, ratings.dat grouped by
user (ascending id) but NOT time-ordered inside a user, titles spelled 'Matrix, The (1999)'.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training_job.data.movielens import KNOWN_GENRES

GENRES = KNOWN_GENRES  # the 18 ML-1M genres, as the reader knows them
# Relative genre frequency in ML-1M (Drama and Comedy dominate, Film-Noir and Documentary are rare).
GENRE_WEIGHT = np.array(
    [503, 283, 105, 251, 1200, 211, 127, 1603, 68, 44, 343, 114, 106, 471, 276, 492, 143, 68], float
)
AGES = ("1", "18", "25", "35", "45", "50", "56")
AGE_P = np.array([222, 1103, 2096, 1193, 550, 496, 380], float)
ARTICLES = ("The", "A")
_TITLE_WORDS = ["Night", "Day", "Love", "Story", "Man", "Woman", "Girl", "Boy", "City", "House", "Road", "Game", "Last", "First", "Dark", "Light", "Time", "World", "Heart", "Blood", "Fire", "Water", "Dead", "Life", "Secret", "King", "Queen", "Summer", "Winter", "War", "Home", "Dream", "Sky", "Star", "Legend", "River", "Stone", "Forest", "Valley", "Island", "Harbor", "Moon", "Empire", "Storm", "Gate", "Code", "Affair", "Project", "Society", "Files", "Paradox", "Requiem", "Junction", "Crossing", "Station", "Hotel", "Express", "Academy", "Brigade", "Factor", "Dilemma", "Effect", "Gambit", "Quest", "Frontier", "Odyssey", "Mystery", "Curse", "Riddle", "Heist", "Chase", "Trap", "Rules", "Diaries", "Letters", "Weekend", "Holiday", "Wedding", "Reunion", "Party", "Bridge", "Crimson", "Shadow", "Velvet", "Thunder", "Midnight", "Orchid", "Iron", "Lantern", "Silver", "Canyon", "Frozen", "Scarlet", "Falcon", "Hollow", "Crown", "Emerald", "Tide", "Golden", "Serpent", "Compass", "Garden", "Ridge", "Copper", "Phantom", "Circus", "Glass", "Kingdom", "Savage", "Prairie", "Lunar", "Marble", "Saint", "Neon", "Alley", "Paper", "Tiger", "Ivory", "Tower", "Anchor", "Desert", "Rose", "Carnival", "Crystal", "Electric", "Amber", "Signal", "Cobalt", "Sparrow", "Trail", "Palace", "Jade", "Dragon", "Rainbow", "Clockwork", "Starlight", "Diner", "Rogue", "Planet", "Orchard", "Coast", "Cosmic", "Voyage", "Twilight", "Northern", "Bayou", "Horizon", "Rider", "Escape", "Cipher", "Bear", "Boulevard", "Café", "Noël", "Über", "Straße", "Château", "Fiancée", "Señor", "Mañana", "Étoile", "Zürich", "Garçon", "Déjà"]
_PATTERNS = ("{a} {b}", "{a} of the {b}", "The {a} {b}", "A {a} {b}", "{a}", "The {a}", "{a} and the {b}")


@dataclass(frozen=True)
class RatingsTable:
    """Flat ratings, grouped by user index (ascending) and in time order inside a user."""

    user: np.ndarray  # (E,) 0-based user index
    movie: np.ndarray  # (E,) 0-based movie index
    stars: np.ndarray  # (E,) 1..5
    ts: np.ndarray  # (E,) unix seconds


def random_titles(rng: np.random.Generator, n: int) -> list[str]:
    """n distinct titles from a shared word list (no structure: titles say nothing about taste)."""
    used: set[str] = set()
    out: list[str] = []
    words = np.array(_TITLE_WORDS)
    for _ in range(n):
        a, b = words[rng.integers(0, len(words), 2)]
        title = _PATTERNS[int(rng.integers(0, len(_PATTERNS)))].format(a=a, b=b)
        base, k = title, 2
        while title in used:
            title, k = f"{base} {k}", k + 1
        used.add(title)
        out.append(title)
    return out


def format_title(title: str, year: int, rng: np.random.Generator) -> str:
    """MovieLens spelling: 'The X' -> 'X, The (1987)'; a few carry an '(a.k.a. ...)' alternate title."""
    for art in ARTICLES:
        if title.startswith(art + " "):
            title = f"{title[len(art) + 1 :]}, {art}"
            break
    if rng.random() < 0.02:
        title = f"{title} (a.k.a. {title.split()[0]} Story)"
    return f"{title} ({year})"


def write_movielens(
    out_dir: str | Path,
    rng: np.random.Generator,
    ratings: RatingsTable,
    titles: list[str],
    years: np.ndarray,
    genres: list[list[str]],
    n_users: int,
    gender: np.ndarray | None = None,
    age: np.ndarray | None = None,
) -> dict[str, int]:
    """Write users.dat, movies.dat, ratings.dat; returns each file's size in bytes."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n_movies = len(titles)
    movie_ids = np.sort(rng.choice(np.arange(1, int(n_movies * 1.07) + 2), size=n_movies, replace=False))
    key = rng.random(len(ratings.user))  # shuffle inside each user, as in ML-1M
    order = np.lexsort((key, ratings.user))
    lines = "".join(
        f"{u}::{m}::{r}::{t}\n"
        for u, m, r, t in zip(
            (ratings.user[order] + 1).tolist(),
            movie_ids[ratings.movie[order]].tolist(),
            ratings.stars[order].tolist(),
            ratings.ts[order].tolist(),
            strict=True,
        )
    )
    (out / "ratings.dat").write_bytes(lines.encode("latin-1"))

    if gender is None:
        gender = (rng.random(n_users) < 0.283).astype(np.int64)  # ML-1M: 28% F
    if age is None:
        age = rng.choice(len(AGES), size=n_users, p=AGE_P / AGE_P.sum())
    occupation = rng.integers(0, 21, size=n_users)
    zips = rng.integers(1000, 99999, size=n_users)
    zip_ext = rng.random(n_users) < 0.01
    users_lines = []
    for i in range(n_users):
        z = f"{zips[i]:05d}" + (f"-{(zips[i] * 7) % 10000:04d}" if zip_ext[i] else "")
        users_lines.append(f"{i + 1}::{'F' if gender[i] else 'M'}::{AGES[age[i]]}::{occupation[i]}::{z}\n")
    (out / "users.dat").write_bytes("".join(users_lines).encode("latin-1"))

    movie_lines = [
        f"{movie_ids[m]}::{format_title(titles[m], int(years[m]), rng)}::{'|'.join(genres[m])}\n"
        for m in range(n_movies)
    ]
    (out / "movies.dat").write_bytes("".join(movie_lines).encode("latin-1"))
    return {f: (out / f).stat().st_size for f in ("users.dat", "movies.dat", "ratings.dat")}
