"""Which manifests an event names: S3 notifications (direct, or wrapped in SQS/SNS), EventBridge, or
`{"manifest_uri": ...}`; and the run id a manifest URI's folder names."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from shared import artifacts, objectstore
from shared.artifacts import RUN_ID_RE
from shared.log import get_logger

logger = get_logger("loader")


def manifest_uris_from_event(event: dict[str, Any]) -> list[str]:
    """Manifest URIs named by an event; non-manifest objects are ignored (logged).

    Accepts: S3 notifications (`Records[].s3`, keys URL-encoded), the same wrapped in SQS/SNS records,
    EventBridge "Object Created" events, and `{"manifest_uri": "..."}` for direct invocation.
    """
    uris: list[str] = []
    if isinstance(event.get("manifest_uri"), str):
        uris.append(event["manifest_uri"])
    for rec in event.get("Records") or []:
        if "s3" in rec:
            bucket = rec["s3"]["bucket"]["name"]
            key = urllib.parse.unquote_plus(rec["s3"]["object"]["key"])
            if not str(rec.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                logger.info(
                    "ignoring non-create event", extra={"event_name": rec.get("eventName"), "key": key}
                )
                continue
            uris.append(f"s3://{bucket}/{key}")
        elif rec.get("eventSource") == "aws:sqs" and rec.get("body"):
            uris += manifest_uris_from_event(json.loads(rec["body"]))
        elif rec.get("EventSource") == "aws:sns" and rec.get("Sns", {}).get("Message"):
            uris += manifest_uris_from_event(json.loads(rec["Sns"]["Message"]))
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        d = event["detail"]
        uris.append(f"s3://{d['bucket']['name']}/{d['object']['key']}")
    out = []
    for uri in uris:
        if objectstore.basename(uri) != artifacts.MANIFEST:
            logger.info("ignoring object that is not a manifest", extra={"uri": uri})
            continue
        if uri not in out:
            out.append(uri)
    return out


def run_id_from_uri(uri: str) -> str | None:
    """The run_id a manifest URI's folder names (even when the manifest itself is unreadable)."""
    folder = objectstore.basename(
        objectstore.parent(uri) if uri.rstrip("/").endswith(artifacts.MANIFEST) else uri
    )
    return folder if RUN_ID_RE.match(folder) else None
