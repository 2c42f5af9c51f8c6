"""Loader operations beyond the happy path: concurrent duplicate events, transient-error retries, the
structured log lines, the real `python -m handlers.loader` CLI with its progress bar, and MySQL credentials
from Secrets Manager (moto over HTTP) - all against real MariaDB and Milvus Lite."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from handlers import loader
from shared.config.settings import clear_settings_cache, get_settings
from shared.stores.milvus.store import StoreUnavailable, VectorStore, close_all_clients
from shared.stores.mysql.store import MetadataStore
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER
from tests.helpers.factories import make_run

pytestmark = pytest.mark.usefixtures("fresh_loader")

REPO = Path(__file__).resolve().parents[3]


def test_event_while_another_loader_holds_the_run_is_busy_not_failed(stores: Any, tmp_path: Path) -> None:
    meta, vs = stores
    run = make_run(str(tmp_path / "runs"), n_movies=40, n_users=5)
    other = MetadataStore.from_settings(get_settings())  # "another Lambda container"
    with other.run_lock(run.run_id) as held:
        assert held
        res = loader.load_run(run.manifest_uri)
        assert res.outcome == "busy" and res.transient and "another loader" in (res.reason or "")
        assert meta.get_run(run.run_id) is None  # nothing written, in particular not marked failed
        with pytest.raises(RuntimeError, match="transient"):  # Lambda retries the event later
            loader.handler({"manifest_uri": run.manifest_uri}, None)
    other.close()
    assert loader.load_run(run.manifest_uri).outcome == "live"  # the retry
    assert loader.load_run(run.manifest_uri).outcome == "noop"  # and its duplicate


def test_same_event_delivered_twice_at_once_loads_once(stores: Any, tmp_path: Path) -> None:
    """Two loaders (own MySQL connections) race on one manifest: one live run, no duplicate vectors."""
    meta, vs = stores
    run = make_run(str(tmp_path / "runs"), n_movies=300, n_users=20)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def worker() -> None:
        own = MetadataStore.from_settings(get_settings())
        try:
            start.wait()
            outcomes.append(loader.load_run(run.manifest_uri, meta=own, vectors=VectorStore.from_settings(get_settings())).outcome)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert outcomes.count("live") == 1 and set(outcomes) <= {"live", "busy", "noop"}, outcomes
    assert vs.count(run.run_id) == 300 and meta.count_movies(run.run_id) == 300
    assert [r.status for r in meta.list_runs()] == ["live"]


def test_transient_store_error_is_retried_with_backoff(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta, vs = stores
    run = make_run(str(tmp_path / "runs"), n_movies=60, n_users=5)
    sleeps: list[float] = []
    monkeypatch.setattr(time, "sleep", sleeps.append)
    real = VectorStore.insert_prepared
    failures = {"left": 2}

    def blip(self: VectorStore, run_id: str, prepared: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise StoreUnavailable("Milvus unavailable during insert: connection reset")
        real(self, run_id, prepared)

    monkeypatch.setattr(VectorStore, "insert_prepared", blip)
    res = loader.load_run(run.manifest_uri)
    assert res.outcome == "live", res.reason
    assert sleeps == [0.01, 0.02]  # exponential backoff between the attempts
    assert vs.count(run.run_id) == 60


def test_log_lines_are_json_with_run_id_counts_and_timings(stores: Any, tmp_path: Path) -> None:
    run = make_run(str(tmp_path / "runs"), n_movies=50, n_users=6)
    stream = io.StringIO()
    old = loader.logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        assert loader.load_run(run.manifest_uri).outcome == "live"
        bad = make_run(str(tmp_path / "runs"), n_movies=50, n_users=6, seed=3)
        Path(bad.run_uri, "movies.parquet").unlink()
        assert loader.load_run(bad.manifest_uri).outcome == "failed"
    finally:
        loader.logger.registered_handler.setStream(old)  # type: ignore[attr-defined]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]  # every line is JSON
    by_msg = {r["message"]: r for r in lines if r.get("run_id") == run.run_id}
    assert {"load requested", "run validated", "run is live"} <= set(by_msg)
    live = by_msg["run is live"]
    assert live["level"] == "INFO" and live["service"] == "graphrec"
    assert live["counts"] == {"embeddings": 50, "movies": 50, "users": 6}
    assert {"validate", "mysql", "milvus", "total"} <= set(live["seconds"])
    assert by_msg["run validated"]["embeddings"] == 50 and by_msg["run validated"]["dim"] == 16
    failed = [r for r in lines if r.get("run_id") == bad.run_id and r["level"] == "ERROR"]
    assert failed and "missing" in failed[0]["reason"] and failed[0]["message"] == "load failed; live run unchanged"


def test_cli_module_shows_progress_and_lists_runs(stores: Any, tmp_path: Path) -> None:
    """`python -m handlers.loader MANIFEST` in a real process: tqdm bars on stderr, JSON result on stdout."""
    run = make_run(str(tmp_path / "runs"), n_movies=80, n_users=10)
    loader.reset_stores()
    close_all_clients()  # hand the Milvus Lite file to the child process
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRAPHREC_LOG_LEVEL": "WARNING"}
    proc = subprocess.run(
        [sys.executable, "-m", "handlers.loader", run.manifest_uri],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outcome"] == "live"
    for bar, n in (("movies -> MySQL", 80), ("histories -> MySQL", 10), ("vectors -> Milvus", 80)):
        assert re.search(rf"{bar}: 100%.*{n}(\.0)?/{n}(\.0)?", proc.stderr), proc.stderr
    listing = subprocess.run(
        [sys.executable, "-m", "handlers.loader", "--list"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert listing.returncode == 0 and run.run_id in listing.stdout and "live" in listing.stdout


def test_mysql_credentials_from_secrets_manager(
    moto_endpoint: str, mysql_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the secret (in moto's Secrets Manager over HTTP) knows the real MariaDB coordinates."""
    secret = {"host": MYSQL_HOST, "port": MYSQL_PORT, "username": MYSQL_USER, "password": MYSQL_PASSWORD,
              "dbname": mysql_database, "engine": "mysql"}  # fmt: skip
    arn = boto3.client("secretsmanager").create_secret(Name="graphrec/loader", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("GRAPHREC_MYSQL_SECRET_ARN", arn)
    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", "9")  # the plain settings point nowhere
    monkeypatch.setenv("GRAPHREC_MYSQL_DATABASE", "not_this_one")
    clear_settings_cache()
    run = make_run(str(tmp_path / "runs"), n_movies=30, n_users=4)
    out = loader.handler({"manifest_uri": run.manifest_uri}, None)["results"][0]
    assert out["outcome"] == "live", out["reason"]
    check = MetadataStore({"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER,
                           "password": MYSQL_PASSWORD, "database": mysql_database})  # fmt: skip
    try:
        assert check.live_run().run_id == run.run_id  # type: ignore[union-attr]
        assert check.count_movies(run.run_id) == 30
    finally:
        check.close()
