"""Sampling: neighbourhoods come from random walks over co-watched items, blocks and pairs are well formed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from tests.helpers.synth import make_data
from training_job.model.graph import build
from training_job.model.sampler import ItemPairSampler, NeighbourSampler, make_blocks


def _co_watched(gd) -> np.ndarray:  # type: ignore[no-untyped-def]
    x = sp.csr_matrix((np.ones(len(gd.train)), (gd.train.user, gd.train.item)), shape=(gd.num_users, gd.num_items))
    return (x.T @ x).toarray() > 0  # (N, N)


def test_neighbour_table_comes_from_one_hop_walks() -> None:
    gd = build(make_data(n_users=40, n_movies=30, per_user=6, seed=1))
    table = NeighbourSampler(gd.graph, num_neighbors=5, num_random_walks=30, num_traversals=1).table()
    assert table.nbr.shape == table.weight.shape == (gd.num_items, 5)
    assert (table.weight >= 0).all()
    co = _co_watched(gd)
    rows = torch.arange(gd.num_items).view(-1, 1).expand(-1, 5)
    real = table.weight > 0
    # every weighted neighbour shares a user with its item (one movie->user->movie hop), never itself
    assert co[rows[real].numpy(), table.nbr[real].numpy()].all()
    assert not (table.nbr[real] == rows[real]).any()
    # heaviest first; padding is (self, 0)
    assert (table.weight[:, :-1] >= table.weight[:, 1:]).all()
    assert (table.nbr[~real] == rows[~real]).all()
    assert real.any(dim=1).float().mean() > 0.9


def test_items_without_train_edges_have_no_neighbours() -> None:
    data = make_data(n_users=20, n_movies=10, per_user=5)
    extra = data.movies.iloc[:1].copy()
    extra["movie_id"] = 10_000
    data.movies = pd.concat([data.movies, extra], ignore_index=True)
    gd = build(data)
    table = NeighbourSampler(gd.graph, num_neighbors=4, num_random_walks=10).table()
    assert (table.weight[-1] == 0).all()


def test_sampling_is_reproducible_with_dgl_seed() -> None:
    import dgl

    gd = build(make_data(seed=3))
    sampler = NeighbourSampler(gd.graph, num_neighbors=5, num_random_walks=5)
    dgl.seed(7)
    a = sampler.table()
    dgl.seed(7)
    b = sampler.table()
    assert torch.equal(a.nbr, b.nbr) and torch.equal(a.weight, b.weight)


def test_blocks_shapes_and_dst_prefix() -> None:
    gd = build(make_data(n_users=50, n_movies=40, per_user=8))
    table = NeighbourSampler(gd.graph, num_neighbors=4, num_random_walks=10).table()
    seeds = torch.tensor([0, 5, 9])
    blocks = make_blocks(seeds, table, num_layers=2, num_items=gd.num_items)
    assert len(blocks) == 2
    assert torch.equal(blocks[-1].src_nodes[: blocks[-1].num_dst], seeds)
    assert blocks[0].num_dst == len(blocks[1].src_nodes)
    for blk in blocks:
        dst = blk.src_nodes[: blk.num_dst]
        assert blk.nbr.shape == blk.weight.shape == (blk.num_dst, 4)
        assert len(torch.unique(blk.src_nodes)) == len(blk.src_nodes)
        # local neighbour indices map back to the table's global neighbours
        assert torch.equal(blk.src_nodes[blk.nbr], table.nbr[dst])
        assert torch.equal(blk.weight, table.weight[dst])


def test_pairs_are_co_watched_and_windowed() -> None:
    gd = build(make_data(n_users=50, n_movies=40, per_user=10))
    co = _co_watched(gd)
    s = ItemPairSampler(gd.train, gd.num_items, num_negatives=3, window=0, seed=0)
    heads, tails, negs = s.sample(500)
    assert heads.shape == tails.shape == (500,) and negs.shape == (500, 3)
    assert co[heads.numpy(), tails.numpy()].all()
    assert (heads != tails).all()
    assert ((negs >= 0) & (negs < gd.num_items)).all()

    w = ItemPairSampler(gd.train, gd.num_items, window=1, seed=0)
    h, t, _ = w.sample(500)
    # with window 1 the tail is the previous or next movie in some user's chronological train history
    adjacent = set()
    for u in range(gd.num_users):
        items = gd.train.item[gd.train.user == u]
        adjacent |= {(int(a), int(b)) for a, b in zip(items[:-1], items[1:], strict=True)}
        adjacent |= {(int(b), int(a)) for a, b in zip(items[:-1], items[1:], strict=True)}
    assert all((int(a), int(b)) in adjacent for a, b in zip(h, t, strict=True))


def test_hard_negatives_are_two_importance_hops_from_the_head() -> None:
    gd = build(make_data(n_users=80, n_movies=60, per_user=12, n_clusters=4, noise=0.0))
    table = NeighbourSampler(gd.graph, num_neighbors=5, num_random_walks=30).table()
    s = ItemPairSampler(gd.train, gd.num_items, num_negatives=2, window=1, seed=0, num_hard=4)
    assert s.negatives_per_pair == 6
    heads, tails, negs = s.sample(400, table)
    assert negs.shape == (400, 6)
    hard = negs[:, 2:]
    nbr = table.nbr.numpy()
    two_hop = [set(nbr[nbr[int(h)]].reshape(-1).tolist()) for h in heads]
    in_two_hop = np.array([[int(x) in two_hop[i] for x in row] for i, row in enumerate(hard)])
    # a walk that lands on the head or its positive is replaced by a uniform draw, so collisions are as
    # rare as for uniform negatives; almost all come from the 2-hop neighbourhood, and with noise=0 they
    # share the head's cluster
    collide = (hard == heads.view(-1, 1)) | (hard == tails.view(-1, 1))
    assert float(collide.float().mean()) < 0.03
    assert in_two_hop.mean() > 0.8
    cluster = make_data(n_users=80, n_movies=60, per_user=12, n_clusters=4, noise=0.0).cluster
    same = cluster[hard.numpy()] == cluster[heads.numpy()][:, None]
    uniform_same = (cluster[negs[:, :2].numpy()] == cluster[heads.numpy()][:, None]).mean()
    assert same.mean() > 0.8 > uniform_same
    # without a table there is nothing to be hard about: all negatives are uniform
    _, _, plain = s.sample(50)
    assert plain.shape == (50, 6)
