"""The warm server of one ``BATON_HOME`` and installation (``python -m baton.cli.warmserver HOME``):
what :mod:`baton.cli.warm` hands ``baton run`` to.

It binds its abstract socket (:func:`baton.cli.warm.address`; the name is the one-server lock: a
second server finds it taken and exits at once), imports what a run needs, writes a fresh random key
to ``run/warm-<tag>.key`` (0600, in a 0700 directory) and listens. Its own process takes every
connection through its door (:mod:`baton.cli.warmgate`), which lets in only this user's clients that
prove they read the key. A child forked ahead of time (:class:`Spare`) is handed each proven
connection and the server forks the next one: the child checks the request and serves it
(:mod:`baton.cli.warmchild`), so a slow or hostile client never holds the server up, two runs never
share a process, and no connection makes the server fork before it proved itself. At most
:data:`WAITING` children wait for the request of the connection they were handed (:class:`Handed`).

While it waits, neither the server nor its spare holds anything open in ``BATON_HOME``: no lock file
(the name is the lock), no socket file, no store connection; its working directory is ``/``. A volume
holding the home can be unmounted as soon as the last run is done.

It exits after :data:`IDLE` seconds with nothing running, when its key file is removed or replaced
(``BATON_HOME`` deleted or unmounted, another server started in another network namespace), when
baton's code under it changed (it would otherwise run the old code) or the host's name did (its
children would record the old one), on SIGTERM or SIGINT (``baton warm stop``), and on SIGUSR1: a
child's word that ``warm`` is now ``off``. Its children are separate processes: a run under way goes on
when the server exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import secrets
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from baton.cli import warm, warmgate, warmup
from baton.cli.warmgate import Gate
from baton.files import atomic_write_bytes
from baton.store import leases

IDLE = 120.0  # seconds with no run under way before the server exits
TICK = 1.0  # seconds between its checks of its key file, its code and its children
WAITING = 8  # children handed a proven connection whose request has not come in yet, at most
# what a run imports, before and after its agent: loaded once here, never in a child
PRELOAD = (
    "baton.cli.fast",
    "baton.cli.running",
    "baton.cli.render",
    "baton.runner.run",
    "baton.store.sql",  # the run's store (SQLAlchemy)
    "sqlalchemy.dialects.sqlite",  # imported when the store's engine is made: else in every child
    "baton.agents.claude",
    "baton.agents.codex",
    "baton.agents.gemini",
    "baton.cli.warmchild",
    "rich.console",
    "rich.status",
)


class Stop(Exception):
    """SIGTERM or SIGINT: leave the loop and clean up."""


def main(argv: list[str]) -> None:
    os.chdir("/")  # never hold a directory (or its file system) busy
    home = argv[0] if argv else warm.home_dir(os.environ)
    listener = _bound(warm.address(home)) if warm.SUPPORTED else None
    if listener is None:
        return  # another server has this home (or this system has no abstract sockets)
    try:
        for name in PRELOAD:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        warmup.warm_caches()
        warmup.rehearse(home)
        gc.freeze()  # what is loaded now is never scanned again: the children's pages stay shared
        code = code_files()
        key = secrets.token_bytes(warm.KEY_SIZE)

        def stop(_signum: int, _frame: object) -> None:
            raise Stop

        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):  # SIGUSR1: a child read warm=off
            signal.signal(signum, stop)
        key_path = warm.key_path(home)
        with _key_written(key_path, key) as ino, contextlib.suppress(Stop):
            listener.listen(warmgate.BACKLOG)
            serve(Gate(listener, key), lambda: _still(key_path, ino), code, home)
    finally:
        listener.close()


def _bound(name: str) -> socket.socket | None:
    """A socket bound to the abstract ``name``; None when another process holds it."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(name)
    except OSError:
        listener.close()
        return None
    return listener


def code_files() -> dict[str, tuple[int, int]]:
    """Every loaded module file of baton's: its mtime and size, to notice an upgrade or an edit."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(warm.__file__)))
    found = {}
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and path.startswith(package):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                found[path] = (st.st_mtime_ns, st.st_size)
    return found


def changed(code: dict[str, tuple[int, int]]) -> bool:
    for path, seen in code.items():
        try:
            st = os.stat(path)
        except OSError:
            return True
        if (st.st_mtime_ns, st.st_size) != seen:
            return True
    return False


@contextlib.contextmanager
def _key_written(key_path: str, key: bytes) -> Iterator[int]:
    """The key written (0600, in a 0700 ``run/``): its inode. Removed at the end while it is still
    this server's; written and closed, it holds nothing open in the home."""
    run_dir = os.path.dirname(key_path)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    atomic_write_bytes(Path(key_path), key)  # 0600
    ino = os.stat(key_path).st_ino
    try:
        yield ino
    finally:
        if _still(key_path, ino):
            with contextlib.suppress(OSError):
                os.unlink(key_path)


def serve(gate: Gate, still: Callable[[], bool], code: dict[str, tuple[int, int]], home: str | None) -> None:
    """Keep a spare child waiting for the next proven connection until idle, replaced (``still``:
    whether the key file is this server's), out of date, or told to stop. ``home``: the spares'
    (:func:`_wait_and_serve`)."""
    checked = [time.monotonic()]

    def stale(now: bool = False) -> bool:  # its code, its key, or the host name its children would record
        if not now and time.monotonic() - checked[0] < TICK:
            return False  # not at every connection of a flood: ~200 stats
        checked[0] = time.monotonic()
        return changed(code) or not still() or socket.gethostname() != leases.HOST

    handed = Handed()
    last = time.monotonic()
    spare: Spare | None = None
    try:
        while not stale():
            spare = spare or Spare([*gate.sockets(), *handed.waiting], home)
            if gate.proven and not handed.full():
                if stale(now=True):  # the spare would run old code: the client runs the command itself
                    return
                handed.add(*spare.hand(gate.proven.popleft()))
                spare = None
            elif not _door(gate, spare, handed):
                return
            if handed.reap():
                last = time.monotonic()
            elif time.monotonic() - last > IDLE:
                return
    finally:
        gate.close()
        handed.close()
        if spare is not None:
            spare.close()  # it leaves


def _door(gate: Gate, spare: Spare, handed: Handed) -> bool:
    """Wait for the door's connections and the handed children's word (a :data:`TICK` at most) and
    do what is ready; False when the spare died before its connection came (something is wrong here:
    the server leaves)."""
    ready, _, _ = select.select([spare.chan, *handed.waiting, *gate.waiting()], [], [], gate.timeout(TICK))
    if spare.chan in ready:
        return False
    handed.settle(ready)
    gate.step(ready)
    return True


class Handed:
    """The children handed a connection: their pids until reaped (a run under way keeps the server
    from idling out), and the channels of those still waiting for their request, each closed by its
    child once the request is in (or by its death). At most :data:`WAITING` wait at once: beyond, a
    proven connection waits at the door, so even a client with the key that sends nothing more cannot
    make the server fork on and on."""

    def __init__(self) -> None:
        self.pids: set[int] = set()
        self.waiting: dict[socket.socket, int] = {}

    def add(self, chan: socket.socket, pid: int) -> None:
        self.pids.add(pid)
        self.waiting[chan] = pid

    def full(self) -> bool:
        return len(self.waiting) >= WAITING

    def settle(self, ready: list[socket.socket]) -> None:
        for chan in [c for c in ready if c in self.waiting]:
            del self.waiting[chan]
            chan.close()

    def reap(self) -> bool:
        """Whether a child is still running, once the dead ones are reaped."""
        self.pids = {pid for pid in self.pids if not _reaped(pid)}
        return bool(self.pids)

    def close(self) -> None:
        for chan in self.waiting:
            chan.close()
        self.waiting.clear()


STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}  # the server's own handlers: raise Stop


class Spare:
    """A child forked ahead of the next proven connection (a fork is ~3 ms that no run waits for). It
    waits on its channel (a socket pair) for the connection (:meth:`hand`), then serves it
    (:func:`baton.cli.warmchild.serve_one`). It leaves, taking nothing, when the channel closes: the
    server left, whether it cleaned up or was killed. ``inherited``: the server's sockets, closed in the
    child (a child holding the listener would keep the name, and the next server out)."""

    def __init__(self, inherited: list[socket.socket], home: str | None) -> None:
        self.chan, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # the server's handlers (Stop) must never run in the child: its signals wait until it has its own
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
        try:
            self.pid = os.fork()
            if self.pid == 0:
                for signum in (signal.SIGTERM, signal.SIGUSR1):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's session has no terminal
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                for sock in (*inherited, self.chan):
                    sock.close()
                _wait_and_serve(theirs, home)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the server's: a stop waiting is taken now
        theirs.close()

    def hand(self, conn: socket.socket) -> tuple[socket.socket, int]:
        """Give the child ``conn`` (closed here): the channel, which the child closes once it has the
        request (:class:`Handed`), and its pid."""
        try:
            socket.send_fds(self.chan, [b"C"], [conn.fileno()])
        except OSError:
            pass  # the child died: the client hears the connection close, and runs the command itself
        finally:
            conn.close()
        return self.chan, self.pid

    def close(self) -> None:
        self.chan.close()


def _wait_and_serve(chan: socket.socket, home: str | None) -> None:
    """The spare's life (its signals already its own): it reads its own context and rehearses a run
    (:func:`baton.cli.warmup.rehearse`), then waits for its connection."""
    from baton.cli import warmchild

    with contextlib.suppress(BaseException):
        mine = warmchild.context("self")
        if home is not None:
            warmup.rehearse(home)  # while nobody waits: a fork's first touches of its pages
        _, fds, _, _ = socket.recv_fds(chan, 1, 1)
        if fds:  # the channel is closed once the request is in: the server counts who still waits
            warmchild.serve_one(socket.socket(fileno=fds[0]), mine, chan.close)  # never returns
    os._exit(0)


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _still(key_path: str, ino: int) -> bool:
    try:
        return os.stat(key_path).st_ino == ino
    except OSError:
        return False


if __name__ == "__main__":
    main(sys.argv[1:])
