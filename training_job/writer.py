"""Publish a trained run through shared.contract.artifacts.RunWriter (the loader's contract), manifest last.

Files: item_embeddings.parquet, movies.parquet, user_history.parquet (every rating, chronological),
metrics.json, learning_curve.png, config.json, then manifest.json via `finish()`. A crash before
`finish()` leaves a folder without manifest, which the loader treats as incomplete and never serves.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from shared.contract import artifacts
from training_job.evaluation.served import histories

if TYPE_CHECKING:  # pragma: no cover - types only; the writer itself needs no torch
    from training_job.config import TrainConfig
    from training_job.data.report import MovieLensData
    from training_job.model.fit import FitResult
    from training_job.model.graph import GraphData


def _year_or_none(v: Any) -> int | None:
    if v is None or v is pd.NA:
        return None
    try:
        if isinstance(v, float) and math.isnan(v):
            return None
    except TypeError:  # pragma: no cover
        return None
    return int(v)


def learning_curve_png(curve: list[dict[str, float]]) -> bytes:
    """Loss and validation HR@10 per epoch, two y-axes, as PNG bytes (Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [p["epoch"] for p in curve]
    fig, ax1 = plt.subplots(figsize=(6, 4), dpi=100)
    ax1.plot(epochs, [p["loss"] for p in curve], "o-", color="tab:blue", label="train loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("max-margin loss", color="tab:blue")
    ax2 = ax1.twinx()
    ax2.plot(epochs, [p["val_hr@10"] for p in curve], "s-", color="tab:orange", label="val HR@10")
    ax2.set_ylabel("validation HR@10", color="tab:orange")
    ax1.set_title("PinSage training")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def user_histories(gd: GraphData) -> tuple[list[int], list[list[int]]]:
    """Every user's rated movie_ids, oldest first (gd.all is sorted by user, then time)."""
    hist = histories(gd.all, gd.user_ids, gd.movie_ids)
    return list(hist), list(hist.values())


def write_run(cfg: TrainConfig, data: MovieLensData, gd: GraphData, fr: FitResult, metrics: dict[str, Any]) -> str:
    """Write every run file then the manifest; returns the run URI."""
    writer = artifacts.RunWriter(cfg.output, cfg.run_id)
    published = fr.published if fr.published is not None else fr.embeddings
    emb = np.ascontiguousarray(published, dtype=np.float32)  # (N, D) unit vectors
    writer.write_table(artifacts.EMBEDDINGS, artifacts.embeddings_table(gd.movie_ids, emb))
    movies = data.movies.reset_index(drop=True)
    writer.write_table(
        artifacts.MOVIES,
        artifacts.movies_table(
            movies["movie_id"].to_numpy(dtype=np.int64),
            [str(t) for t in movies["title"]],
            [_year_or_none(y) for y in movies["year"]],
            [list(g) if g is not None else [] for g in movies["genres"]],
        ),
    )
    users, hists = user_histories(gd)
    writer.write_table(artifacts.USER_HISTORY, artifacts.user_history_table(users, hists))
    writer.write_json(artifacts.METRICS, metrics)
    writer.write_bytes(artifacts.LEARNING_CURVE, learning_curve_png(metrics["training"]["curve"]))
    config = cfg.to_dict()
    writer.write_json(artifacts.CONFIG, config)
    test = metrics["test"]
    summary = {
        "hr@10": test["pinsage"]["hr@10"],
        "ndcg@10": test["pinsage"]["ndcg@10"],
        "coverage": test["pinsage"]["coverage"],
        "item_knn_hr@10": test["item_knn"]["hr@10"],
        "popularity_hr@10": test["popularity"]["hr@10"],
        "best_epoch": metrics["training"]["best_epoch"],
        "ease_hr@10": test["ease"]["hr@10"],
        "recipe": metrics["recipe"],
    }
    source = dict(data.source or {})
    writer.finish(
        dim=int(emb.shape[1]),
        counts=artifacts.Counts(
            movies=len(movies), users=len(users), embeddings=int(emb.shape[0]), ratings=len(gd.all)
        ),
        metrics=summary,
        source=source,
        config=config,
        recipe=metrics["recipe"],
    )
    return writer.run_uri
