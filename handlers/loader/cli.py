"""The operator CLI: python -m handlers.loader MANIFEST_URI | --latest | --list | --rollback [--to RUN_ID]."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import asdict
from typing import TYPE_CHECKING

from handlers.loader.errors import LoadError
from handlers.loader.events import run_id_from_uri
from handlers.loader.run import load_run, rollback
from handlers.loader.stores import get_stores
from shared.config.log import log_to_stderr
from shared.config.settings import get_settings
from shared.contract import artifacts, objectstore
from shared.errors import StoreUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from shared.stores.milvus.store import VectorStore
    from shared.stores.mysql.store import MetadataStore


def latest_manifest(artifact_uri: str) -> str | None:
    """The newest complete run under artifact_uri (run ids sort by time)."""
    runs = sorted(
        {
            objectstore.basename(objectstore.parent(u))
            for u in objectstore.list_uris(artifact_uri)
            if u.endswith("/" + artifacts.MANIFEST) and run_id_from_uri(u)
        }
    )
    return objectstore.join(artifact_uri, runs[-1], artifacts.MANIFEST) if runs else None


def _print_runs(meta: MetadataStore, vectors: VectorStore) -> None:
    target = vectors.alias_target()
    rows = meta.list_runs()
    if not rows:
        print("no runs")
        return
    print(
        f"{'run_id':<28} {'status':<8} {'dim':>4} {'movies':>8} {'users':>8} {'vectors':>9}  updated_at           reason"
    )
    for r in rows:
        c = r.counts or {}
        mark = " *alias" if artifacts.run_id_of_collection(target) == r.run_id else ""
        print(
            f"{r.run_id:<28} {r.status:<8} {r.dim:>4} {c.get('movies', ''):>8} {c.get('users', ''):>8} "
            f"{c.get('embeddings', ''):>9}  {r.updated_at:%Y-%m-%d %H:%M:%S}  {r.reason or ''}{mark}"
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m handlers.loader",
        description=(
            "Load a training run (its manifest.json) into Milvus + MySQL and make it live. The run is "
            "validated first (checksums, dim, ids, unit-norm vectors), loaded beside the live run, its "
            "counts verified, and only then switched live; a failure leaves the live run serving and records "
            "the run as failed with the reason. Re-running for a live run is a no-op."
        ),
        epilog=(
            "examples:\n"
            "  python -m handlers.loader s3://bucket/runs/20261123T091500Z_1a2b3c4d/manifest.json\n"
            "  python -m handlers.loader .local/runs/20261123T091500Z_1a2b3c4d   # a run folder works too\n"
            "  python -m handlers.loader --latest        # newest run under GRAPHREC_ARTIFACT_URI\n"
            "  python -m handlers.loader --list          # runs, their status and counts\n"
            "  python -m handlers.loader --rollback      # back to the most recent complete retired run\n"
            "\nstores come from the environment: GRAPHREC_MILVUS_URI/GRAPHREC_MILVUS_TOKEN, GRAPHREC_MYSQL_* or\n"
            "GRAPHREC_MYSQL_SECRET_ARN (docs/configuration.md); GRAPHREC_KEEP_RUNS retired runs are kept for\n"
            "rollback, GRAPHREC_LOAD_BATCH_SIZE rows per batch."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("manifest_uri", nargs="?", help="manifest.json (or run folder) path or s3:// URI")
    g.add_argument("--latest", action="store_true", help="load the newest run under GRAPHREC_ARTIFACT_URI")
    g.add_argument("--list", action="store_true", help="list runs (newest first) and exit")
    g.add_argument("--rollback", action="store_true", help="make the previous complete run live again")
    p.add_argument("--to", metavar="RUN_ID", help="with --rollback: the run to make live (re-ingested if pruned)")
    p.add_argument(
        "--force",
        action="store_true",
        help="load even when the run has under GRAPHREC_LOADER_MIN_SIZE_RATIO (default 50%%) of the live run's "
        "movies, vectors or users",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    return p


def main(argv: Iterable[str] | None = None) -> int:
    args = build_parser().parse_args(list(argv) if argv is not None else None)
    log_to_stderr()  # stdout carries the result (JSON) only
    settings = get_settings()
    try:
        meta, vectors = get_stores(settings)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.list:
        _print_runs(meta, vectors)
        return 0
    if args.rollback:
        try:
            new, old = rollback(meta, vectors, args.to, settings)
        except LoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"live: {new} (was {old})")
        return 0
    uri = args.manifest_uri
    if args.latest:
        uri = latest_manifest(settings.artifact_uri)
        if uri is None:
            print(f"error: no run with a manifest under {settings.artifact_uri}", file=sys.stderr)
            return 1
    if not uri.rstrip("/").endswith(artifacts.MANIFEST):
        uri = objectstore.join(uri, artifacts.MANIFEST)
    # An operator naming a run means "make it live": a retired (even pruned) run is re-ingested.
    res = load_run(
        uri, settings=settings, meta=meta, vectors=vectors, progress=not args.no_progress, force=args.force, reload=True
    )
    print(json.dumps(asdict(res), indent=2, default=str))
    if res.outcome == "failed":
        return 2
    if res.outcome == "busy":
        return 4  # another loader holds this run; run again later
    return 0
