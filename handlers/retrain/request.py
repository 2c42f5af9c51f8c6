"""What a retrain request is and how an HTTP one is read: the POST /retrain body model, the client-error type,
the body decoding, the allowed s3:// prefixes and the idempotency key (handlers/retrain/app.py submits it)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from typing import Any

from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.config.settings import get_settings
from shared.contract import objectstore

IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces


class RetrainRequest(BaseModel):
    """Body of POST /retrain. Every field is optional; defaults come from settings."""

    model_config = ConfigDict(extra="forbid", strict=True)

    data_uri: str | None = Field(
        default=None, max_length=1024, description="s3:// ratings folder or ml-1m.zip"
    )
    output_uri: str | None = Field(
        default=None, max_length=1024, description="s3:// prefix the run is written under"
    )
    epochs: int | None = Field(default=None, ge=1, le=1000)
    max_minutes: float | int | None = Field(default=None, gt=0, le=24 * 60)

    @field_validator("data_uri", "output_uri")
    @classmethod
    def _s3_only(cls, value: str | None) -> str | None:
        # The job runs in AWS: a local path would silently train on nothing.
        if value is not None and (not value.startswith("s3://") or len(value) <= len("s3://")):
            raise ValueError("must be an s3:// URI")
        return value


class BadRequest(ValueError):
    """Client error: mapped to a 4xx response that says what is wrong."""

    def __init__(self, status: int, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


def parse_body(event: APIGatewayProxyEventV2) -> RetrainRequest:
    """The request's JSON body (optionally base64) as a RetrainRequest; BadRequest says what is wrong."""
    raw = event.body or ""
    if event.is_base64_encoded and raw:
        try:
            raw = base64.b64decode(raw, validate=True).decode("utf-8")  # no silently skipped characters
        except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
            raise BadRequest(400, "body is not valid base64 UTF-8") from exc
    if not raw.strip():
        return RetrainRequest()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"body is not valid JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise BadRequest(422, "body must be a JSON object")
    try:
        return RetrainRequest.model_validate(data)
    except ValidationError as exc:
        detail = [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
        raise BadRequest(422, "invalid retrain request", detail) from exc


def allowed_prefixes() -> dict[str, str]:
    """Where an HTTP caller may point the job: ratings under the configured data folder's parent
    (GRAPHREC_DATA_URI s3://b/data/ml-1m -> s3://b/data), runs under the configured GRAPHREC_ARTIFACT_URI. Anything else
    would let a caller read or overwrite any bucket the job's role can reach."""
    s = get_settings()
    return {"data_uri": objectstore.parent(s.data_uri), "output_uri": s.artifact_uri.rstrip("/")}


def check_prefixes(req: RetrainRequest) -> None:
    """BadRequest(422) when data_uri or output_uri points outside allowed_prefixes()."""
    errors = []
    for name, prefix in allowed_prefixes().items():
        value = getattr(req, name)
        if value is None:
            continue
        path = value[len("s3://") :]
        segments = path.rstrip("/").split("/")
        inside = value.rstrip("/") == prefix or value.startswith(prefix + "/")
        if not inside or any(seg in ("", ".", "..") for seg in segments):
            errors.append({"loc": [name], "msg": f"must be an s3:// URI under {prefix}/ (no '.', '..' or '//')"})
    if errors:
        raise BadRequest(422, "; ".join(f"{e['loc'][0]} {e['msg']}" for e in errors), errors)


def idempotency_key(event: APIGatewayProxyEventV2, req: RetrainRequest) -> str:
    """The `Idempotency-Key` header, else a hash of the body: identical bodies inside the window are one
    retried request."""
    key = event.headers.get("idempotency-key")  # case-insensitive
    if key is not None:
        if not IDEMPOTENCY_KEY_RE.match(key):
            raise BadRequest(400, "Idempotency-Key must be 1-128 printable ASCII characters without spaces")
        return f"http:{key}"
    return "body:" + hashlib.sha256(req.model_dump_json(exclude_none=True).encode()).hexdigest()
