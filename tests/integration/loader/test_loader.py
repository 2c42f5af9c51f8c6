"""The loader end to end: S3 events over real HTTP (moto server), real MariaDB, real Milvus Lite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers import loader
from shared.config.settings import Settings, clear_settings_cache, get_settings
from shared.contract import artifacts, objectstore
from shared.contract.artifacts import collection_name, new_run_id
from shared.stores.milvus.store import StoreUnavailable, VectorStore, close_all_clients
from shared.stores.mysql.store import MetadataStore
from tests.helpers.factories import FakeRun, make_run

pytestmark = pytest.mark.usefixtures("fresh_loader")

REPO = Path(__file__).resolve().parents[3]


def s3_event(bucket: str, *keys: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """The shape S3 really sends: one record per object, keys URL-encoded (spaces as '+')."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-11-23T09:15:00.000Z",
                "eventName": event_name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                    "object": {"key": urllib.parse.quote_plus(k, safe="/"), "size": 1, "eTag": "x"},
                },
            }
            for k in keys
        ]
    }


def key_of(uri: str) -> str:
    return objectstore.split_s3(uri)[1]


@pytest.fixture
def runs_uri(s3_bucket: str) -> str:
    return f"s3://{s3_bucket}/runs v1"  # a space: keys arrive URL-encoded in the event


def _load(bucket: str, run: FakeRun) -> dict[str, Any]:
    return loader.handler(s3_event(bucket, key_of(run.manifest_uri)), None)["results"][0]


def _statuses(meta: MetadataStore) -> dict[str, str]:
    return {r.run_id: r.status for r in meta.list_runs()}


def test_happy_path_s3_event(stores: Any, runs_uri: str, s3_bucket: str) -> None:
    meta, vs = stores
    run = make_run(runs_uri, n_movies=120, n_users=30)
    # Several records: non-manifest objects in the same event are ignored.
    event = s3_event(
        s3_bucket, key_of(run.manifest_uri), key_of(objectstore.join(run.run_uri, artifacts.EMBEDDINGS))
    )
    out = loader.handler(event, None)
    assert len(out["results"]) == 1
    res = out["results"][0]
    assert res["outcome"] == "live" and res["run_id"] == run.run_id and res["previous_live"] is None
    assert res["counts"] == {"embeddings": 120, "movies": 120, "users": 30}
    json.dumps(out)  # Lambda must be able to serialise the result

    assert vs.count(run.run_id) == 120 and meta.count_movies(run.run_id) == 120 and meta.count_users(run.run_id) == 30
    live = meta.live_run()
    assert live is not None and live.run_id == run.run_id and live.counts["embeddings"] == 120
    assert "load" in live.metrics and live.metrics["hr@10"] == 0.5
    assert vs.alias_target() == collection_name(run.run_id)

    # Planted structure: the neighbours of a movie are in its genre cluster.
    q = 7
    hits = vs.search(run.run_id, [run.embeddings[q].tolist()], k=6, exclude_ids=[int(run.movie_ids[q])])[0]
    assert int(run.movie_ids[q]) not in [m for m, _ in hits]
    cluster_of = dict(zip(run.movie_ids.tolist(), run.cluster.tolist(), strict=True))
    assert all(cluster_of[m] == run.cluster[q] for m, _ in hits)
    # Genres/year were joined from movies.parquet into Milvus.
    g = meta.get_movies(run.run_id, [int(run.movie_ids[q])])[int(run.movie_ids[q])].genres
    filtered = vs.search(run.run_id, [run.embeddings[0].tolist()], k=120, genres=[g[0]])[0]
    assert int(run.movie_ids[q]) in [m for m, _ in filtered]
    assert meta.user_history(run.run_id, 1) == run.user_histories[1]


def test_duplicate_event_is_noop(stores: Any, runs_uri: str, s3_bucket: str) -> None:
    meta, vs = stores
    run = make_run(runs_uri)
    assert _load(s3_bucket, run)["outcome"] == "live"
    again = _load(s3_bucket, run)
    assert again["outcome"] == "noop" and "already live" in again["reason"]
    assert vs.count(run.run_id) == 200 and meta.count_movies(run.run_id) == 200
    assert list(_statuses(meta).values()) == ["live"]


def _assert_failed_and_old_live(meta: MetadataStore, vs: VectorStore, good: FakeRun, bad_id: str, needle: str) -> None:
    live = meta.live_run()
    assert live is not None and live.run_id == good.run_id
    rec = meta.get_run(bad_id)
    assert rec is not None and rec.status == "failed" and needle in (rec.reason or "")
    assert vs.alias_target() == collection_name(good.run_id)
    assert vs.count(bad_id) == 0 and meta.count_movies(bad_id) == 0  # partial data cleaned up


def test_corrupted_file_fails_and_live_run_keeps_serving(stores: Any, runs_uri: str, s3_bucket: str) -> None:
    meta, vs = stores
    good = make_run(runs_uri, seed=1)
    assert _load(s3_bucket, good)["outcome"] == "live"
    bad = make_run(runs_uri, seed=2)
    path = objectstore.join(bad.run_uri, artifacts.EMBEDDINGS)
    data = bytearray(objectstore.read_bytes(path))
    data[len(data) // 2] ^= 0xFF  # same size, different content
    objectstore.write_bytes(path, bytes(data))
    res = _load(s3_bucket, bad)
    assert res["outcome"] == "failed" and "sha256" in res["reason"]
    _assert_failed_and_old_live(meta, vs, good, bad.run_id, "sha256")


def test_manifest_missing_file(stores: Any, runs_uri: str, s3_bucket: str) -> None:
    meta, vs = stores
    good = make_run(runs_uri, seed=1)
    _load(s3_bucket, good)
    bad = make_run(runs_uri, seed=2)
    objectstore.s3_client().delete_object(Bucket=s3_bucket, Key=key_of(objectstore.join(bad.run_uri, artifacts.MOVIES)))
    res = _load(s3_bucket, bad)
    assert res["outcome"] == "failed" and "missing" in res["reason"]
    _assert_failed_and_old_live(meta, vs, good, bad.run_id, "missing")


def test_dim_mismatch(stores: Any, runs_uri: str, s3_bucket: str) -> None:
    meta, vs = stores
    good = make_run(runs_uri, seed=1)
    _load(s3_bucket, good)
    bad = make_run(runs_uri, seed=2, dim=16)
    manifest = json.loads(objectstore.read_bytes(bad.manifest_uri))
    manifest["dim"] = 32
    objectstore.write_bytes(bad.manifest_uri, json.dumps(manifest).encode())
    res = _load(s3_bucket, bad)
    assert res["outcome"] == "failed" and "dim=32" in res["reason"]
    _assert_failed_and_old_live(meta, vs, good, bad.run_id, "dim=32")


def _rewrite_embeddings(run: FakeRun, emb: np.ndarray, ids: np.ndarray | None = None) -> None:
    """Replace the embeddings file and re-sign the manifest (a run that is consistent but wrong)."""
    data = artifacts.table_to_parquet_bytes(artifacts.embeddings_table(run.movie_ids if ids is None else ids, emb))
    objectstore.write_bytes(objectstore.join(run.run_uri, artifacts.EMBEDDINGS), data)
    m = json.loads(objectstore.read_bytes(run.manifest_uri))
    m["files"][artifacts.EMBEDDINGS] = {"size": len(data), "sha256": artifacts.sha256_bytes(data)}
    objectstore.write_bytes(run.manifest_uri, json.dumps(m).encode())


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda r: _rewrite_embeddings(r, r.embeddings * 2.0), "norm"),
        (lambda r: _rewrite_embeddings(r, np.where(np.arange(r.dim) == 0, np.nan, r.embeddings)), "non-finite"),
        (lambda r: _rewrite_embeddings(r, r.embeddings, np.r_[r.movie_ids[:-1], 99999]), "not in movies"),
        (lambda r: _rewrite_embeddings(r, r.embeddings, np.r_[r.movie_ids[:-1], r.movie_ids[0]]), "duplicate"),
    ],
    ids=["not-normalised", "nan", "unknown-movie", "duplicate-id"],
)
def test_invalid_vectors_rejected_before_loading(stores: Any, tmp_path: Path, mutate: Any, needle: str) -> None:
    meta, vs = stores
    run = make_run(str(tmp_path / "runs"), n_movies=40)
    mutate(run)
    res = loader.handler({"manifest_uri": run.manifest_uri}, None)["results"][0]
    assert res["outcome"] == "failed" and needle in res["reason"], res["reason"]
    assert meta.get_run(run.run_id).status == "failed"  # type: ignore[union-attr]
    assert vs.list_run_ids() == [] and meta.live_run() is None


def test_crash_mid_load_then_retry(
    stores: Any, runs_uri: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, mysql_settings: Settings
) -> None:
    meta, vs = stores
    good = make_run(runs_uri, seed=1)
    _load(s3_bucket, good)
    monkeypatch.setenv("GRAPHREC_LOAD_BATCH_SIZE", "50")
    clear_settings_cache()
    new = make_run(runs_uri, seed=2)  # 200 movies -> 4 vector batches
    calls = {"n": 0}
    real = VectorStore.insert_prepared

    def flaky(self: VectorStore, run_id: str, prepared: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected crash after half the vectors")
        real(self, run_id, prepared)

    monkeypatch.setattr(VectorStore, "insert_prepared", flaky)
    # An unexpected error counts as transient: the handler raises so that Lambda retries the event.
    with pytest.raises(RuntimeError, match="injected crash"):
        _load(s3_bucket, new)
    assert meta.live_run().run_id == good.run_id  # type: ignore[union-attr]
    assert meta.get_run(new.run_id).status == "failed"  # type: ignore[union-attr]
    assert vs.alias_target() == collection_name(good.run_id)

    monkeypatch.setattr(VectorStore, "insert_prepared", real)
    retry = _load(s3_bucket, new)
    assert retry["outcome"] == "live" and retry["previous_live"] == good.run_id
    assert vs.count(new.run_id) == 200 and meta.count_movies(new.run_id) == 200
    assert _statuses(meta) == {good.run_id: "retired", new.run_id: "live"}


def test_process_killed_mid_load_then_retry(stores: Any, tmp_path: Path, mysql_settings: Settings) -> None:
    """A real SIGKILL in the middle of the vector load: the run stays 'loading', the live run serves,
    and the retry reuses the partial collection (upserts) without duplicates."""
    meta, vs = stores
    good = make_run(str(tmp_path / "runs"), seed=1)
    assert loader.load_run(good.manifest_uri).outcome == "live"
    new = make_run(str(tmp_path / "runs"), seed=2)
    loader.reset_stores()
    close_all_clients()  # hand the Milvus Lite file to the child process
    script = (
        "import os, signal, sys\n"
        "from shared.stores.milvus.store import VectorStore\n"
        "real = VectorStore.insert_prepared\n"
        "n = [0]\n"
        "def dying(self, run_id, prepared):\n"
        "    real(self, run_id, prepared)\n"
        "    n[0] += 1\n"
        "    if n[0] == 2:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "VectorStore.insert_prepared = dying\n"
        "from handlers.loader import main\n"
        "sys.exit(main([sys.argv[1], '--no-progress']))\n"
    )
    env = {**os.environ, "GRAPHREC_LOAD_BATCH_SIZE": "50", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", script, new.manifest_uri], env=env, cwd=REPO, timeout=120)
    assert proc.returncode == -9
    meta, vs = loader.get_stores(get_settings())
    assert meta.get_run(new.run_id).status == "loading"  # type: ignore[union-attr]
    assert 0 < vs.count(new.run_id) < 200
    assert meta.live_run().run_id == good.run_id  # type: ignore[union-attr]

    res = loader.load_run(new.manifest_uri)
    assert res.outcome == "live" and res.previous_live == good.run_id
    assert vs.count(new.run_id) == 200  # upserts on retry: no duplicates
    assert _statuses(meta) == {good.run_id: "retired", new.run_id: "live"}


def test_store_down_is_transient_and_keeps_live(
    stores: Any, runs_uri: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, vs = stores
    good = make_run(runs_uri, seed=1)
    _load(s3_bucket, good)
    new = make_run(runs_uri, seed=2)

    def down(self: VectorStore, run_id: str, prepared: Any) -> None:
        raise StoreUnavailable("Milvus unavailable during insert: connection refused")

    monkeypatch.setattr(VectorStore, "insert_prepared", down)
    with pytest.raises(RuntimeError, match="transient"):
        loader.handler(s3_event(s3_bucket, key_of(new.manifest_uri)), None)  # Lambda will retry the event
    assert meta.live_run().run_id == good.run_id  # type: ignore[union-attr]
    rec = meta.get_run(new.run_id)
    assert rec is not None and rec.status == "failed" and "unavailable" in (rec.reason or "")


def test_mysql_unreachable_raises_for_retry(mysql_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", "9")
    clear_settings_cache()
    with pytest.raises(StoreUnavailable):
        loader.handler({"manifest_uri": "/nowhere/20261123T091500Z_1a2b3c4d/manifest.json"}, None)


def test_rollback_and_keep_runs_pruning(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    meta, vs = stores
    monkeypatch.setenv("GRAPHREC_KEEP_RUNS", "1")
    clear_settings_cache()
    runs = [make_run(str(tmp_path / "runs"), seed=i, n_movies=30, n_users=5) for i in range(3)]
    for r in runs:
        assert loader.load_run(r.manifest_uri).outcome == "live"
    a, b, c = (r.run_id for r in runs)
    st = {r.run_id: (r.status, r.reason) for r in meta.list_runs()}
    assert st[c] == ("live", None) and st[b] == ("retired", None) and st[a] == ("retired", loader.PRUNED)
    assert vs.list_run_ids() == sorted([b, c]) and meta.count_movies(a) == 0

    assert loader.main(["--rollback"]) == 0
    assert f"live: {b} (was {c})" in capsys.readouterr().out
    assert meta.live_run().run_id == b and vs.alias_target() == collection_name(b)  # type: ignore[union-attr]
    # A pruned run comes back when named: re-ingested from its folder, then switched live (issue 10).
    assert loader.rollback(meta, vs, to=a) == (a, b)
    assert meta.live_run().run_id == a and vs.alias_target() == collection_name(a)  # type: ignore[union-attr]
    assert vs.count(a) == 30 and meta.count_movies(a) == 30 and meta.count_users(a) == 5
    # GRAPHREC_KEEP_RUNS=1: b (just left) is kept, c was pruned by that load; plain --rollback picks b.
    assert loader.rollback(meta, vs) == (b, a)

    assert loader.main(["--list"]) == 0
    listing = capsys.readouterr().out
    assert c in listing and "*alias" in listing and "pruned" in listing


def test_cli_load_latest_and_help(stores: Any, mysql_settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    meta, _ = stores
    # Run ids sort by their UTC second; two runs made in the same second would tie, so date them apart.
    older_id = new_run_id(datetime(2026, 1, 1, tzinfo=UTC))
    make_run(mysql_settings.artifact_uri, seed=1, n_movies=20, n_users=4, run_id=older_id)
    newest = make_run(mysql_settings.artifact_uri, seed=2, n_movies=20, n_users=4)
    assert loader.main(["--latest", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == newest.run_id
    assert meta.live_run().run_id == newest.run_id  # type: ignore[union-attr]
    assert loader.main([newest.run_uri, "--no-progress"]) == 0  # folder form; already live -> noop
    assert json.loads(capsys.readouterr().out)["outcome"] == "noop"
    with pytest.raises(SystemExit) as exc:
        loader.main(["--help"])
    assert exc.value.code == 0
    assert "--rollback" in capsys.readouterr().out
