"""Every knob of a training run (`TrainConfig`, written verbatim to the run's config.json) and its CLI flags.

One dataclass is the single source of defaults: the argparse flags read their defaults from it, so
`--help`, config.json and the code cannot disagree.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainConfig:
    """Every knob of a run; written verbatim to config.json."""

    data: str = ""
    output: str = ""
    download: bool = False
    cache_dir: str = ".local/cache"
    run_id: str | None = None
    events_uri: str = ""  # the events export merged into the ratings (training_job/data/events.py)
    epochs: int = 1000  # the time budget and --patience decide
    batches_per_epoch: int = 100
    batch_size: int = 1024
    max_minutes: float = 60.0
    device: str = "auto"
    threads: int = 1
    seed: int = 0
    dim: int = 64
    num_layers: int = 2
    dropout: float = 0.0
    lr: float = 1e-2
    weight_decay: float = 0.0
    margin: float = 0.1
    num_negatives: int = 100
    hard_negatives: int = 5
    pair_window: int = 1
    objective: str = "sequence"
    context_length: int = 10
    context_decay: float = 0.9
    negative_power: float = 0.0
    mine_hardest: int = 10
    patience: int = 8
    refit_epochs: int = 3
    refit_max_minutes: float = 10.0
    num_neighbors: int = 10
    num_random_walks: int = 20
    num_traversals: int = 2
    termination_prob: float = 0.5
    refresh_every: int = 10
    infer_random_walks: int = 100
    title_buckets: int = 4096
    no_id_embedding: bool = False
    progress: bool = True
    workers: int = 1  # data-parallel processes on this machine (training_job/model/distributed.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` subcommand's flags (defaults from TrainConfig)."""
    d = TrainConfig()
    io = p.add_argument_group("input / output")
    io.add_argument("--data", required=True, help="MovieLens folder (local path or s3:// prefix) with users/movies/ratings.dat")
    io.add_argument("--output", required=True, help="where runs go: local folder or s3://bucket/prefix; the run is OUTPUT/<run_id>/")
    io.add_argument("--download", action="store_true", help="download MovieLens-1M from grouplens.org if --data has no files")
    io.add_argument("--cache-dir", default=d.cache_dir, help="local cache for downloaded / S3 input data (default: %(default)s)")
    io.add_argument("--run-id", default=None, help="explicit run id 'YYYYMMDDTHHMMSSZ_<hex>' (default: generated)")
    io.add_argument("--events-uri", default=d.events_uri, help="events export (CSV file or s3:// object, `python -m handlers.events_export.app`) merged into the ratings before training: people's likes, unlikes, ratings; missing or empty = a warning, training goes on (default: none)")
    tr = p.add_argument_group("training")
    tr.add_argument("--epochs", type=int, default=d.epochs, help="max epochs; validation HR@10 after each, best kept (default: %(default)s)")
    tr.add_argument("--batches-per-epoch", type=int, default=d.batches_per_epoch, help="optimiser steps per epoch (default: %(default)s)")
    tr.add_argument("--batch-size", type=int, default=d.batch_size, help="item pairs per step; big batches amortise sampling (default: %(default)s)")
    tr.add_argument("--max-minutes", type=float, default=d.max_minutes, help="stop training after this many minutes, keep the best epoch so far (default: %(default)s)")
    tr.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device, help="torch device; auto = cuda when a GPU is visible, else cpu (default: %(default)s)")
    tr.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads, 0 = all cores; 1 is fastest for these small ops on a shared CPU and keeps float sums reproducible (default: %(default)s)")
    tr.add_argument("--seed", type=int, default=d.seed, help="seed for torch, numpy and DGL random walks: same seed -> same metrics (default: %(default)s)")
    tr.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate (default: %(default)s)")
    tr.add_argument("--weight-decay", type=float, default=d.weight_decay, help="Adam weight decay (default: %(default)s)")
    tr.add_argument("--margin", type=float, default=d.margin, help="max-margin loss margin on cosine scores (default: %(default)s)")
    tr.add_argument("--num-negatives", type=int, default=d.num_negatives, help="uniform random negatives per positive pair (default: %(default)s)")
    tr.add_argument("--hard-negatives", type=int, default=d.hard_negatives, help="extra hard negatives per pair: two importance-hops from the head (default: %(default)s)")
    tr.add_argument("--pair-window", type=int, default=d.pair_window, help="objective 'pairs': positive = item within this many positions of the head in a user's history; 0 = any co-watched item (default: %(default)s)")
    tr.add_argument("--objective", choices=["pairs", "sequence"], default=d.objective, help="pairs = (movie, co-watched movie) as in the PinSage paper; sequence = (recency-weighted mean of a user's previous movies, next movie): the question the API answers (default: %(default)s)")
    tr.add_argument("--context-length", type=int, default=d.context_length, help="objective 'sequence': previous movies in the query (default: %(default)s)")
    tr.add_argument("--context-decay", type=float, default=d.context_decay, help="objective 'sequence': weight decay per step back in time (default: %(default)s)")
    tr.add_argument("--negative-power", type=float, default=d.negative_power, help="easy negatives drawn with probability ~ count**power; 0 = uniform, 0.75 = word2vec-style (default: %(default)s)")
    tr.add_argument("--refit-epochs", type=int, default=d.refit_epochs, help="after choosing epoch and recipe on validation, continue the model on ALL interactions for this many epochs and publish those embeddings; 0 = publish the validated model as is (default: %(default)s)")
    tr.add_argument("--refit-max-minutes", type=float, default=d.refit_max_minutes, help="time budget of the refit (default: %(default)s)")
    tr.add_argument("--mine-hardest", type=int, default=d.mine_hardest, help="score every sampled negative and keep only this many highest-scoring ones in the loss; 0 = keep all (default: %(default)s)")
    tr.add_argument("--patience", type=int, default=d.patience, help="stop after this many epochs without a better validation HR@10; 0 = never (default: %(default)s)")
    mo = p.add_argument_group("model")
    mo.add_argument("--dim", type=int, default=d.dim, help="embedding size (default: %(default)s)")
    mo.add_argument("--num-layers", type=int, default=d.num_layers, help="PinSage convolutions (default: %(default)s)")
    mo.add_argument("--dropout", type=float, default=d.dropout, help="dropout inside the convolutions (default: %(default)s)")
    mo.add_argument("--title-buckets", type=int, default=d.title_buckets, help="hash buckets of title words (default: %(default)s)")
    mo.add_argument("--no-id-embedding", action="store_true", help="features only, no learnable per-item embedding")
    sa = p.add_argument_group("neighbourhood sampling (random walks movie->user->movie)")
    sa.add_argument("--num-neighbors", type=int, default=d.num_neighbors, help="T: neighbours kept per item, by visit count (default: %(default)s)")
    sa.add_argument("--num-random-walks", type=int, default=d.num_random_walks, help="walks per item when training (default: %(default)s)")
    sa.add_argument("--num-traversals", type=int, default=d.num_traversals, help="max movie->user->movie hops per walk (default: %(default)s)")
    sa.add_argument("--termination-prob", type=float, default=d.termination_prob, help="probability a walk stops after each hop (default: %(default)s)")
    sa.add_argument("--refresh-every", type=int, default=d.refresh_every, help="re-sample the neighbourhoods every N batches (default: %(default)s)")
    sa.add_argument("--infer-random-walks", type=int, default=d.infer_random_walks, help="walks per item for the inference neighbourhoods (default: %(default)s)")
    dp = p.add_argument_group("data-parallel training (torch.distributed)")
    dp.add_argument("--workers", type=int, default=d.workers, help="train one model with N DistributedDataParallel processes on this machine (gloo on CPU, NCCL on GPU; relaunches itself with torchrun); --batch-size is the global batch, split across them; rank 0 evaluates and writes the run. Under torchrun or an AWS Batch multi-node job this is ignored: the launcher decides (default: %(default)s)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="disable tqdm progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})
