"""Where MovieLens comes from: folder, ml-1m.zip, s3:// (moto over real HTTP), and the download cache."""

from __future__ import annotations

import functools
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from shared.contract import objectstore
from training_job.data import movielens as data
from training_job.data import report as data_report
from training_job.data import sources as data_sources
from training_job.data.movielens import MovieLensError, load_movielens

from ._helpers import MOVIES, RATINGS, USERS, write_ml


def _zip_bytes(prefix: str = "ml-1m/", extra: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("users.dat", USERS), ("movies.dat", MOVIES), ("ratings.dat", RATINGS)):
            zf.writestr(prefix + name, text.encode("latin-1"))
        zf.writestr(prefix + "README", "MovieLens 1M")
        for name, text in (extra or {}).items():
            zf.writestr(name, text)
    return buf.getvalue()


def _same_data(d: data.MovieLensData) -> None:
    assert d.report.total_rejected == 0
    assert len(d.users) == 3 and len(d.movies) == 3 and len(d.ratings) == 5
    assert d.movies["title"].tolist() == ["Toy Story", "The Matrix", "Heat"]


@pytest.fixture
def folder_hashes(tmp_path: Path) -> dict[str, str]:
    d = load_movielens(str(write_ml(tmp_path / "ref")))
    return {name: f["sha256"] for name, f in d.source["files"].items()}


def test_zip_source_finds_files_under_ml_1m(tmp_path: Path, folder_hashes: dict[str, str]) -> None:
    path = tmp_path / "ml-1m.zip"
    path.write_bytes(_zip_bytes())
    d = load_movielens(str(path))
    _same_data(d)
    assert d.source["kind"] == "zip"
    assert d.source["uri"] == str(path)
    # Content hashes do not depend on the container: the same data hashes the same from zip or folder.
    assert {name: f["sha256"] for name, f in d.source["files"].items()} == folder_hashes


def test_folder_with_ml_1m_subfolder_or_zip(tmp_path: Path) -> None:
    write_ml(tmp_path / "a" / "ml-1m")
    _same_data(load_movielens(str(tmp_path / "a")))
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "ml-1m.zip").write_bytes(_zip_bytes(prefix=""))
    d = load_movielens(str(tmp_path / "b"))
    _same_data(d)
    assert d.source["kind"] == "zip" and "zip_sha256" in d.source


def test_bad_zip_and_incomplete_sources_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "ml-1m.zip"
    bad.write_bytes(b"<html>not found</html>")
    with pytest.raises(MovieLensError, match="not a valid zip"):
        load_movielens(str(bad))
    partial = tmp_path / "partial.zip"
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-1m/users.dat", USERS)
    partial.write_bytes(buf.getvalue())
    with pytest.raises(MovieLensError, match=r"does not contain \['movies.dat', 'ratings.dat'\]"):
        load_movielens(str(partial))
    two = tmp_path / "two.zip"
    two.write_bytes(_zip_bytes(extra={"copy/ratings.dat": RATINGS}))
    with pytest.raises(MovieLensError, match="several copies"):
        load_movielens(str(two))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "ratings.dat").write_text(RATINGS)
    with pytest.raises(MovieLensError, match="holds neither"):
        load_movielens(str(tmp_path / "empty"))
    with pytest.raises(MovieLensError, match="does not exist.*download"):
        load_movielens(str(tmp_path / "nope"))


def test_s3_prefix_with_the_three_files(s3_bucket: str, tmp_path: Path) -> None:
    folder = write_ml(tmp_path / "ml")
    for name in data_report.FILES:
        objectstore.upload_file(folder / name, f"s3://{s3_bucket}/datasets/ml/{name}")
    d = load_movielens(f"s3://{s3_bucket}/datasets/ml/")
    _same_data(d)
    assert d.source["kind"] == "s3"
    assert d.source["prefix"] == f"s3://{s3_bucket}/datasets/ml"


def test_s3_prefix_with_subfolder_or_zip(s3_bucket: str, tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    for name, text in (("users.dat", USERS), ("movies.dat", MOVIES), ("ratings.dat", RATINGS)):
        s3.put_object(Bucket=s3_bucket, Key=f"nested/ml-1m/{name}", Body=text.encode("latin-1"))
    _same_data(load_movielens(f"s3://{s3_bucket}/nested"))

    s3.put_object(Bucket=s3_bucket, Key="zipped/ml-1m.zip", Body=_zip_bytes())
    d = load_movielens(f"s3://{s3_bucket}/zipped")
    _same_data(d)
    assert d.source["kind"] == "s3-zip"
    assert d.source["zip_uri"] == f"s3://{s3_bucket}/zipped/ml-1m.zip"
    _same_data(load_movielens(f"s3://{s3_bucket}/zipped/ml-1m.zip"))


def test_s3_errors_name_what_was_found(s3_bucket: str) -> None:
    boto3.client("s3").put_object(Bucket=s3_bucket, Key="half/users.dat", Body=USERS.encode())
    with pytest.raises(MovieLensError, match=r"holds neither.*'/users.dat'"):
        load_movielens(f"s3://{s3_bucket}/half")
    with pytest.raises(MovieLensError, match="no object at"):
        load_movielens(f"s3://{s3_bucket}/missing/ml-1m.zip")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real local HTTP server (the official URL is unreachable here) serving a folder."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()


def test_download_fetches_once_then_uses_the_cache(
    http_root: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = http_root
    (root / "ml-1m.zip").write_bytes(_zip_bytes())
    monkeypatch.setattr(data_sources, "DOWNLOAD_URL", f"{base}/ml-1m.zip")
    cache = tmp_path / "cache"
    d = load_movielens("", download=True, cache_dir=cache)
    _same_data(d)
    assert d.source["kind"] == "download"
    assert (cache / "ml-1m.zip").is_file()
    (root / "ml-1m.zip").unlink()  # the server no longer has it: the cache must be used
    _same_data(load_movielens("", download=True, cache_dir=cache))
    # An existing local source wins over download=True.
    assert (
        load_movielens(str(write_ml(tmp_path / "local")), download=True, cache_dir=cache).source["kind"]
        == "folder"
    )


def test_download_failures_leave_no_partial_file(
    http_root: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, root = http_root
    cache = tmp_path / "cache"
    monkeypatch.setattr(data_sources, "DOWNLOAD_URL", f"{base}/missing.zip")
    with pytest.raises(MovieLensError, match="could not download .*404"):
        load_movielens("", download=True, cache_dir=cache)
    (root / "page.zip").write_bytes(b"<html>captive portal</html>")
    monkeypatch.setattr(data_sources, "DOWNLOAD_URL", f"{base}/page.zip")
    with pytest.raises(MovieLensError, match="not a zip archive"):
        load_movielens("", download=True, cache_dir=cache)
    assert list(cache.iterdir()) == []
