"""The Lambda entry point (template.yaml: Handler: handlers.loader.handler)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aws_lambda_powertools.utilities.data_classes import event_source

from handlers.loader.events import LoaderEvent
from handlers.loader.run import load_run
from shared.config.log import get_logger

logger = get_logger(__name__)


@event_source(data_class=LoaderEvent)
def handler(event: LoaderEvent, context: Any) -> dict[str, Any]:
    """Lambda entry point. Loads every manifest the event names; raises (so Lambda/SQS retries) only when
    a failure was transient (store unavailable); bad runs are recorded as failed and not retried."""
    uris = event.manifest_uris
    if not uris:
        logger.info("event names no manifest; nothing to do")
        return {"results": []}
    results = [load_run(uri, force=event.force, reload=event.reload) for uri in uris]
    transient = [r for r in results if r.outcome in ("failed", "busy") and r.transient]
    if transient:
        raise RuntimeError(
            f"transient failure loading {[r.run_id for r in transient]}: {transient[0].reason}"
        )
    return {"results": [asdict(r) for r in results]}
