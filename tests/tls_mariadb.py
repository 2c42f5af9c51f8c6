"""Fixtures (registered in tests/conftest.py): a second, private MariaDB that only accepts TLS (`require_secure_transport=ON`, like Aurora MySQL 8 by
default), with a certificate issued by a CA generated here. It runs from its own data directory on a free
loopback port, so the shared server on :3306 (which other tests and the demo use without TLS) is never
reconfigured or restarted.
"""

from __future__ import annotations

import datetime
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.servers import answers, free_port, stop, wait_until


@dataclass(frozen=True)
class TlsMariaDB:
    host: str  # the name in the server certificate
    port: int
    socket: str  # admin access (unix sockets are exempt from require_secure_transport)
    ca: Path  # the CA that issued the server certificate
    user: str
    password: str


def _write_pki(folder: Path) -> Path:
    """A CA and a server certificate for DNS:localhost only (so connecting by IP fails VERIFY_IDENTITY)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "graphrec test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca_cert.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
    )
    return folder / "ca.pem"


def _admin(db: TlsMariaDB, sql: str) -> None:
    import pymysql

    conn = pymysql.connect(unix_socket=db.socket, user="root", password="", connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="session")
def tls_mariadb() -> Iterator[TlsMariaDB]:
    install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if not install_db or not Path(mariadbd).exists():
        pytest.fail("MariaDB server binaries are missing: bash scripts/ensure_mariadb.sh installs them")
    # Not under pytest's basetemp: a concurrent pytest session prunes old basetemps (with this datadir).
    base = Path(tempfile.mkdtemp(prefix="graphrec-mariadb-tls-"))
    ca = _write_pki(base)
    data, sock, port = base / "data", str(base / "mysqld.sock"), free_port()
    subprocess.run(
        [install_db, "--no-defaults", f"--datadir={data}", "--user=root", "--auth-root-authentication-method=normal",
         "--skip-test-db"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    log = (base / "server.log").open("wb")
    proc = subprocess.Popen(
        [mariadbd, "--no-defaults", f"--datadir={data}", "--user=root", f"--port={port}",
         "--bind-address=127.0.0.1", f"--socket={sock}", f"--pid-file={base / 'mysqld.pid'}",
         f"--ssl-ca={ca}", f"--ssl-cert={base / 'server.pem'}", f"--ssl-key={base / 'server.key'}",
         "--require-secure-transport=ON", "--skip-log-bin", "--innodb-buffer-pool-size=32M",
         "--skip-name-resolve", f"--log-error={base / 'error.log'}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    db = TlsMariaDB("localhost", port, sock, ca, "graphrec_app", "first-password")
    try:
        wait_until(
            lambda: answers(lambda: _admin(db, "SELECT 1")),
            alive=lambda: proc.poll() is None,
            what="TLS MariaDB",
            log=base / "error.log",
        )
        _admin(db, f"CREATE USER '{db.user}'@'%' IDENTIFIED BY '{db.password}'")
        _admin(db, f"GRANT ALL ON *.* TO '{db.user}'@'%'")
        yield db
    finally:
        stop(proc, timeout=20)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def tls_database(tls_mariadb: TlsMariaDB) -> Iterator[str]:
    import uuid

    name = f"graphrec_tls_{uuid.uuid4().hex[:10]}"
    _admin(tls_mariadb, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield name
    _admin(tls_mariadb, f"DROP DATABASE IF EXISTS `{name}`")


def admin(db: TlsMariaDB, sql: str) -> None:
    _admin(db, sql)
