"""Milvus connections: pymilvus imported without seeing MILVUS_URI, one client per (uri, token) per process,
and connection-level failures translated into StoreUnavailable (request errors propagate unchanged).

pymilvus is imported lazily so that importing this module stays cheap (Lambda cold start).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared.errors import StoreUnavailable

if TYPE_CHECKING:  # pragma: no cover
    from pymilvus import MilvusClient

# Codes pymilvus/Milvus use for "not there" (collection or alias) and "not loaded".
NOT_FOUND_CODES = {100}
NOT_LOADED_CODES = {101}


_import_lock = threading.Lock()


def import_pymilvus() -> Any:
    """Import pymilvus with MILVUS_URI hidden from it.

    pymilvus reads MILVUS_URI at import time to configure its legacy ORM default connection and fails
    when it is a Milvus Lite file path. Our setting is GRAPHREC_MILVUS_URI, but MILVUS_URI is its old name,
    still honoured (deprecated) for stacks and shells that set it, and then it is a Lite path as often as
    not; pymilvus must not see it. Every pymilvus import in this project goes through here.
    """
    import sys

    if "pymilvus" in sys.modules:
        return sys.modules["pymilvus"]
    with _import_lock:
        saved = os.environ.pop("MILVUS_URI", None)
        try:
            import pymilvus
        finally:
            if saved is not None:
                os.environ["MILVUS_URI"] = saved
    return pymilvus


def is_lite_uri(uri: str) -> bool:
    """Milvus Lite is a local file path; servers are URLs."""
    return not uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


_clients: dict[tuple[str, str | None], MilvusClient] = {}
_clients_lock = threading.Lock()


def client_for(uri: str, token: str | None, connect_timeout: float | None = None) -> MilvusClient:
    """One MilvusClient per (uri, token) per process: connections (and Milvus Lite's server) are costly.
    connect_timeout bounds the first connection (default 30 s; the API passes its few-second budget)."""
    key = (uri, token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import_pymilvus()
            from pymilvus import MilvusClient
            from pymilvus.exceptions import MilvusException

            if is_lite_uri(uri):
                Path(uri).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            try:
                # Milvus Lite starts in-process (no network to hang on): give it the full 30 s on a busy box.
                wait = 30.0 if is_lite_uri(uri) else (connect_timeout or 30.0)
                client = MilvusClient(uri=uri, token=token or "", timeout=wait)
            except MilvusException as exc:
                raise StoreUnavailable(f"cannot connect to Milvus: {exc.message}") from exc
            except Exception as exc:  # grpc/OS errors while starting Milvus Lite or dialing the server
                raise StoreUnavailable(f"cannot connect to Milvus: {type(exc).__name__}: {exc}") from exc
            _clients[key] = client
        return client


def close_all_clients() -> None:
    """Close every cached client (tests, and before handing a Milvus Lite file to another process)."""
    with _clients_lock:
        for (uri, _), client in _clients.items():
            with contextlib.suppress(Exception):  # best effort on shutdown
                client.close()
            if is_lite_uri(uri):
                # Milvus Lite runs in-process per .db file and keeps it open after client.close().
                with contextlib.suppress(Exception):
                    from milvus_lite.server_manager import server_manager_instance

                    server_manager_instance.release_server(uri)
        _clients.clear()


def is_unavailable(exc: BaseException) -> bool:
    """Connection-level failures (server down, network, timeouts) as opposed to request errors."""
    import_pymilvus()
    from pymilvus.exceptions import (
        ConnectError,
        ConnectionNotExistException,
        MilvusException,
        MilvusUnavailableException,
    )

    if isinstance(exc, ConnectError | MilvusUnavailableException | ConnectionNotExistException):
        return True
    if isinstance(exc, MilvusException):
        msg = (exc.message or "").lower()
        return exc.code == 2 or "unavailable" in msg or "deadline" in msg or "connect" in msg
    try:
        import grpc

        if isinstance(exc, grpc.RpcError):
            return True
    except ImportError:  # pragma: no cover
        pass
    return isinstance(exc, ConnectionError | TimeoutError)


def error_code(exc: BaseException) -> int | None:
    import_pymilvus()
    from pymilvus.exceptions import MilvusException

    return int(exc.code) if isinstance(exc, MilvusException) else None


@contextmanager
def guard(what: str) -> Iterator[None]:
    """Translate connection-level failures into StoreUnavailable; other errors propagate unchanged."""
    try:
        yield
    except StoreUnavailable:
        raise
    except Exception as exc:
        if is_unavailable(exc):
            raise StoreUnavailable(f"Milvus unavailable during {what}: {exc}") from exc
        raise
