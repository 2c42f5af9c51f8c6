"""The /health report: pings each store separately so the answer says which one is down."""

from __future__ import annotations

from typing import Literal

from handlers.api_app.stores import MetadataReader, VectorReader
from shared.config.log import get_logger
from shared.schemas import Health
from shared.serving.recipe import Recipe

StoreState = Literal["ok", "unavailable"]

logger = get_logger(__name__)


def _reachable(name: str, store: MetadataReader | VectorReader | Exception) -> bool:
    if isinstance(store, Exception):
        logger.warning(
            "store client could not be created", extra={"store": name, "error_type": type(store).__name__}
        )
        return False
    try:
        store.ping()
        return True
    except Exception as exc:  # any failure to ping means "unreachable" for a health check
        logger.warning("store ping failed", extra={"store": name, "error_type": type(exc).__name__})
        return False


def check(meta: MetadataReader | Exception, vectors: VectorReader | Exception) -> Health:
    meta_ok, vectors_ok = _reachable("metadata", meta), _reachable("vectors", vectors)
    stores: dict[str, StoreState] = {
        "metadata": "ok" if meta_ok else "unavailable",
        "vectors": "ok" if vectors_ok else "unavailable",
    }
    if not meta_ok or isinstance(meta, Exception):
        return Health(status="unavailable", stores=stores, detail="The metadata store (MySQL) is unreachable.")
    try:
        run = meta.live_run()
    except Exception as exc:  # answered the ping, then failed: still "unreachable" for a health check
        logger.warning("live run lookup failed", extra={"error_type": type(exc).__name__})
        stores["metadata"] = "unavailable"
        return Health(status="unavailable", stores=stores, detail="The metadata store (MySQL) is unreachable.")
    if run is None:
        return Health(status="no_live_run", stores=stores, detail="No model is live yet: load a training run.")
    if not vectors_ok or isinstance(vectors, Exception):
        return Health(
            status="unavailable",
            run_id=run.run_id,
            stores=stores,
            detail="The vector store (Milvus) is unreachable.",
        )
    try:
        counts = {
            "movies": meta.count_movies(run.run_id),
            "users": meta.count_users(run.run_id),
            "vectors": vectors.count(run.run_id),
        }
    except Exception as exc:  # e.g. the live collection is damaged: say so in the Health body
        logger.warning(
            "counting the live run failed", extra={"run_id": run.run_id, "error_type": type(exc).__name__}
        )
        return Health(
            status="unavailable",
            run_id=run.run_id,
            stores=stores,
            detail=f"The live run's data cannot be read ({type(exc).__name__}): reload or roll back the run.",
        )
    if counts["vectors"] == 0 or counts["movies"] == 0:
        return Health(
            status="unavailable",
            run_id=run.run_id,
            counts=counts,
            stores=stores,
            detail="The live run has no movies or vectors in the stores: reload it.",
        )
    recipe = Recipe.of_run(run)
    return Health(status="ok", run_id=run.run_id, counts=counts, stores=stores, recipe=recipe.to_dict())
