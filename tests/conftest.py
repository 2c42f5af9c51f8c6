"""Fixtures shared by every test area: a private MariaDB database, moto's S3 server, Milvus.

Real services, not mocks: MariaDB on 127.0.0.1:3306 (scripts/ensure_mariadb.sh starts/installs it),
moto in server mode over real HTTP, and three Milvus backends (`milvus_backend`, TEST_MILVUS_BACKENDS picks):
"lite" (Milvus Lite in-process, a file), "server" (`milvus-lite server` in its own process on a free loopback
port, or the Milvus named by TEST_MILVUS_SERVER_URI) and "standalone" (the real Milvus 2.3.5 standalone
server from the `milvus` package, its own process on free loopback ports, or TEST_MILVUS_STANDALONE_URI).
The loader and API suites run against all three.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config.settings import ENV_PREFIX, clear_settings_cache, renamed_variables
from tests.helpers.servers import (  # noqa: F401 - free_port: old path
    free_port,
    milvus_answers,
    milvus_lite_server,
    milvus_standalone,
)
from tests.tls_mariadb import tls_database, tls_mariadb  # noqa: F401 - fixtures: one TLS MariaDB per session

MYSQL_HOST = os.environ.get("TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("TEST_MYSQL_USER", "root")
MYSQL_PASSWORD = os.environ.get("TEST_MYSQL_PASSWORD", "")
# Which Milvus the loader/API suites run against: "lite" (a file, in-process), "server" (milvus-lite's
# server, network) and "standalone" (the real Milvus 2.3.5 server, network).
MILVUS_BACKENDS = tuple(
    b for b in os.environ.get("TEST_MILVUS_BACKENDS", "lite,server").split(",") if b
)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Every test starts from default settings pointing at its own temp folder, never at .local/."""
    old_names = set(renamed_variables())  # a shell's pre-GRAPHREC_ leftovers must not reach a test either
    for key in list(os.environ):
        if key.upper().startswith(ENV_PREFIX) or key.upper() in old_names:
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GRAPHREC_ARTIFACT_URI", str(tmp_path / "runs"))
    monkeypatch.setenv("GRAPHREC_MILVUS_URI", str(tmp_path / "milvus.db"))
    monkeypatch.setenv("GRAPHREC_MYSQL_HOST", MYSQL_HOST)
    monkeypatch.setenv("GRAPHREC_MYSQL_PORT", str(MYSQL_PORT))
    monkeypatch.setenv("GRAPHREC_MYSQL_USER", MYSQL_USER)
    monkeypatch.setenv("GRAPHREC_MYSQL_PASSWORD", MYSQL_PASSWORD)
    monkeypatch.setenv("GRAPHREC_MYSQL_DATABASE", "graphrec_unset_use_mysql_settings_fixture")
    clear_settings_cache()
    yield
    clear_settings_cache()


@pytest.fixture
def milvus_uri(tmp_path: Path) -> str:
    return str(tmp_path / "milvus.db")


@pytest.fixture
def mysql_database(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards. Sets GRAPHREC_MYSQL_DATABASE."""
    import pymysql

    name = f"graphrec_test_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password=MYSQL_PASSWORD)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")  # name is generated, not input
        conn.commit()
        monkeypatch.setenv("GRAPHREC_MYSQL_DATABASE", name)
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
    from shared.config.settings import get_settings

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
    from shared.contract import objectstore

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


# ----------------------------------------------------------------------------------------- Milvus server
@pytest.fixture(scope="session")
def milvus_server() -> Iterator[str]:
    """A Milvus server reached over the network: http://127.0.0.1:<port>.

    TEST_MILVUS_SERVER_URI (e.g. a Milvus standalone container) wins; otherwise `milvus-lite server` is
    started as a separate process on a free loopback port, the same gRPC protocol a Milvus/Zilliz server
    speaks, and stopped at the end of the session.
    """
    given = os.environ.get("TEST_MILVUS_SERVER_URI")
    if given:
        if not milvus_answers(given):
            pytest.fail(f"TEST_MILVUS_SERVER_URI={given} does not answer")
        yield given.rstrip("/")
        return
    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemps, which would delete the
    # data of a server this session still uses.
    data = Path(tempfile.mkdtemp(prefix="graphrec-milvus-server-"))
    try:
        with milvus_lite_server(data) as uri:
            yield uri
    finally:
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def milvus_standalone_server() -> Iterator[str]:
    """The real Milvus standalone server (2.3.5, pip package `milvus`, dev extra): http://127.0.0.1:<port>.

    TEST_MILVUS_STANDALONE_URI (e.g. a newer Milvus in a container) wins; otherwise one server per test session
    is started on free loopback ports (every port, etcd's included, so sessions run side by side) and stopped
    at the end. Its first start decompresses the binaries into ~/.cache/graphrec/ (once per version).
    """
    given = os.environ.get("TEST_MILVUS_STANDALONE_URI")
    if given:
        if not milvus_answers(given):
            pytest.fail(f"TEST_MILVUS_STANDALONE_URI={given} does not answer")
        yield given.rstrip("/")
        return
    data = Path(tempfile.mkdtemp(prefix="graphrec-milvus-standalone-"))  # not under basetemp (see above)
    try:
        with milvus_standalone(data) as uri:
            yield uri
    finally:
        shutil.rmtree(data, ignore_errors=True)


SERVER_FIXTURES = {"server": "milvus_server", "standalone": "milvus_standalone_server"}


@contextlib.contextmanager
def milvus_database(server_uri: str) -> Iterator[str]:
    """A fresh Milvus database on the server for one test or module: yields `server_uri/<db>`, which
    pymilvus (and so VectorStore) connects to; dropped afterwards with its collections."""
    from shared.stores.milvus.store import import_pymilvus

    import_pymilvus()
    from pymilvus import MilvusClient

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = MilvusClient(uri=server_uri, timeout=30)
    admin.create_database(name)
    try:
        yield f"{server_uri}/{name}"
    finally:
        with contextlib.suppress(Exception):  # best effort: the server may be gone at session end
            db = MilvusClient(uri=f"{server_uri}/{name}", timeout=30)
            for alias in db.list_aliases().get("aliases", []):
                db.drop_alias(alias)
            for coll in db.list_collections():
                db.drop_collection(coll)
            db.close()
            admin.drop_database(name)
        admin.close()


def milvus_backend_uri(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """GRAPHREC_MILVUS_URI for one backend: a Lite file under tmp_path, or a fresh database on the server."""
    if backend == "lite":
        yield str(tmp_path / "milvus.db")
    elif backend in SERVER_FIXTURES:
        server = request.getfixturevalue(SERVER_FIXTURES[backend])
        with milvus_database(server) as uri:
            yield uri
    else:
        raise ValueError(f"unknown Milvus backend {backend!r} (TEST_MILVUS_BACKENDS)")
