"""The warm server's door (:mod:`baton.cli.warmserver`): the connections on their way in, each made to
prove itself before the server spends anything on it.

The server's own process, not a child, accepts every connection and keeps it here while it waits for
the first half of the key (:mod:`baton.cli.warm`, step 2): :data:`~baton.cli.warm.HALF` bytes within
:data:`~baton.cli.warm.PROOF` seconds of being accepted. A connection of another user, one that sends
something else, one that says nothing in time, and the oldest when :data:`PENDING` are waiting already,
is closed; nothing is forked for it and nothing of it is read beyond those bytes (descriptors sent
along with them are closed by the kernel: the door reads no ancillary data). One that proves itself
gets the key's second half and waits in :attr:`Gate.proven` for the server to hand it to its spare
child. So a flood of connections costs the server one descriptor and a few bytes each, for two seconds
at most, and a client with the key is still let in: its proof is in the socket when it is accepted,
and read then, before the next connection is accepted (and could push it out).

The door never blocks: every socket here is non-blocking, and :meth:`Gate.step` does what
``select`` said is ready.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import socket
import time
from collections import deque

from baton.cli import warm

PENDING = 32  # connections waiting for their proof at once (a legitimate one's is there on accept)
BACKLOG = 64  # connections the kernel queues before the door accepts them
BURST = 64  # connections accepted in one step, so that those accepted already are read in between


class Gate:
    """Connections accepted on ``listener`` waiting for the proof ``key[:HALF]``; the proven ones
    (answered ``key[HALF:]``) in :attr:`proven`, blocking again, for the server to hand on."""

    def __init__(self, listener: socket.socket, key: bytes) -> None:
        listener.setblocking(False)
        self.listener = listener
        self.key = key
        self.pending: dict[socket.socket, tuple[float, bytes]] = {}  # deadline, bytes so far; oldest first
        self.proven: deque[socket.socket] = deque()

    def sockets(self) -> list[socket.socket]:
        """Every socket the door holds (what a forked child must close)."""
        return [self.listener, *self.pending, *self.proven]

    def waiting(self) -> list[socket.socket]:
        """What ``select`` should watch for the door: the listener and the pending connections."""
        return [self.listener, *self.pending]

    def timeout(self, longest: float) -> float:
        """Seconds until the next pending connection's deadline (``longest`` at most)."""
        soonest = min((deadline for deadline, _ in self.pending.values()), default=None)
        return longest if soonest is None else max(0.0, min(longest, soonest - time.monotonic()))

    def step(self, ready: list[socket.socket]) -> None:
        """Read the pending connections ``select`` found ``ready``, accept new ones, drop the late."""
        for conn in [c for c in ready if c in self.pending]:
            self._read(conn)
        if self.listener in ready:
            self._accept()
        now = time.monotonic()
        for conn in [c for c, (deadline, _) in self.pending.items() if deadline <= now]:
            self._drop(conn)

    def close(self) -> None:
        for conn in [*self.pending, *self.proven]:
            conn.close()
        self.pending.clear()
        self.proven.clear()

    def _accept(self) -> None:
        for _ in range(BURST):
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # out of descriptors, or the client gave up in between: the next one
                continue
            if not self._mine(conn):
                conn.close()
                continue
            conn.setblocking(False)
            if len(self.pending) >= PENDING:  # a flood: the oldest has had its chance
                self._drop(next(iter(self.pending)))
            self.pending[conn] = (time.monotonic() + warm.PROOF, b"")
            self._read(conn)  # a client with the key sent its proof on connecting: it is there already

    @staticmethod
    def _mine(conn: socket.socket) -> bool:
        """Whether the client is this user's (an abstract socket has no file permissions)."""
        try:
            return warm.peer(conn)[1] == os.getuid()
        except OSError:
            return False

    def _read(self, conn: socket.socket) -> None:
        deadline, got = self.pending[conn]
        try:
            chunk = conn.recv(warm.HALF - len(got))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        got += chunk
        if len(got) < warm.HALF:
            self.pending[conn] = (deadline, got)
            return
        del self.pending[conn]
        if not hmac.compare_digest(got, self.key[: warm.HALF]):
            conn.close()
            return
        try:
            conn.send(self.key[warm.HALF :])  # 16 bytes into an empty socket buffer: all of them
        except OSError:
            conn.close()
            return
        conn.setblocking(True)
        if len(self.proven) >= PENDING:  # the server hands them on no faster than its children take them
            self.proven.popleft().close()
        self.proven.append(conn)

    def _drop(self, conn: socket.socket) -> None:
        del self.pending[conn]
        with contextlib.suppress(OSError):
            conn.close()
