"""Events export Lambda (template.yaml: EventsExportFunction) and its command line.

Writes every interaction event of the MySQL `events` table as one snapshot object at GRAPHREC_EVENTS_EXPORT_URI
(default: `events/events.csv` beside GRAPHREC_ARTIFACT_URI), which the next training run merges with the base
ratings (`--events-uri`). The format and why it is a full snapshot: shared/stores/mysql/events_export.py.

Triggers: an EventBridge schedule (daily by default) and on-demand invocation with any payload, e.g.
`aws lambda invoke --function-name <EventsExportFunction> out.json`. An export is idempotent (the same
events give the same file), so Lambda's retries of a failed attempt are harmless.

Locally, with the GRAPHREC_MYSQL_* settings of the database the API writes to:

    python -m handlers.events_export.app                       # -> GRAPHREC_EVENTS_EXPORT_URI
    python -m handlers.events_export.app --uri s3://bucket/events/events.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from shared.config.log import get_logger, log_to_stderr
from shared.config.settings import get_settings
from shared.errors import StoreUnavailable
from shared.stores.mysql.events_export import DEFAULT_CHUNK_ROWS, export_from_settings

logger = get_logger(__name__)


def _trigger(event: dict[str, Any]) -> tuple[str, str | None]:
    """("schedule", its id) for the EventBridge schedule (read through Powertools' typed class), else
    ("invoke", None): an on-demand invocation may carry any payload."""
    if event.get("source") == "aws.events" and "detail-type" in event:
        return "schedule", EventBridgeEvent(event).get_id
    return "invoke", None


def handler(event: dict[str, Any] | None, context: Any = None) -> dict[str, Any]:
    """Lambda entry point: export now, whatever triggered it; returns the snapshot's description."""
    trigger, event_id = _trigger(event if isinstance(event, dict) else {})
    logger.info("events export requested", extra={"trigger": trigger, "event_id": event_id})
    return export_from_settings(get_settings()).to_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m handlers.events_export.app",
        description="Export every interaction event (MySQL `events`) as one CSV snapshot for training.",
    )
    parser.add_argument("--uri", default=None, help="target file or s3:// object (default: GRAPHREC_EVENTS_EXPORT_URI)")
    parser.add_argument(
        "--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per SELECT (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    log_to_stderr()  # stdout carries the result (JSON) only
    try:
        result = export_from_settings(get_settings(), uri=args.uri, chunk_rows=args.chunk_rows)
    except StoreUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    print(json.dumps(result.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
