"""Graph building: counts, features, leave-last-out split, and no val/test edge in the train graph."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from tests.helpers.synth import make_data
from training_job.model.graph import MOVIE, USER, WATCHED, WATCHED_BY, build, hash_token, tokenize_title


def test_node_and_edge_counts_and_edge_data() -> None:
    data = make_data(n_users=30, n_movies=40, per_user=8)
    gd = build(data)
    g = gd.graph
    assert g.num_nodes(USER) == 30
    assert g.num_nodes(MOVIE) == 40
    # every user has 8 >= 3 ratings: one test + one validation each, the rest train
    assert g.num_edges(WATCHED) == g.num_edges(WATCHED_BY) == 30 * 6
    assert len(gd.val) == len(gd.test) == 30
    assert gd.stats["train_edges"] + gd.stats["val_edges"] + gd.stats["test_edges"] == len(data.ratings)
    for etype in (WATCHED, WATCHED_BY):
        assert set(g.edges[etype].data) == {"timestamp", "rating"}
    # the reverse edge type mirrors the forward one
    u, m = g.edges(etype=WATCHED)
    m2, u2 = g.edges(etype=WATCHED_BY)
    assert torch.equal(u, u2) and torch.equal(m, m2)
    assert np.array_equal(gd.movie_ids, data.movies["movie_id"].to_numpy())


def test_train_graph_excludes_validation_and_test_edges() -> None:
    data = make_data(n_users=40, n_movies=30, per_user=10)
    gd = build(data)
    g = gd.graph
    for split in (gd.val, gd.test):
        held_out = g.has_edges_between(torch.from_numpy(split.user), torch.from_numpy(split.item), etype=WATCHED)
        assert not bool(held_out.any())
    assert bool(g.has_edges_between(torch.from_numpy(gd.train.user), torch.from_numpy(gd.train.item), etype=WATCHED).all())


def test_split_is_latest_test_then_validation() -> None:
    data = make_data(n_users=25, n_movies=30, per_user=9)
    gd = build(data)
    for u in range(gd.num_users):
        train_ts = gd.train.ts[gd.train.user == u]
        val_ts = gd.val.ts[gd.val.user == u]
        test_ts = gd.test.ts[gd.test.user == u]
        assert len(val_ts) == len(test_ts) == 1
        assert train_ts.max() <= val_ts[0] <= test_ts[0]
        raw_uid = gd.user_ids[u]
        latest = data.ratings[data.ratings.user_id == raw_uid].sort_values("timestamp").iloc[-1]
        assert gd.movie_ids[gd.test.item[gd.test.user == u][0]] == latest.movie_id


def test_users_with_few_ratings_stay_in_train_and_are_not_evaluated() -> None:
    data = make_data(n_users=10, n_movies=20, per_user=5)
    extra = pd.DataFrame(
        {"user_id": [999, 999], "movie_id": [3, 6], "rating": [4.0, 5.0], "timestamp": [1, 2]}
    ).astype(data.ratings.dtypes.to_dict())
    data.ratings = pd.concat([data.ratings, extra], ignore_index=True)
    gd = build(data)
    u = int(np.flatnonzero(gd.user_ids == 999)[0])
    assert (gd.train.user == u).sum() == 2
    assert u not in set(gd.val.user) and u not in set(gd.test.user)


def test_movie_features() -> None:
    data = make_data(n_users=10, n_movies=22, per_user=5)
    gd = build(data, title_buckets=512)
    f = gd.features
    n = len(data.movies)
    assert f.genres.shape == (n, len(f.genre_vocab))
    assert f.genres.dtype == torch.float32
    # multi-hot: row sums equal the number of genres of the movie
    assert f.genres.sum(1).tolist() == [float(len(g)) for g in data.movies["genres"]]
    missing = data.movies["year"].isna().to_numpy()
    assert (f.year_bucket[torch.from_numpy(missing)] == 0).all()
    assert (f.year_bucket[torch.from_numpy(~missing)] > 0).all()
    assert f.year.shape == (n, 1) and (f.year[torch.from_numpy(missing)] == 0).all()
    assert f.title_tokens.shape[0] == n
    assert (f.title_tokens >= 0).all() and (f.title_tokens < 512).all()
    first = tokenize_title(data.movies["title"][0])
    assert f.title_tokens[0, : len(first)].tolist() == [hash_token(t, 512) for t in first]


def test_tokenize_title_drops_year_and_punctuation() -> None:
    assert tokenize_title("Matrix, The (1999)") == ["matrix", "the"]
    assert tokenize_title("") == []
    assert hash_token("matrix", 100) == hash_token("matrix", 100)  # stable across processes (crc32)
    assert 1 <= hash_token("matrix", 100) < 100
