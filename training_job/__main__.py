"""Command line of the training job.

    python -m training_job train --data SRC --output URI [--max-minutes 5 --device cpu ...]
    python -m training_job synthetic --help     # MovieLens-shaped synthetic data for tests/benchmarks
    python -m training_job evaluate --help      # HR@10 of what a deployment serves on held-out rows
    python -m training_job enrich --help        # movie details (plot, cast, poster) from OMDb, optional

`train` is the Docker image's ENTRYPOINT (python -m training_job train).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def build_parser() -> argparse.ArgumentParser:
    from training_job import train
    from training_job.enrich import command as enrich
    from training_job.evaluation import command as score_served
    from training_job.synthetic import cli as synthetic

    parser = argparse.ArgumentParser(
        prog="python -m training_job",
        description="PinSage movie recommender: training job, synthetic data generator, and scoring of what a deployment serves.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # (name, module with add_arguments, its entry point, --help line, description)
    commands: list[tuple[str, Any, Callable[..., Any], str, str | None]] = [
        (
            "train",
            train,
            train.main,
            "train PinSage and write a run folder (local or s3://)",
            "Train PinSage on MovieLens ratings (leave-last-out split), evaluate HR@10/NDCG@10/coverage "
            "against popularity and item-kNN, and write the run folder (embeddings, movies, user "
            "histories, metrics, learning curve, config, manifest last) to OUTPUT/<run_id>/.",
        ),
        (
            "synthetic",
            synthetic,
            synthetic.run,
            "generate MovieLens-format synthetic data",
            "Write users.dat / movies.dat / ratings.dat with planted structure (MovieLens-1M format).",
        ),
        (
            "evaluate",
            score_served,
            score_served.main,
            "score what a deployment (or a run) serves on held-out (user_id, movie_id) rows",
            score_served.__doc__,
        ),
        (
            "enrich",
            enrich,
            enrich.main,
            "fill plot, director, cast, runtime and poster URL of the movies from OMDb (optional, cached)",
            enrich.__doc__,
        ),
    ]
    for name, module, entry, help_line, description in commands:
        raw = description is not None and "\n" in description  # a module docstring keeps its layout
        formatter = argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter
        command = sub.add_parser(name, help=help_line, description=description, formatter_class=formatter)
        module.add_arguments(command)
        command.set_defaults(func=entry)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
