"""Parity: what the API serves is what the training job evaluated (same ids, same order, same HR@10).

A small realistic-profile dataset is split the way an operator would: each user's latest rating goes to a
held-out file, the rest trains a real (tiny) PinSage run, which the real loader puts live in MariaDB +
Milvus Lite. Then, through the Mangum handler:

1. for every user of the trainer's own test split, `POST /recommendations` with the history the trainer
   scored (oldest first) returns exactly the trainer's ranking, and HR@10 over those answers equals the
   `test.pinsage.hr@10` in metrics.json to the last digit;
2. `python -m training_job evaluate --heldout FILE --handler` (what the deployment serves from each stored
   history via `GET /users/{id}/recommendations`) equals `--run RUN` (what the run folder says it would
   serve), user by user.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mangum import Mangum

from handlers import loader
from handlers.api_app import create_app, deps
from shared.config.settings import Settings
from shared.contract import artifacts
from shared.serving.recipe import ExactIndex, Recipe
from tests.helpers.live import http_api_event, invoke, uvicorn_in_thread
from training_job.data.movielens import load_movielens
from training_job.evaluation import command as score_served
from training_job.evaluation.served import recommend, targets_for
from training_job.model.graph import build
from training_job.synthetic.cli import generate
from training_job.train import TrainConfig, concat, run

pytestmark = pytest.mark.slow


def _hold_out_latest(src: Path, dst: Path, heldout: Path) -> None:
    """Each user's latest rating (ties: the later line) -> heldout; the rest -> dst (same files)."""
    dst.mkdir()
    for name in ("users.dat", "movies.dat"):
        (dst / name).write_bytes((src / name).read_bytes())
    lines = (src / "ratings.dat").read_text(encoding="latin-1").splitlines()
    latest: dict[str, tuple[tuple[int, int], int]] = {}
    for i, line in enumerate(lines):
        user, _, _, ts = line.split("::")
        if user not in latest or (int(ts), i) > latest[user][0]:
            latest[user] = ((int(ts), i), i)
    drop = {i for _, i in latest.values()}
    (dst / "ratings.dat").write_text("".join(f"{x}\n" for i, x in enumerate(lines) if i not in drop), encoding="latin-1")
    heldout.write_text("user_id,movie_id\n" + "".join(f"{lines[i].split('::')[0]},{lines[i].split('::')[1]}\n" for i in sorted(drop)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("parity")
    generate(root / "full", users=150, movies=250, ratings=9_000, seed=5, profile="movielens")
    _hold_out_latest(root / "full", root / "data", root / "heldout.csv")
    cfg = TrainConfig(
        data=str(root / "data"),
        output=str(root / "runs"),
        epochs=2,
        batches_per_epoch=8,
        batch_size=256,
        infer_random_walks=30,
        # Exact parity needs the published embeddings to be the evaluated ones. The default refit continues
        # the model on every interaction afterwards (nothing is left to evaluate it on); the evaluate
        # command below is how a refit deployment is scored.
        refit_epochs=0,
        progress=False,
    )
    run_uri = run(cfg)
    return {"run_uri": run_uri, "data": root / "data", "heldout": root / "heldout.csv"}


@pytest.fixture
def live(trained: dict[str, Any], mysql_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The run loaded by the real loader; yields a Mangum handler over the app (in-memory index path)."""
    monkeypatch.setattr(loader.RETRY, "attempts", 2)  # the one RetryPolicy every loader module uses
    monkeypatch.setattr(loader.RETRY, "base_seconds", 0.01)
    loader.reset_stores()
    manifest = artifacts.RunReader(trained["run_uri"]).manifest_uri
    assert loader.load_run(manifest).outcome == "live"
    deps.reset_caches()
    yield Mangum(create_app(), lifespan="off")
    deps.reset_caches()
    loader.reset_stores()


def _index(run_uri: str) -> tuple[ExactIndex, Recipe, dict[str, Any]]:
    reader = artifacts.RunReader(run_uri)
    table = reader.open_parquet(artifacts.EMBEDDINGS).read()
    ids = table.column("movie_id").to_numpy()
    flat = np.asarray(table.column("embedding").combine_chunks().flatten().to_numpy(), dtype=np.float32)
    return ExactIndex(ids, flat.reshape(len(ids), -1)), Recipe.from_dict(reader.manifest().recipe), reader.read_json(artifacts.METRICS)


def test_api_serves_exactly_what_the_trainer_evaluated(trained: dict[str, Any], live: Any) -> None:
    index, recipe, metrics = _index(trained["run_uri"])
    assert metrics["recipe"] == recipe.to_dict()  # the manifest carries the recipe chosen on validation
    gd = build(load_movielens(str(trained["data"])))
    test = targets_for(concat(gd.train, gd.val), gd.test, gd.user_ids, gd.movie_ids)
    assert len(test.targets) > 100
    hits = 0
    for history, target in zip(test.histories, test.targets, strict=True):
        code, _, body = invoke(live, http_api_event("POST", "/recommendations", body={"liked": history, "k": 10}))
        assert code == 200, body
        served = [item["movie_id"] for item in body["items"]]
        assert served == recommend(index, recipe, history, 10)  # same ids, same order
        hits += target in served
    assert hits / len(test.targets) == metrics["test"]["pinsage"]["hr@10"]  # exactly, not approximately


def test_evaluate_command_scores_the_live_deployment_like_the_run(
    trained: dict[str, Any], live: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    score_served.add_arguments(parser)
    results = {}
    with uvicorn_in_thread(create_app()) as base_url:  # the same app over real HTTP, 8 concurrent clients
        for mode in (["--handler"], ["--run", trained["run_uri"]], ["--api", base_url]):
            args = parser.parse_args(["--heldout", str(trained["heldout"]), "--no-progress", *mode])
            assert score_served.main(args) == 0
            results[mode[0]] = json.loads(capsys.readouterr().out)
    served, offline, http = results["--handler"], results["--run"], results["--api"]
    assert served["statuses"] == {"200": 150} == http["statuses"] and served["users"] == 150
    assert served["heldout_skipped"] == {"header": 1} and served["heldout_rows"] == 150
    for key in ("hr@10", "ndcg@10", "coverage", "users"):
        assert served[key] == offline[key] == http[key], key
    assert served["run_ids"] == [artifacts.RunReader(trained["run_uri"]).manifest().run_id]
    assert 0.0 < served["hr@10"] <= 1.0  # the held-out movies were never seen in training: some are found
