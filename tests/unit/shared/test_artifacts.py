"""The run-folder contract: what the writer produces, the reader verifies (locally and on S3 over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared.contract import artifacts, objectstore
from tests.helpers.factories import make_run


def test_run_id_is_sortable_and_collection_safe() -> None:
    rid = artifacts.new_run_id()
    assert artifacts.RUN_ID_RE.match(rid)
    assert artifacts.collection_name(rid).replace("_", "").isalnum()
    with pytest.raises(artifacts.RunFormatError):
        artifacts.collection_name("x; drop table runs")


def test_manifest_written_last_and_verifies(tmp_path: Path) -> None:
    run = make_run(str(tmp_path), n_movies=30, n_users=5, dim=8)
    reader = artifacts.RunReader(run.manifest_uri)
    m = reader.manifest()
    assert m.run_id == run.run_id and m.dim == 8 and m.counts.movies == 30
    assert set(artifacts.REQUIRED_FILES) <= set(m.files)
    reader.verify_files()
    table = reader.open_parquet(artifacts.EMBEDDINGS).read()
    emb = np.asarray(table.column("embedding").combine_chunks().flatten()).reshape(-1, 8)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    assert sum(b.num_rows for b in reader.iter_batches(artifacts.MOVIES, batch_size=7)) == 30


def test_unfinished_run_has_no_manifest(tmp_path: Path) -> None:
    writer = artifacts.RunWriter(str(tmp_path))
    writer.write_json(artifacts.METRICS, {})
    with pytest.raises(artifacts.RunFormatError, match="missing"):
        writer.finish(dim=4, counts=artifacts.Counts(movies=0, users=0, embeddings=0))
    with pytest.raises(artifacts.RunFormatError, match="no manifest"):
        artifacts.RunReader(writer.run_uri).manifest()


def test_corruption_and_missing_files_are_detected(tmp_path: Path) -> None:
    run = make_run(str(tmp_path), n_movies=20, n_users=3, dim=4)
    path = Path(run.run_uri, artifacts.MOVIES)
    data = bytearray(path.read_bytes())
    data[-20] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(artifacts.RunFormatError, match="sha256"):
        artifacts.RunReader(run.manifest_uri).verify_files()
    path.unlink()
    with pytest.raises(artifacts.RunFormatError, match="missing"):
        artifacts.RunReader(run.manifest_uri).verify_files()


def test_manifest_in_wrong_folder_is_rejected(tmp_path: Path) -> None:
    run = make_run(str(tmp_path), n_movies=10, n_users=2, dim=4)
    other = tmp_path / "20200101T000000Z_deadbeef"
    other.mkdir()
    (other / artifacts.MANIFEST).write_bytes(Path(run.manifest_uri).read_bytes())
    with pytest.raises(artifacts.RunFormatError, match="does not match"):
        artifacts.RunReader(str(other / artifacts.MANIFEST)).manifest()


def test_run_on_s3_round_trips(s3_bucket: str) -> None:
    run = make_run(f"s3://{s3_bucket}/runs", n_movies=15, n_users=4, dim=4)
    assert run.manifest_uri.startswith(f"s3://{s3_bucket}/runs/{run.run_id}/")
    reader = artifacts.RunReader(run.manifest_uri)
    reader.verify_files()
    assert reader.num_rows(artifacts.USER_HISTORY) == 4
    listed = sorted(objectstore.basename(u) for u in objectstore.list_uris(run.run_uri))
    assert artifacts.MANIFEST in listed and artifacts.EMBEDDINGS in listed
    assert json.loads(objectstore.read_bytes(reader.uri(artifacts.CONFIG)))["dim"] == 4
    objectstore.delete_prefix(run.run_uri)
    assert not objectstore.exists(run.manifest_uri)
