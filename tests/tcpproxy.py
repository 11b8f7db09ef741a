"""A TCP forwarder a test controls, to cut one client off a shared server (PostgreSQL) without
disturbing the server or other tests: :meth:`Proxy.drop` closes every forwarded connection and, until
:meth:`Proxy.restore`, closes each new one at once (the client sees the server vanish: "server closed
the connection unexpectedly"); the server itself never notices more than clients going away. With
``watch``, what each client sends goes through a watcher of its connection first (which may hold it:
:mod:`tests.pgwire`)."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

# what a client sends, as it arrives, to the bytes to forward (called before they are; it may block)
Watcher = Callable[[bytes], bytes]


class Proxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port`` while up; ``watch`` makes each connection's
    :data:`Watcher` of what its client sends."""

    def __init__(self, host: str, port: int, watch: Callable[[], Watcher] | None = None) -> None:
        self.upstream = (host, port)
        self.watch = watch
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.refused = 0  # connections closed at once while down
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._closing = False
        self._thread = threading.Thread(target=self._accept, name="tcpproxy", daemon=True)
        self._thread.start()

    def drop(self) -> None:
        """The server vanishes for the client: every open connection closed, new ones refused."""
        self.down.set()
        with self._lock:
            for sock in self._open:
                _close(sock)
            self._open.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self._closing = True
        self.drop()
        _close(self.listener)
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                self.refused += 1
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._open.update((client, server))
            watcher = self.watch() if self.watch is not None else None
            for a, b, w in ((client, server, watcher), (server, client, None)):
                threading.Thread(target=self._pump, args=(a, b, w), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, watcher: Watcher | None) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(watcher(data) if watcher is not None else data)
        for sock in (source, sink):
            _close(sock)
            with self._lock:
                self._open.discard(sock)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


@contextlib.contextmanager
def proxied(host: str, port: int, watch: Callable[[], Watcher] | None = None) -> Iterator[Proxy]:
    proxy = Proxy(host, port, watch)
    try:
        yield proxy
    finally:
        proxy.close()
