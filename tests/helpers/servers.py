"""Processes the tests (and the benches) start and wait for: a free loopback port, waiting until a server
answers (or its process dies, or time runs out), stopping a process, `milvus-lite server` (a separate
process speaking a Milvus server's gRPC protocol) and the real Milvus standalone server (2.3.5, pip package
`milvus`)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def answers(call: Callable[[], object]) -> bool:
    """True when `call()` returns without raising (a server that is not up yet raises)."""
    try:
        call()
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    return True


def wait_until(
    ready: Callable[[], bool],
    *,
    alive: Callable[[], bool],
    what: str,
    timeout: float = 60.0,
    interval: float = 0.2,
    log: Path | None = None,
) -> None:
    """Poll `ready()` until it is true. RuntimeError (with the tail of `log`) when `alive()` turns false or
    `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive() or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
            raise RuntimeError(f"{what} did not start{': ' + tail if tail else ''}")
        time.sleep(interval)


def stop(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate `proc`; kill it if it has not exited after `timeout` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def milvus_answers(uri: str) -> bool:
    """True when a Milvus server at `uri` answers a cheap request."""
    from shared.stores.milvus.store import import_pymilvus

    import_pymilvus()
    from pymilvus import MilvusClient

    def ask() -> None:
        client = MilvusClient(uri=uri, timeout=2)
        try:
            client.list_databases()
        finally:
            client.close()

    return answers(ask)


def start_milvus_lite_server(data_dir: Path, timeout: float = 60.0) -> tuple[subprocess.Popen[bytes], str]:
    """`milvus-lite server` on a free loopback port, data and server.log under `data_dir`; returns once it
    answers, as (process, http://127.0.0.1:<port>). The caller stops it (stop())."""
    port = free_port()
    exe = Path(sys.executable).with_name("milvus-lite")
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "server.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "server", "--data-dir", str(data_dir / "data"), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            # MILVUS_URI is pymilvus' own variable (and the old name of GRAPHREC_MILVUS_URI): not for the server
            env={k: v for k, v in os.environ.items() if k != "MILVUS_URI"},
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: milvus_answers(uri),
            alive=lambda: proc.poll() is None,
            what="milvus-lite server",
            timeout=timeout,
            log=data_dir / "server.log",
        )
    except BaseException:
        stop(proc)
        raise
    return proc, uri


@contextmanager
def milvus_lite_server(data_dir: Path) -> Iterator[str]:
    """start_milvus_lite_server() for the duration of a `with` block; yields its URI."""
    proc, uri = start_milvus_lite_server(data_dir)
    try:
        yield uri
    finally:
        stop(proc)


# ------------------------------------------------------------------------- Milvus standalone (milvus 2.3.5)
def _milvus_binaries() -> Path:
    """The `milvus` package's server binaries, decompressed once per version into a cache folder shared by
    every test session and bench (≈380 MB; a file lock keeps two sessions from writing it at once)."""
    import fcntl

    import milvus  # the embedded Milvus standalone (dev extra)

    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "graphrec" / f"milvus-{milvus.__version__}"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        milvus._initialize_data_files(str(cache))  # skips files whose checksum is unchanged
    return cache / "bin"


def start_milvus_standalone(data_dir: Path, timeout: float = 180.0) -> tuple[subprocess.Popen[bytes], str]:
    """The real Milvus standalone server (pip package `milvus`: Milvus 2.3.5 with embedded etcd, local
    storage and rocksmq) on free loopback ports, data and logs under `data_dir`; returns (process,
    http://127.0.0.1:<port>) once it answers. The caller stops it (stop()).

    Every port is chosen here, so sessions run side by side: the package's own launcher lets the
    coordinators' ports be set, but its embedded etcd would still listen on 2379/2380; an etcd config file
    (ETCD_CONFIG_PATH, read by Milvus' embedded etcd) moves those too. METRICS_PORT is the health/metrics
    port (9091 by default)."""
    from milvus import MilvusServerConfig

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = _milvus_binaries()
    config = MilvusServerConfig()
    ports = {key: free_port() for key in config.configurable_items if key.endswith("_port")}
    config.update(data_dir=str(data_dir), **ports)
    config.resolve()  # writes data_dir/configs/milvus.yaml
    etcd_client, etcd_peer = ports["etcd_port"], free_port()
    etcd_yaml = data_dir / "configs" / "embed-etcd.yaml"
    etcd_yaml.write_text(
        "name: default\n"
        f"listen-client-urls: http://127.0.0.1:{etcd_client}\nadvertise-client-urls: http://127.0.0.1:{etcd_client}\n"
        f"listen-peer-urls: http://127.0.0.1:{etcd_peer}\ninitial-advertise-peer-urls: http://127.0.0.1:{etcd_peer}\n"
        f"initial-cluster: default=http://127.0.0.1:{etcd_peer}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MILVUS_URI"}
    env.update(
        DEPLOY_MODE="STANDALONE",
        METRICS_PORT=str(free_port()),
        MILVUS_RUN_DIR=str(data_dir / "run"),
        ETCD_CONFIG_PATH=str(etcd_yaml),
        LD_LIBRARY_PATH=":".join(p for p in (str(bin_dir), os.environ.get("LD_LIBRARY_PATH", "")) if p),
    )
    log_path = data_dir / "logs" / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(bin_dir / "milvus"), "run", "standalone"], cwd=data_dir, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    uri = f"http://127.0.0.1:{ports['proxy_port']}"
    try:
        wait_until(
            lambda: milvus_answers(uri),
            alive=lambda: proc.poll() is None,
            what="milvus standalone",
            timeout=timeout,
            log=log_path,
        )
    except BaseException:
        stop(proc)
        raise
    return proc, uri


@contextmanager
def milvus_standalone(data_dir: Path) -> Iterator[str]:
    """start_milvus_standalone() for the duration of a `with` block; yields its URI."""
    proc, uri = start_milvus_standalone(data_dir)
    try:
        yield uri
    finally:
        stop(proc, timeout=30)
