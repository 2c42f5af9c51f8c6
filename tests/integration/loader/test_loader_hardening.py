"""Issue 10 regressions for the loader, against real MariaDB and Milvus Lite: runs that would break serving
never go live, a pruned run can come back, bad data is a permanent named failure, logs stay off stdout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from handlers import loader
from handlers.loader import validation
from shared.config.settings import clear_settings_cache
from shared.contract import artifacts
from shared.contract.artifacts import collection_name
from shared.stores.milvus.store import close_all_clients
from tests.helpers.factories import FakeRun, make_run

pytestmark = pytest.mark.usefixtures("fresh_loader")

REPO = Path(__file__).resolve().parents[3]


def write_run(
    output: str,
    movie_ids: list[int],
    *,
    titles: list[str] | None = None,
    years: list[int | None] | None = None,
    users: dict[int, list[int]] | None = None,
    dim: int = 8,
) -> str:
    """A run folder with exactly these rows (consistent manifest, checksums and unit vectors); its manifest URI."""
    rng = np.random.default_rng(0)
    n = len(movie_ids)
    emb = rng.normal(size=(n, dim)).astype(np.float32)  # (n, dim)
    emb /= np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    users = {1: movie_ids[:3]} if users is None else users
    writer = artifacts.RunWriter(output)
    writer.write_table(artifacts.EMBEDDINGS, artifacts.embeddings_table(np.asarray(movie_ids, dtype=np.int64), emb))
    writer.write_table(
        artifacts.MOVIES,
        artifacts.movies_table(
            movie_ids,
            titles if titles is not None else [f"Movie {m}" for m in movie_ids],
            years if years is not None else [1990] * n,
            [["Drama"]] * n,
        ),
    )
    writer.write_table(artifacts.USER_HISTORY, artifacts.user_history_table(list(users), list(users.values())))
    writer.write_json(artifacts.METRICS, {})
    writer.write_json(artifacts.CONFIG, {})
    writer.finish(dim=dim, counts=artifacts.Counts(movies=n, users=len(users), embeddings=n))
    return writer.uri(artifacts.MANIFEST)


def _live_id(meta: Any) -> str | None:
    rec = meta.live_run()
    return None if rec is None else str(rec.run_id)


def _assert_refused(res: dict[str, Any], meta: Any, vs: Any, live: FakeRun | None, needle: str) -> None:
    assert res["outcome"] == "failed" and needle in res["reason"], res["reason"]
    assert res["transient"] is False  # permanent: the Lambda does not raise, the event is not redelivered
    assert meta.get_run(res["run_id"]).status == "failed"
    assert _live_id(meta) == (None if live is None else live.run_id)
    if live is not None:
        assert vs.alias_target() == collection_name(live.run_id)
    assert vs.count(res["run_id"]) == 0 and meta.count_movies(res["run_id"]) == 0


def test_empty_run_never_goes_live(stores: Any, tmp_path: Path) -> None:
    meta, vs = stores
    good = make_run(str(tmp_path / "runs"), n_movies=40, n_users=5)
    assert loader.load_run(good.manifest_uri).outcome == "live"
    empty = write_run(str(tmp_path / "runs"), [], users={})
    res = loader.handler({"manifest_uri": empty}, None)["results"][0]  # returns: not a transient failure
    _assert_refused(res, meta, vs, good, "no movies")
    # and it does not count toward GRAPHREC_KEEP_RUNS: the good run is still live with all its data
    assert vs.count(good.run_id) == 40 and meta.count_movies(good.run_id) == 40


def test_run_without_users_or_embeddings_is_refused(stores: Any, tmp_path: Path) -> None:
    meta, vs = stores
    res = loader.load_run(write_run(str(tmp_path / "runs"), [1, 2, 3], users={}))
    _assert_refused(vars(res), meta, vs, None, "no users")


def test_drastically_smaller_run_needs_force(stores: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    meta, vs = stores
    big = make_run(str(tmp_path / "runs"), n_movies=200, n_users=50, seed=1)
    assert loader.load_run(big.manifest_uri).outcome == "live"
    small = make_run(str(tmp_path / "runs"), n_movies=60, n_users=50, seed=2)  # 30% of the live movies
    res = loader.load_run(small.manifest_uri)
    _assert_refused(vars(res), meta, vs, big, "--force")
    assert "RunTooSmall" in (res.reason or "") and "60 movies" in (res.reason or "")
    # 60% is fine without --force; 30% goes live with it (CLI flag)
    assert loader.main([small.manifest_uri, "--force", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "live" and out["previous_live"] == big.run_id
    assert _live_id(meta) == small.run_id and vs.count(small.run_id) == 60


def test_smaller_run_goes_live_by_lambda_with_force(stores: Any, tmp_path: Path) -> None:
    meta, _ = stores
    big = make_run(str(tmp_path / "runs"), n_movies=100, n_users=20, seed=1)
    assert loader.load_run(big.manifest_uri).outcome == "live"
    small = make_run(str(tmp_path / "runs"), n_movies=30, n_users=20, seed=2)
    assert loader.handler({"manifest_uri": small.manifest_uri}, None)["results"][0]["outcome"] == "failed"
    res = loader.handler({"manifest_uri": small.manifest_uri, "force": True}, None)["results"][0]
    assert res["outcome"] == "live" and _live_id(meta) == small.run_id


def test_pruned_run_is_reingested_by_the_cli_and_a_late_event_stays_a_noop(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    meta, vs = stores
    monkeypatch.setenv("GRAPHREC_KEEP_RUNS", "0")  # every retired run is pruned at once
    clear_settings_cache()
    a, b = (make_run(str(tmp_path / "runs"), seed=i, n_movies=30, n_users=5) for i in range(2))
    assert loader.load_run(a.manifest_uri).outcome == "live"
    assert loader.load_run(b.manifest_uri).outcome == "live"
    assert meta.get_run(a.run_id).reason == loader.PRUNED and vs.count(a.run_id) == 0
    # A late duplicate S3 event for the old run must not switch production back.
    late = loader.handler({"manifest_uri": a.manifest_uri}, None)["results"][0]
    assert late["outcome"] == "noop" and "retired" in late["reason"] and _live_id(meta) == b.run_id
    # The operator asking for it by name gets it back: re-ingested from its folder and live.
    assert loader.main([a.manifest_uri, "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["outcome"] == "live" and out["previous_live"] == b.run_id
    assert _live_id(meta) == a.run_id and vs.alias_target() == collection_name(a.run_id)
    assert vs.count(a.run_id) == 30 and meta.count_movies(a.run_id) == 30 and meta.count_users(a.run_id) == 5


def test_complete_retired_run_reload_reuses_its_data(stores: Any, tmp_path: Path) -> None:
    meta, vs = stores
    a, b = (make_run(str(tmp_path / "runs"), seed=i, n_movies=30, n_users=5) for i in range(2))
    for r in (a, b):
        assert loader.load_run(r.manifest_uri).outcome == "live"
    res = loader.load_run(a.manifest_uri, reload=True)
    assert res.outcome == "live" and res.previous_live == b.run_id and "mysql" not in res.seconds  # no re-ingest
    assert _live_id(meta) == a.run_id and vs.count(a.run_id) == 30


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"titles": ["x" * 5000, "b", "c"]}, "title of movie 1 is 5000 characters"),
        ({"years": [1990, 99999, None]}, "movie 2 has year 99999"),
    ],
    ids=["title-5000-chars", "year-99999"],
)
def test_values_the_store_cannot_hold_are_a_permanent_named_failure(
    stores: Any, tmp_path: Path, kwargs: dict[str, Any], needle: str
) -> None:
    meta, vs = stores
    uri = write_run(str(tmp_path / "runs"), [1, 2, 3], **kwargs)
    res = loader.handler({"manifest_uri": uri}, None)["results"][0]  # does not raise: no redelivery
    _assert_refused(res, meta, vs, None, needle)
    assert res["reason"].startswith("RunFormatError")


def test_store_data_error_is_permanent_even_past_validation(
    stores: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Were validation ever to miss a value, MariaDB's own DataError is still a permanent, named failure."""
    meta, vs = stores
    monkeypatch.setattr(validation, "MAX_TITLE_CHARS", 10**6)  # let the long title through to the store
    uri = write_run(str(tmp_path / "runs"), [1, 2, 3], titles=["x" * 5000, "b", "c"])
    res = loader.handler({"manifest_uri": uri}, None)["results"][0]
    _assert_refused(res, meta, vs, None, "DataError")
    assert "bad data, not retried" in res["reason"] and "title" in res["reason"]


@pytest.mark.parametrize(
    ("movie_ids", "users", "needle"),
    [([-5, 1, 2], {1: [1, 2]}, "negative movie_id -5"), ([1, 2, 3], {-7: [1, 2]}, "negative user_id -7")],
    ids=["movie", "user"],
)
def test_negative_ids_are_rejected_at_validation(
    stores: Any, tmp_path: Path, movie_ids: list[int], users: dict[int, list[int]], needle: str
) -> None:
    meta, vs = stores
    res = loader.load_run(write_run(str(tmp_path / "runs"), movie_ids, users=users))
    _assert_refused(vars(res), meta, vs, None, needle)


def test_cli_stdout_is_only_the_result_json_logs_go_to_stderr(stores: Any, tmp_path: Path) -> None:
    run = make_run(str(tmp_path / "runs"), n_movies=30, n_users=5)
    loader.reset_stores()
    close_all_clients()  # hand the Milvus Lite file to the child process
    env = {**os.environ, "PYTHONPATH": str(REPO), "GRAPHREC_LOG_LEVEL": "INFO"}
    proc = subprocess.run(
        [sys.executable, "-m", "handlers.loader", run.manifest_uri, "--no-progress"],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["outcome"] == "live"  # the whole stdout parses: no log lines mixed in
    logged = [json.loads(line)["message"] for line in proc.stderr.splitlines() if line.startswith("{")]
    assert {"load requested", "run validated", "run is live"} <= set(logged)
