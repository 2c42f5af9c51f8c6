"""handlers/retrain/app.py against moto's HTTP server: real Batch API calls (submit/describe/list), real DynamoDB
idempotency records. Only Batch *execution* is emulated (moto marks jobs SUCCEEDED, or FAILED on request).
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local_cloud import configure_moto, create_batch_resources, create_idempotency_table
from infra.sam_local import LambdaContext
from shared.config.settings import clear_settings_cache

EVENTS = Path(__file__).resolve().parents[3] / "events"


def _event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


@pytest.fixture
def batch(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Queue + GPU job definition + idempotency table in moto; env set the way template.yaml sets it."""
    from handlers.retrain import app as retrain

    configure_moto(moto_endpoint)
    arns = create_batch_resources(
        queue="graphrec-test-gpu",
        job_definition="graphrec-test-train",
        data_uri="s3://defaults/data",
        output_uri="s3://defaults/runs",
        events_uri="s3://defaults/events/events.csv",
    )
    table = create_idempotency_table(f"idem-{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("GRAPHREC_TRAINING_JOB_QUEUE", arns["job_queue"])
    monkeypatch.setenv("GRAPHREC_TRAINING_JOB_DEFINITION", arns["job_definition"])
    monkeypatch.setenv("GRAPHREC_TRAINING_DEFAULT_EPOCHS", "7")
    monkeypatch.setenv("GRAPHREC_TRAINING_MAX_MINUTES", "30")
    monkeypatch.setenv("GRAPHREC_IDEMPOTENCY_TABLE", table)
    monkeypatch.setenv("GRAPHREC_DATA_URI", "s3://bucket/data/ml-1m")
    monkeypatch.setenv("GRAPHREC_ARTIFACT_URI", "s3://bucket/runs")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "RetrainFunction")
    clear_settings_cache()
    retrain.clear_clients()
    yield {**arns, "table": table}
    retrain.clear_clients()


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    from handlers.retrain import app as retrain

    return retrain.handler(event, LambdaContext(function_name="RetrainFunction", timeout_seconds=30))


def _post(body: Any, key: str | None = None, raw: str | None = None) -> dict[str, Any]:
    event = _event("retrain_post.json")
    event["body"] = raw if raw is not None else json.dumps(body)
    event["headers"].pop("idempotency-key", None)
    if key is not None:
        event["headers"]["idempotency-key"] = key
    return _invoke(event)


def _jobs(queue: str) -> list[dict[str, Any]]:
    client = boto3.client("batch")
    ids = [j["jobId"] for j in client.list_jobs(jobQueue=queue, jobStatus="SUCCEEDED")["jobSummaryList"]]
    ids += [j["jobId"] for j in client.list_jobs(jobQueue=queue, jobStatus="FAILED")["jobSummaryList"]]
    return client.describe_jobs(jobs=ids)["jobs"] if ids else []


def test_post_submits_gpu_job_with_definition_queue_and_parameters(batch: dict[str, str]) -> None:
    resp = _post({"data_uri": "s3://bucket/data/new", "epochs": 3, "max_minutes": 12.5}, key="k-1")
    assert resp["statusCode"] == 202, resp
    body = json.loads(resp["body"])
    jobs = _jobs(batch["job_queue"])
    assert [j["jobId"] for j in jobs] == [body["job_id"]]
    job = jobs[0]
    assert job["jobQueue"] == batch["job_queue"]
    assert job["jobDefinition"] == batch["job_definition"]
    # explicit values win, the rest comes from settings (not from the job definition's defaults), except
    # events_uri: without GRAPHREC_EVENTS_EXPORT_URI it is not passed, and Batch uses the job definition's default
    assert job["parameters"] == {
        "data_uri": "s3://bucket/data/new",
        "output_uri": "s3://bucket/runs",
        "epochs": "3",
        "max_minutes": "12.5",
        "events_uri": "s3://defaults/events/events.csv",
    }
    env = {e["name"]: e["value"] for e in job["container"]["environment"]}
    assert env["RETRAIN_TRIGGER"] == "api" and env["RETRAIN_JOB_NAME"] == body["job_name"]
    (jd,) = boto3.client("batch").describe_job_definitions(jobDefinitions=[job["jobDefinition"]])[
        "jobDefinitions"
    ]
    gpu = [r for r in jd["containerProperties"]["resourceRequirements"] if r["type"] == "GPU"]
    assert gpu == [{"type": "GPU", "value": "1"}]


def test_defaults_come_from_settings(batch: dict[str, str]) -> None:
    resp = _post(None, raw="", key="empty-body")
    assert resp["statusCode"] == 202, resp
    params = json.loads(resp["body"])["parameters"]
    assert params == {
        "data_uri": "s3://bucket/data/ml-1m",
        "output_uri": "s3://bucket/runs",
        "epochs": "7",
        "max_minutes": "30",
    }


def test_same_idempotency_key_twice_submits_one_job(batch: dict[str, str]) -> None:
    first = json.loads(_post({"epochs": 2}, key="retry-me")["body"])
    second = _post({"epochs": 2}, key="retry-me")
    assert second["statusCode"] == 202
    assert json.loads(second["body"])["job_id"] == first["job_id"]
    assert len(_jobs(batch["job_queue"])) == 1
    other = json.loads(_post({"epochs": 2}, key="another-key")["body"])
    assert other["job_id"] != first["job_id"]
    assert len(_jobs(batch["job_queue"])) == 2


def test_retry_without_key_is_deduplicated_by_body(batch: dict[str, str]) -> None:
    a = json.loads(_post({"epochs": 4})["body"])
    b = json.loads(_post({"epochs": 4})["body"])
    c = json.loads(_post({"epochs": 5})["body"])
    assert a["job_id"] == b["job_id"] != c["job_id"]
    assert len(_jobs(batch["job_queue"])) == 2


def test_same_key_with_different_parameters_is_rejected(batch: dict[str, str]) -> None:
    assert _post({"epochs": 2}, key="k")["statusCode"] == 202
    resp = _post({"epochs": 9}, key="k")
    assert resp["statusCode"] == 422
    assert "different parameters" in json.loads(resp["body"])["detail"]
    assert len(_jobs(batch["job_queue"])) == 1


def test_lost_idempotency_record_still_does_not_resubmit(batch: dict[str, str]) -> None:
    """A Lambda that died after SubmitJob but before saving its record: the job-name check catches it."""
    first = json.loads(_post({"epochs": 2}, key="crash")["body"])
    ddb = boto3.client("dynamodb")
    for item in ddb.scan(TableName=batch["table"])["Items"]:
        ddb.delete_item(TableName=batch["table"], Key={"id": item["id"]})
    again = json.loads(_post({"epochs": 2}, key="crash")["body"])
    assert again["job_id"] == first["job_id"]
    assert len(_jobs(batch["job_queue"])) == 1


@pytest.mark.parametrize(
    ("raw", "status", "needle"),
    [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 422, "JSON object"),
        (json.dumps({"epochs": 0}), 422, "epochs"),
        (json.dumps({"epochs": "3"}), 422, "epochs"),
        (json.dumps({"data_uri": "/tmp/local"}), 422, "data_uri"),
        (json.dumps({"epoch": 3}), 422, "epoch"),
    ],
)
def test_invalid_body_is_4xx_and_submits_nothing(
    batch: dict[str, str], raw: str, status: int, needle: str
) -> None:
    resp = _post(None, raw=raw, key=f"bad-{uuid.uuid4().hex[:6]}")
    assert resp["statusCode"] == status, resp
    assert needle in resp["body"]
    assert _jobs(batch["job_queue"]) == []


def test_request_without_iam_identity_is_refused(batch: dict[str, str]) -> None:
    """Fail closed if the route ever lost its AWS_IAM authorizer: nothing is submitted or reported."""
    event = _event("retrain_post.json")
    del event["requestContext"]["authorizer"]
    resp = _invoke(event)
    assert resp["statusCode"] == 403 and "IAM" in resp["body"]
    assert _jobs(batch["job_queue"]) == []
    status = _event("retrain_get.json")
    status["requestContext"]["authorizer"] = {"jwt": {"claims": {}}}
    assert _invoke(status)["statusCode"] == 403


def test_bad_idempotency_key_is_400(batch: dict[str, str]) -> None:
    resp = _post({"epochs": 2}, key="has space")
    assert resp["statusCode"] == 400
    assert _jobs(batch["job_queue"]) == []


def test_base64_body_is_decoded(batch: dict[str, str]) -> None:
    event = _event("retrain_post.json")
    event["body"] = base64.b64encode(json.dumps({"epochs": 6}).encode()).decode()
    event["isBase64Encoded"] = True
    resp = _invoke(event)
    assert resp["statusCode"] == 202
    assert json.loads(resp["body"])["parameters"]["epochs"] == "6"


def test_get_status_reports_the_job(batch: dict[str, str]) -> None:
    job_id = json.loads(_post({"epochs": 2}, key="status")["body"])["job_id"]
    event = _event("retrain_get.json")
    event["pathParameters"] = {"job_id": job_id}
    event["rawPath"] = f"/retrain/{job_id}"
    resp = _invoke(event)
    assert resp["statusCode"] == 200
    body = json.loads(resp["body"])
    assert body["job_id"] == job_id and body["status"] == "SUCCEEDED"
    assert body["parameters"]["epochs"] == "2"


def test_get_status_of_failed_job(batch: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")  # read by the in-process moto server
    job_id = json.loads(_post({"epochs": 2}, key="fails")["body"])["job_id"]
    event = _event("retrain_get.json")
    event["pathParameters"] = {"job_id": job_id}
    assert json.loads(_invoke(event)["body"])["status"] == "FAILED"


def test_get_unknown_or_foreign_job_is_404(batch: dict[str, str]) -> None:
    event = _event("retrain_get.json")
    event["pathParameters"] = {"job_id": "00000000-0000-4000-8000-000000000000"}
    assert _invoke(event)["statusCode"] == 404
    # a job on another queue is not ours to report
    other = create_batch_resources(queue="someone-else", job_definition="other-def")
    foreign = boto3.client("batch").submit_job(
        jobName="x", jobQueue=other["job_queue"], jobDefinition=other["job_definition"]
    )["jobId"]
    event["pathParameters"] = {"job_id": foreign}
    assert _invoke(event)["statusCode"] == 404
    event["pathParameters"] = {"job_id": "bad id!"}
    assert _invoke(event)["statusCode"] == 400


def test_schedule_event_submits_once_per_event_id(batch: dict[str, str]) -> None:
    event = _event("retrain_schedule.json")
    first = _invoke(event)
    assert first["trigger"] == "schedule"
    assert first["parameters"]["epochs"] == "7"
    assert _invoke(event)["job_id"] == first["job_id"]  # EventBridge redelivery
    event["id"] = str(uuid.uuid4())  # next week's schedule
    assert _invoke(event)["job_id"] != first["job_id"]
    jobs = _jobs(batch["job_queue"])
    assert len(jobs) == 2
    assert {
        e["value"] for j in jobs for e in j["container"]["environment"] if e["name"] == "RETRAIN_TRIGGER"
    } == {"schedule"}


def test_new_ratings_in_s3_trains_on_that_folder(batch: dict[str, str]) -> None:
    event = _event("retrain_s3_new_ratings.json")
    out = _invoke(event)["submitted"]
    assert len(out) == 1
    bucket = event["Records"][0]["s3"]["bucket"]["name"]
    assert out[0]["parameters"]["data_uri"] == f"s3://{bucket}/data/ml-1m"
    assert _invoke(event)["submitted"][0]["job_id"] == out[0]["job_id"]
    assert len(_jobs(batch["job_queue"])) == 1


def test_new_ratings_key_is_url_decoded(batch: dict[str, str]) -> None:
    """S3 notifications URL-encode object keys ('+' for space): the job must get the real folder."""
    event = _event("retrain_s3_new_ratings.json")
    event["Records"][0]["s3"]["object"]["key"] = "data/ml+1m+%28v2%29/ratings.dat"
    (out,) = _invoke(event)["submitted"]
    bucket = event["Records"][0]["s3"]["bucket"]["name"]
    assert out["parameters"]["data_uri"] == f"s3://{bucket}/data/ml 1m (v2)"


def test_batch_misconfiguration_is_502_and_retry_can_succeed(batch: dict[str, str], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from handlers.retrain import app as retrain

    monkeypatch.setenv("GRAPHREC_TRAINING_JOB_QUEUE", "no-such-queue")
    clear_settings_cache()
    resp = _post({"epochs": 2}, key="later")
    assert resp["statusCode"] == 502 and "Batch" in resp["body"]
    # the failed attempt left no idempotency record behind: fixing the config and retrying submits
    monkeypatch.setenv("GRAPHREC_TRAINING_JOB_QUEUE", batch["job_queue"])
    clear_settings_cache()
    retrain.clear_clients()
    assert _post({"epochs": 2}, key="later")["statusCode"] == 202
    assert len(_jobs(batch["job_queue"])) == 1


def test_unknown_event_is_rejected(batch: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsupported event"):
        _invoke({"hello": "world"})


# ---------------------------------------------------------------------------------------- issue 10
@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"data_uri": "s3://someone-elses-bucket/data/ml-1m"}, "data_uri must be an s3:// URI under s3://bucket/data/"),
        ({"data_uri": "s3://bucket/secrets/keys"}, "data_uri must be"),
        ({"data_uri": "s3://bucket/data/../secrets"}, "data_uri must be"),
        ({"data_uri": "s3://bucket/database"}, "data_uri must be"),  # a sibling sharing the prefix's text
        ({"output_uri": "s3://bucket/elsewhere"}, "output_uri must be an s3:// URI under s3://bucket/runs/"),
        ({"output_uri": "s3://other/runs"}, "output_uri must be"),
    ],
)
def test_uris_outside_the_configured_prefixes_are_refused(
    batch: dict[str, str], body: dict[str, str], needle: str
) -> None:
    resp = _post(body, key=f"prefix-{uuid.uuid4().hex[:6]}")
    assert resp["statusCode"] == 422, resp
    assert needle in json.loads(resp["body"])["detail"]
    assert _jobs(batch["job_queue"]) == []


def test_uris_inside_the_configured_prefixes_are_accepted(batch: dict[str, str]) -> None:
    resp = _post({"data_uri": "s3://bucket/data/ml-1m-v2", "output_uri": "s3://bucket/runs/experiments"})
    assert resp["statusCode"] == 202, resp
    assert json.loads(resp["body"])["parameters"]["output_uri"] == "s3://bucket/runs/experiments"


@pytest.mark.parametrize("body", ["eyJlcG9jaHMiOiA2fQ==!!", "not base64 at all", "e30"])
def test_invalid_base64_body_is_400_and_submits_nothing(batch: dict[str, str], body: str) -> None:
    event = _event("retrain_post.json")
    event["body"] = body
    event["isBase64Encoded"] = True
    resp = _invoke(event)
    assert resp["statusCode"] == 400 and "base64" in resp["body"]
    assert _jobs(batch["job_queue"]) == []


@pytest.mark.parametrize("max_minutes", [12.5, 1440])
def test_attempt_timeout_covers_the_training_budget(batch: dict[str, str], max_minutes: float) -> None:
    """The job definition's attempt timeout (template: 21,600 s) is shorter than the largest budget the
    API accepts (1,440 min): every SubmitJob carries its own timeout = budget + overhead."""
    from handlers.retrain import app as retrain

    resp = _post({"max_minutes": max_minutes}, key=f"timeout-{max_minutes}")
    assert resp["statusCode"] == 202, resp
    (job,) = _jobs(batch["job_queue"])
    seconds = job["timeout"]["attemptDurationSeconds"]
    assert seconds == int(max_minutes * 60) + retrain.JOB_OVERHEAD_SECONDS
    assert seconds > max_minutes * 60
    if max_minutes == 1440:
        assert seconds > 21_600


def test_events_export_is_passed_to_the_job_when_configured(
    batch: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """GRAPHREC_EVENTS_EXPORT_URI set (as the template sets it): every job gets `events_uri`, which the job
    definition's command passes as --events-uri; unset: the parameter is left to the job definition."""
    from handlers.retrain import app as retrain

    monkeypatch.setenv("GRAPHREC_EVENTS_EXPORT_URI", "s3://bucket/events/events.csv")
    clear_settings_cache()
    retrain.clear_clients()
    scheduled = _invoke(_event("retrain_schedule.json"))
    assert scheduled["parameters"]["events_uri"] == "s3://bucket/events/events.csv"
    (job,) = _jobs(batch["job_queue"])
    assert job["parameters"]["events_uri"] == "s3://bucket/events/events.csv"
    command = job["container"]["command"]
    assert command[command.index("--events-uri") + 1] == "Ref::events_uri"

    monkeypatch.delenv("GRAPHREC_EVENTS_EXPORT_URI")
    clear_settings_cache()
    params = json.loads(_post({"epochs": 3}, key="no-export")["body"])["parameters"]
    assert "events_uri" not in params


def test_jobs_are_submitted_by_job_definition_name_so_a_stack_update_does_not_break_retraining(
    batch: dict[str, str],
) -> None:
    """Issue 19: a stack update registers a new job-definition revision and deregisters the old one. The
    function is configured by name (template.yaml), and even given a revision ARN it submits by name, so
    the job runs on the latest active revision instead of failing on the deregistered one."""
    from handlers.retrain.app import job_definition_name

    assert job_definition_name("graphrec-prod-train") == "graphrec-prod-train"
    assert job_definition_name("graphrec-prod-train:3") == "graphrec-prod-train"
    assert job_definition_name("arn:aws:batch:eu-west-1:123456789012:job-definition/graphrec-prod-train:3") == (
        "graphrec-prod-train"
    )
    client = boto3.client("batch")
    (old,) = client.describe_job_definitions(jobDefinitions=[batch["job_definition"]])["jobDefinitions"]
    new = client.register_job_definition(
        jobDefinitionName=old["jobDefinitionName"], type="container", containerProperties=old["containerProperties"],
        parameters=old["parameters"], platformCapabilities=["EC2"],
    )  # fmt: skip
    client.deregister_job_definition(jobDefinition=batch["job_definition"])  # what CloudFormation does
    resp = _post({"epochs": 2}, key="after-stack-update")
    assert resp["statusCode"] == 202, resp
    body = json.loads(resp["body"])
    assert body["job_definition"] == old["jobDefinitionName"]
    (job,) = [j for j in _jobs(batch["job_queue"]) if j["jobId"] == body["job_id"]]
    assert job["jobDefinition"] == new["jobDefinitionArn"]
