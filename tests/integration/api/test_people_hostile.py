"""Issue 20 regressions, as a hostile reviewer tried them: forget me is final, events are never silently
lost, input never makes a 5xx. Real MariaDB + Milvus (both backends, tests/integration/api/conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from mangum import Mangum

from handlers.api_app import create_app, deps
from shared.config.settings import clear_settings_cache
from shared.stores.mysql.people import NEW_USER_BASE
from tests.helpers.live import LiveRun, http_api_event, invoke
from tests.integration.api.test_people_api import Call, api, event, events_rows, post, sign_in  # noqa: F401


def test_keys_differing_only_in_case_are_two_events(api: Call, live: LiveRun) -> None:  # noqa: F811
    token, user_id = sign_in(api, "Casey")
    a, b = (int(m) for m in live.run.movie_ids[:2])
    status, _, out = post(api, token, {**event(a), "idempotency_key": "CaseKey-AbCdEf"}, {**event(b), "idempotency_key": "casekey-abcdef"})
    assert (status, out["accepted"], out["duplicates"]) == (200, 2, 0)
    assert events_rows(user_id) == 2


def test_a_key_reused_for_a_different_event_is_409_naming_it(api: Call, live: LiveRun) -> None:  # noqa: F811
    token, user_id = sign_in(api, "Reuser")
    a = int(live.run.movie_ids[0])
    like = {**event(a), "timestamp": "2026-01-01T10:00:00.123+01:00"}
    assert post(api, token, like)[2]["accepted"] == 1
    assert post(api, token, dict(like))[2] == {"user_id": user_id, "accepted": 0, "duplicates": 1}  # same body
    status, _, out = post(api, token, {**like, "type": "unlike"})
    assert status == 409 and out["idempotency_key"] == like["idempotency_key"] and like["idempotency_key"] in out["detail"]
    assert events_rows(user_id) == 1


@pytest.mark.parametrize(
    ("timestamp", "named"),
    [
        ("0001-01-01T00:00:00+01:00", "before 1995"),
        ("9999-12-31T23:59:59-01:00", "future"),
        ("1994-12-31T23:59:59Z", "before 1995"),
        (-62135596800, "numbers are refused"),
        (1767225600, "numbers are refused"),
        ("1767225600", "RFC 3339"),
        ("2026-01-01 10:00:00Z", "RFC 3339"),
    ],
)
def test_timestamps_out_of_range_or_format_are_422_and_spend_no_budget(
    api: Call, live: LiveRun, timestamp: Any, named: str  # noqa: F811
) -> None:
    token, user_id = sign_in(api, "Timey")
    status, _, out = post(api, token, {**event(int(live.run.movie_ids[0])), "timestamp": timestamp})
    assert status == 422 and named in out["detail"], out
    assert events_rows(user_id) == 0


def test_names_of_spaces_are_refused_and_long_cognito_names_are_cut(live: LiveRun, monkeypatch: pytest.MonkeyPatch, api: Call) -> None:  # noqa: F811
    status, _, out = api("POST", "/auth/dev/sign-in", body={"name": "   "})
    assert status == 422 and "only spaces" in out["detail"]
    monkeypatch.setenv("GRAPHREC_AUTH_MODE", "cognito")
    clear_settings_cache()
    deps.reset_caches()
    handler = Mangum(create_app(), lifespan="off")
    e = http_api_event("POST", "/events", body={"events": [event(int(live.run.movie_ids[0]))]})
    claims = {"sub": uuid.uuid4().hex, "email": "a" * 300 + "@example.com", "iat": "1800000000"}
    e["requestContext"]["authorizer"] = {"jwt": {"claims": claims}}
    assert invoke(handler, e)[0] == 200
    me = http_api_event("GET", "/users/me")
    me["requestContext"]["authorizer"] = {"jwt": {"claims": claims}}
    status, _, out = invoke(handler, me)
    assert status == 200 and out["name"] == "a" * 255


def test_reads_create_no_profile_and_person_ids_are_404_to_everyone_else(api: Call, live: LiveRun) -> None:  # noqa: F811
    reader, _ = sign_in(api, "Reader")
    status, _, me = api("GET", "/users/me", token=reader)
    owner, owner_id = sign_in(api, "Owner")
    post(api, owner, event(int(live.run.movie_ids[0])))
    assert api("GET", f"/users/{owner_id}/recommendations", token=owner)[0] == 200

    def body(path: str, token: str | None = None) -> tuple[int, str]:
        code, _, out = api("GET", path, token=token)
        return code, out["detail"].replace(path.split("/")[2], "ID")

    never = body(f"/users/{NEW_USER_BASE + 987654}/recommendations")
    assert never[0] == 404
    assert body(f"/users/{owner_id}/recommendations") == never  # anonymous: same as an id that never existed
    assert body(f"/users/{owner_id}/recommendations", reader) == never  # another person: the same
    api("DELETE", "/users/me", token=owner)
    again, _ = sign_in(api, "Other")
    assert body(f"/users/{owner_id}/recommendations", again) == never  # forgotten: the same


def test_sign_out_refuses_older_tokens_only(api: Call, live: LiveRun) -> None:  # noqa: F811
    old, user_id = sign_in(api, "Leaver")
    post(api, old, event(int(live.run.movie_ids[0])))
    assert api("POST", "/auth/sign-out", token=old)[0] == 204
    assert api("GET", "/users/me", token=old)[0] == 401
    assert post(api, old, event(int(live.run.movie_ids[1])))[0] == 401
    new, same = sign_in(api, "Leaver")
    assert same == user_id and api("GET", "/users/me", token=new)[2]["liked"] == [int(live.run.movie_ids[0])]
