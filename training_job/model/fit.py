"""The training loop: optimiser steps, validation after every epoch (best epoch kept), and the refit.

`EpochRunner` owns sampling + loss for one interaction set; `fit` trains on the split and validates with
the fast vectorised scorer (the learning curve); `refit` continues the chosen model on every interaction.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from shared.config.log import get_logger
from training_job.config import TrainConfig
from training_job.evaluation.scorer import (
    QueryRule,
    embedding_scorer,
    history_weights,
    rank_metrics,
    seen_matrix,
)
from training_job.model import distributed
from training_job.model.graph import GraphData, Interactions, build_graph
from training_job.model.inference import layerwise_embeddings
from training_job.model.pinsage import MaxMarginLoss, PinSage, l2_normalise
from training_job.model.sampler import ItemPairSampler, NeighbourSampler, NeighbourTable, make_blocks

logger = get_logger(__name__)

# The per-epoch validation score is the best of two cheap query rules (latest movie only / a decayed
# mean of the last ten): which one suits the data is only known at the end (the final evaluation picks
# from the whole grid on validation), and a checkpoint must not be judged by a rule it will not use.
CURVE_QUERIES = (QueryRule(last_k=1, decay=1.0), QueryRule(last_k=10, decay=0.9))


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
    trainer: torch.nn.Module | None = None  # `model`, wrapped in DistributedDataParallel when world size > 1
    published: np.ndarray | None = None  # refit embeddings when --refit-epochs > 0, else None


def seed_everything(seed: int) -> None:
    import dgl

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    dgl.seed(seed)


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

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, graph: Any, inter: Interactions, num_items: int, cfg: TrainConfig) -> None:
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
            if distributed.current().any(time.monotonic() > deadline):  # every rank stops at the same step
                return losses, True
        return losses, False


def rank_config(cfg: TrainConfig) -> TrainConfig:
    """This rank's view of `cfg`: its share of the global batch and its own seed stream (same cfg at world size 1)."""
    d = distributed.current()
    if not d.enabled:
        return cfg
    return dataclasses.replace(cfg, batch_size=d.local_batch(cfg.batch_size), seed=d.seed(cfg.seed))


def fit(gd: GraphData, cfg: TrainConfig) -> FitResult:
    """Train with validation after each epoch; return the best epoch's model and embeddings.

    Data-parallel (distributed.py): every rank trains, rank 0 alone validates and broadcasts its decisions
    (better epoch, stop), so all ranks keep the same best state; the other ranks' `embeddings` are empty.
    """
    dist = distributed.current()
    seed_everything(cfg.seed)  # the same initial model on every rank (DDP broadcasts rank 0's anyway)
    device = torch.device(cfg.device)
    t0 = time.perf_counter()
    model = PinSage(gd.features, cfg.dim, cfg.num_layers, cfg.dropout, not cfg.no_id_embedding).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    trainer = dist.wrap(model)
    runner = EpochRunner(trainer, opt, gd.graph, gd.train, gd.num_items, rank_config(cfg))
    infer_table = NeighbourSampler(
        gd.graph, cfg.num_neighbors, cfg.infer_random_walks, cfg.num_traversals, cfg.termination_prob
    ).table()
    if dist.rank:
        seed_everything(dist.seed(cfg.seed))  # this rank's own random walks and dropout
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
        improved, stop_now = False, stopped
        if dist.is_main:
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
            logger.info("epoch done", extra=point)
            improved = vm["hr@10"] > best_hr
            if improved:
                best_hr = vm["hr@10"]
            if cfg.patience and epoch - (epoch if improved else best_epoch) >= cfg.patience:
                logger.info("validation stopped improving", extra={"patience": cfg.patience, "epoch": epoch})
                stop_now = True
            if stopped:
                logger.info("time budget reached", extra={"max_minutes": cfg.max_minutes, "epoch": epoch})
        improved, stop_now = (bool(v) for v in dist.from_main([int(improved), int(stop_now)]))
        if improved:
            best_epoch = epoch
            best_state = {"model": copy.deepcopy(model.state_dict()), "opt": copy.deepcopy(opt.state_dict())}
        if stop_now:
            break
    model.load_state_dict(best_state["model"])
    opt.load_state_dict(best_state["opt"])
    t_inf = time.perf_counter()
    embeddings = layerwise_embeddings(model, infer_table, device=device) if dist.is_main else np.zeros((0, cfg.dim), np.float32)
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
        pairs_per_second=dist.sum(runner.pairs_done) / train_seconds if train_seconds > 0 else 0.0,
        stopped_by_time=stopped,
        optimizer=opt,
        trainer=trainer,
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
    runner = EpochRunner(fr.trainer or fr.model, fr.optimizer, graph, gd.all, gd.num_items, rank_config(cfg))
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
    emb = layerwise_embeddings(fr.model, table, device=torch.device(cfg.device)) if distributed.current().is_main else fr.embeddings
    info = {
        "epochs": epochs,
        "interactions": len(gd.all),
        "final_loss": float(np.mean(losses[-cfg.batches_per_epoch :])) if losses else None,
        "seconds": time.perf_counter() - t0,
        "note": "published embeddings = the validated model continued on all interactions; test metrics are the split model's",
    }
    logger.info("refit done", extra=info)
    return emb, info
