"""Event parsing and small pure helpers of the loader (no services needed)."""

from __future__ import annotations

import json
import time

import pytest

from handlers import loader
from shared.stores.milvus.store import StoreUnavailable, VectorStore

RUN = "20261123T091500Z_1a2b3c4d"


def _s3(key: str, bucket: str = "b", name: str = "ObjectCreated:Put") -> dict:
    return {"eventSource": "aws:s3", "eventName": name, "s3": {"bucket": {"name": bucket}, "object": {"key": key}}}


def test_s3_event_keys_are_url_decoded_and_non_manifests_ignored() -> None:
    event = {
        "Records": [
            _s3(f"my+runs/{RUN}/manifest.json"),
            _s3(f"my+runs/{RUN}/item_embeddings.parquet"),
            _s3(f"caf%C3%A9/{RUN}/manifest.json"),
            _s3(f"my+runs/{RUN}/manifest.json"),  # duplicate record
            _s3(f"x/{RUN}/manifest.json", name="ObjectRemoved:Delete"),
        ]
    }
    assert loader.manifest_uris_from_event(event) == [
        f"s3://b/my runs/{RUN}/manifest.json",
        f"s3://b/café/{RUN}/manifest.json",
    ]


def test_wrapped_and_direct_events() -> None:
    inner = {"Records": [_s3(f"runs/{RUN}/manifest.json")]}
    sqs = {"Records": [{"eventSource": "aws:sqs", "body": json.dumps(inner)}]}
    sns = {"Records": [{"EventSource": "aws:sns", "Sns": {"Message": json.dumps(inner)}}]}
    bridge = {"source": "aws.s3", "detail": {"bucket": {"name": "b"}, "object": {"key": f"runs/{RUN}/manifest.json"}}}
    want = [f"s3://b/runs/{RUN}/manifest.json"]
    assert loader.manifest_uris_from_event(sqs) == want
    assert loader.manifest_uris_from_event(sns) == want
    assert loader.manifest_uris_from_event(bridge) == want
    assert loader.manifest_uris_from_event({"manifest_uri": want[0]}) == want
    assert loader.manifest_uris_from_event({}) == []
    assert loader.handler({"Records": [_s3("runs/x/other.json")]}, None) == {"results": []}


def test_loader_event_is_the_handlers_typed_event() -> None:
    """The handler's Powertools data class: direct-invocation flags, EventBridge keys URL-decoded like S3's."""
    direct = loader.LoaderEvent({"manifest_uri": f"s3://b/runs/{RUN}/manifest.json", "force": True})
    assert (direct.force, direct.reload) == (True, False)
    assert loader.LoaderEvent({"force": "yes", "reload": True}).force is False  # only a JSON true counts
    key = f"my+runs/{RUN}/manifest.json"
    bridge = {"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {"name": "b"}, "object": {"key": key}}}
    assert loader.LoaderEvent(bridge).manifest_uris == [f"s3://b/my runs/{RUN}/manifest.json"]


def test_run_id_from_uri() -> None:
    assert loader.run_id_from_uri(f"s3://b/runs/{RUN}/manifest.json") == RUN
    assert loader.run_id_from_uri(f"/tmp/runs/{RUN}") == RUN
    assert loader.run_id_from_uri("s3://b/runs/not-a-run/manifest.json") is None


def test_retry_policy_backs_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 4:
            raise StoreUnavailable("down")
        return "ok"

    assert loader.RetryPolicy(attempts=5, base_seconds=0.5, cap_seconds=1.5).call("op", flaky) == "ok"
    assert sleeps == [0.5, 1.0, 1.5]
    with pytest.raises(StoreUnavailable):
        loader.RetryPolicy(attempts=2, base_seconds=0.1).call("op", lambda: (_ for _ in ()).throw(StoreUnavailable("x")))
    with pytest.raises(KeyError):  # non-transient errors are not retried
        loader.RetryPolicy(attempts=5).call("op", lambda: {}["missing"])


def test_filter_building() -> None:
    assert VectorStore.build_filter([5, 5, 2]) == "movie_id not in [2, 5]"
    assert VectorStore.build_filter(genres=["Sci-Fi", "Action"]) == 'ARRAY_CONTAINS_ANY(genres, ["Action", "Sci-Fi"])'
    assert VectorStore.build_filter([1], []) == "movie_id not in [1]"
    with pytest.raises(ValueError):
        VectorStore.build_filter(["1 or true"])  # type: ignore[list-item]


def test_cli_help_explains(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        loader.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in ("--rollback", "--list", "--latest", "GRAPHREC_MILVUS_URI", "GRAPHREC_KEEP_RUNS"):
        assert word in out
