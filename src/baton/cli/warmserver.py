"""The warm server of one ``BATON_HOME`` and installation (``python -m baton.cli.warmserver HOME``):
what :mod:`baton.cli.warm` hands ``baton run`` to.

It takes ``run/warm-<tag>.lock`` (one server at a time; a second one exits at once), imports what a
run needs, writes a fresh random key to ``run/warm-<tag>.key`` (0600) and listens on
``run/warm-<tag>.sock`` (0600, in a 0700 directory). A child forked ahead of time (:class:`Spare`) takes
each connection of this user, and the server forks the next one: the child checks the request and
serves it (:mod:`baton.cli.warmchild`), so a slow or hostile client never holds the server up, and two
runs never share a process.

It exits after :data:`IDLE` seconds with nothing running, when its socket is removed or replaced
(``BATON_HOME`` deleted, another server started), when baton's code under it changed (it would
otherwise run the old code) or the host's name did (its children would record the old one), on
SIGTERM or SIGINT, and on SIGUSR1: a child's word that ``warm`` is now ``off``. Its children are
separate processes: a run under way goes on when the server exits.
"""

from __future__ import annotations

import contextlib
import fcntl
import gc
import importlib
import os
import secrets
import select
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from baton.cli import warm, warmup
from baton.files import atomic_write_bytes
from baton.store import leases

IDLE = 120.0  # seconds with no run under way before the server exits
TICK = 1.0  # seconds between its checks of the socket, its code and its children
# what a run imports, before and after its agent: loaded once here, never in a child
PRELOAD = (
    "baton.cli.fast",
    "baton.cli.running",
    "baton.cli.render",
    "baton.runner.run",
    "baton.store.early",
    "baton.store.sql",  # a PostgreSQL store, and whatever the early store hands on
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
    sock_path, key_path, lock_path = warm.paths(home)
    run_dir = os.path.dirname(sock_path)
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    os.chmod(run_dir, 0o700)
    lock = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return  # another server has this home
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    warmup.warm_caches()
    warmup.rehearse(home)
    gc.freeze()  # what is loaded now is never scanned again: the children's pages stay shared
    code = code_files()
    key = secrets.token_bytes(32)

    def stop(_signum: int, _frame: object) -> None:
        raise Stop

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):  # SIGUSR1: a child read warm=off
        signal.signal(signum, stop)
    with _listening(sock_path, key_path, key) as (listener, ino), contextlib.suppress(Stop):
        serve(listener, (sock_path, ino), key, code, lock, home)


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
def _listening(sock_path: str, key_path: str, key: bytes) -> Iterator[tuple[socket.socket, int]]:
    """The key written, then the socket bound and renamed into place (a client that finds the socket
    finds this key): the listener and the socket's inode. Both files are removed at the end while
    they are still this server's; nothing half-made is left behind (a full disk)."""
    atomic_write_bytes(Path(key_path), key)  # 0600
    run_dir, tmp = os.path.dirname(sock_path), f".warm-{os.getpid()}.sock"
    dirfd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ino = -1
    try:
        old = os.umask(0o177)
        try:
            listener.bind(f"/proc/self/fd/{dirfd}/{tmp}")
        finally:
            os.umask(old)
        listener.listen(64)
        os.replace(tmp, sock_path, src_dir_fd=dirfd)
        ino = os.stat(sock_path).st_ino
        yield listener, ino
    finally:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dirfd)  # bound but never put in place
        os.close(dirfd)
        with contextlib.suppress(OSError):
            if os.stat(sock_path).st_ino == ino:
                os.unlink(sock_path)
                os.unlink(key_path)


def serve(
    listener: socket.socket,
    sock: tuple[str, int],
    key: bytes,
    code: dict[str, tuple[int, int]],
    lock: int,
    home: str | None = None,
) -> None:
    """Keep a spare child waiting for the next connection until idle, replaced (``sock``: the socket's
    path and inode), out of date, or told to stop. ``home``: the spares' (:func:`_wait_and_serve`)."""

    def stale() -> bool:  # its code, its socket, or the host name its children would record
        return changed(code) or not _still(*sock) or socket.gethostname() != leases.HOST

    busy: set[int] = set()
    last = time.monotonic()
    spare: Spare | None = None
    try:
        while not stale():
            spare = spare or Spare(listener, key, lock, stale, home)
            ready, _, _ = select.select([spare.taken], [], [], TICK)
            busy = {pid for pid in busy if not _reaped(pid)}
            if ready:
                word = os.read(spare.taken, 1)
                busy.add(spare.pid)
                spare.close()
                spare = None
                if word != TAKEN:
                    return  # it found this server out of date, or it died
            if busy or ready:
                last = time.monotonic()
            elif time.monotonic() - last > IDLE:
                return
    finally:
        if spare is not None:
            spare.close()  # it leaves: a connection it has not taken is never answered


TAKEN, STALE = b"T", b"S"
STOPPING = {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}  # the server's own handlers: raise Stop


class Spare:
    """A child forked ahead of the next connection (a fork is ~3 ms that no run waits for): it waits
    on the listener, says :data:`TAKEN` on its pipe when it took a connection (:data:`STALE`: the server
    is out of date, and the connection was closed unanswered), then serves it
    (:func:`baton.cli.warmchild.serve_one`). It leaves, taking nothing more, when its other pipe is
    closed: the server left, whether it cleaned up or was killed."""

    def __init__(
        self,
        listener: socket.socket,
        key: bytes,
        lock: int,
        stale: Callable[[], bool],
        home: str | None,
    ) -> None:
        self.taken, taken = os.pipe()
        leave, self.leave = os.pipe()
        # the server's handlers (Stop) must never run in the child: its signals wait until it has its own
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING)
        try:
            self.pid = os.fork()
            if self.pid == 0:
                for signum in (signal.SIGTERM, signal.SIGUSR1):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server's session has no terminal
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                os.close(lock)
                os.close(self.taken)
                os.close(self.leave)
                _wait_and_serve(listener, key, taken, leave, stale, home)  # never returns
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)  # the server's: a stop waiting is taken now
        os.close(taken)
        os.close(leave)

    def close(self) -> None:
        os.close(self.taken)
        os.close(self.leave)


def _wait_and_serve(
    listener: socket.socket,
    key: bytes,
    taken: int,
    leave: int,
    stale: Callable[[], bool],
    home: str | None,
) -> None:
    """The spare's life (its signals already its own): it reads its own context, holds the home's
    store open (:func:`_hold`) and rehearses a run (:func:`baton.cli.warmup.rehearse`), then waits."""
    from baton.cli import warmchild

    held = None
    try:
        mine = warmchild.context("self")
        if home is not None:
            held = _hold(_store_url(home))
            warmup.rehearse(home)  # while nobody waits: a fork's first touches of its pages
        while leave not in select.select([listener.fileno(), leave], [], [])[0]:
            try:
                conn, _ = listener.accept()
            except OSError:  # the client gave up in between
                continue
            listener.close()
            if stale():
                os.write(taken, STALE)
                conn.close()
                break
            os.write(taken, TAKEN)
            os.close(taken)
            os.close(leave)
            warmchild.serve_one(conn, key, mine)  # never returns
    except BaseException:
        pass
    if held is not None:
        with contextlib.suppress(Exception):
            held.close()  # the home's last connection, maybe: SQLite folds the WAL back in
    os._exit(0)


def _store_url(home: str) -> str | None:
    """The home's store as its ``config.toml`` names it (this process's environment holds no store
    setting); None when the settings cannot be read."""
    from baton.errors import BatonError
    from baton.settings import load_settings

    try:
        return load_settings(overrides={"home": home}).resolved_store_url
    except (BatonError, OSError, ValueError):
        return None


def _hold(store_url: str | None) -> sqlite3.Connection | None:
    """A connection to the home's SQLite store, held open while this spare waits and serves (never
    used): then no served run's connection is the store's last, whose closing would fold SQLite's
    write-ahead log back into the database (an fsync, ~2 ms) only for the next run to start a new
    one. None for another store, or one this spare cannot open."""
    from baton.store.lite import connect_current

    if store_url is None:
        return None
    try:
        return connect_current(store_url)
    except Exception:  # a full disk, a store being migrated: the runs open it as always
        return None


def _reaped(pid: int) -> bool:
    try:
        return os.waitpid(pid, os.WNOHANG)[0] != 0
    except ChildProcessError:
        return True


def _still(sock_path: str, ino: int) -> bool:
    try:
        return os.stat(sock_path).st_ino == ino
    except OSError:
        return False


if __name__ == "__main__":
    main(sys.argv[1:])
