"""Sampling for PinSage: training item pairs, importance neighbourhoods from random walks, and blocks.

Why neighbourhood *tables*: a MovieLens-sized catalogue has a few thousand items, so a big training batch
(heads + tails + negatives) touches most of the catalogue anyway. Instead of running random walks for
every batch and layer (the DGL example, ~600 pairs/s on 2 cores), we run DGL's PinSAGESampler over the
whole catalogue once every `refresh` batches (~0.1 s) and cut each batch's computation graph out of that
table with vectorised indexing. The neighbourhoods are the paper's: the top-T items by visit count of
random walks movie -> user -> movie, weighted by the visit counts. The same table type drives the
layer-by-layer inference, so training and serving see the same kind of neighbourhood.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import dgl
import numpy as np
import torch

from training_job.model.graph import MOVIE, USER, Interactions


@dataclass
class NeighbourTable:
    """Importance neighbourhood of every row item: up to T neighbours, padded with (self, weight 0)."""

    nbr: torch.Tensor  # (R, T) int64 global item index
    weight: torch.Tensor  # (R, T) float32 visit counts, 0 = padding

    @property
    def num_neighbors(self) -> int:
        return int(self.nbr.shape[1])


@dataclass
class Block:
    """One layer's computation graph: dst nodes are src_nodes[:num_dst] (DGL's to_block convention)."""

    src_nodes: torch.Tensor  # (M,) global item index; the first num_dst entries are the dst nodes
    nbr: torch.Tensor  # (S, T) local index into src_nodes
    weight: torch.Tensor  # (S, T) float32

    @property
    def num_dst(self) -> int:
        return int(self.nbr.shape[0])


class NeighbourSampler:
    """Top-T importance neighbourhoods from DGL's PinSAGESampler (random walks movie->user->movie)."""

    def __init__(
        self,
        graph: dgl.DGLGraph,
        num_neighbors: int = 10,
        num_random_walks: int = 20,
        num_traversals: int = 2,
        termination_prob: float = 0.5,
    ) -> None:
        self.graph = graph
        self.num_items = graph.num_nodes(MOVIE)
        self.num_neighbors = num_neighbors
        # +1: walks that come back to the seed count the seed itself, which we drop (the conv already
        # concatenates the node's own representation).
        self._sampler = dgl.sampling.PinSAGESampler(
            graph, MOVIE, USER, num_traversals, termination_prob, num_random_walks, num_neighbors + 1
        )

    def table(self, seeds: torch.Tensor | None = None) -> NeighbourTable:
        """Neighbourhoods of `seeds` (default: the whole catalogue); row r belongs to seeds[r]."""
        if seeds is None:
            seeds = torch.arange(self.num_items)
        seeds = seeds.to(torch.int64)
        frontier = self._sampler(seeds)
        src, dst = frontier.edges()  # (E,), (E,) global item ids, edge = neighbour -> seed
        w = frontier.edata["weights"].to(torch.float32)  # (E,)
        keep = src != dst
        return dense_table(seeds, src[keep], dst[keep], w[keep], self.num_items, self.num_neighbors)


def dense_table(
    seeds: torch.Tensor, src: torch.Tensor, dst: torch.Tensor, w: torch.Tensor, num_items: int, t: int
) -> NeighbourTable:
    """Edge list (neighbour src -> seed dst, weight) to a padded (len(seeds), t) table, heaviest first."""
    row_of = torch.full((num_items,), -1, dtype=torch.int64)
    row_of[seeds] = torch.arange(len(seeds))
    rows = row_of[dst]  # (E,)
    ok = rows >= 0
    rows, src, w = rows[ok], src[ok], w[ok]
    # sort by row, then weight descending, then neighbour id (deterministic ties)
    order = np.lexsort((src.numpy(), -w.numpy(), rows.numpy()))
    order_t = torch.from_numpy(order)
    rows, src, w = rows[order_t], src[order_t], w[order_t]
    counts = torch.bincount(rows, minlength=len(seeds))  # (R,)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(rows)) - starts[rows]  # position within the row
    keep = rank < t
    nbr = seeds.view(-1, 1).repeat(1, t).clone()  # (R, t) padding = self
    weight = torch.zeros((len(seeds), t), dtype=torch.float32)
    nbr[rows[keep], rank[keep]] = src[keep]
    weight[rows[keep], rank[keep]] = w[keep]
    return NeighbourTable(nbr=nbr, weight=weight)


def make_blocks(
    seeds: torch.Tensor, tables: NeighbourTable | Sequence[NeighbourTable], num_layers: int, num_items: int
) -> list[Block]:
    """Blocks (input layer first) computing `seeds`' layer-`num_layers` representation.

    `tables` are full-catalogue tables (row i = item i): a single table shared by all layers, or one
    per layer with index 0 = the OUTPUT layer (blocks are built from the seeds downwards).
    """
    if isinstance(tables, NeighbourTable):
        tables = [tables] * num_layers
    blocks: list[Block] = []
    dst = seeds.to(torch.int64)
    pos = torch.full((num_items,), -1, dtype=torch.int64)  # scratch: global -> local
    for layer in range(num_layers):
        table = tables[layer]
        nbr_g = table.nbr[dst]  # (S, T) global
        w = table.weight[dst]  # (S, T)
        is_dst = torch.zeros(num_items, dtype=torch.bool)
        is_dst[dst] = True
        cand = torch.unique(nbr_g[w > 0])
        src = torch.cat([dst, cand[~is_dst[cand]]])  # (M,) dst first
        pos[src] = torch.arange(len(src))
        blocks.insert(0, Block(src_nodes=src, nbr=pos[nbr_g], weight=w))
        pos[src] = -1
        dst = src
    return blocks


class ItemPairSampler:
    """(head, tail, negatives) triples: head and tail were watched by the same user, negatives uniform.

    A pair is drawn by picking a random TRAIN rating (so heads follow the popularity of the test
    targets) and then another item of the same user. With `window > 0` the tail is within `window`
    positions of the head in the user's chronological history (items watched in the same period are
    more alike than any two items of a long history); `window = 0` means any item of the user, i.e. a
    movie -> user -> movie random walk as in the DGL example.
    """

    def __init__(
        self,
        train: Interactions,
        num_items: int,
        num_negatives: int = 5,
        window: int = 0,
        seed: int = 0,
        num_hard: int = 0,
        negative_power: float = 0.0,
    ) -> None:
        self.num_items = num_items
        self.num_negatives = num_negatives
        self.num_hard = num_hard
        self.window = window
        self.rng = np.random.default_rng(seed)
        user = train.user
        n = len(user)
        if n == 0:
            raise ValueError("no training interactions to sample pairs from")
        new_user = np.r_[True, user[1:] != user[:-1]]
        self.start = np.maximum.accumulate(np.where(new_user, np.arange(n), 0))  # (E,) user segment start
        counts = np.bincount(user)
        self.length = counts[user]  # (E,) user's number of train ratings
        self.items = train.item
        self.eligible = np.flatnonzero(self.length >= 2)  # edges whose user has another item
        if len(self.eligible) == 0:
            raise ValueError("no user has two training ratings: cannot form co-interaction pairs")
        # "Uniform" negatives drawn with probability ~ count**power (0 = uniform over the catalogue; 0.75 =
        # word2vec's smoothing): popular movies are then pushed away as often as they appear as positives.
        counts_i = np.bincount(train.item, minlength=num_items).astype(np.float64) + 1.0
        self.neg_cdf = np.cumsum(counts_i**negative_power) / np.sum(counts_i**negative_power)

    def _negatives(self, shape: tuple[int, int]) -> np.ndarray:
        idx = np.searchsorted(self.neg_cdf, self.rng.random(shape), side="right")
        return np.minimum(idx, self.num_items - 1)

    @property
    def negatives_per_pair(self) -> int:
        return self.num_negatives + self.num_hard

    def sample(
        self, batch_size: int, table: NeighbourTable | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """heads (B,), tails (B,), negatives (B, K + H) as int64 item indices.

        The first K negatives are uniform over the catalogue (easy: mostly unrelated items). With
        `num_hard` H > 0 and a neighbour `table`, H more are *hard* negatives as in the paper: items two
        importance-hops from the head (a random neighbour of a random neighbour), i.e. related to the
        head but not co-watched next to it, which forces the model to rank finer than "same genre".
        """
        e = self.eligible[self.rng.integers(0, len(self.eligible), batch_size)]  # (B,)
        start, length = self.start[e], self.length[e]
        p = e - start
        if self.window > 0:
            off = self.rng.integers(1, self.window + 1, batch_size) * self.rng.choice([-1, 1], batch_size)
            q = p + off
            q = np.where((q < 0) | (q >= length), p - off, q)  # reflect at the history's ends
            q = np.clip(q, 0, length - 1)
        else:
            q = self.rng.integers(0, length - 1)  # any other item of the user
            q = q + (q >= p)
        q = np.where(q == p, np.where(p + 1 < length, p + 1, p - 1), q)
        heads = self.items[e]
        tails = self.items[start + q]
        negs = self._negatives((batch_size, self.num_negatives))
        if self.num_hard > 0:
            negs = np.concatenate([negs, self._hard(heads, tails, table)], axis=1)
        return torch.from_numpy(heads), torch.from_numpy(tails), torch.from_numpy(negs)

    def sample_sequences(
        self, batch_size: int, context: int, decay: float, table: NeighbourTable | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """contexts (B, L), context weights (B, L), targets (B,), negatives (B, K + H) — the served question.

        The target is a random TRAIN rating that has at least one earlier rating of the same user; the
        context is up to `context` ratings before it, the i-th latest weighted decay**i (padding: weight 0),
        i.e. the query a recipe (shared/serving/recipe.py) builds from a history. Training the tower so that this
        weighted mean ranks the next movie first aligns the loss with what is served.
        """
        e = self.eligible[self.rng.integers(0, len(self.eligible), batch_size)]  # (B,)
        p = e - self.start[e]
        e = np.where(p == 0, e + 1, e)  # the first rating of a user has no context: take the next one
        p = e - self.start[e]
        lag = np.arange(1, context + 1)  # (L,) 1 = the rating just before the target
        pos = p[:, None] - lag[None, :]  # (B, L)
        valid = pos >= 0
        ctx = self.items[np.where(valid, (self.start[e])[:, None] + pos, e[:, None])]  # (B, L)
        w = np.where(valid, decay ** (lag[None, :] - 1), 0.0).astype(np.float32)  # (B, L)
        targets = self.items[e]
        negs = self._negatives((batch_size, self.num_negatives))
        if self.num_hard > 0:
            negs = np.concatenate([negs, self._hard(ctx[:, 0], targets, table)], axis=1)
        return torch.from_numpy(ctx), torch.from_numpy(w), torch.from_numpy(targets), torch.from_numpy(negs)

    def _hard(self, heads: np.ndarray, tails: np.ndarray, table: NeighbourTable | None) -> np.ndarray:
        """(B, H) two-hop importance neighbours of the heads; uniform where none (or it is the head/tail)."""
        b, h = len(heads), self.num_hard
        uniform = self._negatives((b, h))
        if table is None:
            return uniform
        nbr, weight = table.nbr.numpy(), table.weight.numpy()
        t = nbr.shape[1]
        first = nbr[heads[:, None], self.rng.integers(0, t, (b, h))]  # (B, H)
        second = nbr[first, self.rng.integers(0, t, (b, h))]  # (B, H)
        ok = (weight[heads[:, None], 0] > 0) & (second != heads[:, None]) & (second != tails[:, None])
        return np.where(ok, second, uniform)
