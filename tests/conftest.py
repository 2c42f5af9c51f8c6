"""Fixtures shared by every test area: a private MariaDB database, moto's S3 server, a Milvus Lite file.

Real services, not mocks: MariaDB on 127.0.0.1:3306 (scripts/ensure_mariadb.sh starts/installs it),
moto in server mode over real HTTP, Milvus Lite in-process.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.settings import clear_settings_cache

MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts from default settings pointing at its own temp folder, never at .local/."""
    for key in list(os.environ):
        if key.startswith(("MILVUS_", "MYSQL_", "ARTIFACT_", "DATA_URI", "TRAINING_")):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ARTIFACT_URI", str(tmp_path / "runs"))
    monkeypatch.setenv("MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("MYSQL_HOST", MYSQL_HOST)
    monkeypatch.setenv("MYSQL_PORT", str(MYSQL_PORT))
    monkeypatch.setenv("MYSQL_USER", MYSQL_USER)
    monkeypatch.setenv("MYSQL_PASSWORD", MYSQL_PASSWORD)
    monkeypatch.setenv("MYSQL_DATABASE", "graphrec_unset_use_mysql_settings_fixture")
    clear_settings_cache()
    yield
    clear_settings_cache()


@pytest.fixture
def milvus_uri(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


@pytest.fixture
def mysql_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards. Sets MYSQL_DATABASE."""
    import pymysql

    name = f"graphrec_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # name is generated, not input
        conn.commit()
        monkeypatch.setenv("MYSQL_DATABASE", name)
        clear_settings_cache()
        yield name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.commit()
        conn.close()


@pytest.fixture
def mysql_settings(mysql_database: str):  # type: ignore[no-untyped-def]
    """Settings pointing at a fresh MariaDB database and a temp Milvus Lite file."""
    from shared.settings import get_settings

    return get_settings()


@pytest.fixture(scope="session")
def _moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def moto_endpoint(_moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto over real HTTP on 127.0.0.1; boto3 clients created after this talk to it via AWS_ENDPOINT_URL."""
    import requests

    requests.post(f"{_moto_server}/moto-api/reset", timeout=10)
    monkeypatch.setenv("AWS_ENDPOINT_URL", _moto_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    from shared import objectstore

    objectstore.s3_client.cache_clear()
    clear_settings_cache()
    yield _moto_server
    objectstore.s3_client.cache_clear()


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """An empty bucket on the moto server; returns its name."""
    import boto3

    name = f"graphrec-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
