"""handlers/retrain/app.py routing through its Powertools resolver, for requests that are answered before any AWS
call (IAM check, unknown routes, body errors), so no services are needed; submission is in
tests/integration/retrain/."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from infra.sam_local import LambdaContext

EVENTS = Path(__file__).resolve().parents[3] / "events"


def _event(name: str) -> dict[str, Any]:
    return copy.deepcopy(json.loads((EVENTS / name).read_text()))


def _invoke(event: dict[str, Any]) -> dict[str, Any]:
    from handlers.retrain import app as retrain

    return retrain.handler(event, LambdaContext(function_name="RetrainFunction", timeout_seconds=30))


def _unknown_route(method: str, path: str) -> dict[str, Any]:
    event = _event("retrain_get.json")
    event["routeKey"] = "$default"
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event.pop("pathParameters")
    return event


def test_unknown_route_is_a_json_404_naming_it() -> None:
    resp = _invoke(_unknown_route("DELETE", "/retrain"))
    assert resp["statusCode"] == 404
    assert json.loads(resp["body"]) == {"detail": "no route DELETE /retrain"}
    assert resp["headers"]["cache-control"] == "no-store"
    assert resp["headers"]["Content-Type"] == "application/json"


def test_unknown_route_without_iam_is_403_not_404() -> None:
    """The IAM check runs before routing: an unsigned caller learns nothing about the routes."""
    event = _unknown_route("GET", "/elsewhere")
    del event["requestContext"]["authorizer"]
    resp = _invoke(event)
    assert resp["statusCode"] == 403 and "IAM" in json.loads(resp["body"])["detail"]


def test_named_stage_prefix_is_routed() -> None:
    """A stage other than $default prefixes rawPath (/prod/retrain): still the POST /retrain route (the
    malformed body is rejected there, before anything is submitted)."""
    event = _event("retrain_post.json")
    event["requestContext"]["stage"] = "prod"
    event["rawPath"] = "/prod/retrain"
    event["body"] = "{not json"
    resp = _invoke(event)
    assert resp["statusCode"] == 400 and "not valid JSON" in resp["body"]


def test_validation_errors_list_every_field() -> None:
    event = _event("retrain_post.json")
    event["body"] = json.dumps({"epochs": 0, "data_uri": "/tmp/x"})
    body = json.loads(_invoke(event)["body"])
    assert body["detail"] == "invalid retrain request"
    assert {tuple(e["loc"]) for e in body["errors"]} == {("epochs",), ("data_uri",)}


def test_scheduled_event_without_id_is_refused() -> None:
    event = _event("retrain_schedule.json")
    del event["id"]
    with pytest.raises(ValueError, match="without an id"):
        _invoke(event)
