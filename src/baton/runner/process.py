"""Run one agent process: its own process group, the prompt written to its stdin, its stdout streamed
line by line to a JSONL log and to a callback, its stderr kept (tail) and logged, a timeout and a
cancel flag that kill the whole group, and a heartbeat callback while it runs. A log that cannot be
written (a full disk) never stops the pipes from being drained: it is reported in the result.

The child asks the kernel to SIGKILL it when the runner dies (``PR_SET_PDEATHSIG``), so a runner
killed with SIGKILL does not leave an agent writing into a transcript that the next run resumes. The
next runner also kills any group it finds recorded for a crashed run (see :mod:`baton.runner.run`).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from baton import tracing
from baton.errors import AgentError
from baton.files import open_private_append
from baton.sandbox.enclosure import STARTING, Containment, Reaped, Spawn, enter_groups

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the next runner's orphan sweep remains
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# util-linux's setpriv sets the parent-death signal and execs the agent in place (same pid). It costs
# ~3 ms; a Python preexec_fn costs ~7 ms more, because it rules out vfork and forks the whole runner.
SETPRIV = shutil.which("setpriv")


def _with_death_signal(argv: list[str]) -> tuple[list[str], Callable[[], None] | None]:
    if SETPRIV:
        return [SETPRIV, "--pdeathsig", "KILL", "--", *argv], None
    return argv, _die_with_parent


# The child enters its run's group through the door baton opened (cgroups.RunGroup.doors) in a bash
# that then execs it (same pid): the start stays a vfork (a preexec_fn would fork the whole runner,
# ~8 ms at this size: bench 17a). ``-p``: no BASH_ENV read, no function taken from the environment.
BASH = shutil.which("bash")
_ENTER = '{ echo 0 >&"$1"; } 2>/dev/null; eval "exec $1>&-"; shift; exec "$@"'


def _born_in(
    command: list[str], doors: list[int], then: Callable[[], None] | None
) -> tuple[list[str], Callable[[], None] | None, tuple[int, ...]]:
    """``command``, the child's ``preexec_fn`` and the fds it keeps, so that it enters the run's group
    through ``doors`` before its exec (nothing it forks, however early, is outside it): through bash
    where there is one, else in a ``preexec_fn``; without a group, as it is."""
    if not doors:
        return command, then, ()
    if BASH is not None and len(doors) == 1:
        return [BASH, "-p", "-c", _ENTER, "baton-enter", str(doors[0]), *command], then, (doors[0],)

    def preexec() -> None:
        enter_groups(doors)
        if then is not None:
            then()

    return command, preexec, ()


@dataclass
class ProcessResult:
    exit_code: int
    timed_out: bool
    cancelled: bool
    stderr: str
    idle: bool = False  # timed out because it said nothing for ``idle_timeout`` seconds
    stopped: str | None = None  # stopped because ``stop_when`` said so: its reason
    log_error: str | None = None  # the event log could not be (fully) written: why (the run still ran)
    callback_error: str | None = None  # on_line raised: the first error (the pipes were still drained)
    reaped: Reaped = field(default_factory=Reaped)  # what outlived the agent's own process, ended


class RunLog:
    """A run's event log (``logs/<run>.jsonl``), written a whole line at a time from several threads. A
    log that cannot be written (ENOSPC, EIO) is recorded once in :attr:`error` and written no more:
    the run goes on."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.error: str | None = None
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        try:
            self._file = open_private_append(path)  # 0600: the agent's whole conversation
        except OSError as exc:
            self._failed(exc)

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _failed(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc)
        self.error = self.error or f"cannot write the event log {self.path}: {reason}"
        if self._file is not None:
            with contextlib.suppress(OSError):  # its buffer cannot be flushed either
                self._file.close()
            self._file = None

    def write(self, line: str) -> None:
        with self._lock:
            if self._file is None:
                return
            try:
                self._file.write(line + "\n")
                self._file.flush()
            except OSError as exc:
                self._failed(exc)

    def note(self, event: dict[str, Any]) -> None:
        """One of baton's own events (``{"type": "baton.…"}``) among the agent's."""
        self.write(json.dumps(event, ensure_ascii=False))

    def close(self) -> None:
        """Closed: a line written later (a refusal told after its process ended) is dropped."""
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    self._failed(exc)
                self._file = None


class _Pumps:
    """The reader threads: stdout lines to the log and to ``on_line``, stderr lines (a tail kept) to the
    log and to ``on_stderr``. They drain the pipes whatever happens: a log that cannot be written or a
    callback that raises is recorded once and never stops the reading, because an agent whose pipe
    is full blocks forever."""

    def __init__(
        self, log: RunLog, on_line: Callable[[str], None], on_stderr: Callable[[str], None] | None
    ) -> None:
        self.log = log
        self.on_line = on_line
        self.on_stderr = on_stderr
        self.stderr_tail: deque[str] = deque(maxlen=200)
        self.callback_error: str | None = None
        self.last_output = time.monotonic()  # of any line on stdout or stderr (the idle timeout)

    def _call(self, callback: Callable[[str], None] | None, line: str) -> None:
        if callback is None:
            return
        try:
            callback(line)
        except Exception as exc:  # recorded for the caller: the pipe must keep draining
            self.callback_error = self.callback_error or f"{type(exc).__name__}: {exc}"

    def out(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.last_output = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if not line:
                continue
            self.log.write(line)
            self._call(self.on_line, line)

    def err(self, stream: IO[bytes]) -> None:
        for raw in stream:
            self.last_output = time.monotonic()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_tail.append(line)
            self.log.note({"type": "baton.stderr", "line": line})
            self._call(self.on_stderr, line)


PIPE_BYTES = 1 << 20  # the most of a prompt put in the agent's stdin before it starts (Linux's pipe-max-size)


@dataclass
class _Stdin:
    """The agent's stdin: a pipe that holds as much of the prompt as it can (its size raised up to
    :data:`PIPE_BYTES`) before the agent starts, so the agent never finds it empty — Gemini gives up on a
    pipe that stays empty for 500 ms, which a thread feeding it after the start missed once on a loaded
    machine. The rest, if any, is fed from a thread (:func:`_feed`); None: ``/dev/null``."""

    read: int | None = None  # the agent's end (the parent's copy closed once it started)
    write: IO[bytes] | None = None
    rest: bytes = b""

    @classmethod
    def of(cls, data: bytes | None) -> _Stdin:
        if data is None:
            return cls()
        read, write = os.pipe()  # not inherited: only the agent's dup of ``read`` reaches it
        with contextlib.suppress(OSError):  # a smaller pipe only means more is fed after the start
            fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, min(max(len(data), 1 << 16), PIPE_BYTES))
        os.set_blocking(write, False)
        try:
            put = os.write(write, data) if data else 0
        except BlockingIOError:
            put = 0
        os.set_blocking(write, True)
        return cls(read, os.fdopen(write, "wb", buffering=0), data[put:])

    def started(self) -> None:
        """The agent has its own end now (or failed to start): the parent's is closed."""
        if self.read is not None:
            os.close(self.read)
            self.read = None

    def feeder(self) -> threading.Thread | None:
        """The thread that writes the rest and closes the pipe; the pipe closed now when all is in it."""
        if self.write is None:
            return None
        if not self.rest:
            self.close()
            return None
        return threading.Thread(target=_feed, args=(self.write, self.rest), daemon=True)

    def close(self) -> None:
        self.started()
        if self.write is not None:
            with contextlib.suppress(OSError):
                self.write.close()


def _feed(pipe: IO[bytes], data: bytes) -> None:
    """Write the prompt to the agent's stdin and close it, from its own thread (a prompt larger than
    the pipe buffer blocks until the agent reads it, while the pumps keep its stdout flowing). An
    agent that exits or closes stdin early gets no more: its exit status tells what happened."""
    try:
        pipe.write(data)
    except OSError:  # BrokenPipeError and friends: the agent is gone or stopped reading
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _check_executable(program: str, env: dict[str, str]) -> None:
    """Fail as Popen would have: through setpriv, a missing or non-executable agent is only setpriv's
    exit code 127/126 with a message on stderr, after the run has started."""
    found = program if "/" in program else shutil.which(program, path=env.get("PATH", os.defpath))
    if found is None or not os.path.isfile(found):
        raise AgentError(f"cannot start {program}: No such file or directory")
    if not os.access(found, os.X_OK):
        raise AgentError(f"cannot start {program}: Permission denied")


@tracing.traced("run.launch")
def _start(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    stdin: int | None,
    spawn: Spawn | None = None,
    doors: list[int] | None = None,
) -> subprocess.Popen[bytes]:
    _check_executable(argv[0], env)
    if os.path.isabs(argv[0]) and ".." in argv[0].split("/"):  # the agent's mount namespace may
        head, name = os.path.split(argv[0])  # hold `/a/x` and not `/a/b` of `/a/b/../x`
        argv = [os.path.join(os.path.realpath(head), name), *argv[1:]]
    command, then = _with_death_signal(argv)
    command, preexec, kept = _born_in(command, doors or [], then)

    def popen() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
            pass_fds=kept,
        )

    try:
        return popen() if spawn is None else spawn(popen, None)
    except (OSError, ValueError) as exc:  # ENOENT, EACCES, E2BIG; ValueError: a NUL byte in argv/env
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise AgentError(f"cannot start {argv[0]}: {reason}") from exc


def run_process(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    log: RunLog,
    on_line: Callable[[str], None],
    on_start: Callable[[int], None],
    heartbeat: Callable[[], bool],
    heartbeat_every: float,
    timeout: float | None,
    cancel: threading.Event,
    kill_grace: float,
    stdin: bytes | None = None,
    spawn: Spawn | None = None,
    idle_timeout: float | None = None,
    on_stderr: Callable[[str], None] | None = None,
    stop_when: Callable[[], str | None] | None = None,
    contain: Containment | None = None,
) -> ProcessResult:
    """Run to completion; ``heartbeat`` returning False (the lease was lost) cancels the run.
    ``stdin``: bytes written to the agent's stdin, which is then closed (None: /dev/null).
    ``spawn``: called with the function that starts the agent, to start it differently — the walls'
    :meth:`baton.sandbox.landlock.Ruleset.spawn` starts it inside its Landlock domain. ``timeout``: wall
    seconds; ``idle_timeout``: seconds without a line on stdout or stderr (None: no limit).
    ``log``: where stdout lines go as they are and stderr lines as ``baton.stderr`` events (the caller
    closes it); ``on_stderr``: called with each stderr line; ``stop_when``: asked every 0.1 s, a reason
    to stop the agent now (kept in :attr:`ProcessResult.stopped`). ``contain``: the run's
    :class:`~baton.sandbox.contain.Containment`, given the agent the moment it exists and asked to end
    whatever outlived it, however the agent ended (:attr:`ProcessResult.reaped`)."""
    pumps = _Pumps(log, on_line, on_stderr)
    limits = _Limits(timeout, idle_timeout, lambda: pumps.last_output, stop_when)
    fed = _Stdin.of(stdin)
    try:
        with STARTING:  # registered before a run that ends alone looks (baton.sandbox.reaper)
            doors = contain.doors() if contain is not None else []
            try:
                proc = _start(argv, env, cwd, fed.read, spawn, doors)
            finally:
                fed.started()
                for door in doors:
                    os.close(door)
            if contain is not None:
                contain.start(proc.pid)
    except BaseException:
        fed.close()
        if contain is not None:
            contain.end()  # its group is made, empty: removed
        raise
    threads = _pump(proc, pumps, fed)
    killed = True  # the agent's process group, until the agent is found to have ended on its own
    try:
        try:
            on_start(proc.pid)
        except BaseException:
            kill_group(proc.pid, 0, proc)  # nobody would supervise it
            raise
        try:
            timed_out, cancelled = _supervise(proc, heartbeat, heartbeat_every, limits, cancel, kill_grace)
            killed = timed_out or cancelled or limits.stopped is not None
        except BaseException:  # KeyboardInterrupt, a failing heartbeat: never leave the agent unsupervised
            kill_group(proc.pid, kill_grace, proc)
            raise
    finally:
        # what outlived the agent ends before the pipes are drained: a background process holding the
        # agent's stdout would otherwise keep its reader waiting
        reaped = contain.end(killed) if contain is not None else Reaped()
        _close(proc, threads)
    return ProcessResult(
        proc.returncode,
        timed_out,
        cancelled,
        "\n".join(pumps.stderr_tail),
        idle=limits.idle_hit,
        stopped=limits.stopped,
        log_error=log.error,
        callback_error=pumps.callback_error,
        reaped=reaped,
    )


def _pump(proc: subprocess.Popen[bytes], pumps: _Pumps, fed: _Stdin) -> list[threading.Thread]:
    """The threads that drain the agent's stdout and stderr and feed the rest of its stdin, started."""
    threads = [
        threading.Thread(target=pumps.out, args=(proc.stdout,), daemon=True),
        threading.Thread(target=pumps.err, args=(proc.stderr,), daemon=True),
    ]
    if (feeder := fed.feeder()) is not None:
        threads.append(feeder)
    for thread in threads:
        thread.start()
    return threads


def _close(proc: subprocess.Popen[bytes], threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=5)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


@dataclass
class _Limits:
    """When the agent must stop: ``timeout`` wall seconds, ``idle`` seconds since ``last_output()``,
    or when ``stop_when()`` gives a reason."""

    timeout: float | None
    idle: float | None
    last_output: Callable[[], float]
    stop_when: Callable[[], str | None] | None = None
    idle_hit: bool = False
    stopped: str | None = None

    def __post_init__(self) -> None:
        self.deadline = None if not self.timeout else time.monotonic() + self.timeout

    def reached(self, now: float) -> bool:
        if self.deadline is not None and now >= self.deadline:
            return True
        self.idle_hit = bool(self.idle) and now - self.last_output() >= (self.idle or 0)
        if not self.idle_hit and self.stop_when is not None:
            self.stopped = self.stop_when()
        return self.idle_hit or self.stopped is not None


@tracing.traced("run.stream")
def _supervise(
    proc: subprocess.Popen[bytes],
    heartbeat: Callable[[], bool],
    heartbeat_every: float,
    limits: _Limits,
    cancel: threading.Event,
    kill_grace: float,
) -> tuple[bool, bool]:
    """Wait for the agent to exit, beating the heart, killing the group on timeout or cancel."""
    # A blocking waitpid in its own thread wakes us the moment the agent exits (Popen.wait with a
    # timeout polls with sleeps of up to 50 ms, which would dominate baton's own overhead).
    exited = threading.Event()

    def reap() -> None:
        proc.wait()
        exited.set()

    threading.Thread(target=reap, daemon=True).start()
    next_beat = time.monotonic() + heartbeat_every
    timed_out = cancelled = stop = False
    while not exited.wait(timeout=0.1):
        now = time.monotonic()
        if limits.reached(now):
            stop, timed_out = True, limits.stopped is None
        elif cancel.is_set():
            stop = cancelled = True
        elif now >= next_beat:
            next_beat = now + heartbeat_every
            stop = cancelled = not heartbeat()
        if stop:
            kill_group(proc.pid, kill_grace, proc)
            break
    return timed_out, cancelled


def kill_group(pgid: int, grace: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """SIGTERM the group, then SIGKILL whatever is left after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        if proc is None:
            _wait_gone(pgid, wait)
            continue
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        with contextlib.suppress(ProcessLookupError):  # the leader is gone; no member of its group may linger
            os.killpg(pgid, signal.SIGKILL)
        break


def _wait_gone(pgid: int, wait: float) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def kill_tagged(name: str, value: str) -> list[int]:
    """SIGKILL every process whose environment holds ``name=value`` (baton tags each agent with
    ``BATON_RUN_ID``): catches an orphaned agent and anything it started, whatever their group, and
    never touches an unrelated process that reused a pid. Processes whose environment cannot be
    read (another user's) are skipped."""
    # lazy: cold CLI
    import psutil  # (~20 ms of imports: only when a dead runner's agent may have survived)

    killed = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.environ().get(name) != value:
                continue
            proc.kill()
        except (psutil.Error, OSError):
            continue
        killed.append(proc.pid)
    return killed
