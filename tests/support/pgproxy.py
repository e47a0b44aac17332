"""A TCP proxy in front of Postgres that counts round trips and can delay every reply.

A round trip is a client write that follows a server reply (or opens the connection):
what costs one network latency when the database is 20-80 ms away. The proxy delays
the first bytes of each server reply by `delay` seconds, so a benchmark can model a
remote database; tests leave the delay at 0 and only count.
Listens on 127.0.0.1 only; forwards to the server's TCP address or Unix socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse


def _upstream_address(url: str) -> tuple[int, object]:
    parts = urlparse(url)
    query = parse_qs(parts.query)
    host = query.get("host", [parts.hostname or "localhost"])[0]
    port = parts.port or int(query.get("port", ["5432"])[0])
    if host.startswith("/"):
        return socket.AF_UNIX, f"{host}/.s.PGSQL.{port}"
    return socket.AF_INET, (host, port)


class PgProxy:
    """Context manager; `url` is the proxied connection string."""

    def __init__(self, target_url: str, delay: float = 0.0):
        self.target_url = target_url
        self.delay = delay
        self._family, self._address = _upstream_address(target_url)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self.per_connection: list[int] = []  # round trips of each connection, in open order
        self.bytes_sent = 0  # client to server, all connections
        self._threads: list[threading.Thread] = []
        self._open: list[socket.socket] = []
        self._closing = False

    @property
    def url(self) -> str:
        parts = urlparse(self.target_url)
        query = {k: v[0] for k, v in parse_qs(parts.query).items() if k not in ("host", "port")}
        query["sslmode"] = "disable"
        user = parts.username or "postgres"
        auth = f"{user}:{parts.password}@" if parts.password else f"{user}@"
        port = self._listener.getsockname()[1]
        return urlunparse(parts._replace(netloc=f"{auth}127.0.0.1:{port}", query=urlencode(query)))

    @property
    def round_trips(self) -> int:
        with self._lock:
            return sum(self.per_connection)

    def reset(self) -> None:
        with self._lock:
            self.per_connection = [0] * len(self.per_connection)
            self.bytes_sent = 0

    def __enter__(self) -> PgProxy:
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True
        self._listener.close()
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.socket(self._family, socket.SOCK_STREAM)
            upstream.connect(self._address)
            # Forward each write as it comes, as a network does: without this, Nagle's
            # algorithm held a client's second small write (libpq's own socket sets
            # TCP_NODELAY) until Postgres's delayed ACK, 40 ms later.
            for sock in (client, upstream):
                if sock.family != socket.AF_UNIX:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                index = len(self.per_connection)
                self.per_connection.append(0)
                self._open += [client, upstream]
            state = {"awaiting": False}
            for target, args in ((self._client_to_server, (client, upstream, index, state)),
                                 (self._server_to_client, (upstream, client, state))):  # fmt: skip
                thread = threading.Thread(target=target, args=args, daemon=True)
                thread.start()

    def _client_to_server(self, src, dst, index: int, state: dict) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    if not state["awaiting"]:
                        self.per_connection[index] += 1
                        state["awaiting"] = True
                    self.bytes_sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(dst)

    def _server_to_client(self, src, dst, state: dict) -> None:
        try:
            while data := src.recv(65536):
                with self._lock:
                    first_of_reply = state["awaiting"]
                    state["awaiting"] = False
                if first_of_reply and self.delay:
                    time.sleep(self.delay)  # the benchmark's network latency (tests use 0)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _shut(dst)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
