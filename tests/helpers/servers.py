"""Processes the tests (and the benches) start and wait for: a free loopback port, waiting until a server
answers (or its process dies, or time runs out), stopping a process, and `milvus-lite server` (a separate
process speaking a Milvus server's gRPC protocol)."""

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
