"""Do "similar movies" lists read as taste? Franchise coherence and genre agreement of top-k similar lists.

Why: next-movie HR says nothing about the lists a person sees on every movie page. On real MovieLens the
PinSage list for Star Wars (1977) held no Empire Strikes Back while co-rating item-kNN's did (issue 17).
Two figures per method, over the same lists the product shows:

- **franchise coherence@k**: of the movies that have a series mate in the catalogue, the share whose
  top-k similar list holds at least one of them;
- **genre agreement@k**: the mean share of a movie's top-k similar movies sharing a genre with it.

Franchises come from the ground truth the synthetic generator writes (`franchises.dat`,
`movie_id::franchise_id::position`, beside movies.dat) or, for real data, from titles (`from_titles`):
movies sharing a title stem - the title before a ':' or without a trailing sequel number ("Toy Story 2",
"The Godfather: Part II", "Star Wars: Episode V - ...") - with at least two distinct titles (so two
films that merely share a name, e.g. remakes, are not a series).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from shared.config.log import get_logger

logger = get_logger(__name__)

TRUTH_FILE = "franchises.dat"
_AKA = re.compile(r"\s*\((?:a\.k\.a\.|aka)[^)]*\)", re.IGNORECASE)
_SEQUEL_TAIL = re.compile(r"\s+(?:part\s+|chapter\s+|episode\s+)?(?:[ivx]+|[2-9])$", re.IGNORECASE)


def read_truth(folder: str | Path) -> dict[int, int] | None:
    """{movie_id: franchise_id} from `franchises.dat` in a local data folder; None when there is none."""
    path = Path(folder) / TRUTH_FILE
    if not path.is_file():
        return None
    out: dict[int, int] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        parts = line.strip().split("::")
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


def title_stem(title: str) -> str:
    """'The Godfather: Part II' -> 'the godfather'; 'Toy Story 2' -> 'toy story'; 'Alien' -> 'alien'."""
    t = _AKA.sub("", title).strip().lower()
    t = t.split(":", 1)[0].split(" - ", 1)[0].strip()
    prev = None
    while prev != t:
        prev, t = t, _SEQUEL_TAIL.sub("", t).strip()
    return " ".join(re.findall(r"\w+", t))


def from_titles(movie_ids: Sequence[int], titles: Sequence[str]) -> dict[int, int]:
    """{movie_id: franchise_id} for movies sharing a title stem with another, distinctly titled, movie."""
    groups: dict[str, list[int]] = defaultdict(list)
    names: dict[str, set[str]] = defaultdict(set)
    for mid, title in zip(movie_ids, titles, strict=True):
        stem = title_stem(str(title))
        if len(stem) >= 3:
            groups[stem].append(int(mid))
            names[stem].add(" ".join(str(title).lower().split()))
    out: dict[int, int] = {}
    for f, stem in enumerate(sorted(s for s, ids in groups.items() if len(ids) >= 2 and len(names[s]) >= 2)):
        for mid in groups[stem]:
            out[mid] = f + 1
    return out


def franchises_for(source: Mapping[str, object], movie_ids: Sequence[int], titles: Sequence[str]) -> tuple[dict[int, int], str]:
    """The ground truth when the data folder carries one, else franchises derived from titles; and which."""
    path = source.get("path")
    truth = read_truth(str(path)) if source.get("kind") == "folder" and path else None
    if truth is not None:
        return truth, TRUTH_FILE
    return from_titles(movie_ids, titles), "titles"


def coherence(
    lists: Mapping[int, Sequence[int]],
    franchise: Mapping[int, int],
    genres: Mapping[int, frozenset[str]],
    k: int = 10,
) -> dict[str, float]:
    """Franchise coherence@k and genre agreement@k of similar lists {movie_id: similar ids, best first}.

    Coherence counts only movies with a series mate among the listed catalogue (`lists`' keys)."""
    sizes: dict[int, int] = defaultdict(int)
    for mid in lists:
        if mid in franchise:
            sizes[franchise[mid]] += 1
    hits, eligible, agree, judged = 0, 0, 0.0, 0
    for mid, similar in lists.items():
        top = list(similar)[:k]
        f = franchise.get(mid)
        if f is not None and sizes[f] >= 2:
            eligible += 1
            hits += any(franchise.get(s) == f for s in top)
        g = genres.get(mid, frozenset())
        if top and g:
            agree += float(np.mean([bool(g & genres.get(s, frozenset())) for s in top]))
            judged += 1
    return {
        f"franchise_coherence@{k}": hits / eligible if eligible else 0.0,
        f"genre_agreement@{k}": agree / judged if judged else 0.0,
        "franchise_movies": eligible,
    }


def top_k_lists(movie_ids: np.ndarray, sim: np.ndarray, k: int = 10) -> dict[int, list[int]]:
    """Each movie's k most similar others from a dense (N, N) similarity (ties: ascending movie id)."""
    s = np.array(sim, dtype=np.float64, copy=True)  # (N, N)
    np.fill_diagonal(s, -np.inf)
    order = np.argsort(np.asarray(movie_ids))
    s = s[np.ix_(order, order)]  # rows/cols by ascending id, so a stable sort breaks ties by id
    ids = np.asarray(movie_ids)[order]
    top = np.argsort(-s, axis=1, kind="stable")[:, :k]  # (N, k)
    return {int(ids[i]): ids[top[i]].tolist() for i in range(len(ids))}
