"""`python -m training_job synthetic`: MovieLens-1M-format synthetic data, two profiles.

- `movielens` (default, synthetic_movielens.py): calibrated to the real dataset's published statistics,
  no planted structure - the profile training defaults are chosen on;
- `planted` (synthetic_planted.py): taste clusters and franchises watched in order - learnable by
  construction, to test that a model learns at all.

Both write users.dat / movies.dat / ratings.dat exactly as ML-1M ships them (synthetic_files.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from shared.config.log import get_logger
from training_job.synthetic.files import GENRES

logger = get_logger(__name__)
__all__ = ["GENRES", "PROFILES", "add_arguments", "generate", "run"]

PROFILES = ("movielens", "planted")


def generate(
    out_dir: str | Path,
    *,
    users: int = 6040,
    movies: int = 3706,
    ratings: int = 1_000_209,
    seed: int = 0,
    profile: str = "movielens",
) -> dict[str, Any]:
    """Write users.dat, movies.dat and ratings.dat (MovieLens-1M format) into out_dir; return a summary.

    profile "movielens" (default): calibrated to the real dataset's published statistics, no planted
    structure (synthetic_movielens.py). "planted": taste clusters, franchises watched in order (this
    module) -- learnable by construction, useful to test that a model learns at all.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {PROFILES}")
    if users < 1 or movies < 10:
        raise ValueError(f"need at least 1 user and 10 movies (got users={users}, movies={movies})")
    if ratings < users:
        raise ValueError(f"ratings={ratings} < users={users}: every user needs at least one rating")
    if ratings > int(0.6 * movies) * users:
        raise ValueError(
            f"ratings={ratings} too many: at most 60% of the {movies} movies per user ({int(0.6 * movies) * users})"
        )
    if profile == "movielens":
        from training_job.synthetic import movielens as synthetic_movielens

        return synthetic_movielens.generate(out_dir, users=users, movies=movies, ratings=ratings, seed=seed)
    from training_job.synthetic import planted as synthetic_planted

    return synthetic_planted.generate(out_dir, users=users, movies=movies, ratings=ratings, seed=seed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `python -m training_job synthetic`."""
    parser.add_argument(
        "--out", required=True, help="folder to write users.dat, movies.dat, ratings.dat into"
    )
    parser.add_argument("--users", type=int, default=6040, help="number of users (default: ML-1M's 6040)")
    parser.add_argument("--movies", type=int, default=3706, help="number of movies (default: ML-1M's 3706)")
    parser.add_argument(
        "--ratings", type=int, default=1_000_209, help="number of ratings (default: ML-1M's 1,000,209)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same files (default: 0)")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="movielens",
        help="movielens = calibrated to real ML-1M statistics, no planted structure (default); "
        "planted = genre clusters and franchises watched in order, learnable by construction",
    )


def run(args: argparse.Namespace) -> int:
    """CLI entry: generate, log the summary as one structured line, exit code 0 (2 on bad sizes)."""
    try:
        summary = generate(
            args.out, users=args.users, movies=args.movies, ratings=args.ratings, seed=args.seed, profile=args.profile
        )
    except ValueError as exc:
        logger.error("synthetic data not generated", extra={"error": str(exc)})
        return 2
    logger.info("synthetic movielens written", extra=summary)
    return 0
