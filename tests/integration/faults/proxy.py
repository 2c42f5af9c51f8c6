"""A real TCP proxy with switchable faults, to put between the app and MariaDB or a Milvus server.

Faults (set at any time; they apply to open connections and to new ones):
- "pass":  bytes flow both ways.
- "stall": connections are accepted (and kept) but nothing is forwarded either way - a peer that hangs.
- "reset": every open connection is aborted with a TCP RST; new ones are accepted and reset at once.
- "slow":  server -> client bytes trickle, one byte every `slow_delay` seconds (a per-recv timeout never
           fires: only a whole-call budget ends it).
- "drop":  the next server -> client chunk is cut: only its first `drop_after` bytes are forwarded, then
           the connection is closed - a result dropped midway.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

MODES = ("pass", "stall", "reset", "slow", "drop")


class FaultProxy:
    def __init__(
        self, upstream_host: str, upstream_port: int, *, slow_delay: float = 0.3, drop_after: int = 5
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.slow_delay = slow_delay
        self.drop_after = drop_after
        self.mode = "pass"
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = int(self._listener.getsockname()[1])
        self._conns: set[tuple[socket.socket, socket.socket | None]] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self.accepted = 0
        threading.Thread(target=self._accept_loop, name=f"fault-proxy-{self.port}", daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        if mode == "reset":
            with self._lock:
                conns = list(self._conns)
            for client, server in conns:
                self._abort(client, server)

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for client, server in conns:
            self._abort(client, server)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _rst(sock: socket.socket | None) -> None:
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()

    def _abort(self, client: socket.socket, server: socket.socket | None) -> None:
        with self._lock:
            self._conns.discard((client, server))
        self._rst(client)
        self._rst(server)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.mode == "reset":
                self._rst(client)
                continue
            server: socket.socket | None = None
            if self.mode != "stall":
                try:
                    server = socket.create_connection(self.upstream, timeout=5)
                except OSError:
                    self._rst(client)
                    continue
            pair = (client, server)
            with self._lock:
                self._conns.add(pair)
            threading.Thread(target=self._pump_pair, args=(pair,), daemon=True).start()

    def _pump_pair(self, pair: tuple[socket.socket, socket.socket | None]) -> None:
        client, server = pair
        if server is None:  # accepted while stalled: hold it until the mode changes, then connect on
            while self.mode == "stall" and not self._closed.is_set():
                time.sleep(0.02)
            if self.mode == "reset" or self._closed.is_set():
                self._abort(client, None)
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                self._abort(client, None)
                return
            with self._lock:
                self._conns.discard(pair)
                pair = (client, server)
                self._conns.add(pair)
        up = threading.Thread(target=self._pump, args=(client, server, pair, False), daemon=True)
        up.start()
        self._pump(server, client, pair, True)
        up.join()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        pair: tuple[socket.socket, socket.socket | None],
        downstream: bool,
    ) -> None:
        try:
            src.settimeout(0.05)
        except OSError:  # already aborted by a reset
            self._abort(*pair)
            return
        while not self._closed.is_set():
            if self.mode == "stall":
                time.sleep(0.02)
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            try:
                if downstream and self.mode == "drop":
                    dst.sendall(data[: self.drop_after])
                    break
                if downstream and self.mode == "slow":
                    for i in range(len(data)):
                        if self._closed.is_set() or self.mode != "slow":
                            dst.sendall(data[i:])
                            break
                        dst.sendall(data[i : i + 1])
                        time.sleep(self.slow_delay)
                    continue
                while self.mode == "stall" and not self._closed.is_set():
                    time.sleep(0.02)  # stalled after reading: hold the bytes
                dst.sendall(data)
            except OSError:
                break
        self._abort(*pair)


def main() -> None:
    """Run the proxy as its own process (the benchmark does, so that forwarding never shares a GIL with the
    load generator): prints its port, then SIGUSR1 = stall, SIGUSR2 = pass, SIGTERM = stop."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("upstream", help="host:port to forward to")
    args = parser.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    proxy = FaultProxy(host, int(port))
    stop = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: proxy.set("stall"))
    signal.signal(signal.SIGUSR2, lambda *_: proxy.set("pass"))
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(proxy.port, flush=True)
    while not stop.wait(0.5):
        pass
    proxy.close()


if __name__ == "__main__":
    main()
