"""MySQL over TLS against a real TLS-only MariaDB (tls_mariadb), and credentials that rotate.

Aurora MySQL 8 requires TLS by default; the template connects with GRAPHREC_MYSQL_SSL_MODE=VERIFY_IDENTITY against
the Amazon RDS CA bundle the package ships. Here the same code verifies a server certificate issued by a
test CA (GRAPHREC_MYSQL_SSL_CA), and every way it must refuse is shown refusing with a clear StoreUnavailable.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.config.settings import Settings, clear_settings_cache, get_settings
from shared.stores.milvus.store import StoreUnavailable
from shared.stores.mysql.store import MetadataStore
from tests.conftest import MYSQL_HOST, MYSQL_PASSWORD, MYSQL_PORT, MYSQL_USER
from tests.tls_mariadb import TlsMariaDB, admin


def _settings(db: TlsMariaDB, database: str, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "mysql_host": db.host,
        "mysql_port": db.port,
        "mysql_user": db.user,
        "mysql_password": db.password,
        "mysql_database": database,
        "mysql_ssl_mode": "VERIFY_IDENTITY",
        "mysql_ssl_ca": str(db.ca),
    }
    return Settings(**{**base, **over})


def _cipher(store: MetadataStore) -> str:
    def q(conn: Any) -> str:
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            row = cur.fetchone()
        return str(row[1] if row else "")

    return store._with_conn(q)


def test_verify_identity_connects_over_tls(tls_mariadb: TlsMariaDB, tls_database: str) -> None:
    store = MetadataStore.from_settings(_settings(tls_mariadb, tls_database))
    try:
        store.ensure_schema()
        assert _cipher(store)  # the session is encrypted
        assert store.live_run() is None
    finally:
        store.close()


def test_verify_ca_accepts_the_ip_verify_identity_does_not(tls_mariadb: TlsMariaDB, tls_database: str) -> None:
    """The certificate names only 'localhost': by IP, the CA check passes and the host-name check fails."""
    ok = MetadataStore.from_settings(_settings(tls_mariadb, tls_database, mysql_host="127.0.0.1", mysql_ssl_mode="VERIFY_CA"))
    try:
        assert _cipher(ok)
    finally:
        ok.close()
    bad = MetadataStore.from_settings(_settings(tls_mariadb, tls_database, mysql_host="127.0.0.1"))
    with pytest.raises(StoreUnavailable, match="(?i)hostname|match"):
        bad.ensure_schema()


def test_plaintext_is_refused_by_a_tls_only_server(tls_mariadb: TlsMariaDB, tls_database: str) -> None:
    """The same credentials: refused in plain text (MySQL 8 says "insecure transport", MariaDB logs it as
    access denied), accepted over TLS."""
    store = MetadataStore.from_settings(_settings(tls_mariadb, tls_database, mysql_ssl_mode="DISABLED"))
    with pytest.raises(StoreUnavailable, match="(?i)insecure transport|access denied"):
        store.ensure_schema()
    tls = MetadataStore.from_settings(_settings(tls_mariadb, tls_database, mysql_ssl_mode="REQUIRED"))
    try:
        assert _cipher(tls)
    finally:
        tls.close()


def test_a_server_certificate_from_another_ca_is_refused(tls_mariadb: TlsMariaDB, tls_database: str) -> None:
    """VERIFY_* without GRAPHREC_MYSQL_SSL_CA uses the shipped Amazon RDS bundle: the test CA is not in it."""
    store = MetadataStore.from_settings(_settings(tls_mariadb, tls_database, mysql_ssl_ca=None))
    with pytest.raises(StoreUnavailable, match="(?i)certificate verify failed"):
        store.ensure_schema()


def test_required_refuses_a_server_without_tls() -> None:
    """The shared MariaDB on :3306 has no TLS: REQUIRED must not fall back to plain text."""
    settings = Settings(
        mysql_host=MYSQL_HOST, mysql_port=MYSQL_PORT, mysql_user=MYSQL_USER, mysql_password=MYSQL_PASSWORD,
        mysql_database="mysql", mysql_ssl_mode="REQUIRED",
    )  # fmt: skip
    store = MetadataStore.from_settings(settings)
    try:
        store.ensure_schema()
    except StoreUnavailable as exc:
        assert "SSL is required" in str(exc)
    else:  # the shared server was given TLS: then the session must be encrypted
        assert _cipher(store)
    finally:
        store.close()


def test_loader_and_api_work_over_verified_tls(
    tls_mariadb: TlsMariaDB, tls_database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from handlers import loader
    from handlers.api_app import deps
    from shared.stores.milvus.store import close_all_clients
    from tests.helpers.factories import make_run
    from tests.helpers.live import http_api_event, invoke

    env = {
        "GRAPHREC_MYSQL_HOST": tls_mariadb.host,
        "GRAPHREC_MYSQL_PORT": str(tls_mariadb.port),
        "GRAPHREC_MYSQL_USER": tls_mariadb.user,
        "GRAPHREC_MYSQL_PASSWORD": tls_mariadb.password,
        "GRAPHREC_MYSQL_DATABASE": tls_database,
        "GRAPHREC_MYSQL_SSL_MODE": "VERIFY_IDENTITY",
        "GRAPHREC_MYSQL_SSL_CA": str(tls_mariadb.ca),
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    clear_settings_cache()
    loader.reset_stores()
    deps.reset_caches()
    try:
        run = make_run(str(tmp_path / "runs"), n_movies=120, n_users=30, dim=8, seed=2)
        result = loader.load_run(run.manifest_uri)
        assert result.outcome == "live", result
        from handlers.api import handler

        status, _, body = invoke(handler, http_api_event("POST", "/recommendations", body={"liked": [1, 2], "k": 5}))
        assert status == 200, body
        assert body["run_id"] == run.run_id and len(body["items"]) == 5
    finally:
        loader.reset_stores()
        deps.reset_caches()
        close_all_clients()


# ------------------------------------------------------------------------------------- rotated secrets
@pytest.fixture
def rotating_secret(
    tls_mariadb: TlsMariaDB, tls_database: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    import boto3

    user = f"rot_{int(time.time() * 1000) % 10**8}"
    admin(tls_mariadb, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-one'")
    admin(tls_mariadb, f"GRANT ALL ON `{tls_database}`.* TO '{user}'@'%'")
    sm = boto3.client("secretsmanager")
    secret = {"username": user, "password": "pw-one", "host": tls_mariadb.host, "port": tls_mariadb.port,
              "dbname": tls_database}  # fmt: skip
    arn = sm.create_secret(Name=f"graphrec/{user}", SecretString=json.dumps(secret))["ARN"]
    monkeypatch.setenv("GRAPHREC_MYSQL_SECRET_ARN", arn)
    monkeypatch.setenv("GRAPHREC_MYSQL_SSL_MODE", "VERIFY_IDENTITY")
    monkeypatch.setenv("GRAPHREC_MYSQL_SSL_CA", str(tls_mariadb.ca))
    clear_settings_cache()
    yield {"arn": arn, "user": user}
    admin(tls_mariadb, f"DROP USER IF EXISTS '{user}'@'%'")


def _rotate(db: TlsMariaDB, rot: dict[str, str], new_password: str, *, in_secret: bool) -> None:
    import boto3

    admin(db, f"ALTER USER '{rot['user']}'@'%' IDENTIFIED BY '{new_password}'")
    if in_secret:
        sm = boto3.client("secretsmanager")
        secret = json.loads(sm.get_secret_value(SecretId=rot["arn"])["SecretString"])
        sm.put_secret_value(SecretId=rot["arn"], SecretString=json.dumps({**secret, "password": new_password}))


def test_rotated_secret_is_fetched_again_on_access_denied(
    tls_mariadb: TlsMariaDB, rotating_secret: dict[str, str]
) -> None:
    store = MetadataStore.from_settings(get_settings())
    try:
        store.ensure_schema()  # connected with the secret as first fetched
        _rotate(tls_mariadb, rotating_secret, "pw-two", in_secret=True)
        store._drop_conn()  # the container's connection is gone (idle timeout, failover...)
        assert store.live_run() is None  # reconnects: 1045 with the cached password -> refetch -> ok
        assert "pw-two" in repr(store._kwargs.get("password"))
        assert "pw-two" not in repr(store)
    finally:
        store.close()


def test_access_denied_without_a_newer_secret_is_store_unavailable(
    tls_mariadb: TlsMariaDB, rotating_secret: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    store = MetadataStore.from_settings(get_settings())
    try:
        store.ensure_schema()
        _rotate(tls_mariadb, rotating_secret, "pw-three", in_secret=False)  # secret not updated (yet)
        store._drop_conn()
        with pytest.raises(StoreUnavailable, match="Access denied") as info:
            store.live_run()
        assert "pw-one" not in str(info.value) and "pw-three" not in str(info.value)
        assert "pw-one" not in caplog.text and "pw-three" not in caplog.text
    finally:
        store.close()


# ------------------------------------------------------------------------------------- Secrets Manager
def test_unreachable_secrets_manager_fails_fast_and_clearly(monkeypatch: pytest.MonkeyPatch) -> None:
    """An endpoint that accepts connections and never answers (an in-VPC function without a route to
    Secrets Manager behaves like this): bounded by the short timeouts, then StoreUnavailable."""
    from shared.config import settings as settings_mod

    assert (
        (settings_mod.SECRETS_CONNECT_TIMEOUT + settings_mod.SECRETS_READ_TIMEOUT) * settings_mod.SECRETS_MAX_ATTEMPTS
        < 29  # the API function's timeout
    )
    monkeypatch.setattr(settings_mod, "SECRETS_READ_TIMEOUT", 0.5)
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        sink.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(sink.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=hold, daemon=True)
    t.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{sink.getsockname()[1]}")
    for k, v in {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("GRAPHREC_MYSQL_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:graphrec/mysql")
    clear_settings_cache()
    started = time.monotonic()
    try:
        with pytest.raises(StoreUnavailable, match="cannot read secret arn:aws:secretsmanager:.*graphrec/mysql"):
            get_settings().resolved_mysql()
    finally:
        stop.set()
        t.join(timeout=2)
        for c in accepted:
            c.close()
        sink.close()
        clear_settings_cache()
    assert time.monotonic() - started < 5  # 2 attempts x 0.5 s read timeout, not boto3's 2 x 60 s
