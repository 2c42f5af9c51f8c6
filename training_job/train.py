"""Train PinSage on MovieLens ratings and publish a run folder (embeddings + metadata + metrics).

How to run (from the repository root, with the `train` extra installed):

    # synthetic MovieLens-shaped data, then a 5-minute CPU training run into a local folder
    python -m training_job synthetic --out .local/synth --users 6040 --movies 3706 --ratings 1000000
    python -m training_job train --data .local/synth --output .local/runs --max-minutes 5

    # the real MovieLens-1M from S3 (or --download it), GPU, output to S3
    python -m training_job train --data s3://my-bucket/ml-1m/ --output s3://my-bucket/runs --device cuda

    python -m training_job train --help     # every flag explained

Pipeline: load + validate ratings (training_job.data) -> leave-last-out split and train-only graph
(graph.py) -> PinSage trained with a max-margin loss on co-watched item pairs (sampler.py, model.py),
validation HR@10 after every epoch, best epoch kept -> full-catalogue layer-wise inference
(inference.py) -> test HR@10 / NDCG@10 / coverage vs popularity and item-kNN (evaluate.py,
baselines.py) -> run folder written through shared.artifacts.RunWriter, manifest last (writer.py).

Reproducibility: the same seed, data and flags give the same metrics (torch, numpy and DGL's random
walks are seeded); a run cut short by --max-minutes depends on wall-clock time and is not reproducible.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from shared.log import get_logger
from shared.recipe import ExactIndex
from training_job.baselines import cosine_item_similarity, ease_similarity, item_knn_scorer, popularity_scorer
from training_job.evaluate import (
    QueryRule,
    embedding_scorer,
    history_weights,
    rank_metrics,
    seen_matrix,
    select_query,
)
from training_job.graph import GraphData, Interactions, build, build_graph
from training_job.inference import layerwise_embeddings
from training_job.model import MaxMarginLoss, PinSage, l2_normalise
from training_job.sampler import ItemPairSampler, NeighbourSampler, NeighbourTable, make_blocks
from training_job.served_eval import choose_and_score, targets_for

log = get_logger("training_job.train")

# The per-epoch validation score is the best of two cheap query rules (latest movie only / a decayed
# mean of the last ten): which one suits the data is only known at the end (the final evaluation picks
# from the whole grid on validation), and a checkpoint must not be judged by a rule it will not use.
CURVE_QUERIES = (QueryRule(last_k=1, decay=1.0), QueryRule(last_k=10, decay=0.9))


@dataclass
class TrainConfig:
    """Every knob of a run; written verbatim to config.json."""

    data: str = ""
    output: str = ""
    download: bool = False
    cache_dir: str = ".local/cache"
    run_id: str | None = None
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class FitResult:
    model: PinSage
    embeddings: np.ndarray  # (N, D) float32 unit vectors of the best epoch
    curve: list[dict[str, float]]
    best_epoch: int
    infer_table: NeighbourTable
    timings: dict[str, float] = field(default_factory=dict)
    pairs_per_second: float = 0.0
    stopped_by_time: bool = False
    optimizer: torch.optim.Optimizer | None = None
    published: np.ndarray | None = None  # refit embeddings when --refit-epochs > 0, else None


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The `train` subcommand's flags (defaults from TrainConfig)."""
    d = TrainConfig()
    io = p.add_argument_group("input / output")
    io.add_argument("--data", required=True, help="MovieLens folder (local path or s3:// prefix) with users/movies/ratings.dat")
    io.add_argument("--output", required=True, help="where runs go: local folder or s3://bucket/prefix; the run is OUTPUT/<run_id>/")
    io.add_argument("--download", action="store_true", help="download MovieLens-1M from grouplens.org if --data has no files")
    io.add_argument("--cache-dir", default=d.cache_dir, help="local cache for downloaded / S3 input data (default: %(default)s)")
    io.add_argument("--run-id", default=None, help="explicit run id 'YYYYMMDDTHHMMSSZ_<hex>' (default: generated)")
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
    p.add_argument("--no-progress", dest="progress", action="store_false", help="disable tqdm progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names})


def seed_everything(seed: int) -> None:
    import dgl

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dgl.seed(seed)


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


def val_metrics(
    gd: GraphData, emb: np.ndarray, rules: tuple[QueryRule, ...] = CURVE_QUERIES
) -> dict[str, float]:
    """Best HR@10 (ties: NDCG@10) over `rules` on the validation split (history = train)."""
    seen = seen_matrix(gd.train, gd.num_users, gd.num_items)
    best: dict[str, float] = {}
    for rule in rules:
        qw = history_weights(gd.train, gd.num_users, gd.num_items, rule)
        m = rank_metrics(embedding_scorer(emb, qw), gd.val, seen, gd.num_items)
        if not best or (m["hr@10"], m["ndcg@10"]) > (best["hr@10"], best["ndcg@10"]):
            best = {**m, "last_k": rule.last_k}
    return best


class EpochRunner:
    """Optimiser steps over one interaction set: training-pair sampling, neighbourhoods, loss, Adam.

    Used twice: for the split (train edges only, validated after every epoch) and for the optional refit
    on every interaction (same model and optimiser, new graph and samplers).
    """

    def __init__(self, model: PinSage, opt: torch.optim.Optimizer, graph: Any, inter: Interactions, num_items: int, cfg: TrainConfig) -> None:
        self.model, self.opt, self.cfg, self.num_items = model, opt, cfg, num_items
        self.device = torch.device(cfg.device)
        self.loss_fn = MaxMarginLoss(cfg.margin)
        self.pairs = ItemPairSampler(
            inter,
            num_items,
            cfg.num_negatives,
            cfg.pair_window,
            seed=cfg.seed,
            num_hard=cfg.hard_negatives,
            negative_power=cfg.negative_power,
        )
        self.sampler = NeighbourSampler(
            graph, cfg.num_neighbors, cfg.num_random_walks, cfg.num_traversals, cfg.termination_prob
        )
        self.table: NeighbourTable | None = None
        self.step = 0
        self.pairs_done = 0

    def batch_loss(self) -> torch.Tensor:
        cfg, b = self.cfg, self.cfg.batch_size
        if self.table is None or self.step % cfg.refresh_every == 0:
            self.table = self.sampler.table()
        if cfg.objective == "sequence":
            ctx, ctx_w, tails, negs = self.pairs.sample_sequences(b, cfg.context_length, cfg.context_decay, self.table)
            heads = ctx.reshape(-1)  # (B * L,)
        else:
            heads, tails, negs = self.pairs.sample(b, self.table)  # (B,), (B,), (B, K)
        n_head, k_neg = len(heads), negs.shape[1]
        seeds, inverse = torch.unique(torch.cat([heads, tails, negs.reshape(-1)]), return_inverse=True)
        blocks = make_blocks(seeds, self.table, cfg.num_layers, self.num_items)
        emb = self.model(
            blocks[0].src_nodes.to(self.device),
            [blk.nbr.to(self.device) for blk in blocks],
            [blk.weight.to(self.device) for blk in blocks],
        )  # (S, D)
        inv = inverse.to(self.device)
        query = emb[inv[:n_head]]  # (B, D) or (B * L, D)
        if cfg.objective == "sequence":
            w = ctx_w.to(self.device).unsqueeze(-1)  # (B, L, 1)
            query = l2_normalise((query.view(b, cfg.context_length, -1) * w).sum(1))  # (B, D)
        pos = emb[inv[n_head : n_head + b]]  # (B, D)
        neg = emb[inv[n_head + b :]].view(b, k_neg, -1)  # (B, K, D)
        if 0 < cfg.mine_hardest < k_neg:  # keep the negatives that score highest against the query
            with torch.no_grad():
                hardest = torch.einsum("bd,bkd->bk", query, neg).topk(cfg.mine_hardest, dim=1).indices  # (B, M)
            neg = neg.gather(1, hardest.unsqueeze(-1).expand(-1, -1, neg.shape[-1]))  # (B, M, D)
        return self.loss_fn(query, pos, neg)

    def epoch(self, desc: str, deadline: float) -> tuple[list[float], bool]:
        """One epoch of optimiser steps; returns the losses and whether the deadline cut it short."""
        self.model.train()
        losses: list[float] = []
        bar = tqdm(range(self.cfg.batches_per_epoch), desc=desc, disable=not self.cfg.progress, leave=False)
        for _ in bar:
            loss = self.batch_loss()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            losses.append(float(loss))
            self.pairs_done += self.cfg.batch_size
            self.step += 1
            if self.cfg.progress:
                bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if time.monotonic() > deadline:
                return losses, True
        return losses, False


def fit(gd: GraphData, cfg: TrainConfig) -> FitResult:
    """Train with validation after each epoch; return the best epoch's model and embeddings."""
    seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    model = PinSage(gd.features, cfg.dim, cfg.num_layers, cfg.dropout, not cfg.no_id_embedding).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    runner = EpochRunner(model, opt, gd.graph, gd.train, gd.num_items, cfg)
    infer_table = NeighbourSampler(
        gd.graph, cfg.num_neighbors, cfg.infer_random_walks, cfg.num_traversals, cfg.termination_prob
    ).table()
    timings = {"infer_neighbourhoods_s": time.perf_counter() - t0}

    deadline = time.monotonic() + cfg.max_minutes * 60.0
    curve: list[dict[str, float]] = []
    best_hr, best_epoch = -1.0, -1
    best_state = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
    train_seconds, eval_seconds = 0.0, 0.0
    stopped = False
    for epoch in range(cfg.epochs):
        t_epoch = time.perf_counter()
        losses, stopped = runner.epoch(f"epoch {epoch}", deadline)
        train_seconds += time.perf_counter() - t_epoch
        t_eval = time.perf_counter()
        emb_all = layerwise_embeddings(model, infer_table, device=device)
        vm = val_metrics(gd, emb_all)
        eval_seconds += time.perf_counter() - t_eval
        point = {
            "epoch": epoch,
            "loss": float(np.mean(losses)) if losses else float("nan"),
            "val_hr@10": vm["hr@10"],
            "val_ndcg@10": vm["ndcg@10"],
            "val_query_last_k": vm["last_k"],
            "batches": len(losses),
            "elapsed_s": time.perf_counter() - t0,
        }
        curve.append(point)
        log.info("epoch done", extra=point)
        if vm["hr@10"] > best_hr:
            best_hr, best_epoch = vm["hr@10"], epoch
            best_state = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
        if cfg.patience and epoch - best_epoch >= cfg.patience:
            log.info("validation stopped improving", extra={"patience": cfg.patience, "epoch": epoch})
            break
        if stopped:
            log.info("time budget reached", extra={"max_minutes": cfg.max_minutes, "epoch": epoch})
            break
    model.load_state_dict(best_state["model"])
    opt.load_state_dict(best_state["opt"])
    t_inf = time.perf_counter()
    embeddings = layerwise_embeddings(model, infer_table, device=device)
    timings.update(
        {
            "train_s": train_seconds,
            "val_eval_s": eval_seconds,
            "inference_s": time.perf_counter() - t_inf,
        }
    )
    return FitResult(
        model=model,
        embeddings=embeddings,
        curve=curve,
        best_epoch=best_epoch,
        infer_table=infer_table,
        timings=timings,
        pairs_per_second=runner.pairs_done / train_seconds if train_seconds > 0 else 0.0,
        stopped_by_time=stopped,
        optimizer=opt,
    )


def refit(gd: GraphData, fr: FitResult, cfg: TrainConfig) -> tuple[np.ndarray, dict[str, Any]]:
    """Continue the chosen model on EVERY interaction for `cfg.refit_epochs` epochs; return its embeddings.

    Why: the split model never sees each user's two latest ratings - the most telling ones for what they
    will do next. The epochs and the recipe were chosen on validation; the refit only adds data. Its
    neighbourhoods come from the full graph too. There is no held-out data left to validate the refit
    itself: the reported test metrics are those of the split model (see metrics.json "refit").
    """
    t0 = time.perf_counter()
    graph = build_graph(gd.all, gd.num_users, gd.num_items)
    assert fr.optimizer is not None
    runner = EpochRunner(fr.model, fr.optimizer, graph, gd.all, gd.num_items, cfg)
    deadline = time.monotonic() + max(cfg.refit_max_minutes, 0.0) * 60.0
    losses: list[float] = []
    epochs = 0
    for epoch in range(cfg.refit_epochs):
        done, stopped = runner.epoch(f"refit {epoch}", deadline)
        losses += done
        epochs += 1
        if stopped:
            break
    table = NeighbourSampler(
        graph, cfg.num_neighbors, cfg.infer_random_walks, cfg.num_traversals, cfg.termination_prob
    ).table()
    emb = layerwise_embeddings(fr.model, table, device=torch.device(cfg.device))
    info = {
        "epochs": epochs,
        "interactions": len(gd.all),
        "final_loss": float(np.mean(losses[-cfg.batches_per_epoch :])) if losses else None,
        "seconds": time.perf_counter() - t0,
        "note": "published embeddings = the validated model continued on all interactions; test metrics are the split model's",
    }
    log.info("refit done", extra=info)
    return emb, info


def concat(a: Interactions, b: Interactions) -> Interactions:
    """Union of two interaction sets, re-sorted by (user, time)."""
    user = np.concatenate([a.user, b.user])
    ts = np.concatenate([a.ts, b.ts])
    order = np.lexsort((np.arange(len(user)), ts, user))
    return Interactions(
        user[order], np.concatenate([a.item, b.item])[order], ts[order], np.concatenate([a.rating, b.rating])[order]
    )


def genre_agreement(sim: np.ndarray, genres: torch.Tensor, k: int = 10) -> float:
    """Share of each movie's top-k most similar movies that share at least one genre with it (mean).

    Shows taste coherence of "similar movies" lists beside HR: (N, N) similarities, (N, G) multi-hot genres.
    """
    s = np.array(sim, dtype=np.float32, copy=True)  # (N, N)
    np.fill_diagonal(s, -np.inf)
    top = np.argpartition(-s, k - 1, axis=1)[:, :k]  # (N, k)
    g = genres.numpy() > 0  # (N, G)
    shared = (g[top] & g[:, None, :]).any(-1)  # (N, k)
    return float(shared.mean())


def evaluate_all(gd: GraphData, embeddings: np.ndarray) -> dict[str, Any]:
    """Test metrics of PinSage AS SERVED (recipe chosen on validation) and of the baselines.

    PinSage runs through `served_eval` = the API's query and ranking code, so its numbers are what the API
    serves for these users. The baselines (popularity, item-kNN, EASE) are scored with the vectorised
    scorer and their own query rules chosen on validation, on the same split and exclusions.
    """
    nu, ni = gd.num_users, gd.num_items
    seen_val = seen_matrix(gd.train, nu, ni)
    test_hist = concat(gd.train, gd.val)
    seen_test = seen_matrix(test_hist, nu, ni)
    index = ExactIndex(gd.movie_ids, embeddings)
    val_t = targets_for(gd.train, gd.val, gd.user_ids, gd.movie_ids)
    test_t = targets_for(test_hist, gd.test, gd.user_ids, gd.movie_ids)
    recipe, pinsage_test, recipe_grid, multi_interest = choose_and_score(index, val_t, test_t)

    test = {"pinsage": pinsage_test, "popularity": rank_metrics(popularity_scorer(gd.train, ni), gd.test, seen_test, ni)}
    rules: dict[str, Any] = {}
    grids: dict[str, Any] = {"pinsage": recipe_grid}
    sims = {"item_knn": cosine_item_similarity(gd.train, nu, ni), "ease": ease_similarity(gd.train, nu, ni)}
    for name, sim in sims.items():

        def on(history: Interactions, sim: torch.Tensor = sim) -> Callable[[QueryRule], Any]:
            return lambda rule: item_knn_scorer(sim, history_weights(history, nu, ni, rule))

        chosen, grids[name] = select_query(on(gd.train), gd.val, seen_val, ni)
        rules[name] = chosen.to_dict()
        test[name] = rank_metrics(on(test_hist)(chosen), gd.test, seen_test, ni)
    emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
    agreement = {
        "pinsage": genre_agreement((emb @ emb.T).numpy(), gd.features.genres),
        "item_knn": genre_agreement(sims["item_knn"].numpy(), gd.features.genres),
    }
    return {
        "test": test,
        "recipe": recipe.to_dict(),
        "query_rule": {"pinsage": recipe.to_dict(), **rules},
        "multi_interest": multi_interest,
        "validation_query_grid": grids,
        "similar_genre_agreement@10": agreement,
    }


def train_on(data: Any, cfg: TrainConfig) -> tuple[GraphData, FitResult, dict[str, Any]]:
    """Graph + training + evaluation on an already-loaded MovieLensData; returns metrics."""
    set_threads(cfg.threads)
    cfg.device = resolve_device(cfg.device)
    t0 = time.perf_counter()
    gd = build(data, title_buckets=cfg.title_buckets)
    graph_s = time.perf_counter() - t0
    log.info("graph built", extra=gd.stats)
    fr = fit(gd, cfg)
    t1 = time.perf_counter()
    ev = evaluate_all(gd, fr.embeddings)
    eval_s = time.perf_counter() - t1
    refit_info: dict[str, Any] = {"epochs": 0, "note": "published embeddings = the validated model"}
    if cfg.refit_epochs > 0:
        fr.published, refit_info = refit(gd, fr, cfg)
    report: Any = getattr(data, "report", None)
    rejected = report.to_dict() if hasattr(report, "to_dict") else (dict(report) if report else {})
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
    log.info("test metrics", extra={k: v["hr@10"] for k, v in ev["test"].items()})
    return gd, fr, metrics


def run(cfg: TrainConfig) -> str:
    """Load data, train, evaluate, write the run; returns the run URI."""
    from training_job.data import load_movielens
    from training_job.writer import write_run

    t0 = time.perf_counter()
    data = load_movielens(cfg.data, download=cfg.download, cache_dir=cfg.cache_dir)
    load_s = time.perf_counter() - t0
    gd, fr, metrics = train_on(data, cfg)
    metrics["timings"]["load_s"] = load_s
    t1 = time.perf_counter()
    run_uri = write_run(cfg, data, gd, fr, metrics)
    log.info("run written", extra={"run_uri": run_uri, "write_s": time.perf_counter() - t1})
    return run_uri


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    run_uri = run(cfg)
    print(run_uri)
    return 0
