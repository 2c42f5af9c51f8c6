"""The `planted` profile's movies (synthetic_planted.py draws who watches them): taste clusters = genre combos with
their own era and title vocabulary, franchises inside clusters ("Crimson Harbor", "Crimson Harbor II", ...),
Zipf-like popularity and new releases that only appear at the end of users' histories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from training_job.synthetic.files import GENRE_WEIGHT as _GENRE_WEIGHT
from training_job.synthetic.files import GENRES


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


# Title vocabulary. Each cluster takes its own slice of THEME words (so title tokens identify clusters);
# a franchise is "<theme word> <name word>" (the pair identifies the franchise); standalone titles mix a
# theme word with GENERIC words shared by all clusters (noise, as in real titles).
THEME = _words(
    "Crimson Shadow Empire Velvet Thunder Midnight Orchid Iron Lantern Silver Canyon Frozen "
    "Meridian Scarlet Falcon Hollow Crown Emerald Tide Golden Serpent Compass Garden Burning Ridge "
    "Copper Phantom Circus Glass Kingdom Savage Prairie Lunar Station Marble Saint Neon Alley Paper "
    "Tiger Ivory Tower Anchor Desert Rose Carnival Crystal Forest Valley Stone River Electric "
    "Velour Amber Signal Cobalt Sparrow Trail Palace Jade Dragon Obsidian Rainbow Pony Clockwork "
    "Starlight Diner Rogue Planet Orchard Gilded Cage Frontier Mill Sapphire Coast Cosmic Voyage "
    "Twilight Almond Northern Bayou Horizon Rider Island Escape Cipher Bear Boulevard Café Noël "
    "Über Straße Château Fiancée Señor Mañana Rêve Étoile Øresund Kölsch Zürich Piñata Garçon Déjà "
    "Soirée Naïve Fräulein Badger Cathedral Pharaoh Galleon Tundra Monsoon Samurai Outlaw Nebula "
    "Android Vampire Goblin Spectre Wolfpack Gangster Detective Sheriff Commando Ballerina Puppet "
    "Dinosaur Pirate Wizard Mermaid Cowboy Ninja Zombie Robot Spy Mummy Yeti Phoenix Titan "
    "Gladiator "
)
NAMES = _words(
    "Harbor Moon Empire Storm Heart Road Code Gate Legacy Protocol Affair Project Society "
    "Expedition Files Chronicles Conspiracy Paradox Requiem Rhapsody Sonata Serenade Junction "
    "Crossing Station Hotel Express Academy Brigade Syndicate Factor Dilemma Effect Gambit Sequence "
    "Agenda Vendetta Quest Frontier Odyssey Mystery Curse Riddle Secret Heist Job Deal Run Hunt "
    "Chase Trap Game Rules Diaries Tapes Letters Summer Winter Spring Autumn Weekend Holiday "
    "Wedding Reunion Party Affair Island Valley Canyon Lagoon Bridge "
)
NAMES = tuple(w for w in dict.fromkeys(NAMES) if w not in THEME)  # distinct from cluster tokens
GENERIC = _words(
    "Return Night Day Love Story Man Woman Girl Boy City House Road Game Last First Dark Light Time "
    "World Heart Blood Fire Water Dead Life Secret King Queen Summer Winter War Home Dream Sky Star "
    "Legend "
)
ZIPF = 1.0  # popularity exponent over a random global rank
NEW_RELEASE_TAU = (0.9, 0.99)  # new releases become available at this fraction of each user's history
SUFFIX_WORDS = (
    "Reckoning",
    "Uprising",
    "Homecoming",
    "Revenge",
    "Legacy",
    "Origins",
    "Awakening",
    "Showdown",
)
ROMAN = ("", " II", " III", " IV", " V", " VI", " VII", " VIII")


@dataclass(frozen=True)
class PlantedCatalogue:
    """The planted movies: what anyone can see (title, year, genres) and the structure behind behaviour."""

    cluster: np.ndarray  # (M,) taste cluster, contiguous per cluster
    combos: list[tuple[int, ...]]  # each cluster's genre combination (indices into GENRES)
    franchise: np.ndarray  # (M,) franchise id, -1 = standalone
    fr_pos: np.ndarray  # (M,) position inside the franchise
    year: np.ndarray  # (M,)
    title: list[str]
    genres: list[list[str]]
    pop: np.ndarray  # (M,) popularity weight
    release: np.ndarray  # (M,) fraction of each user's history after which the movie can be rated
    nxt: np.ndarray  # (M,) the next movie of the franchise, -1 = none
    n_franchises: int


def choice_p(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    p = weights / weights.sum()
    return rng.choice(len(p), size=size, p=p)


def _standalone_title(rng: np.random.Generator, vocab: list[str]) -> str:
    w, g = rng.choice(vocab), rng.choice(GENERIC)
    pattern = int(rng.integers(0, 4))
    return [f"{w} {g}", f"{g} of the {w}", f"The {w} {g}", f"A {g} {w}"][pattern]


def _make_clusters(rng: np.random.Generator, n_clusters: int) -> list[tuple[int, ...]]:
    """Distinct genre combos of 1-3 genres, primary genre drawn with ML-1M frequencies."""
    combos: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    while len(combos) < n_clusters:
        k = int(rng.choice([1, 2, 3], p=[0.3, 0.45, 0.25]))
        gs = tuple(sorted(set(choice_p(rng, _GENRE_WEIGHT, k).tolist())))
        if gs not in seen:
            seen.add(gs)
            combos.append(gs)
    return combos


def make_catalogue(rng: np.random.Generator, n_movies: int, n_clusters: int) -> PlantedCatalogue:
    """Movies: cluster, franchise, order in franchise, year, genres, title, popularity."""
    combos = _make_clusters(rng, n_clusters)
    era = rng.choice(
        [1955.0, 1970.0, 1982.0, 1990.0, 1995.0, 1997.0],
        size=n_clusters,
        p=[0.08, 0.1, 0.15, 0.2, 0.25, 0.22],
    )
    words = list(THEME)
    rng.shuffle(words)
    per = max(2, len(words) // n_clusters)
    vocab = [
        words[(c * per) % len(words) : (c * per) % len(words) + per] or words[:per] for c in range(n_clusters)
    ]

    cluster_w = rng.dirichlet(np.full(n_clusters, 3.0))
    cluster = np.sort(choice_p(rng, cluster_w, n_movies))  # (M,) contiguous per cluster
    franchise = np.full(n_movies, -1, dtype=np.int64)  # (M,)
    fr_pos = np.zeros(n_movies, dtype=np.int64)  # (M,)
    years = np.zeros(n_movies, dtype=np.int64)
    titles: list[str] = [""] * n_movies
    n_fr = 0
    used: set[str] = set()

    def unique(make: Any) -> str:
        """A title not used yet: redraw a few times, then number it (like real remakes)."""
        title = make()
        for _ in range(20):
            if title not in used:
                break
            title = make()
        out, k = title, 2
        while out in used:
            out, k = f"{title} {k}", k + 1
        used.add(out)
        return out

    for c in range(n_clusters):
        idx = np.flatnonzero(cluster == c)
        i = 0
        while i < len(idx):
            mean_year = era[c] + rng.normal(0, 8)
            if rng.random() < 0.45 and len(idx) - i >= 2:  # a franchise of 2-6 movies
                size = int(min(len(idx) - i, rng.integers(2, 7)))
                article = "The " if rng.random() < 0.15 else ""
                name = unique(lambda c=c, a=article: f"{a}{rng.choice(vocab[c])} {rng.choice(NAMES)}")
                year = int(np.clip(mean_year - 3 * size, 1919, 2000))
                for k in range(size):
                    m = idx[i + k]
                    franchise[m], fr_pos[m] = n_fr, k
                    if k == 0:
                        t = name
                    elif k < len(ROMAN) and rng.random() < 0.7:
                        t = f"{name}{ROMAN[k]}"
                    else:
                        t = f"{name}: {rng.choice(SUFFIX_WORDS)}"
                    titles[m] = t if k == 0 else unique(lambda t=t: t)
                    years[m] = min(2000, year)
                    year += int(rng.integers(1, 5))
                n_fr += 1
                i += size
            else:
                m = idx[i]
                titles[m] = unique(lambda c=c: _standalone_title(rng, vocab[c]))
                years[m] = int(np.clip(round(mean_year + rng.normal(0, 6)), 1919, 2000))
                i += 1

    genres: list[list[str]] = []
    for m in range(n_movies):
        gs = list(combos[cluster[m]])
        if len(gs) < 3 and rng.random() < 0.15:  # feature noise: an extra genre...
            extra = int(choice_p(rng, _GENRE_WEIGHT, 1)[0])
            if extra not in gs:
                gs.append(extra)
        elif len(gs) > 1 and rng.random() < 0.1:  # ...or one missing
            gs.pop(int(rng.integers(len(gs))))
        genres.append([GENRES[g] for g in sorted(gs)])

    # Zipf-like popularity over a random global rank; franchise openers are the popular entries.
    rank = rng.permutation(n_movies) + 1
    pop = rank.astype(float) ** -ZIPF
    pop[fr_pos > 0] *= 0.6 ** fr_pos[fr_pos > 0]
    # New releases (some franchises' latest sequel, a few standalones): only available at the end of each
    # user's history, so they have few training co-ratings and show up as test items -- the cold-ish
    # items where title tokens / genres / year must do the work that co-occurrence cannot.
    nxt = next_in_franchise(franchise, fr_pos)
    new = ((franchise >= 0) & (fr_pos > 0) & (nxt < 0) & (rng.random(n_movies) < 0.35)) | (
        (franchise < 0) & (rng.random(n_movies) < 0.04)
    )
    release = np.where(new, rng.uniform(*NEW_RELEASE_TAU, size=n_movies), 0.0)
    years[new] = np.maximum(years[new], rng.choice([1999, 2000], size=int(new.sum())))
    pop[new] *= 3.0
    return PlantedCatalogue(
        cluster=cluster,
        combos=combos,
        franchise=franchise,
        fr_pos=fr_pos,
        year=years,
        title=titles,
        genres=genres,
        pop=pop,
        release=release,
        nxt=nxt,
        n_franchises=n_fr,
    )


def next_in_franchise(franchise: np.ndarray, fr_pos: np.ndarray) -> np.ndarray:
    """nxt[m] = the movie after m in its franchise (-1 for the last one and for standalone movies)."""
    nxt = np.full(len(franchise), -1, dtype=np.int64)
    order = np.lexsort((fr_pos, franchise))
    f = franchise[order]
    same = (f[:-1] == f[1:]) & (f[:-1] >= 0)
    nxt[order[:-1][same]] = order[1:][same]
    return nxt
