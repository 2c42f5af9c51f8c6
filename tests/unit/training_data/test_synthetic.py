"""The synthetic generator: exact MovieLens format, deterministic, readable, and with learnable structure."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from training_job.data.movielens import load_movielens
from training_job.synthetic import cli as synthetic

SIZE = {"users": 300, "movies": 400, "ratings": 15_000}
FILES = ("users.dat", "movies.dat", "ratings.dat")


@pytest.fixture(scope="module", params=synthetic.PROFILES)
def generated(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> tuple[Path, dict]:
    """Both profiles must honour the file format and the reader exactly."""
    out = tmp_path_factory.mktemp(f"syn-{request.param}")
    return out, synthetic.generate(out, seed=7, profile=request.param, **SIZE)


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("syn-planted")
    return out, synthetic.generate(out, seed=7, profile="planted", **SIZE)


def _lines(path: Path) -> list[str]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    return raw.decode("latin-1").split("\n")[:-1]


def test_files_match_movielens_format_exactly(generated: tuple[Path, dict]) -> None:
    out, summary = generated
    users = _lines(out / "users.dat")
    movies = _lines(out / "movies.dat")
    ratings = _lines(out / "ratings.dat")
    assert (len(users), len(movies), len(ratings)) == (300, 400, 15_000)
    assert (
        summary["ratings"] == 15_000
        and summary["files"]["ratings.dat"] == (out / "ratings.dat").stat().st_size
    )

    user_re = re.compile(r"^(\d+)::([MF])::(1|18|25|35|45|50|56)::(\d{1,2})::(\d{5}(-\d{4})?)$")
    for line in users:
        m = user_re.match(line)
        assert m, line
        assert 0 <= int(m[4]) <= 20
    assert [int(u.split("::")[0]) for u in users] == list(range(1, 301))

    movie_re = re.compile(r"^(\d+)::(.+) \((\d{4})\)::([A-Za-z'|-]+)$")
    movie_ids = []
    for line in movies:
        m = movie_re.match(line)
        assert m, line
        movie_ids.append(int(m[1]))
        assert 1919 <= int(m[3]) <= 2000
        genres = m[4].split("|")
        assert 1 <= len(genres) <= 6 and set(genres) <= set(synthetic.GENRES), line  # ML-1M: up to 6
    assert movie_ids == sorted(set(movie_ids))

    rating_re = re.compile(r"^(\d+)::(\d+)::([1-5])::(\d{9,10})$")
    parsed = [rating_re.match(line) for line in ratings]
    assert all(parsed)
    frame = pd.DataFrame([[int(x) for x in m.groups()] for m in parsed], columns=["u", "m", "r", "t"])  # type: ignore[union-attr]
    assert not frame.duplicated(["u", "m"]).any()
    assert set(frame["m"]) <= set(movie_ids)
    assert frame.groupby("u").size().min() >= 20  # like ML-1M: every user has >= 20 ratings
    ordered = frame.sort_values(["u", "t"])
    if summary["profile"] == "planted":
        assert (ordered.groupby("u")["t"].diff().dropna() > 0).all()  # strictly increasing per user
    else:  # sign-up bursts: equal timestamps are common, never decreasing
        assert (ordered.groupby("u")["t"].diff().dropna() >= 0).all()
    assert set(frame["r"]) == {1, 2, 3, 4, 5}
    # Popularity is skewed (Zipf-like): the top 10% of movies hold a large share of ratings.
    counts = np.sort(frame["m"].value_counts().to_numpy())[::-1]
    assert counts[: len(counts) // 10].sum() > 0.25 * counts.sum()


def test_non_ascii_titles_are_latin1(generated: tuple[Path, dict]) -> None:
    raw = (generated[0] / "movies.dat").read_bytes()
    assert not raw.isascii()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # latin-1 bytes, exactly as the real ML-1M files


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    small = {"users": 50, "movies": 80, "ratings": 2_000}
    synthetic.generate(tmp_path / "a", seed=3, **small)
    synthetic.generate(tmp_path / "b", seed=3, **small)
    synthetic.generate(tmp_path / "c", seed=4, **small)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "ratings.dat").read_bytes() != (tmp_path / "c" / "ratings.dat").read_bytes()


def test_reader_round_trips_with_zero_rejections(generated: tuple[Path, dict]) -> None:
    out, _ = generated
    d = load_movielens(str(out))
    assert d.report.total_rejected == 0
    assert (len(d.users), len(d.movies), len(d.ratings)) == (300, 400, 15_000)
    assert d.movies["year"].notna().all()
    assert not d.movies["title"].str.contains(r"\(\d{4}\)").any()
    assert not d.movies["title"].str.contains(r", (?:The|A)$").any()
    moved = d.movies[d.movies["raw_title"].str.contains(r", The \(\d{4}\)$")]
    assert len(moved) > 0 and moved["title"].str.startswith("The ").all()
    assert d.movies["genres"].map(len).between(1, 6).all()


def _hit_rate(d, scorer) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """HR@10 of leave-latest-out: each user's latest rating is the target, the rest is history."""
    ids = d.movies["movie_id"].to_numpy()
    r = d.ratings.sort_values(["user_id", "timestamp"]).assign(
        m=lambda x: np.searchsorted(ids, x["movie_id"])
    )
    last = r.groupby("user_id").tail(1)
    train = r.drop(last.index)
    n = len(ids)
    seqs = {u: g.to_numpy() for u, g in train.groupby("user_id")["m"]}
    target = dict(zip(last["user_id"], last["m"], strict=True))
    pop = np.bincount(train["m"], minlength=n).astype(float)
    onehot = np.zeros((int(r["user_id"].max()) + 1, n))
    onehot[train["user_id"], train["m"]] = 1
    co = onehot.T @ onehot  # (M, M) co-rating counts
    np.fill_diagonal(co, 0)
    out: dict[str, float] = {}
    for name, fn in scorer(pop, co).items():
        hits = 0
        for u, seq in seqs.items():
            s = fn(seq).astype(float)
            s[seq] = -np.inf
            hits += target[u] in np.argsort(-s, kind="stable")[:10]
        out[name] = hits / len(seqs)
    return out


def test_planted_structure_beats_popularity(planted: tuple[Path, dict]) -> None:
    d = load_movielens(str(planted[0]))
    tokens = [set(re.findall(r"\w+", t.lower())) - {"the", "a", "of"} for t in d.movies["title"]]

    def scorers(pop: np.ndarray, co: np.ndarray) -> dict:  # type: ignore[type-arg]
        tiny = 1e-6 * pop / pop.max()  # popularity only breaks ties
        return {
            "popularity": lambda seq: pop,
            "cooccurrence_of_last": lambda seq: co[seq[-1]] / np.sqrt(pop + 1) + tiny,
            "title_tokens_of_last": lambda seq: (
                np.array([len(tokens[seq[-1]] & t) for t in tokens], float) + tiny
            ),
        }

    hr = _hit_rate(d, scorers)
    assert (
        hr["cooccurrence_of_last"] > 2 * hr["popularity"]
        and hr["cooccurrence_of_last"] > hr["popularity"] + 0.15
    ), hr
    assert (
        hr["title_tokens_of_last"] > 1.5 * hr["popularity"]
        and hr["title_tokens_of_last"] > hr["popularity"] + 0.1
    ), hr


@pytest.fixture(scope="module")
def realistic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("syn-movielens")
    return out, synthetic.generate(out, seed=3, profile="movielens", users=1000, movies=600, ratings=120_000)


def test_movielens_profile_matches_published_ml1m_shape(realistic: tuple[Path, dict]) -> None:
    out, summary = realistic
    d = load_movielens(str(out))
    per_user = d.ratings.groupby("user_id").size()
    per_movie = d.ratings.groupby("movie_id").size()
    assert per_user.min() >= 20 and per_user.median() < per_user.mean()  # >= 20 each, long tail
    assert 0.5 < per_user.median() / per_user.mean() < 0.8  # ML-1M: 96 / 166 = 0.58 (log-normal shape)
    assert per_movie.max() > 0.35 * len(per_user)  # a heavy head: the top movie is rated by a third+ of users
    assert per_movie.median() < 0.85 * per_movie.mean()  # ... and a long tail (full size: 0.41, ML-1M 0.46)
    assert 3.45 < d.ratings["rating"].mean() < 3.7 and set(d.ratings["rating"]) == {1, 2, 3, 4, 5}
    r = d.ratings.sort_values(["user_id", "timestamp"])
    same = (r["timestamp"].diff() == 0) & (r["user_id"].diff() == 0)
    assert same.mean() > 0.3, "sign-up bursts: many ratings share a timestamp"
    assert summary["movies_rated"] >= 0.95 * 600 and summary["min_ratings_per_user"] >= 20


def test_movielens_profile_has_no_planted_shortcuts(realistic: tuple[Path, dict]) -> None:
    """Recent co-ratings help (as on real data) but titles carry no taste: no franchise in order to exploit."""
    d = load_movielens(str(realistic[0]))
    tokens = [set(re.findall(r"\w+", t.lower())) - {"the", "a", "of", "and"} for t in d.movies["title"]]

    def scorers(pop: np.ndarray, co: np.ndarray) -> dict:  # type: ignore[type-arg]
        tiny = 1e-6 * pop / pop.max()
        return {
            "popularity": lambda seq: pop,
            "cooccurrence_of_last_5": lambda seq: co[seq[-5:]].sum(0) / np.sqrt(pop + 1) + tiny,
            "title_tokens_of_last": lambda seq: (
                np.array([len(tokens[seq[-1]] & t) for t in tokens], float) + tiny
            ),
        }

    hr = _hit_rate(d, scorers)
    assert hr["cooccurrence_of_last_5"] > 1.5 * hr["popularity"], hr
    assert hr["title_tokens_of_last"] < hr["popularity"], hr


def test_cli_arguments_and_run(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    synthetic.add_arguments(parser)
    args = parser.parse_args(
        ["--out", str(tmp_path / "cli"), "--users", "30", "--movies", "60", "--ratings", "900"]
    )
    assert args.seed == 0
    assert synthetic.run(args) == 0
    assert len(_lines(tmp_path / "cli" / "ratings.dat")) == 900
    defaults = parser.parse_args(["--out", "x"])
    assert (defaults.users, defaults.movies, defaults.ratings) == (6040, 3706, 1_000_209)
    bad = parser.parse_args(
        ["--out", str(tmp_path / "bad"), "--users", "10", "--movies", "20", "--ratings", "5"]
    )
    assert synthetic.run(bad) == 2
    assert not (tmp_path / "bad" / "ratings.dat").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": 0}, "at least 1 user"),
        ({"movies": 5}, "10 movies"),
        ({"users": 10, "movies": 20, "ratings": 5}, "every user needs"),
        ({"users": 10, "movies": 20, "ratings": 200}, "too many"),
    ],
)
def test_impossible_sizes_are_rejected(tmp_path: Path, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=message):
        synthetic.generate(tmp_path, **kwargs)


def test_tight_sizes_still_produce_exact_counts(tmp_path: Path) -> None:
    summary = synthetic.generate(tmp_path, users=10, movies=20, ratings=120, seed=1)  # 12 of 20 each: the cap
    frame = load_movielens(str(tmp_path)).ratings
    assert summary["ratings"] == len(frame) == 120
    assert frame.groupby("user_id").size().max() <= 12


def test_movielens_profile_has_franchises_rated_by_the_same_people_mostly_in_order(
    realistic: tuple[Path, dict],
) -> None:
    """Series: sequels later and titled after the original (derivable from titles), co-rated, mostly in order."""
    from training_job.evaluation import franchises

    out, summary = realistic
    d = load_movielens(str(out))
    truth = franchises.read_truth(out)
    assert truth and summary["franchises"] >= 10 and summary["franchise_movies"] == len(truth)
    assert 0.05 < len(truth) / len(d.movies) < 0.2
    derived = franchises.from_titles(d.movies["movie_id"].tolist(), d.movies["title"].tolist())
    same = {(a, b) for a in truth for b in truth if a < b and truth[a] == truth[b]}
    assert same == {(a, b) for a in derived for b in derived if a < b and derived[a] == derived[b]}
    position = {}
    for line in (out / franchises.TRUTH_FILE).read_text(encoding="latin-1").splitlines():
        m, f, p = map(int, line.split("::"))
        position[(f, p)] = m
    year = dict(zip(d.movies["movie_id"], d.movies["year"], strict=True))
    raters = d.ratings.groupby("movie_id")["user_id"].apply(set).to_dict()
    stamps = {m: dict(zip(g["user_id"], g["timestamp"], strict=True)) for m, g in d.ratings.groupby("movie_id")}
    overlap, base, in_order, pairs = [], [], 0, 0
    rng = np.random.default_rng(0)
    all_ids = d.movies["movie_id"].to_numpy()
    for (f, p), m in position.items():
        nxt = position.get((f, p + 1))
        if nxt is None:
            continue
        assert year[nxt] > year[m]  # a sequel comes out later
        a, b = raters.get(m, set()), raters.get(nxt, set())
        overlap.append(len(a & b) / max(1, min(len(a), len(b))))
        other = raters.get(int(rng.choice(all_ids)), set())
        base.append(len(a & other) / max(1, min(len(a), len(other))))
        for u in a & b:
            if stamps[m][u] != stamps[nxt][u]:
                pairs += 1
                in_order += stamps[m][u] < stamps[nxt][u]
    assert np.mean(overlap) > 1.5 * np.mean(base), (np.mean(overlap), np.mean(base))  # the same people
    assert in_order / pairs > 0.65  # mostly in order (sign-up bursts keep some noise)
