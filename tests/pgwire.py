"""A watcher of what a PostgreSQL client sends (frontend messages of protocol 3.0, read as they pass a
:class:`tests.tcpproxy.Proxy`), to freeze a client at an exact moment of its transaction: between a
statement and its ``COMMIT``. The connection must not use TLS (``sslmode=disable``): the watcher reads
the plain messages. Statements are recognised in a simple ``Query``, or in the ``Bind`` of a statement
a ``Parse`` named (psycopg prepares a statement it ran five times; it is then bound by name only)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.tcpproxy import Watcher

# the codes of the untyped messages before the startup message: SSLRequest, GSSENCRequest
_BEFORE_STARTUP = (80877103, 80877104)


class Frames:
    """Splits one connection's client stream into whole messages (the untyped ones before the startup
    message included)."""

    def __init__(self) -> None:
        self.buffer = b""
        self.started = False

    def feed(self, data: bytes) -> list[bytes]:
        self.buffer += data
        messages: list[bytes] = []
        while (message := self._next()) is not None:
            messages.append(message)
        return messages

    def _next(self) -> bytes | None:
        head = 0 if not self.started else 1  # a typed message: its kind's byte, then the length
        if len(self.buffer) < head + 4:
            return None
        size = head + int.from_bytes(self.buffer[head : head + 4], "big")
        if len(self.buffer) < size:
            return None
        message, self.buffer = self.buffer[:size], self.buffer[size:]
        if not self.started and int.from_bytes(message[4:8], "big") not in _BEFORE_STARTUP:
            self.started = True
        return message


def _cstring(data: bytes) -> tuple[bytes, bytes]:
    text, _, rest = data.partition(b"\0")
    return text, rest


class CommitStall:
    """A :class:`~tests.tcpproxy.Proxy`'s ``watch``: once :attr:`watching` is set, on the first
    connection that runs a statement starting with ``after`` and then ``COMMIT``, ``on_stall()`` is
    called as that ``COMMIT`` arrives and the ``COMMIT`` is held (the server sees the transaction idle,
    its locks held) until :meth:`release`. Once only."""

    def __init__(self, after: bytes, on_stall: Callable[[], None]) -> None:
        self.after = after
        self.on_stall = on_stall
        self.watching = threading.Event()
        self.stalled = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._taken = False

    def release(self) -> None:
        self.released.set()

    def __call__(self) -> Watcher:
        frames, statements = Frames(), dict[bytes, bytes]()
        armed = False

        def watch(data: bytes) -> bytes:
            nonlocal armed
            for message in frames.feed(data):
                statement = self._statement(message, statements)
                if statement is None or not self.watching.is_set():
                    continue
                if statement.startswith(self.after):
                    armed = True
                elif armed and statement.strip().upper() == b"COMMIT" and self._first():
                    self.on_stall()
                    self.stalled.set()
                    self.released.wait()
            return data

        return watch

    def _first(self) -> bool:
        with self._lock:
            first, self._taken = not self._taken, True
            return first

    @staticmethod
    def _statement(message: bytes, statements: dict[bytes, bytes]) -> bytes | None:
        """The statement a message runs (None: it runs none), noting what a Parse names."""
        kind, body = message[:1], message[5:]
        if kind == b"Q":
            return _cstring(body)[0]
        if kind == b"P":
            name, rest = _cstring(body)
            statements[name] = _cstring(rest)[0]
        elif kind == b"B":
            name = _cstring(_cstring(body)[1])[0]  # after the portal's name
            return statements.get(name, b"")
        return None
