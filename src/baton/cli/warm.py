"""Warm start: ``baton run`` handed to a pre-imported baton process instead of importing baton itself.

A ``baton run`` process spends ~0.1-0.2 s importing the runner before its agent can start, on every
turn. A dispatcher that starts one ``baton run`` per event pays that every time. So the first ``baton
run`` of a ``BATON_HOME`` also starts a **warm server** (:mod:`baton.cli.warmserver`) in the background:
one process per home and installation that has imported everything a run needs and waits on a UNIX
socket. The next ``baton run`` (this module, the client: nothing but ``os``, ``sys`` and ``_socket``)
connects, hands over its arguments, environment, working directory, umask and standard
input, output and error (the descriptors themselves, ``SCM_RIGHTS``), and the server forks a child that
runs the command exactly as this process would have, with those. The client forwards SIGINT and
SIGTERM to the child (the run is cancelled cleanly, as in a plain run), waits, and exits with the
child's exit code. When the client dies (even by SIGKILL) the child sees its socket close and cancels
the run: it still ends in the store with its real outcome.

Who may use it:

- only a process that can read ``run/warm-<tag>.key`` (mode 0600, rewritten at every server start) in
  ``BATON_HOME``: an agent inside baton's walls cannot (Landlock gives it nothing of ``BATON_HOME``
  but ``bin/``), so it can never ask baton to run anything, even though the walls do not stop it from
  connecting to a UNIX socket;
- only a process of the same user, in the same context as the server: same namespaces, root, cgroup,
  resource limits, capabilities, CPU affinity, niceness and security label, and the same Python
  start-up variables. The server checks these in ``/proc`` (:mod:`baton.cli.warmserver`); anything
  else is declined and the client runs the command itself, as if there were no server. So a run under
  ``systemd-run``, ``taskset``, ``ulimit`` or in another container keeps its limits.

Any failure on the way (no server, a stale or declined one, a key that cannot be read) before the
server accepts leaves nothing done and the command runs in this process. ``BATON_WARM=off`` (or
``warm = "off"`` in ``config.toml``) turns it off; a server exits after two idle minutes, when its
socket is removed, or when baton's code changed under it.

May import: nothing of baton's at module level (it runs before the slow imports).
"""

from __future__ import annotations

import _socket  # socket.py without its enums: ~2 ms sooner
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

VERSION = 1
MAX_MESSAGE = 16 * 2**20  # bytes of one request: arguments and environment (Linux allows ~2 MiB of each)
FORWARDED = (2, 15)  # SIGINT, SIGTERM (a SIGHUP ends the client: the child then cancels the run)
SERVING = False  # True in a child of the warm server: a run there never tries to hand itself on
CONTEXT_ENV = ("BATON_AGENTS_EXTRA",)  # read when baton is imported: the server's must be the client's


def home_dir(environ: Mapping[str, str]) -> str:
    """``BATON_HOME`` as :func:`baton.settings.load_settings` resolves it."""
    text = environ.get("BATON_HOME")
    if not text:
        import platformdirs

        text = platformdirs.user_data_dir("baton")
    return os.path.abspath(os.path.expanduser(text))


def installation() -> list[str]:
    """This installation: the protocol, its environment (``sys.prefix``: the virtualenv), its Python
    (resolved: ``bin/python`` and ``bin/python3`` are one) and where baton's code is. The server declines
    a client of another (and their tags keep them apart)."""
    python = os.path.realpath(sys.executable)
    return [str(VERSION), sys.prefix, python, sys.version, os.path.dirname(os.path.dirname(__file__))]


def tag() -> str:
    """A name for this installation's files in ``run/`` (FNV-1a of :func:`installation`: no hashlib,
    whose OpenSSL costs the hand-over ~3 ms; the server checks the installation itself)."""
    value = 0xCBF29CE484222325
    for byte in os.fsencode("\0".join(installation())):
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    return f"{value:016x}"[:12]


def encode(fields: list[str]) -> bytes:
    """Strings as the request carries them: each its length (4 bytes) and its bytes, as the OS had them
    (``os.fsencode``: an undecodable byte of an argument travels as that byte)."""
    out = []
    for field in fields:
        data = os.fsencode(field)
        out.append(len(data).to_bytes(4, "big") + data)
    return b"".join(out)


def paths(home: str) -> tuple[str, str, str]:
    """The server's socket, key and lock file in ``home``."""
    base = os.path.join(home, "run", f"warm-{tag()}")
    return base + ".sock", base + ".key", base + ".lock"


OFF, ABSENT, DECLINED = "off", "absent", "declined"


def hand_over(args: list[str]) -> int | str:
    """Run ``baton ARGS`` in the warm server: its exit code; or why no server took it (:data:`OFF`,
    :data:`ABSENT`: start one, :data:`DECLINED`), and then nothing was done and the caller runs it."""
    if SERVING or os.environ.get("BATON_WARM") == "off" or not _stdio_open():
        return OFF
    sock_path, key_path, _ = paths(home_dir(os.environ))
    try:
        with open(key_path, "rb") as fh:
            key = fh.read(64)
        conn = _connect(sock_path)
    except OSError:
        return ABSENT
    try:
        try:
            if not _send_request(conn, args, key) or _read_line(conn) != b"A":
                return DECLINED
        except OSError:
            return DECLINED  # before "A" nothing was done: the caller may run the command itself
        return _wait(conn)  # after it, never: the child has the command
    finally:
        conn.close()


def _stdio_open() -> bool:
    """Whether descriptors 0, 1 and 2 are open (a closed one is not handed on: the run is done here)."""
    try:
        for fd in (0, 1, 2):
            os.fstat(fd)
    except OSError:
        return False
    return True


def leave(code: int) -> NoReturn:
    """Exit with the served command's code, without the interpreter's finalization (~10 ms of a
    start-up's worth: this process holds nothing that needs it; it wrote nothing but an error)."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is one import more
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(code)


def _connect(path: str) -> _socket.socket:
    """A connection to the socket at ``path`` (through ``/proc/self/fd``: a path longer than a socket
    address may hold still works), refused unless the other end is this user's."""
    dirfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(f"/proc/self/fd/{dirfd}/{os.path.basename(path)}")
        creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
        if int.from_bytes(creds[4:8], sys.byteorder) != os.getuid():
            raise PermissionError("the warm server is another user's")
    except OSError:
        conn.close()
        raise
    finally:
        os.close(dirfd)
    return conn


def _send_request(conn: _socket.socket, args: list[str], key: bytes) -> bool:
    """The request, with this process's stdin, stdout, stderr and working directory as descriptors."""
    umask = os.umask(0o022)
    os.umask(umask)
    streams = [part for s in (sys.stdin, sys.stdout, sys.stderr) for part in _spec(s)]
    env = [part for item in os.environ.items() for part in item]
    fields = [*installation(), key.hex(), str(umask), sys.getfilesystemencoding()]
    fields += [sys.getfilesystemencodeerrors(), *streams, str(len(args)), *args, str(len(env) // 2), *env]
    body = encode(fields)
    if len(body) > MAX_MESSAGE:
        return False
    cwd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2, cwd))  # C ints, as array("i")
        header = len(body).to_bytes(4, "big")
        conn.sendmsg([header], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        conn.sendall(body)
    finally:
        os.close(cwd)
    return True


def _spec(stream: object) -> list[str]:
    """A standard stream's encoding and error handler, for the child to make its own alike (two empty
    strings: none, as a test runner's captured stream has)."""
    found = [getattr(stream, "encoding", None), getattr(stream, "errors", None)]
    return [str(part) for part in found] if all(isinstance(part, str) for part in found) else ["", ""]


def _read_line(conn: _socket.socket) -> bytes | None:
    """One ``\\n``-ended message (without it); None at the end of the stream."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            return None
        line += chunk
    return line[:-1]


def _wait(conn: _socket.socket) -> int:
    """Forward signals to the child until it reports its exit code."""
    import _signal  # type: ignore[import-not-found]

    def forward(signum: int, _frame: object) -> None:
        try:  # noqa: SIM105 - contextlib is one import more before the hand-over
            conn.sendall(b"S%d\n" % signum)
        except OSError:
            pass

    for signum in FORWARDED:
        _signal.signal(signum, forward)
    try:
        line = _read_line(conn)
    except OSError:
        line = None
    if line is None or not line.startswith(b"X") or not line[1:].isdigit():
        sys.stderr.write("error: the warm baton process ended without an exit code\n")
        return 1
    return int(line[1:])


def start_server(environ: Mapping[str, str]) -> None:
    """Start the warm server of this home in the background, in a session of its own (one that finds
    another running exits at once); never raises. Its environment is the variables that decide what it
    imports, nothing else (no secret lingers in it); its standard streams are ``/dev/null``."""
    home = home_dir(environ)
    keep = {k: v for k, v in environ.items() if k.startswith("PYTHON") or k in (*CONTEXT_ENV, "PATH")}
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    try:
        os.makedirs(os.path.join(home, "run"), mode=0o700, exist_ok=True)
        argv = [sys.executable, "-m", "baton.cli.warmserver", home]
        os.posix_spawn(sys.executable, argv, keep, file_actions=null, setsid=True)
    except OSError:
        pass
