"""Retrain trigger Lambda: submits the training container as an AWS Batch GPU job, exactly once per request.

Triggers (one `handler`, told apart by the event's shape; Powertools does the parsing: the HTTP routes are an
``APIGatewayHttpResolver`` app with exception handlers, the other events typed ``event_source`` classes;
handlers/retrain/request.py reads an HTTP request):
- ``POST /retrain`` (HTTP API v2, IAM-authorised): JSON body with optional ``data_uri``, ``output_uri``,
  ``epochs``, ``max_minutes``; idempotency key = the ``Idempotency-Key`` header, else a hash of the body.
  Returns 202 ``{"job_id", "job_name", ...}``.
- ``GET /retrain/{job_id}``: the job's status (only jobs on our queue; others are 404).
- EventBridge schedule: key = the event id (EventBridge redelivers the same id on retry).
- S3 ObjectCreated under ``data/`` (new ratings landed): key = bucket/key/etag; trains on that folder.

Why two layers of idempotency: Powertools Idempotency (a conditional write in DynamoDB) makes concurrent
retries of one request submit once and replay the stored answer; the deterministic job name (derived from
the key) is checked in Batch before submitting, which also covers a Lambda that died between SubmitJob and
saving the idempotency record.

Every setting, GRAPHREC_IDEMPOTENCY_TABLE, GRAPHREC_RETRAIN_IDEMPOTENCY_SECONDS and GRAPHREC_TRAINING_MAX_MINUTES included, comes from
``shared.config.settings.Settings``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.parse
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, S3Event, event_source

from handlers.retrain.request import (  # noqa: F401 - allowed_prefixes, RetrainRequest: this module's API too
    BadRequest,
    RetrainRequest,
    allowed_prefixes,
    check_prefixes,
    idempotency_key,
    parse_body,
)
from shared.config.log import get_logger
from shared.config.settings import get_settings

logger = get_logger(__name__)

# Environment variables this module reads on top of Settings (template drift test checks against this).
EXTRA_ENV_VARS: tuple[str, ...] = ()

JOB_NAME_PREFIX = "graphrec-train"
JOB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:_-]{0,127}$")


# ------------------------------------------------------------------------------------------ clients
@lru_cache(maxsize=1)
def batch_client() -> Any:
    """One Batch client per container (boto3 honours AWS_ENDPOINT_URL for moto/LocalStack)."""
    import boto3

    return boto3.client("batch")


@lru_cache(maxsize=1)
def _idempotent_submit() -> Any:
    """The Powertools-idempotent submit function, built once per container (table name from env)."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    store = DynamoDBPersistenceLayer(
        table_name=get_settings().idempotency_table,
        boto3_client=boto3.client("dynamodb"),
    )
    config = IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="request",  # same key, different parameters -> IdempotencyValidationError
        expires_after_seconds=_idempotency_seconds(),
        raise_on_no_idempotency_key=True,
    )

    @idempotent_function(data_keyword_argument="payload", persistence_store=store, config=config)
    def submit(payload: dict[str, Any]) -> dict[str, Any]:
        return _submit_job(payload["key"], payload["trigger"], payload["request"])

    submit.config = config  # type: ignore[attr-defined]  # so handler() can register the Lambda context
    return submit


def clear_clients() -> None:
    """Forget cached clients (tests switch AWS_ENDPOINT_URL between moto servers)."""
    batch_client.cache_clear()
    _idempotent_submit.cache_clear()


def _idempotency_seconds() -> int:
    return get_settings().retrain_idempotency_seconds


def _max_minutes_default() -> float:
    return get_settings().training_max_minutes


# Beyond the training budget a job loads data, builds the graph, runs inference and evaluation, writes the
# run and pulls its image: this much on top of max_minutes before Batch may kill the attempt.
JOB_OVERHEAD_SECONDS = 45 * 60


def attempt_timeout_seconds(params: dict[str, str]) -> int:
    """Batch attempt timeout for a job: its training budget plus JOB_OVERHEAD_SECONDS. Passed on every
    SubmitJob, so a 24 h budget is never cut short by the job definition's default attempt timeout."""
    return int(float(params["max_minutes"]) * 60) + JOB_OVERHEAD_SECONDS


# ------------------------------------------------------------------------------------------ core
def job_definition_name(value: str) -> str:
    """The job definition's NAME from GRAPHREC_TRAINING_JOB_DEFINITION given as a name, name:revision or
    ARN. Jobs are submitted by name, so Batch uses the latest ACTIVE revision: a stack update registers a
    new revision and deregisters the old one, and a pinned revision would then be refused."""
    name = value.rsplit("job-definition/", 1)[-1] if value.startswith("arn:") else value
    return name.split(":", 1)[0]


def job_name_for(key: str) -> str:
    """Deterministic Batch job name for an idempotency key (Batch allows 128 chars [A-Za-z0-9_-])."""
    return f"{JOB_NAME_PREFIX}-{hashlib.sha256(key.encode()).hexdigest()[:24]}"


def resolve_request(req: RetrainRequest) -> dict[str, str]:
    """Fill defaults from settings; the result becomes the Batch job's `parameters` (strings only).
    `events_uri` (GRAPHREC_EVENTS_EXPORT_URI) is passed only when set; otherwise the job definition's default applies."""
    s = get_settings()
    epochs = req.epochs if req.epochs is not None else s.training_default_epochs
    max_minutes = req.max_minutes if req.max_minutes is not None else _max_minutes_default()
    params = {
        "data_uri": req.data_uri or s.data_uri,
        "output_uri": req.output_uri or s.artifact_uri,
        "epochs": str(int(epochs)),
        "max_minutes": f"{float(max_minutes):g}",
    }
    if s.events_export_uri:  # the job merges people's exported events into the ratings (--events-uri)
        params["events_uri"] = s.events_export_uri
    return params


def _find_recent_job(job_name: str) -> dict[str, Any] | None:
    """A job with this name on our queue created inside the idempotency window (crash-after-submit case)."""
    s = get_settings()
    window_ms = _idempotency_seconds() * 1000
    now_ms = int(time.time() * 1000)
    paginator = batch_client().get_paginator("list_jobs")
    pages = paginator.paginate(
        jobQueue=s.training_job_queue, filters=[{"name": "JOB_NAME", "values": [job_name]}]
    )
    for page in pages:
        for job in page.get("jobSummaryList", []):
            created = int(job.get("createdAt") or now_ms)
            if job.get("jobName") == job_name and now_ms - created <= window_ms:
                return dict(job)
    return None


def _submit_job(key: str, trigger: str, params: dict[str, str]) -> dict[str, Any]:
    s = get_settings()
    name = job_name_for(key)
    existing = _find_recent_job(name)
    if existing is not None:
        logger.info("retrain job already submitted", extra={"job_id": existing["jobId"], "job_name": name})
        job_id, submitted = existing["jobId"], False
    else:
        resp = batch_client().submit_job(
            jobName=name,
            jobQueue=s.training_job_queue,
            jobDefinition=job_definition_name(s.training_job_definition),
            parameters=params,
            timeout={"attemptDurationSeconds": attempt_timeout_seconds(params)},
            containerOverrides={
                "environment": [
                    {"name": "RETRAIN_TRIGGER", "value": trigger},
                    {"name": "RETRAIN_JOB_NAME", "value": name},
                ]
            },
            tags={"service": s.service_name, "trigger": trigger},
            propagateTags=True,
        )
        job_id, submitted = resp["jobId"], True
        logger.info(
            "retrain job submitted",
            extra={"job_id": job_id, "job_name": name, "trigger": trigger, "parameters": params},
        )
    return {
        "job_id": job_id,
        "job_name": name,
        "job_queue": s.training_job_queue,
        "job_definition": job_definition_name(s.training_job_definition),
        "parameters": params,
        "trigger": trigger,
        "newly_submitted": submitted,
    }


def submit(key: str, trigger: str, req: RetrainRequest, context: Any = None) -> dict[str, Any]:
    """Submit (or replay) the training job for `key`; raises BadRequest on idempotency conflicts."""
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    fn = _idempotent_submit()
    if context is not None and hasattr(context, "get_remaining_time_in_millis"):
        fn.config.register_lambda_context(context)
    params = resolve_request(req)
    try:
        result: dict[str, Any] = fn(payload={"key": key, "trigger": trigger, "request": params})
    except IdempotencyValidationError as exc:
        raise BadRequest(422, "this Idempotency-Key was already used with different parameters") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise BadRequest(
            409, "a request with this Idempotency-Key is still being processed; retry shortly"
        ) from exc
    return result


def job_status(job_id: str) -> dict[str, Any]:
    """Status of one training job; BadRequest(404) if it is unknown or not on our queue."""
    if not JOB_ID_RE.match(job_id):
        raise BadRequest(400, "job_id must be 1-128 characters of letters, digits, ':', '_' or '-'")
    s = get_settings()
    jobs = batch_client().describe_jobs(jobs=[job_id]).get("jobs", [])
    job = jobs[0] if jobs else None
    if job is None or not _same_queue(job.get("jobQueue", ""), s.training_job_queue):
        raise BadRequest(404, f"no training job {job_id}")
    return {
        "job_id": job["jobId"],
        "job_name": job.get("jobName"),
        "status": job.get("status"),
        "status_reason": job.get("statusReason"),
        "created_at": job.get("createdAt"),
        "started_at": job.get("startedAt"),
        "stopped_at": job.get("stoppedAt"),
        "parameters": job.get("parameters", {}),
    }


def _same_queue(a: str, b: str) -> bool:
    """Queues may be named or given as ARNs ('arn:...:job-queue/NAME')."""
    return a.rsplit("/", 1)[-1] == b.rsplit("/", 1)[-1]


# ------------------------------------------------------------------------------------------ Lambda
# The HTTP API routes (payload 2.0) on one Powertools resolver; bodies are serialised as json.dumps(default=str).
app = APIGatewayHttpResolver(serializer=lambda body: json.dumps(body, default=str))
NO_STORE = {"cache-control": "no-store"}


def _response(status: int, body: Any) -> Response[Any]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body, headers=NO_STORE)


def _require_iam(router: APIGatewayHttpResolver, next_middleware: NextMiddleware) -> Response[Any]:
    """Every request, routed or not, must carry the IAM principal API Gateway verified. Why check here too:
    if the routes were ever deployed without the AWS_IAM authorizer, retraining would be open to the world;
    this refuses instead (fail closed)."""
    event = router.current_event
    iam = event.request_context.authorizer.iam
    caller = iam.user_arn or iam.caller_id
    if not caller:
        raise BadRequest(403, "retraining requires an IAM-signed (SigV4) request")
    route = event.get("routeKey") or f"{event.http_method} {event.raw_path}"
    logger.info("retrain http request", extra={"route": route, "caller": caller})
    return next_middleware(router)


app.use(middlewares=[_require_iam])


@app.post("/retrain")
def post_retrain() -> Response[Any]:
    event = app.current_event
    req = parse_body(event)
    check_prefixes(req)
    return _response(202, submit(idempotency_key(event, req), "api", req, app.lambda_context))


@app.get("/retrain/<job_id>")
def get_retrain(job_id: str) -> Response[Any]:
    # API Gateway's own match of {job_id} wins: it is what the IAM policy and route were checked against.
    return _response(200, job_status(app.current_event.path_parameters.get("job_id") or job_id))


@app.not_found
def _no_route(_: NotFoundError) -> Response[Any]:
    event = app.current_event
    return _response(404, {"detail": f"no route {event.http_method} {event.raw_path}"})


@app.exception_handler(BadRequest)
def _client_error(exc: BadRequest) -> Response[Any]:
    body: dict[str, Any] = {"detail": str(exc)}
    if exc.detail is not None:
        body["errors"] = exc.detail
    return _response(exc.status, body)


@app.exception_handler(Exception)
def _aws_unavailable(exc: Exception) -> Response[Any]:
    """Batch/DynamoDB unavailable or misconfigured: say so, never a bare 500."""
    logger.exception("retrain request failed")
    return _response(502, {"detail": f"could not reach AWS Batch: {type(exc).__name__}"})


@event_source(data_class=EventBridgeEvent)
def on_schedule(event: EventBridgeEvent, context: Any) -> dict[str, Any]:
    """The EventBridge schedule: key = the event id (EventBridge redelivers the same id on retry)."""
    event_id = str(event.get("id") or "")
    if not event_id:
        raise ValueError("scheduled event without an id: cannot submit idempotently")
    return submit(f"schedule:{event_id}", "schedule", RetrainRequest(), context)


@event_source(data_class=S3Event)
def on_new_ratings(event: S3Event, context: Any) -> dict[str, Any]:
    """New ratings landed under data/: train on that folder; key = bucket/key/etag."""
    results = []
    for record in event.records:
        bucket, obj = record.s3.bucket.name, record.s3.get_object
        key = urllib.parse.unquote_plus(obj.key)  # S3 notifications URL-encode keys
        etag = obj.etag or obj.get("sequencer", "")
        folder = key.rsplit("/", 1)[0] if "/" in key else ""
        req = RetrainRequest(data_uri=f"s3://{bucket}/{folder}" if folder else f"s3://{bucket}")
        results.append(submit(f"s3:{bucket}/{key}:{etag}", "s3", req, context))
    return {"submitted": results}


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point: HTTP API routes (app), the EventBridge schedule, S3 "new ratings" events."""
    if "http" in (event.get("requestContext") or {}):
        return app.resolve(event, context)
    if event.get("source") == "aws.events" or event.get("detail-type") == "Scheduled Event":
        return on_schedule(event, context)
    if event.get("Records") and event["Records"][0].get("eventSource") == "aws:s3":
        return on_new_ratings(event, context)
    raise ValueError(f"unsupported event (keys: {sorted(event)[:10]})")
