"""One MySQL connection per process, shared under a lock, reconnected transparently when the server dropped
it, with every call bounded in time; connection-level failures become StoreUnavailable.

Lambda containers serve one request at a time; the lock makes it safe for threaded local servers too. On
"access denied" with credentials from Secrets Manager the secret is fetched again once (rotation).
pymysql is imported lazily.
"""

from __future__ import annotations

import contextlib
import heapq
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from shared.errors import StoreUnavailable

T = TypeVar("T")

_ACCESS_DENIED = 1045  # ER_ACCESS_DENIED_ERROR: wrong (e.g. rotated) credentials
# MySQL client error codes meaning "the connection is gone" (retry once after reconnecting).
_CONN_LOST = {2003, 2006, 2013, 2055, 0}


class MySQLConnection:
    """The connection handling MetadataStore builds on (see module docstring)."""

    # Set by from_settings when credentials come from Secrets Manager: fetches them again (rotation).
    _refresh_credentials: Callable[[], dict[str, Any]] | None = None

    def __init__(self, conn_kwargs: dict[str, Any]) -> None:
        self._kwargs = dict(conn_kwargs)
        self._conn: Any = None
        self._lock = threading.RLock()
        self._last_used = 0.0

    def _connect(self) -> Any:
        import pymysql

        kwargs = {
            "charset": "utf8mb4",
            "autocommit": True,
            "connect_timeout": 5,
            "read_timeout": 120,
            "write_timeout": 120,
            **self._kwargs,
        }
        host = f"{kwargs.get('host')}:{kwargs.get('port')}/{kwargs.get('database')}"
        try:
            try:
                return pymysql.connect(**kwargs)
            except pymysql.err.OperationalError as exc:
                refresh = self._refresh_credentials
                if not (exc.args and exc.args[0] == _ACCESS_DENIED and refresh is not None):
                    raise
                # Access denied with credentials from Secrets Manager: the secret may have been rotated
                # since this container fetched it. Fetch it again and retry once.
                self._kwargs.update(refresh())
                return pymysql.connect(**{**kwargs, **self._kwargs})
        except pymysql.err.MySQLError as exc:
            raise StoreUnavailable(
                f"cannot connect to MySQL at {host}: {exc.args[-1] if exc.args else exc}"
            ) from exc
        except RuntimeError as exc:  # pymysql: caching_sha2_password over plain TCP without `cryptography`
            raise StoreUnavailable(f"cannot authenticate to MySQL at {host}: {exc}") from exc

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self._connect()
        elif time.monotonic() - self._last_used > 60:
            # Idle connections get dropped (wait_timeout, NAT, RDS failover): check before use.
            try:
                self._conn.ping(reconnect=True)
            except Exception:
                self._drop_conn()
                self._conn = self._connect()
        self._last_used = time.monotonic()
        return self._conn

    def _drop_conn(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # already broken
                self._conn.close()
        self._conn = None

    def _with_conn(self, fn: Callable[[Any], T], *, retry: bool = True) -> T:
        """Run fn(connection); on a lost connection reconnect and retry once (all our writes are
        idempotent upserts/deletes, so one retry is safe); then StoreUnavailable."""
        import pymysql

        budget = float(self._kwargs.get("read_timeout") or 120)
        # Bounded waiting: a call stuck on a hung server holds the lock for at most `budget` (watchdog below).
        if not self._lock.acquire(timeout=budget):
            raise StoreUnavailable(f"MySQL busy: the connection has been in use for over {budget:g} s")
        try:
            for attempt in (0, 1):
                conn = self._connection()
                fired: list[bool] = []
                watchdog = _watchdog(conn, budget, fired)
                try:
                    return fn(conn)
                except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
                    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
                    if code in _CONN_LOST or isinstance(exc, pymysql.err.InterfaceError):
                        self._drop_conn()
                        if fired or "timed out" in str(exc):
                            # A hung server: retrying would double the wait. The next call reconnects.
                            raise StoreUnavailable(f"MySQL did not answer within {budget:g} s") from exc
                        if attempt == 0 and retry:
                            continue
                        raise StoreUnavailable(f"MySQL connection lost: {exc}") from exc
                    raise
                except pymysql.err.ProgrammingError as exc:
                    if exc.args and exc.args[0] == 1146:  # table missing: schema never created here
                        raise StoreUnavailable(f"MySQL schema missing (run the loader first): {exc}") from exc
                    raise
                finally:
                    watchdog.cancel()
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            self._lock.release()

    def _fetchall(self, sql: str, args: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        def go(conn: Any) -> list[tuple[Any, ...]]:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return list(cur.fetchall())

        return self._with_conn(go)

    def _execute(self, sql: str, args: Sequence[Any] | None = None) -> int:
        def go(conn: Any) -> int:
            with conn.cursor() as cur:
                return int(cur.execute(sql, args))

        return self._with_conn(go)

    def close(self) -> None:
        with self._lock:
            self._drop_conn()

    def ping(self) -> None:
        """Raise StoreUnavailable unless MySQL answers."""
        try:
            self._fetchall("SELECT 1")
        except StoreUnavailable:
            raise
        except Exception as exc:
            raise StoreUnavailable(f"MySQL ping failed: {exc}") from exc


class _Alarm:
    """One armed deadline of the shared watchdog thread."""

    __slots__ = ("at", "cancelled", "fire")

    def __init__(self, at: float, fire: Callable[[], None]) -> None:
        self.at, self.fire, self.cancelled = at, fire, False

    def __lt__(self, other: _Alarm) -> bool:
        return self.at < other.at

    def cancel(self) -> None:
        self.cancelled = True


class _Watchdogs:
    """ONE daemon thread firing every call's deadline (a heap), instead of a threading.Timer thread started
    and stopped around every statement: that cost ~0.3-1 ms per MySQL call on a busy 2-core box."""

    def __init__(self) -> None:
        self._heap: list[_Alarm] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, fire: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(time.monotonic() + seconds, fire)
        with self._cond:
            heapq.heappush(self._heap, alarm)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mysql-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0] is alarm:
                self._cond.notify()  # an earlier deadline than the thread is sleeping towards
        return alarm

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cond.wait(60)
                    continue
                wait = self._heap[0].at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                due = heapq.heappop(self._heap)
            if not due.cancelled:
                due.fire()


_WATCHDOGS = _Watchdogs()


def _watchdog(conn: Any, budget: float, fired: list[bool]) -> _Alarm:
    """Shut the connection's socket if one call takes longer than `budget` in total.

    pymysql's read_timeout bounds each recv, not the call: a server trickling one byte per second would
    hold the call (and this store's lock) for ever. Shutting the socket makes the blocked read fail at once.
    """

    def fire() -> None:
        fired.append(True)
        sock = getattr(conn, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    return _WATCHDOGS.arm(budget, fire)
