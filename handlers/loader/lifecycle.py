"""A run's way through the stores once loaded: go live (alias, then the MySQL marker), prune old retired
runs, and on failure record the reason and remove partial data. The live run is never demoted here."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from handlers.loader.retry import RETRY
from shared.config.log import get_logger
from shared.contract import artifacts
from shared.contract.run_status import RunStatus
from shared.errors import StoreUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore

logger = get_logger(__name__)

PRUNED = "pruned: data dropped (keep_runs)"


def cleanup(run_id: str, meta: MetadataStore, vectors: VectorStore) -> None:
    """Best effort: remove a failed run's partial data (the runs row stays, with the reason)."""
    try:
        if vectors.alias_target() != artifacts.collection_name(run_id):
            vectors.drop(run_id)
        meta.delete_run_data(run_id)
    except Exception as exc:  # noqa: BLE001 - stores may be the reason we are failing
        logger.warning("cleanup of failed run incomplete", extra={"run_id": run_id, "error": str(exc)})


def mark_failed(run_id: str, reason: str, meta: MetadataStore, manifest_uri: str) -> bool:
    """Record the failure; False when the run is live or retired (never demoted) or MySQL is down."""
    try:
        rec = meta.get_run(run_id)
        if rec is not None and rec.status in (RunStatus.LIVE, RunStatus.RETIRED):
            return False  # a concurrent/earlier load already succeeded: never demote a good run
        if rec is None:
            meta.upsert_run(run_id, status=RunStatus.FAILED, dim=0, counts={}, metrics={}, manifest_uri=manifest_uri)
        meta.set_status(run_id, RunStatus.FAILED, reason[:2000])
        return True
    except Exception as exc:  # noqa: BLE001
        logger.error(
            "could not record failure", extra={"run_id": run_id, "reason": reason, "error": str(exc)}
        )
        return True


def go_live(run_id: str, meta: MetadataStore, vectors: VectorStore) -> str | None:
    """Alias first, then the MySQL marker (the API's source of truth); on failure put the alias back."""
    before = RETRY.call("alias_target", vectors.alias_target)
    RETRY.call("set_alias", lambda: vectors.set_alias(run_id))
    try:
        return RETRY.call("switch_live", lambda: meta.switch_live(run_id))
    except BaseException:
        previous = artifacts.run_id_of_collection(before)
        if previous is not None:
            try:
                vectors.set_alias(previous)
            except Exception as exc:  # noqa: BLE001
                logger.error("could not restore alias", extra={"alias_target": before, "error": str(exc)})
        raise


def prune_retired(meta: MetadataStore, vectors: VectorStore, keep: int) -> list[str]:
    """Keep the `keep` most recently retired runs with data; drop collections + rows of older ones."""
    retired = [r for r in meta.list_runs() if r.status == RunStatus.RETIRED and r.reason != PRUNED]
    retired.sort(key=lambda r: r.updated_at, reverse=True)
    pruned = []
    for rec in retired[max(keep, 0) :]:
        try:
            RETRY.call("drop", partial(vectors.drop, rec.run_id))
            RETRY.call("delete_run_data", partial(meta.delete_run_data, rec.run_id))
            meta.set_status(rec.run_id, RunStatus.RETIRED, PRUNED)
            pruned.append(rec.run_id)
        except Exception as exc:  # noqa: BLE001 - pruning is housekeeping; never fail a load for it
            logger.warning("prune failed", extra={"run_id": rec.run_id, "error": str(exc)})
    if pruned:
        logger.info("pruned retired runs", extra={"pruned": pruned, "keep_runs": keep})
    return pruned


def is_complete(rec: Any, meta: MetadataStore, vectors: VectorStore) -> bool:
    want = rec.counts or {}
    try:
        return (
            rec.reason != PRUNED
            and vectors.count(rec.run_id) == want.get("embeddings", -1)
            and meta.count_movies(rec.run_id) == want.get("movies", -1)
            and meta.count_users(rec.run_id) == want.get("users", -1)
        )
    except StoreUnavailable:
        raise
    except Exception:  # noqa: BLE001 - e.g. collection missing
        return False
