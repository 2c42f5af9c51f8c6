"""Which manifests an event names, read through Powertools' typed event classes: S3 notifications (direct,
or wrapped in SQS/SNS), EventBridge "Object Created", or `{"manifest_uri": ...}`; and the run id a manifest
URI's folder names."""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from aws_lambda_powertools.utilities.data_classes import S3EventBridgeNotificationEvent
from aws_lambda_powertools.utilities.data_classes.common import DictWrapper
from aws_lambda_powertools.utilities.data_classes.s3_event import S3EventRecord
from aws_lambda_powertools.utilities.data_classes.sns_event import SNSEventRecord
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from shared.config.log import get_logger
from shared.contract import artifacts, objectstore
from shared.contract.artifacts import RUN_ID_RE

logger = get_logger(__name__)


class LoaderEvent(DictWrapper):
    """Everything the loader may be invoked with (the `event_source` data class of its handler).

    Accepts: S3 notifications (`Records[].s3`, keys URL-encoded), the same wrapped in SQS or
    SNS records, EventBridge "Object Created" events, and `{"manifest_uri": "...", "force": true,
    "reload": true}` for direct invocation.
    """

    @property
    def force(self) -> bool:
        """Direct invocations may ask for a much smaller run (S3 notifications never carry it)."""
        return self.get("force") is True

    @property
    def reload(self) -> bool:
        """Direct invocations may make a retired run live again."""
        return self.get("reload") is True

    @property
    def manifest_uris(self) -> list[str]:
        """Manifest URIs the event names, in order, without duplicates; other objects are ignored (logged)."""
        out: list[str] = []
        for uri in _object_uris(self.raw_event):
            if objectstore.basename(uri) != artifacts.MANIFEST:
                logger.info("ignoring object that is not a manifest", extra={"uri": uri})
            elif uri not in out:
                out.append(uri)
        return out


def manifest_uris_from_event(event: dict[str, Any]) -> list[str]:
    """Manifest URIs named by an event (see LoaderEvent); non-manifest objects are ignored (logged)."""
    return LoaderEvent(event or {}).manifest_uris


def _object_uris(event: dict[str, Any]) -> list[str]:
    """Every object URI an event (or a message wrapped inside it) names, manifests or not."""
    uris: list[str] = []
    if isinstance(event.get("manifest_uri"), str):
        uris.append(event["manifest_uri"])
    for raw in event.get("Records") or []:
        if "s3" in raw:
            uris += _s3_record_uris(S3EventRecord(raw))
        elif raw.get("eventSource") == "aws:sqs" and raw.get("body"):
            uris += _object_uris(SQSRecord(raw).json_body)
        elif raw.get("EventSource") == "aws:sns" and raw.get("Sns", {}).get("Message"):
            uris += _object_uris(json.loads(SNSEventRecord(raw).sns.message))
    if event.get("source") == "aws.s3" and isinstance(event.get("detail"), dict):
        detail = S3EventBridgeNotificationEvent(event).detail
        uris.append(f"s3://{detail.bucket.name}/{detail.object.key}")
    return uris


def _s3_record_uris(record: S3EventRecord) -> list[str]:
    key = urllib.parse.unquote_plus(record.s3.get_object.key)  # notifications URL-encode keys ('+' = space)
    event_name = str(record.get("eventName", "ObjectCreated"))
    if not event_name.startswith("ObjectCreated"):
        logger.info("ignoring non-create event", extra={"event_name": event_name, "key": key})
        return []
    return [f"s3://{record.s3.bucket.name}/{key}"]


def run_id_from_uri(uri: str) -> str | None:
    """The run_id a manifest URI's folder names (even when the manifest itself is unreadable)."""
    folder = objectstore.basename(
        objectstore.parent(uri) if uri.rstrip("/").endswith(artifacts.MANIFEST) else uri
    )
    return folder if RUN_ID_RE.match(folder) else None
