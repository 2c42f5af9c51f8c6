"""End-to-end: `python -m training_job train` on small synthetic MovieLens data, real DGL training.

What these tests pin down is the training job's contract with the rest of the system (the loader reads
the run folder) and the issue's promises: every file present and verified by the manifest, unit-norm
float32 embeddings for every movie, baselines in metrics.json, PinSage well above popularity on data with
planted structure, reproducible with a seed, --max-minutes honoured, dirty input counted, s3:// output.

Sizes are chosen so the whole module trains a handful of tiny models in well under a minute on 2 cores.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from shared.contract import artifacts
from training_job.__main__ import main as cli_main
from training_job.synthetic.cli import generate

REPO = Path(__file__).resolve().parents[3]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Small but real: 2 epochs x 40 batches x 256 pairs, one CPU thread, no progress bars in test logs.
FAST = [
    "--epochs", "2", "--batches-per-epoch", "40", "--batch-size", "256", "--threads", "1",
    "--infer-random-walks", "50", "--no-progress", "--seed", "7",
]  # fmt: skip
TIMING_KEYS = {"timings"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthetic")
    generate(out, users=500, movies=400, ratings=40_000, seed=11, profile="planted")
    return out


def _train(data: Path | str, output: Path | str, *extra: str) -> str:
    """Run the CLI in-process; returns the run folder (the single new folder under output)."""
    before = set(os.listdir(output)) if Path(output).is_dir() else set()
    assert cli_main(["train", "--data", str(data), "--output", str(output), *FAST, *extra]) == 0
    (new,) = set(os.listdir(output)) - before
    return str(Path(output) / new)


@pytest.fixture(scope="module")
def run_dir(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    os.environ.setdefault("DGLBACKEND", "pytorch")
    return _train(data_dir, tmp_path_factory.mktemp("runs"))


def _metrics(run: str) -> dict[str, Any]:
    return json.loads(Path(run, artifacts.METRICS).read_text())


def _without_timings(obj: Any) -> Any:
    """Metrics minus wall-clock fields (timings, elapsed seconds, throughput)."""
    if isinstance(obj, dict):
        return {
            k: _without_timings(v)
            for k, v in obj.items()
            if k not in TIMING_KEYS and k not in {"elapsed_s", "pairs_per_second", "seconds"}
        }
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def test_run_folder_is_complete_and_verified(run_dir: str) -> None:
    names = set(os.listdir(run_dir))
    expected = {
        artifacts.EMBEDDINGS,
        artifacts.MOVIES,
        artifacts.USER_HISTORY,
        artifacts.METRICS,
        artifacts.LEARNING_CURVE,
        artifacts.CONFIG,
        artifacts.MANIFEST,
    }
    assert names == expected  # nothing missing, no leftover temp files
    reader = artifacts.RunReader(str(Path(run_dir, artifacts.MANIFEST)))
    reader.verify_files()
    manifest = reader.manifest()
    assert manifest.run_id == Path(run_dir).name
    assert set(manifest.files) == expected - {artifacts.MANIFEST}
    assert manifest.dim == 64 and manifest.counts.movies == 400 and manifest.counts.users == 500
    assert manifest.counts.ratings == 40_000
    assert manifest.metrics["hr@10"] > manifest.metrics["popularity_hr@10"]
    assert manifest.source["kind"] == "folder"
    # manifest written last: no other file is newer
    mtime = {n: os.stat(Path(run_dir, n)).st_mtime_ns for n in names}
    assert mtime[artifacts.MANIFEST] == max(mtime.values())


def test_embeddings_movies_and_histories(run_dir: str, data_dir: Path) -> None:
    emb_table = pq.read_table(Path(run_dir, artifacts.EMBEDDINGS))
    emb = np.asarray(emb_table.column("embedding").combine_chunks().flatten()).reshape(emb_table.num_rows, -1)
    assert emb.dtype == np.float32 and emb.shape == (400, 64)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    movie_ids = emb_table.column("movie_id").to_pylist()
    raw_ids = [int(line.split("::")[0]) for line in (data_dir / "movies.dat").read_text("latin-1").splitlines()]
    assert sorted(movie_ids) == sorted(raw_ids) and len(set(movie_ids)) == 400
    assert len(np.unique(emb.round(4), axis=0)) == 400  # not collapsed onto a few points

    movies = pq.read_table(Path(run_dir, artifacts.MOVIES)).to_pylist()
    assert {m["movie_id"] for m in movies} == set(movie_ids)
    assert all(m["title"] and isinstance(m["genres"], list) for m in movies)

    hist = pq.read_table(Path(run_dir, artifacts.USER_HISTORY)).to_pylist()
    assert len(hist) == 500 and sum(len(h["movie_ids"]) for h in hist) == 40_000
    # chronological: user 1's history follows the timestamps of ratings.dat
    rows = [line.split("::") for line in (data_dir / "ratings.dat").read_text().splitlines()]
    user1 = sorted((int(ts), int(m)) for u, m, _, ts in rows if u == "1")
    assert next(h for h in hist if h["user_id"] == 1)["movie_ids"] == [m for _, m in user1]


def test_metrics_baselines_curve_and_config(run_dir: str) -> None:
    m = _metrics(run_dir)
    test = m["test"]
    assert set(test) == {"pinsage", "popularity", "item_knn", "ease"}
    for scores in test.values():
        assert set(scores) >= {"hr@10", "ndcg@10", "coverage", "users"} and scores["users"] == 500
    pin, pop = test["pinsage"], test["popularity"]
    # planted taste structure: a model that learned anything is far above "most popular"
    assert pin["hr@10"] >= 1.5 * pop["hr@10"] and pin["hr@10"] - pop["hr@10"] >= 0.05, test
    assert pin["ndcg@10"] > pop["ndcg@10"]
    assert pin["coverage"] > pop["coverage"]  # popularity recommends nearly the same 10 to everyone
    assert m["data"]["rejected"]["total_rejected"] == 0
    # the recipe chosen on validation is the one the API will apply: recorded in metrics and manifest
    recipe = m["recipe"]
    assert m["validation_query_grid"]["pinsage"][f"last{recipe['last_k']}_decay{recipe['decay']:g}"]["hr@10"] == max(
        g["hr@10"] for g in m["validation_query_grid"]["pinsage"].values()
    )
    assert artifacts.RunReader(run_dir).manifest().recipe == recipe
    # single vector vs multi-interest: chosen on validation within the HR budget, both reported on test
    mi = m["multi_interest"]
    assert mi["chosen"] == recipe and set(recipe) == {"last_k", "decay", "interests", "threshold", "diversity"}
    for split in ("validation", "test"):
        for row in ("single", "multi", "chosen"):
            assert set(mi[split][row]) >= {"hr@10", "ndcg@10", "coverage", "interest_coverage"}, (split, row)
    assert mi["test"]["chosen"]["hr@10"] == test["pinsage"]["hr@10"]  # served = reported
    if recipe["interests"] > 1:
        assert mi["validation"]["multi"]["hr@10"] >= mi["validation"]["single"]["hr@10"] - mi["hr_budget"]
    else:
        assert mi["note"].startswith("single vector kept")
    assert set(m["similar_genre_agreement@10"]) == {"pinsage", "item_knn"}
    # by default the published embeddings are the validated model continued on every interaction
    assert m["refit"]["epochs"] == 3 and m["refit"]["interactions"] == 40_000
    assert m["data"]["users"] == 500 and m["data"]["test_edges"] == 500 and m["data"]["val_edges"] == 500
    curve = m["training"]["curve"]
    assert [p["epoch"] for p in curve] == [0, 1] and all(p["batches"] == 40 for p in curve)
    assert m["training"]["best_epoch"] in (0, 1)
    assert m["training"]["best_val_hr@10"] == max(p["val_hr@10"] for p in curve)
    assert m["training"]["stopped_by_time"] is False
    assert {"load_s", "graph_s", "train_s", "inference_s", "evaluation_s"} <= set(m["timings"])

    png = Path(run_dir, artifacts.LEARNING_CURVE).read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 2000

    config = json.loads(Path(run_dir, artifacts.CONFIG).read_text())
    assert config["epochs"] == 2 and config["batches_per_epoch"] == 40 and config["batch_size"] == 256
    assert config["seed"] == 7 and config["dim"] == 64 and config["num_layers"] == 2
    assert config["device"] == "cpu"  # 'auto' is resolved before it is recorded
    assert config["run_id"] is None or config["run_id"] == Path(run_dir).name


def test_same_seed_same_metrics(run_dir: str, data_dir: Path, tmp_path: Path) -> None:
    again = _train(data_dir, tmp_path)
    assert _without_timings(_metrics(again)) == _without_timings(_metrics(run_dir))
    a = pq.read_table(Path(run_dir, artifacts.EMBEDDINGS)).column("embedding").to_pylist()
    b = pq.read_table(Path(again, artifacts.EMBEDDINGS)).column("embedding").to_pylist()
    assert a == b


def test_max_minutes_stops_early_and_still_writes_a_valid_run(data_dir: Path, tmp_path: Path) -> None:
    # 50 epochs x 1000 batches would take many minutes; a 0.3 s budget ends after the first batches.
    run = _train(data_dir, tmp_path, "--epochs", "50", "--batches-per-epoch", "1000", "--max-minutes", "0.005")
    artifacts.RunReader(run).verify_files()
    m = _metrics(run)
    assert m["training"]["stopped_by_time"] is True
    assert len(m["training"]["curve"]) == 1 and m["training"]["curve"][0]["batches"] < 1000
    assert m["training"]["best_epoch"] == 0
    assert json.loads(Path(run, artifacts.CONFIG).read_text())["max_minutes"] == 0.005


def test_malformed_input_lines_are_counted_not_fatal(data_dir: Path, tmp_path: Path) -> None:
    dirty = tmp_path / "dirty"
    shutil.copytree(data_dir, dirty)
    first_movie = (dirty / "movies.dat").read_text("latin-1").splitlines()[0].split("::")[0]
    with open(dirty / "ratings.dat", "a", encoding="latin-1") as fh:
        fh.write("\n")  # blank
        fh.write("1::2\n")  # wrong field count
        fh.write("x::1::5::978300760\n")  # non-numeric id
        fh.write(f"1::{first_movie}::9::978300760\n")  # rating out of range
        fh.write("1::999999::4::978300760\n")  # unknown movie
        fh.write("999999::1::4::978300760\n")  # unknown user
    with open(dirty / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("not a movie line\n")
    out = tmp_path / "runs"
    run = _train(dirty, out, "--epochs", "1", "--batches-per-epoch", "5")
    artifacts.RunReader(run).verify_files()
    rejected = _metrics(run)["data"]["rejected"]
    ratings = rejected["files"]["ratings.dat"]
    assert ratings["rows_kept"] == 40_000
    counts = {k: v for k, v in ratings["rejected"].items() if v}
    assert counts == {
        "blank_line": 1,
        "wrong_field_count": 1,
        "non_numeric_id": 1,
        "rating_out_of_range": 1,
        "unknown_movie": 1,
        "unknown_user": 1,
    }
    assert rejected["files"]["movies.dat"]["rejected"]["wrong_field_count"] == 1
    assert rejected["total_rejected"] == 7
    assert pq.read_metadata(Path(run, artifacts.EMBEDDINGS)).num_rows == 400


def test_unusable_input_fails_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "training_job", "train", "--data", str(tmp_path / "data"), "--output",
         str(tmp_path / "runs"), *FAST],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "DGLBACKEND": "pytorch"},
    )  # fmt: skip
    assert proc.returncode != 0
    assert "users.dat" in proc.stderr or "missing" in proc.stderr.lower(), proc.stderr[-2000:]
    assert not (tmp_path / "runs").exists() or not os.listdir(tmp_path / "runs")


def test_train_reads_and_writes_s3_through_the_endpoint(
    data_dir: Path, s3_bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    import boto3

    s3 = boto3.client("s3")
    for f in ("users.dat", "movies.dat", "ratings.dat"):
        s3.upload_file(str(data_dir / f), s3_bucket, f"data/ml-1m/{f}")
    # a fresh process: the real CLI, configured only by the environment (AWS_ENDPOINT_URL -> moto)
    proc = subprocess.run(
        [sys.executable, "-m", "training_job", "train", "--data", f"s3://{s3_bucket}/data/ml-1m",
         "--output", f"s3://{s3_bucket}/runs", "--cache-dir", str(tmp_path / "cache"), *FAST,
         "--epochs", "1", "--batches-per-epoch", "5"],
        capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "DGLBACKEND": "pytorch"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    run_uri = proc.stdout.strip().splitlines()[-1]
    assert run_uri.startswith(f"s3://{s3_bucket}/runs/")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="runs/")["Contents"]}
    run_id = run_uri.rsplit("/", 1)[-1]
    assert f"runs/{run_id}/{artifacts.MANIFEST}" in keys and f"runs/{run_id}/{artifacts.LEARNING_CURVE}" in keys
    reader = artifacts.RunReader(run_uri)
    reader.verify_files()
    assert reader.manifest().counts.embeddings == 400
    assert reader.manifest().source["uri"] == f"s3://{s3_bucket}/data/ml-1m"
    assert reader.read_json(artifacts.METRICS)["test"]["pinsage"]["users"] == 500
