"""Full-catalogue inference, layer by layer (the paper's MapReduce inference).

Why layer by layer: computing each item's embedding from its own sampled block recomputes the lower
layers of shared neighbours over and over (an item appears in many neighbourhoods). Here layer k is
computed ONCE for every item of the catalogue from layer k-1 of the whole catalogue: messages Q(h) for
all items, then a weighted gather over each item's importance neighbourhood. Cost per layer is
O(N * T * D) with no duplication.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from training_job.model.pinsage import PinSage
from training_job.model.sampler import NeighbourTable


@torch.no_grad()
def layerwise_embeddings(
    model: PinSage,
    tables: NeighbourTable | Sequence[NeighbourTable],
    chunk_size: int = 16384,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """L2-normalised float32 embeddings (N, D) of every item.

    `tables` are full-catalogue neighbour tables (row i = item i): one shared by all layers, or one per
    layer ordered like `make_blocks` (index 0 = output layer).
    """
    was_training = model.training
    model.eval()
    num_items = int(model.encoder.genres.shape[0])
    if isinstance(tables, NeighbourTable):
        tables = [tables] * model.num_layers
    all_idx = torch.arange(num_items, device=device)
    h0 = torch.cat([model.encoder(all_idx[i : i + chunk_size]) for i in range(0, num_items, chunk_size)])  # (N, D)
    h = h0
    for layer, conv in enumerate(model.convs):
        table = tables[model.num_layers - 1 - layer]  # input layer uses the last table, as in make_blocks
        msg = torch.cat([conv.messages(h[i : i + chunk_size]) for i in range(0, num_items, chunk_size)])  # (N, H)
        nbr = table.nbr.to(device)  # (N, T)
        w = table.weight.to(device)  # (N, T)
        h = torch.cat(
            [
                conv.combine(msg, h[i : i + chunk_size], nbr[i : i + chunk_size], w[i : i + chunk_size])
                for i in range(0, num_items, chunk_size)
            ]
        )  # (N, D)
    out = model.output(h, h0)  # (N, D) unit vectors
    model.train(was_training)
    return out.detach().cpu().numpy().astype(np.float32)


@torch.no_grad()
def blockwise_embeddings(
    model: PinSage,
    items: torch.Tensor,
    tables: NeighbourTable | Sequence[NeighbourTable],
    num_items: int,
) -> np.ndarray:
    """Embeddings of `items` through sampled mini-batch blocks (the training path), for cross-checks."""
    from training_job.model.sampler import make_blocks

    was_training = model.training
    model.eval()
    blocks = make_blocks(items, tables, model.num_layers, num_items)
    out = model(blocks[0].src_nodes, [b.nbr for b in blocks], [b.weight for b in blocks])
    model.train(was_training)
    return out.cpu().numpy().astype(np.float32)
