"""The Lambda entry point (template.yaml: Handler: handlers.loader.handler)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from handlers.loader.events import manifest_uris_from_event
from handlers.loader.run import load_run
from shared.log import get_logger

logger = get_logger("loader")


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    """Lambda entry point. Loads every manifest the event names; raises (so Lambda/SQS retries) only when
    a failure was transient (store unavailable); bad runs are recorded as failed and not retried."""
    uris = manifest_uris_from_event(event or {})
    if not uris:
        logger.info("event names no manifest; nothing to do")
        return {"results": []}
    # Direct invocations may ask for {"force": true} (a much smaller run) and {"reload": true} (a retired
    # run made live again); S3 notifications never carry them.
    force, reload = event.get("force") is True, event.get("reload") is True
    results = [load_run(uri, force=force, reload=reload) for uri in uris]
    body = {"results": [asdict(r) for r in results]}
    transient = [r for r in results if r.outcome in ("failed", "busy") and r.transient]
    if transient:
        raise RuntimeError(
            f"transient failure loading {[r.run_id for r in transient]}: {transient[0].reason}"
        )
    return body
