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


def build_parser() -> argparse.ArgumentParser:
    from training_job import enrich, score_served, synthetic, train

    parser = argparse.ArgumentParser(
        prog="python -m training_job",
        description="PinSage movie recommender: training job, synthetic data generator, and scoring of what a deployment serves.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser(
        "train",
        help="train PinSage and write a run folder (local or s3://)",
        description=(
            "Train PinSage on MovieLens ratings (leave-last-out split), evaluate HR@10/NDCG@10/coverage "
            "against popularity and item-kNN, and write the run folder (embeddings, movies, user "
            "histories, metrics, learning curve, config, manifest last) to OUTPUT/<run_id>/."
        ),
    )
    train.add_arguments(p_train)
    p_train.set_defaults(func=train.main)
    p_syn = sub.add_parser(
        "synthetic",
        help="generate MovieLens-format synthetic data",
        description="Write users.dat / movies.dat / ratings.dat with planted structure (MovieLens-1M format).",
    )
    synthetic.add_arguments(p_syn)
    p_syn.set_defaults(func=synthetic.run)
    p_eval = sub.add_parser(
        "evaluate",
        help="score what a deployment (or a run) serves on held-out (user_id, movie_id) rows",
        description=score_served.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score_served.add_arguments(p_eval)
    p_eval.set_defaults(func=score_served.main)
    p_enrich = sub.add_parser(
        "enrich",
        help="fill plot, director, cast, runtime and poster URL of the movies from OMDb (optional, cached)",
        description=enrich.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    enrich.add_arguments(p_enrich)
    p_enrich.set_defaults(func=enrich.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
