"""load_run: validate, load beside the live run, verify, switch; and rollback to an earlier run.

Never raises for a bad run (the outcome is "failed" with the reason and the live run keeps serving); a
transient failure (a store down) is flagged so the Lambda raises and the event is retried.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from handlers.loader.errors import LoadError, is_bad_data
from handlers.loader.events import run_id_from_uri
from handlers.loader.ingest import load_metadata, load_vectors, verify_counts
from handlers.loader.lifecycle import cleanup, go_live, is_complete, mark_failed, prune_retired
from handlers.loader.retry import RETRY
from handlers.loader.stores import get_stores
from handlers.loader.validation import ValidatedRun, check_size_against_live, validate_run
from shared.config.log import get_logger
from shared.config.settings import Settings, get_settings
from shared.contract.artifacts import RunFormatError, RunReader
from shared.contract.run_status import RunStatus
from shared.errors import StoreUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore

logger = get_logger(__name__)


@dataclass
class LoadResult:
    manifest_uri: str
    run_id: str | None
    outcome: str  # "live" | "noop" | "failed" | "busy" (another loader holds this run; retry later)
    reason: str | None = None
    previous_live: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    transient: bool = False  # failure that a retry may fix (store down)


def load_run(
    manifest_uri: str,
    *,
    settings: Settings | None = None,
    meta: MetadataStore | None = None,
    vectors: VectorStore | None = None,
    progress: bool = False,
    force: bool = False,
    reload: bool = False,
) -> LoadResult:
    """Validate, load, verify and switch one run. Never raises for a bad run: returns outcome 'failed'.

    force: load even when the run is drastically smaller than the live one (GRAPHREC_LOADER_MIN_SIZE_RATIO).
    reload: a *retired* run is made live again, re-ingested from its folder when its data was pruned or
    is incomplete (the CLI's default; an S3 event for a retired run stays a no-op, so a late duplicate
    event can never switch production back to an old run).
    """
    settings = settings or get_settings()
    if meta is None or vectors is None:
        meta, vectors = get_stores(settings)
    run_id = run_id_from_uri(manifest_uri)
    res = LoadResult(manifest_uri=manifest_uri, run_id=run_id, outcome="failed")
    t_start = time.perf_counter()
    log = {"run_id": run_id, "manifest_uri": manifest_uri}
    logger.info("load requested", extra=log)
    with contextlib.ExitStack() as stack:
        try:
            held = stack.enter_context(meta.run_lock(run_id or manifest_uri))
        except StoreUnavailable as exc:
            res.reason, res.transient = f"store unavailable: {exc}", True
            logger.error("load failed; live run unchanged", extra={**log, "reason": res.reason})
            return res
        if not held:
            # One loader per run at a time (duplicate events delivered concurrently); see run_lock().
            res.outcome, res.transient = "busy", True
            res.reason = "another loader is loading this run right now; retry later (a no-op if that load succeeds)"
            logger.warning("run is being loaded by another loader", extra=log)
            return res
        return _load_locked(
            manifest_uri, res, settings=settings, meta=meta, vectors=vectors, progress=progress,
            t_start=t_start, force=force, reload=reload,
        )  # fmt: skip


def _load_locked(
    manifest_uri: str,
    res: LoadResult,
    *,
    settings: Settings,
    meta: MetadataStore,
    vectors: VectorStore,
    progress: bool,
    t_start: float,
    force: bool,
    reload: bool,
) -> LoadResult:
    """load_run() once the run's lock is held: validate, load, verify, switch; record any failure."""
    run_id = res.run_id
    log = {"run_id": run_id, "manifest_uri": manifest_uri}
    try:
        if run_id is not None:
            existing = RETRY.call("get_run", partial(meta.get_run, run_id))
            if existing is not None and (
                existing.status == RunStatus.LIVE or (existing.status == RunStatus.RETIRED and not reload)
            ):
                logger.info("run already loaded; nothing to do", extra={**log, "status": existing.status})
                res.outcome, res.reason = "noop", f"run is already {existing.status}"
                if existing.status == RunStatus.RETIRED:
                    res.reason += "; load it from the CLI (or with \"reload\": true) to make it live again"
                return res
        reader = RunReader(manifest_uri)
        v = validate_run(reader, settings)
        run_id = res.run_id = v.manifest.run_id
        res.seconds["validate"] = round(time.perf_counter() - t_start, 3)
        if not force:
            check_size_against_live(v, meta, settings.loader_min_size_ratio)

        existing = RETRY.call("get_run", lambda: meta.get_run(run_id))
        reuse = existing is not None and existing.status == RunStatus.RETIRED and is_complete(existing, meta, vectors)
        if existing is not None and (existing.status == RunStatus.FAILED or (existing.status == RunStatus.RETIRED and not reuse)):
            # A failed attempt has no concurrent loader: start clean (fast inserts, no stale rows). A retired
            # run whose data was pruned (or is partial) is re-ingested from its folder the same way.
            RETRY.call("cleanup", lambda: cleanup(run_id, meta, vectors))
            if existing.status == RunStatus.RETIRED:
                logger.info("re-ingesting a retired run", extra={**log, "run_id": run_id, "reason": existing.reason})
        if reuse:
            logger.info("retired run is complete in the stores; making it live again", extra={**log, "run_id": run_id})
        elif existing is None or existing.status != RunStatus.READY:
            metrics = {**v.manifest.metrics, "recipe": v.manifest.recipe}
            _record(meta, v, manifest_uri, RunStatus.LOADING, metrics, what="upsert_run")
            t_movies, t_hist = load_metadata(reader, v, meta, settings, progress)
            t_setup, t_insert = load_vectors(reader, v, vectors, settings, progress)
            res.seconds.update(
                mysql_movies=round(t_movies, 3),
                mysql_histories=round(t_hist, 3),
                mysql=round(t_movies + t_hist, 3),
                milvus_setup=round(t_setup, 3),
                milvus_insert=round(t_insert, 3),
                milvus=round(t_setup + t_insert, 3),
            )
        res.counts = verify_counts(v, meta, vectors, settings)
        metrics = dict(v.manifest.metrics)
        metrics["recipe"] = v.manifest.recipe  # the API forms queries with it (shared/serving/recipe.py)
        metrics["load"] = {
            "seconds": res.seconds,
            "vectors_per_s": round(v.n_embeddings / res.seconds["milvus"], 1)
            if res.seconds.get("milvus")
            else None,
            "history_unknown_ids": v.history_unknown_ids,
        }
        if not reuse:  # a complete retired run goes live as it is (switch_live accepts retired runs)
            _record(meta, v, manifest_uri, RunStatus.READY, metrics, what="mark_ready")
        res.previous_live = go_live(run_id, meta, vectors)
        res.outcome = "live"
        prune_retired(meta, vectors, settings.keep_runs)
    except (RunFormatError, LoadError, ValueError, KeyError) as exc:
        res.reason = f"{type(exc).__name__}: {exc}"
    except StoreUnavailable as exc:
        res.reason, res.transient = f"store unavailable: {exc}", True
    except Exception as exc:  # noqa: BLE001 - any other failure must still leave the live run serving
        if is_bad_data(exc):  # a value the store cannot hold: permanent, named, never redelivered
            res.reason = f"bad data, not retried: {type(exc).__name__}: {exc}"
        else:
            res.reason, res.transient = f"{type(exc).__name__}: {exc}", True
            logger.exception("unexpected loader error", extra=log)
    res.seconds["total"] = round(time.perf_counter() - t_start, 3)
    if res.outcome == "failed":
        logger.error("load failed; live run unchanged", extra={**log, "run_id": run_id, "reason": res.reason})
        # Partial data goes only when the run is now marked failed: a live or retired run (e.g. a reload
        # refused as too small) keeps its data.
        marked = run_id is not None and mark_failed(run_id, res.reason or "unknown", meta, manifest_uri)
        if marked and run_id is not None and not res.transient:
            cleanup(run_id, meta, vectors)
    else:
        logger.info(
            "run is live",
            extra={**log, "previous_live": res.previous_live, "counts": res.counts, "seconds": res.seconds},
        )
    return res


def _record(
    meta: MetadataStore, v: ValidatedRun, manifest_uri: str, status: RunStatus, metrics: dict[str, Any], *, what: str
) -> None:
    """Create or update the run's row with the validated run's dim and counts (retried when a store blips)."""
    RETRY.call(
        what,
        lambda: meta.upsert_run(
            v.manifest.run_id,
            status=status,
            dim=v.manifest.dim,
            counts=v.manifest.counts.model_dump(),
            metrics=metrics,
            manifest_uri=manifest_uri,
        ),
    )


def rollback(
    meta: MetadataStore, vectors: VectorStore, to: str | None = None, settings: Settings | None = None
) -> tuple[str, str | None]:
    """Make the most recently retired complete run (or `to`) live again. Returns (new_live, old_live).

    A `to` run whose data was pruned (or is partial) is re-ingested from its run folder (the manifest URI
    its row remembers) and then switched live, like any load."""
    if to is not None:
        rec = meta.get_run(to)
        if rec is None or rec.status not in (RunStatus.RETIRED, RunStatus.READY):
            raise LoadError(f"run {to} is {'unknown' if rec is None else rec.status}; cannot roll back to it")
        if not is_complete(rec, meta, vectors):
            if not rec.manifest_uri:
                raise LoadError(f"run {to} is incomplete in the stores (pruned or partial) and has no manifest URI")
            res = load_run(rec.manifest_uri, settings=settings, meta=meta, vectors=vectors, force=True, reload=True)
            if res.outcome != "live":
                raise LoadError(f"run {to} could not be re-ingested from {rec.manifest_uri}: {res.reason}")
            logger.info("rolled back (re-ingested)", extra={"run_id": to, "previous_live": res.previous_live})
            return to, res.previous_live
        target: Any = rec
    else:
        candidates = sorted(
            (r for r in meta.list_runs() if r.status == RunStatus.RETIRED), key=lambda r: r.updated_at, reverse=True
        )
        target = next((r for r in candidates if is_complete(r, meta, vectors)), None)
        if target is None:
            raise LoadError("no retired run with complete data to roll back to")
    old = go_live(target.run_id, meta, vectors)
    logger.info("rolled back", extra={"run_id": target.run_id, "previous_live": old})
    return target.run_id, old
