"""Loader: puts a finished training run into the stores and makes it live, safely.

Triggered by S3 `ObjectCreated` on `<prefix>/<run_id>/manifest.json` (the manifest is written last, so its
arrival means the run is complete), by a direct `{"manifest_uri": ...}` invocation, or from the CLI.

Why it is built this way:
- Validate everything before touching the stores (checksums, dim, ids, finite unit vectors), so a bad
  run costs nothing but a `failed` row with the reason.
- Load beside the live run (per-run collection + per-run rows), verify counts in both stores, and only
  then flip the Milvus alias and the MySQL live marker: a crash at any point leaves the old run serving.
- Idempotent: a live run is never reloaded; a retried run reuses its partial collection (upserts), so a
  duplicate or retried event never duplicates data or leaves two live runs.

Modules, in the order a load goes through them:
  events.py          which manifests an event names           lambda_handler.py  the Lambda entry point
  validation.py      the run-folder contract check            cli.py             python -m handlers.loader
  ingest.py          rows into MySQL and Milvus               bulk.py            Milvus bulk import (big runs)
  lifecycle.py       go live, prune, record failures          run.py             load_run + rollback
  retry.py           backoff for transient store errors       stores.py          store clients per container
  errors.py          LoadError, RunTooSmall

CLI:  python -m handlers.loader MANIFEST_URI | --latest | --list | --rollback [--to RUN_ID] | --help

Tests that want fast retries change the shared policy in place (`loader.RETRY.base_seconds = ...`, e.g. via
monkeypatch.setattr(loader.RETRY, ...)): every module holds that same RetryPolicy object.
"""

from __future__ import annotations

from handlers.loader.bulk import bulk_staging_uri
from handlers.loader.cli import build_parser, latest_manifest, main
from handlers.loader.errors import LoadError, RunTooSmall
from handlers.loader.events import LoaderEvent, manifest_uris_from_event, run_id_from_uri
from handlers.loader.ingest import vector_batches
from handlers.loader.lambda_handler import handler
from handlers.loader.lifecycle import PRUNED, prune_retired
from handlers.loader.retry import RETRY, RetryPolicy, logger
from handlers.loader.run import LoadResult, load_run, rollback
from handlers.loader.stores import get_stores, reset_stores
from handlers.loader.validation import (
    MAX_HISTORY_LEN,
    MAX_TITLE_CHARS,
    NORM_TOLERANCE,
    YEAR_RANGE,
    ValidatedRun,
    check_size_against_live,
    validate_run,
)

__all__ = [
    "MAX_HISTORY_LEN",
    "MAX_TITLE_CHARS",
    "NORM_TOLERANCE",
    "PRUNED",
    "RETRY",
    "YEAR_RANGE",
    "LoadError",
    "LoaderEvent",
    "LoadResult",
    "RetryPolicy",
    "RunTooSmall",
    "ValidatedRun",
    "build_parser",
    "bulk_staging_uri",
    "check_size_against_live",
    "get_stores",
    "handler",
    "latest_manifest",
    "load_run",
    "logger",
    "main",
    "manifest_uris_from_event",
    "prune_retired",
    "reset_stores",
    "rollback",
    "run_id_from_uri",
    "validate_run",
    "vector_batches",
]
