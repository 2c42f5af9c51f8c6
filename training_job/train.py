"""Train PinSage on MovieLens ratings and publish a run folder (embeddings + metadata + metrics).

How to run (from the repository root, with the `train` extra installed):

    # synthetic MovieLens-shaped data, then a 5-minute CPU training run into a local folder
    python -m training_job synthetic --out .local/synth --users 6040 --movies 3706 --ratings 1000000
    python -m training_job train --data .local/synth --output .local/runs --max-minutes 5

    # the real MovieLens-1M from S3 (or --download it), GPU, output to S3
    python -m training_job train --data s3://my-bucket/ml-1m/ --output s3://my-bucket/runs --device cuda

    python -m training_job train --help     # every flag explained

Pipeline: load + validate ratings (data.py), merge people's exported events (--events-uri,
events_merge.py) -> leave-last-out split and train-only graph (graph.py) ->
PinSage trained with a max-margin loss (fit.py: sampler.py, model.py; every knob in config.py),
validation HR@10 after every epoch, best epoch kept -> full-catalogue layer-wise inference
(inference.py) -> test metrics of PinSage AS SERVED (served_eval.py, shared/serving/recipe.py) vs popularity,
item-kNN and EASE (report.py, baselines.py) -> optional refit on every interaction (fit.py) -> run
folder written through shared.contract.artifacts.RunWriter, manifest last (writer.py).

Reproducibility: the same seed, data and flags give the same metrics (torch, numpy and DGL's random
walks are seeded); a run cut short by --max-minutes depends on wall-clock time and is not reproducible.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import torch

from shared.config.log import get_logger
from training_job.config import TrainConfig, add_arguments, config_from_args
from training_job.data.report import MovieLensData
from training_job.evaluation.franchises import franchises_for
from training_job.evaluation.report import concat, evaluate_all
from training_job.model import distributed
from training_job.model.fit import CURVE_QUERIES, FitResult, fit, refit
from training_job.model.graph import GraphData, build

logger = get_logger(__name__)
__all__ = ["TrainConfig", "add_arguments", "concat", "config_from_args", "main", "run", "train_on"]


def set_threads(threads: int) -> int:
    """Torch intra-op threads (0 = every core).

    Why 1 by default: the per-batch tensors are small (a few thousand rows of 64 floats), so OpenMP's
    fork/join costs more than it saves, and on a busy 2-core machine spinning OpenMP workers collapse
    throughput (measured ~25,000 pairs/s with 1 thread vs ~1,700 with 2 while other jobs ran).
    """
    from threadpoolctl import threadpool_limits

    n = threads or os.cpu_count() or 1
    torch.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")  # numpy's BLAS too: the served evaluation is small mat-vecs
    return n


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is visible (the Batch job passes no --device), else 'cpu'."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch sees no GPU (CUDA build of torch/dgl and a driver are needed)")
    return device


def train_on(data: MovieLensData, cfg: TrainConfig) -> tuple[GraphData, FitResult, dict[str, Any]]:
    """Graph + training + evaluation on an already-loaded MovieLensData; returns metrics."""
    set_threads(cfg.threads)
    cfg.device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    gd = build(data, title_buckets=cfg.title_buckets)
    graph_s = time.perf_counter() - t0
    logger.info("graph built", extra=gd.stats)
    fr = fit(gd, cfg)
    t1 = time.perf_counter()
    franchise, franchise_source = franchises_for(
        data.source, data.movies["movie_id"].tolist(), data.movies["title"].tolist()
    )
    movie_genres = {int(m): frozenset(g) for m, g in zip(data.movies["movie_id"], data.movies["genres"], strict=True)}
    ev: dict[str, Any] = {}
    if distributed.current().is_main:  # rank 0 alone evaluates (the other ranks' embeddings are empty)
        ev = evaluate_all(gd, fr.embeddings, franchise, movie_genres)
        ev["similar@10"] = {**ev["similar@10"], "franchises_from": franchise_source}
    eval_s = time.perf_counter() - t1
    refit_info: dict[str, Any] = {"epochs": 0, "note": "published embeddings = the validated model"}
    if cfg.refit_epochs > 0:
        fr.published, refit_info = refit(gd, fr, cfg)
    rejected = data.report.to_dict()
    metrics = {
        "data": {**gd.stats, "rejected": rejected},
        "training": {
            "curve": fr.curve,
            "best_epoch": fr.best_epoch,
            "best_val_hr@10": max((p["val_hr@10"] for p in fr.curve), default=0.0),
            "pairs_per_second": fr.pairs_per_second,
            "stopped_by_time": fr.stopped_by_time,
            "curve_query_rules": [r.to_dict() for r in CURVE_QUERIES],
        },
        **ev,
        "refit": refit_info,
        "timings": {"graph_s": graph_s, **fr.timings, "evaluation_s": eval_s},
    }
    if ev:  # rank 0 (the only rank that evaluates)
        logger.info("test metrics", extra={k: v["hr@10"] for k, v in ev["test"].items()})
    return gd, fr, metrics


def run(cfg: TrainConfig) -> str:
    """Load data, train, evaluate, write the run; returns the run URI."""
    from training_job.data.movielens import load_movielens
    from training_job.writer import write_run

    t0 = time.perf_counter()
    data = load_movielens(cfg.data, download=cfg.download, cache_dir=cfg.cache_dir)
    if cfg.events_uri:
        from training_job.data.events import merge_events

        data = merge_events(data, cfg.events_uri)
    load_s = time.perf_counter() - t0
    gd, fr, metrics = train_on(data, cfg)
    metrics["timings"]["load_s"] = load_s
    dist = distributed.current()
    if not dist.is_main:  # rank 0 writes the run; the others are done once training is
        return ""
    metrics["training"]["world_size"] = dist.world_size
    t1 = time.perf_counter()
    run_uri = write_run(cfg, data, gd, fr, metrics)
    logger.info("run written", extra={"run_uri": run_uri, "write_s": time.perf_counter() - t1})
    return run_uri


def relaunch_argv(argv: list[str]) -> list[str]:
    """`argv` (the `train ...` command line) without --workers: what every torchrun rank runs."""
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a == "--workers":
            skip = True
        elif not a.startswith("--workers="):
            out.append(a)
    return out


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    if not distributed.under_launcher():
        gpus = torch.cuda.device_count() if resolve_device(cfg.device) == "cuda" else 0
        rdzv = distributed.batch_rendezvous(os.environ, gpus)
        if rdzv is not None or cfg.workers > 1:  # start the ranks (this process only waits for them)
            cmd = distributed.launch_command(relaunch_argv(sys.argv[1:]), cfg.workers, rdzv)
            logger.info("launching data-parallel training", extra={"command": cmd, "workers": cfg.workers})
            return subprocess.run(cmd, check=False).returncode
    dist = distributed.init_from_env(resolve_device(cfg.device))
    cfg.device = dist.device(resolve_device(cfg.device))
    run_uri = run(cfg)  # on an error torchrun stops the other ranks
    distributed.shutdown()
    if dist.is_main:
        print(run_uri)
    return 0
