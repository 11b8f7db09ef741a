"""Warm start: ``baton run`` handed to a pre-imported baton process instead of importing baton itself.

A ``baton run`` process spends ~0.1-0.2 s importing the runner before its agent can start, on every
turn. A dispatcher that starts one ``baton run`` per event pays that every time. So the first ``baton
run`` of a ``BATON_HOME`` also starts a **warm server** (:mod:`baton.cli.warmserver`) in the background:
one process per home and installation that has imported everything a run needs and waits on a UNIX
socket. The next ``baton run`` (this module, the client: nothing but ``os``, ``sys`` and ``_socket``)
connects, hands over its arguments, environment, working directory, umask and standard
input, output and error (the descriptors themselves, ``SCM_RIGHTS``), and a child of the server runs
the command exactly as this process would have, with those. The client forwards SIGINT and SIGTERM to
the child (the run is cancelled cleanly, as in a plain run), waits, and exits with the child's exit
code. When the client dies (even by SIGKILL) the child sees its socket close and cancels the run: it
still ends in the store with its real outcome.

The socket is in Linux's **abstract namespace** (:func:`address`: a name made of the installation's tag
and the home's path, no file): nothing of it lies in ``BATON_HOME``, whose volume the server therefore
never holds busy, and Landlock's ``LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET`` (set on every walled agent:
``baton.sandbox.walls.SCOPED``) keeps an agent from connecting to it. Elsewhere there is no warm server.

Who may use it, the conversation (each step before the next):

1. the client connects (at most :data:`CONNECT` seconds) and checks that the other end is this user's;
2. it sends the first half of ``run/warm-<tag>.key`` (:data:`HALF` bytes; mode 0600, rewritten at every
   server start in ``BATON_HOME``): only a process that can read the key has it, and no walled agent can
   (Landlock gives it nothing of ``BATON_HOME`` but ``bin/``). The server checks it (within
   :data:`PROOF` seconds of the connection) before it spends anything on the connection: no fork;
3. the server answers with the key's second half: the client checks it, so a process that bound the
   name in the server's absence (an agent may bind, though not connect) learns nothing but the first
   half (of no use to it: it cannot connect) and gets neither descriptors nor environment;
4. the client sends its request; a child of the server checks it and answers ``A`` (or ``D<why>``); the
   client answers ``G`` (go), and only then does the child run the command. A client that hears
   nothing within :data:`ANSWER` seconds gives up and runs the command itself: the child, without its
   ``G``, never runs it.

The child runs only a request of the same user in the same context as the server: same namespaces,
root, cgroup, resource limits, capabilities, CPU affinity, niceness and security label, and the same
Python start-up variables. It checks these in ``/proc`` (:mod:`baton.cli.warmchild`); anything else is
declined and the client runs the command itself, as if there were no server. So a run under
``systemd-run``, ``taskset``, ``ulimit`` or in another container keeps its limits.

Any failure on the way (no server, a stale, busy or declined one, a key that cannot be read) before the
``G`` leaves nothing done and the command runs in this process. ``BATON_WARM=off`` (or ``warm = "off"``
in ``config.toml``) turns it off; a server exits after two idle minutes, when its key file is removed
or replaced, when baton's code changed under it, or on ``baton warm stop``.

May import: nothing of baton's at module level (it runs before the slow imports).
"""

from __future__ import annotations

import _socket  # socket.py without its enums: ~2 ms sooner
import os
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import NoReturn

VERSION = 2
MAX_MESSAGE = 16 * 2**20  # bytes of one request: arguments and environment (Linux allows ~2 MiB of each)
FORWARDED = (2, 15)  # SIGINT, SIGTERM (a SIGHUP ends the client: the child then cancels the run)
SERVING = False  # True in a child of the warm server: a run there never tries to hand itself on
CONTEXT_ENV = ("BATON_AGENTS_EXTRA",)  # read when baton is imported: the server's must be the client's
KEY_SIZE = 32  # bytes of the key: the client proves it knows the first half, the server the second
HALF = KEY_SIZE // 2
CONNECT = 2.0  # seconds to wait for room in the server's backlog (a flood fills it) before running here
PROOF = 2.0  # seconds the server waits for a connection's first half of the key
ANSWER = 5.0  # seconds the client waits for the answers (the key's second half, then A or D), in all
SUPPORTED = sys.platform.startswith("linux")  # the abstract namespace is Linux's; elsewhere, no server


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
    """A name for this installation's key file and socket (:func:`fnv` of :func:`installation`; the
    server checks the installation itself)."""
    return fnv(os.fsencode("\0".join(installation())))


def encode(fields: list[str]) -> bytes:
    """Strings as the request carries them: each its length (4 bytes) and its bytes, as the OS had them
    (``os.fsencode``: an undecodable byte of an argument travels as that byte)."""
    out = []
    for field in fields:
        data = os.fsencode(field)
        out.append(len(data).to_bytes(4, "big") + data)
    return b"".join(out)


def fnv(data: bytes) -> str:
    """FNV-1a, 48 bits in hex: a short name for a string (no hashlib, whose OpenSSL costs the hand-over
    ~3 ms)."""
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) % 2**64
    return f"{value:016x}"[:12]


def key_path(home: str) -> str:
    """The server's key in ``home`` (the one file of the server's there, written and closed)."""
    return os.path.join(home, "run", f"warm-{tag()}.key")


def address(home: str) -> str:
    """The server's socket: an abstract name (the leading NUL) of this installation and ``home``
    (its absolute path: two homes, two servers)."""
    return f"\0baton-warm-{tag()}-{fnv(os.fsencode(home))}"


OFF, ABSENT, DECLINED = "off", "absent", "declined"


def off(env: Mapping[str, str], setting: str | None = None) -> bool:
    """Whether the warm server is off: the one rule for the three processes that ask (the client
    before it hands a command over, ``baton run`` before it starts a server, a server's child after
    each command, which stops the server then). ``setting``: the settings' ``warm`` (environment,
    then ``config.toml``) when the caller has them; without it, ``BATON_WARM`` alone, as the client's
    fast path loads no settings (a server started before ``config.toml`` said ``off`` takes the
    command, and its child stops it)."""
    return (env.get("BATON_WARM") if setting is None else setting) == OFF


def hand_over(args: list[str]) -> int | str:
    """Run ``baton ARGS`` in the warm server: its exit code; or why no server took it (:data:`OFF`,
    :data:`ABSENT`: start one, :data:`DECLINED`), and then nothing was done and the caller runs it."""
    if SERVING or not SUPPORTED or off(os.environ) or not _stdio_open():
        return OFF
    home = home_dir(os.environ)
    try:
        with open(key_path(home), "rb") as fh:
            key = fh.read(KEY_SIZE + 1)
        conn = connect(address(home))
    except (ConnectionRefusedError, FileNotFoundError):
        return ABSENT  # no key, or nobody listening: no server
    except OSError:
        return DECLINED  # a server too busy to take the connection, or one the caller may not reach
    try:
        try:
            deadline = time.monotonic() + ANSWER
            if len(key) != KEY_SIZE or not _proven(conn, key, deadline) or not _send_request(conn, args):
                return DECLINED
            if _read_line(conn, deadline) != b"A":
                return DECLINED
            conn.settimeout(None)
            conn.sendall(b"G\n")  # the child runs the command only now
        except OSError:
            return DECLINED  # before "G" nothing was done: the caller may run the command itself
        return _wait(conn)  # after it, never: the child has the command
    finally:
        conn.close()


def _proven(conn: _socket.socket, key: bytes, deadline: float | None = None) -> bool:
    """Steps 2 and 3 of the module's conversation: the key's first half sent, its second half heard
    (constant-time compare) before ``deadline``."""
    from _operator import _compare_digest  # hmac's, without hashlib

    conn.sendall(key[:HALF])
    heard = b""
    while len(heard) < HALF:
        chunk = _recv(conn, HALF - len(heard), deadline)
        if not chunk:
            return False
        heard += chunk
    return bool(_compare_digest(heard, key[HALF:]))


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


def connect(name: str) -> _socket.socket:
    """A connection to the abstract socket ``name``, refused unless the other end is this user's (an
    abstract socket has no file permissions). Waits :data:`CONNECT` seconds at most for room in its
    backlog; its answers, :data:`ANSWER` seconds each."""
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        # a blocking connect waits for the backlog as long as SO_SNDTIMEO says (a timeval: two longs)
        timeval = int(CONNECT).to_bytes(8, sys.byteorder) + (0).to_bytes(8, sys.byteorder)
        conn.setsockopt(_socket.SOL_SOCKET, _socket.SO_SNDTIMEO, timeval)
        conn.connect(name)
        if peer(conn)[1] != os.getuid():
            raise PermissionError("the warm server is another user's")
        conn.settimeout(ANSWER)
    except OSError:
        conn.close()
        raise
    return conn


def peer(conn: _socket.socket) -> tuple[int, int]:
    """The pid and uid of the process at the other end of ``conn`` (``SO_PEERCRED``)."""
    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 12)
    return int.from_bytes(creds[:4], sys.byteorder), int.from_bytes(creds[4:8], sys.byteorder)


def _send_request(conn: _socket.socket, args: list[str]) -> bool:
    """The request, with this process's stdin, stdout, stderr and working directory as descriptors."""
    umask = os.umask(0o022)
    os.umask(umask)
    streams = [part for s in (sys.stdin, sys.stdout, sys.stderr) for part in _spec(s)]
    env = [part for item in os.environ.items() for part in item]
    fields = [*installation(), str(umask), sys.getfilesystemencoding()]
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


def _read_line(conn: _socket.socket, deadline: float | None = None) -> bytes | None:
    """One ``\\n``-ended message (without it); None at the end of the stream. TimeoutError past
    ``deadline`` (``time.monotonic``), however slowly the bytes come."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = _recv(conn, 1, deadline)
        if not chunk:
            return None
        line += chunk
    return line[:-1]


def _recv(conn: _socket.socket, size: int, deadline: float | None) -> bytes:
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the warm server did not answer in time")
        conn.settimeout(left)
    return conn.recv(size)


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
    if not SUPPORTED:
        return
    home = home_dir(environ)
    keep = {k: v for k, v in environ.items() if k.startswith("PYTHON") or k in (*CONTEXT_ENV, "PATH")}
    null = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
    # nor any descriptor this process was given (a dispatcher's pipe, a file on the home's volume):
    # the server would hold it open for as long as it lives
    closed = [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable()]
    try:
        os.makedirs(os.path.join(home, "run"), mode=0o700, exist_ok=True)
        argv = [sys.executable, "-m", "baton.cli.warmserver", home]
        os.posix_spawn(sys.executable, argv, keep, file_actions=[*null, *closed], setsid=True)
    except OSError:
        pass


def _inheritable() -> list[int]:
    """This process's descriptors above 2 that a spawned process would inherit."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            if int(name) > 2 and os.get_inheritable(int(name)):
                found.append(int(name))
        except OSError:  # the listing's own descriptor, closed by now
            continue
    return found
