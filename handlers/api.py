"""API Lambda entry point (API Gateway HTTP API, payload 2.0) - and `uvicorn handlers.api:app` locally.

The app is built at import (once per container); store clients are created on the first request and reused.
`handler` checks one thing before Mangum sees the event: a body flagged `isBase64Encoded` that is not valid
base64 made Mangum raise (a Lambda error, i.e. a 502 from API Gateway); it is a JSON 422 instead.
"""

from __future__ import annotations

import os

# Before numpy loads: each request does one small matrix-vector product; BLAS worker threads only add
# hand-offs, and on a busy CPU they spin (measured: 5.8 ms -> 1.5 ms per recommendation in-process).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import base64  # noqa: E402
import binascii  # noqa: E402
import json  # noqa: E402
import uuid  # noqa: E402
from typing import Any  # noqa: E402

from mangum import Mangum  # noqa: E402

from handlers.api_app import create_app  # noqa: E402

app = create_app()
_mangum = Mangum(app, lifespan="off")


def _bad_base64(event: dict[str, Any]) -> bool:
    body = event.get("body")
    if not event.get("isBase64Encoded") or not body:
        return False
    try:
        base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return True
    return False


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if isinstance(event, dict) and _bad_base64(event):
        ctx = event.get("requestContext") or {}
        request_id = str(ctx.get("requestId") or uuid.uuid4().hex)[:128]
        body = {
            "detail": "Invalid request - the body is flagged base64 but is not valid base64.",
            "request_id": request_id,
        }
        return {
            "statusCode": 422,
            "headers": {"content-type": "application/json", "x-request-id": request_id},
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    return _mangum(event, context)  # type: ignore[no-any-return]
