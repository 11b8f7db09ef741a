"""One child of the warm server (:mod:`baton.cli.warmserver`): it checks one client's request and, if
it may, becomes that client's ``baton`` process — its standard streams, working directory, umask,
environment and arguments — and runs the command (:func:`baton.cli.main`), reporting the exit code.

The connection it is handed has proved already that its client read the server's key (the server's
door, :mod:`baton.cli.warmgate`: no walled agent can read it). A request is still declined, before
anything is done, unless: it is of this installation; its Python start-up variables (``PYTHON*``) and
:data:`~baton.cli.warm.CONTEXT_ENV` are the server's; and the client process (its pid from
``SO_PEERCRED``) runs in the server's context, as ``/proc`` tells: the same namespaces and root,
cgroup, resource limits, user and groups, capabilities, no-new-privileges and seccomp state, CPU and
memory affinity, niceness and scheduling policy, OOM score adjustment and security label. What the run
then starts therefore runs where and as the client would have run it.

The answer is ``A`` (accepted) or ``D<why>`` (declined); after ``A`` the child waits for the client's
``G`` (go) and runs nothing without it (a client that gave up waiting runs the command itself). Signals
from the client (``S<signum>``) are raised in this process, where the run's own handlers cancel it;
the client's socket closing (the client died) is a SIGTERM. ``X<code>`` ends it.
"""

from __future__ import annotations

import array
import atexit
import codecs
import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from baton.cli import warm

STATUS_FIELDS = (
    "Uid",
    "Gid",
    "Groups",
    "NoNewPrivs",
    "Seccomp",
    "Seccomp_filters",
    "CapInh",
    "CapPrm",
    "CapEff",
    "CapBnd",
    "CapAmb",
    "Cpus_allowed_list",
    "Mems_allowed_list",
)
FILES = ("cgroup", "limits", "oom_score_adj", "attr/current")
HANDSHAKE = 10.0  # seconds a client has to send its request


def serve_one(conn: socket.socket, mine: dict[str, str], received: Callable[[], None]) -> None:
    """Serve the request on ``conn`` (a connection that proved it has the key) and exit (``os._exit``:
    none of the server's clean-up runs here). ``mine``: this process's :func:`context`, read ahead;
    ``received``: called once the request is in (the server stops counting this child as waiting)."""
    code = 1
    server = os.getppid()  # before anything can end the server and leave this child to init
    try:
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        conn.settimeout(HANDSHAKE)  # a client that connects and sends nothing does not keep a child
        request, fds = _receive(conn)
        received()
        why = declined(conn, request, mine)
        if why:
            conn.sendall(b"D" + why.encode() + b"\n")
            code = 0
        else:
            conn.sendall(b"A\n")
            if _read_line(conn) == b"G":  # the client's go: without it (it gave up), nothing runs
                conn.settimeout(None)
                _become(request, fds)
                code = _run(request["argv"], conn, server)
    except BaseException:  # whatever happens, the child leaves without the server's clean-up
        code = 1
    finally:
        os._exit(code)


def _read_line(conn: socket.socket) -> bytes:
    """One short ``\\n``-ended line (without it); what came before the end of the stream, if it ended."""
    line = b""
    while not line.endswith(b"\n") and len(line) < 16:
        chunk = conn.recv(1)
        if not chunk:
            return line
        line += chunk
    return line.rstrip(b"\n")


def _receive(conn: socket.socket) -> tuple[dict[str, Any], list[int]]:
    """The request and its four descriptors (stdin, stdout, stderr, working directory)."""
    fds = array.array("i")
    header, ancillary, _, _ = conn.recvmsg(4, socket.CMSG_SPACE(4 * fds.itemsize))
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    size = int.from_bytes(header.ljust(4, b"\0"), "big")
    if len(header) != 4 or len(fds) != 4 or size > warm.MAX_MESSAGE:
        raise ValueError("a malformed warm request")
    body = bytearray()
    while len(body) < size:
        chunk = conn.recv(min(size - len(body), 1 << 20))
        if not chunk:
            raise ValueError("a truncated warm request")
        body += chunk
    return _request(_fields(bytes(body))), list(fds)


def _fields(body: bytes) -> list[str]:
    """The strings of :func:`baton.cli.warm.encode`; ValueError for anything else."""
    fields, pos = [], 0
    while pos < len(body):
        size = int.from_bytes(body[pos : pos + 4], "big")
        data = body[pos + 4 : pos + 4 + size]
        if len(data) != size or b"\0" in data:  # no argument or variable of a process holds a NUL
            raise ValueError("a malformed warm request")
        fields.append(os.fsdecode(data))
        pos += 4 + size
    return fields


def _request(fields: list[str]) -> dict[str, Any]:
    """The request :func:`baton.cli.warm._send_request` lays out: the installation, the umask, the file
    system's encoding and errors, the three streams' encodings and errors, the arguments and the
    environment (each counted first)."""
    at = len(warm.installation())  # where the umask is
    if len(fields) < at + 11 or not fields[at + 9].isdigit() or not fields[at].isdigit():
        raise ValueError("a malformed warm request")
    nargs = int(fields[at + 9])
    rest = fields[at + 10 + nargs :]
    if not rest or not rest[0].isdigit() or len(rest) != 1 + 2 * int(rest[0]):
        raise ValueError("a malformed warm request")
    return {
        "installation": fields[:at],
        "umask": int(fields[at]),
        "fs": fields[at + 1 : at + 3],
        "stdio": [fields[i : i + 2] if fields[i] else None for i in (at + 3, at + 5, at + 7)],
        "argv": fields[at + 10 : at + 10 + nargs],
        "env": dict(zip(rest[1::2], rest[2::2], strict=True)),
    }


def declined(conn: socket.socket, request: dict[str, Any], mine: dict[str, str]) -> str | None:
    """Why this request may not run here (None: it may); ``mine``: this process's :func:`context`."""
    if request.get("installation") != warm.installation():
        return "another installation of baton"
    env = request["env"]
    if any(not name or "=" in name for name in env):
        return "a malformed environment"
    if not 0 <= request["umask"] <= 0o777:
        return "a malformed umask"
    if not all(map(_stream_spec, request["stdio"])):
        return "malformed standard streams"
    if _start_env(env) != _start_env(os.environ):
        return "other Python start-up variables"
    if request.get("fs") != [sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()]:
        return "another file system encoding"
    pid = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)[:4]
    try:
        same = context(str(int.from_bytes(pid, sys.byteorder))) == mine
    except (OSError, ValueError):
        return "its context cannot be read"
    return None if same else "another context (namespaces, cgroup, limits or privileges)"


def _stream_spec(spec: list[str] | None) -> bool:
    """None (the client has no such stream), or its encoding and error handler, both known to Python."""
    try:
        return spec is None or bool(codecs.lookup(spec[0]) and codecs.lookup_error(spec[1]))
    except LookupError:
        return False


def _start_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith("PYTHON") or k in warm.CONTEXT_ENV}


def context(pid: str) -> dict[str, str]:
    """What of process ``pid`` decides where and as what its children run (see the module)."""
    base = f"/proc/{pid}"
    found = {f"ns/{ns}": os.readlink(f"{base}/ns/{ns}") for ns in sorted(os.listdir("/proc/self/ns"))}
    found["root"] = os.readlink(f"{base}/root")
    for name in FILES:
        try:  # a file this kernel does not have, or cannot answer (attr/current without an LSM)
            _read(f"/proc/self/{name}")
        except OSError:
            continue
        found[name] = _read(f"{base}/{name}")
    with open(f"{base}/status") as fh:
        for line in fh:
            field, _, value = line.partition(":")
            if field in STATUS_FIELDS:
                found[field] = value.strip()
    with open(f"{base}/stat") as fh:
        fields = fh.read().rpartition(")")[2].split()
    found["nice"], found["policy"] = fields[16], fields[38]
    return found


def _read(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode(errors="replace")


def _become(request: dict[str, Any], fds: list[int]) -> None:
    """Take on the client's streams, working directory, umask, environment and arguments."""
    for target, fd in enumerate(fds[:3]):
        os.dup2(fd, target)
    os.fchdir(fds[3])
    for fd in fds:
        if fd > 2:
            os.close(fd)
    os.umask(request["umask"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["baton", *request["argv"]]
    sys.stdin, sys.stdout, sys.stderr = (_stream(fd, spec) for fd, spec in enumerate(request["stdio"]))


def _stream(fd: int, spec: object) -> TextIO:
    """Standard stream ``fd`` as Python makes it, in the client's encoding and errors; stderr and a
    terminal line-buffered."""
    encoding, errors = spec if isinstance(spec, list) else ("utf-8", "strict")
    buffering = 1 if fd and (fd == 2 or os.isatty(fd)) else -1
    return open(
        fd, "r" if fd == 0 else "w", buffering=buffering, encoding=encoding, errors=errors, closefd=False
    )


def _run(argv: list[str], conn: socket.socket, server: int) -> int:
    """``baton ARGV`` in this process, the client's signals raised here; its exit code, reported as
    soon as the command is done, its standard streams given back first. Then, with the client gone, what
    the run left running in the background (a spare copy of a worktree) is finished, as a ``baton``
    process finishes it at exit."""
    done = threading.Event()
    threading.Thread(target=_relay, args=(conn, done), daemon=True).start()
    warm.SERVING = True
    from baton.cli import main

    try:
        main(argv)
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if not isinstance(code, int):
        if code is not None:
            sys.stderr.write(f"{code}\n")
        code = 0 if code is None else 1
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    _release_streams()
    _stop_server_if_off(server)  # before the report: it reads the home's config.toml, and once the
    done.set()  # client has its code, the home's volume may be unmounted at any moment
    with contextlib.suppress(OSError):
        conn.sendall(b"X%d\n" % (code & 0xFF))
    getattr(threading, "_shutdown")()  # noqa: B009 - what the interpreter does at exit: join the non-daemon threads
    atexit._run_exitfuncs()
    return code & 0xFF


def _release_streams() -> None:
    """Give the client's standard streams back before reporting: the client exits at once, and
    whoever reads its output (a dispatcher's pipe) sees the end of it then, not when this child is
    done with what the run left in the background (whose output has nobody left to read it)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _stop_server_if_off(server: int) -> None:
    """The setting ``warm`` turned ``off`` (``config.toml``) since the server started: it stops (this
    run, served already, is not undone; a bad setting was the run's to report)."""
    from baton.errors import BatonError
    from baton.settings import load_settings

    # the server only while it is still this child's parent: never a signal to whoever adopted the child
    with contextlib.suppress(BatonError, OSError):
        if warm.off(os.environ, load_settings().warm) and os.getppid() == server:
            os.kill(server, signal.SIGUSR1)


def _relay(conn: socket.socket, done: threading.Event) -> None:
    """The client's signals, raised in this process; its end of the socket closing before the command
    is ``done`` is a SIGTERM."""
    with conn.makefile("rb") as lines:
        for line in lines:
            if line[:1] == b"S" and line[1:].strip().isdigit() and int(line[1:]) in warm.FORWARDED:
                os.kill(os.getpid(), int(line[1:]))
    if not done.is_set():
        os.kill(os.getpid(), signal.SIGTERM)
