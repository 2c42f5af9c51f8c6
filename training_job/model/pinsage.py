"""PinSage's neural network (nn.Modules only; sampling lives in sampler.py, the loop in train.py).

Ying et al. 2018, "Graph Convolutional Neural Networks for Web-Scale Recommender Systems":
- input: a learnable per-item embedding plus a projection of the item's features (genres multi-hot,
  year, hashed title words through an EmbeddingBag), summed;
- K weighted-aggregation convolutions: neighbours' representations go through Q + ReLU, are averaged
  with the random-walk visit counts as weights, concatenated with the node's own representation,
  go through W + ReLU and are L2-normalised;
- output = L2-normalise(conv output + input representation) (the skip connection of the DGL example:
  it keeps an item's identity when its neighbourhood is noisy), so scores are cosine similarities;
- max-margin loss on (query, positive, negatives).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from training_job.model.graph import YEAR_BUCKETS, MovieFeatures


def l2_normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-6)


class ItemEncoder(nn.Module):
    """Layer-0 representation of items: id embedding + genres + year + title bag-of-words, (n, D)."""

    def __init__(self, features: MovieFeatures, dim: int, use_id_embedding: bool = True) -> None:
        super().__init__()
        num_items = int(features.genres.shape[0])
        # Features are constants of the catalogue, not parameters: non-persistent buffers keep the
        # state_dict small and still move with .to(device).
        self.register_buffer("genres", features.genres, persistent=False)  # (N, G)
        self.register_buffer("year", features.year, persistent=False)  # (N, 1)
        self.register_buffer("year_bucket", features.year_bucket, persistent=False)  # (N,)
        self.register_buffer("title_tokens", features.title_tokens, persistent=False)  # (N, L)
        self.id_embedding = nn.Embedding(num_items, dim) if use_id_embedding else None
        self.genre_proj = nn.Linear(features.genres.shape[1], dim, bias=False)
        self.year_proj = nn.Linear(1, dim)
        self.year_bucket_emb = nn.Embedding(YEAR_BUCKETS, dim)
        self.title_bag = nn.EmbeddingBag(features.title_buckets, dim, mode="mean", padding_idx=0)
        for emb in (self.id_embedding, self.year_bucket_emb):
            if emb is not None:
                nn.init.normal_(emb.weight, std=0.1)
        nn.init.normal_(self.title_bag.weight, std=0.1)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """idx (n,) item indices -> (n, D)."""
        h = self.genre_proj(self.genres[idx])  # (n, D)
        h = h + self.year_proj(self.year[idx]) + self.year_bucket_emb(self.year_bucket[idx])
        h = h + self.title_bag(self.title_tokens[idx])
        if self.id_embedding is not None:
            h = h + self.id_embedding(idx)
        return h


class WeightedSAGEConv(nn.Module):
    """One PinSage convolution. Split in two so full-catalogue inference computes messages once per layer."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.Q = nn.Linear(in_dim, hidden_dim)
        self.W = nn.Linear(in_dim + hidden_dim, out_dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.Q.weight, gain=nn.init.calculate_gain("relu"))
        nn.init.xavier_uniform_(self.W.weight, gain=nn.init.calculate_gain("relu"))

    def messages(self, h_src: torch.Tensor) -> torch.Tensor:
        """(M, Din) -> (M, H): what every source node sends to the nodes it neighbours."""
        return F.relu(self.Q(self.dropout(h_src)))

    def combine(
        self, msg: torch.Tensor, h_dst: torch.Tensor, nbr: torch.Tensor, weight: torch.Tensor
    ) -> torch.Tensor:
        """msg (M, H), h_dst (S, Din), nbr (S, T) rows of msg, weight (S, T) -> (S, Dout) unit vectors."""
        w = weight.unsqueeze(-1)  # (S, T, 1)
        agg = (msg[nbr] * w).sum(1) / w.sum(1).clamp(min=1.0)  # (S, H) importance-weighted mean
        z = F.relu(self.W(torch.cat([agg, self.dropout(h_dst)], dim=-1)))  # (S, Dout)
        return l2_normalise(z)

    def forward(self, h_src: torch.Tensor, nbr: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """h_src (M, Din) whose first S rows are the dst nodes -> (S, Dout)."""
        return self.combine(self.messages(h_src), h_src[: nbr.shape[0]], nbr, weight)


class PinSage(nn.Module):
    """Item encoder + `num_layers` weighted convolutions; outputs L2-normalised item embeddings."""

    def __init__(
        self,
        features: MovieFeatures,
        dim: int = 64,
        num_layers: int = 2,
        dropout: float = 0.0,
        use_id_embedding: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = ItemEncoder(features, dim, use_id_embedding)
        self.convs = nn.ModuleList(WeightedSAGEConv(dim, dim, dim, dropout) for _ in range(num_layers))

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def forward(self, src_nodes: torch.Tensor, nbrs: list[torch.Tensor], weights: list[torch.Tensor]) -> torch.Tensor:
        """Mini-batch forward over blocks (input layer first).

        src_nodes (M0,) item indices of the input layer; nbrs[l] (S_l, T) / weights[l] (S_l, T) index the
        rows of layer l's input, whose first S_l rows are its outputs. Returns (S_last, D) unit vectors.
        """
        h0 = self.encoder(src_nodes)  # (M0, D)
        h = h0
        for conv, nbr, w in zip(self.convs, nbrs, weights, strict=True):
            h = conv(h, nbr, w)  # (S_l, D)
        return self.output(h, h0[: h.shape[0]])

    @staticmethod
    def output(h_last: torch.Tensor, h0_dst: torch.Tensor) -> torch.Tensor:
        """Final embedding: skip connection from the layer-0 representation, then unit length."""
        return l2_normalise(h_last + h0_dst)


class MaxMarginLoss(nn.Module):
    """mean(relu(<q, neg> - <q, pos> + margin)) over every (query, negative); inputs are unit vectors."""

    def __init__(self, margin: float = 0.5) -> None:
        super().__init__()
        self.margin = margin

    def forward(self, query: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """query (B, D), pos (B, D), neg (B, K, D) -> scalar."""
        pos_score = (query * pos).sum(-1, keepdim=True)  # (B, 1)
        neg_score = torch.einsum("bd,bkd->bk", query, neg)  # (B, K)
        return F.relu(neg_score - pos_score + self.margin).mean()
