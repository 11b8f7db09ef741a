"""Run one agent process: its own process group, its stdout streamed line by line to a JSONL log and
to a callback, its stderr kept (tail) and logged, a timeout and a cancel flag that kill the whole
group, and a heartbeat callback while it runs.

The child asks the kernel to SIGKILL it when the runner dies (``PR_SET_PDEATHSIG``), so a runner
killed with SIGKILL does not leave an agent writing into a transcript that the next run resumes. The
next runner also kills any group it finds recorded for a crashed run (see :mod:`baton.runner`).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from baton.errors import AgentError

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


@dataclass
class ProcessResult:
    exit_code: int
    timed_out: bool
    cancelled: bool
    stderr: str


def run_process(
    argv: list[str],
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    on_line: Callable[[str], None],
    on_start: Callable[[int], None],
    heartbeat: Callable[[], bool],
    heartbeat_every: float,
    timeout: float | None,
    cancel: threading.Event,
    kill_grace: float,
    stdin: bytes | None = None,
) -> ProcessResult:
    """Run to completion; ``heartbeat`` returning False (the lease was lost) cancels the run."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command, preexec = _with_death_signal(argv)
    try:
        proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            preexec_fn=preexec,
        )
    except OSError as exc:
        raise AgentError(f"cannot start {argv[0]}: {exc.strerror or exc}") from exc
    on_start(proc.pid)
    assert proc.stdout is not None and proc.stderr is not None
    stderr_tail: deque[str] = deque(maxlen=200)
    log_lock = threading.Lock()
    with log_path.open("a", encoding="utf-8") as log:

        def write(line: str) -> None:
            with log_lock:
                log.write(line + "\n")
                log.flush()

        def pump_out(stream: IO[bytes]) -> None:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                if line:
                    write(line)
                    on_line(line)

        def pump_err(stream: IO[bytes]) -> None:
            for raw in stream:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                stderr_tail.append(line)
                write(json.dumps({"type": "baton.stderr", "line": line}))

        readers = [
            threading.Thread(target=pump_out, args=(proc.stdout,), daemon=True),
            threading.Thread(target=pump_err, args=(proc.stderr,), daemon=True),
        ]
        for reader in readers:
            reader.start()
        # A blocking waitpid in its own thread wakes us the moment the agent exits (Popen.wait with a
        # timeout polls with sleeps of up to 50 ms, which would dominate baton's own overhead).
        exited = threading.Event()

        def reap() -> None:
            proc.wait()
            exited.set()

        threading.Thread(target=reap, daemon=True).start()
        deadline = None if not timeout else time.monotonic() + timeout
        next_beat = time.monotonic() + heartbeat_every
        timed_out = cancelled = False
        while not exited.wait(timeout=0.1):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                timed_out = True
            elif cancel.is_set():
                cancelled = True
            elif now >= next_beat:
                next_beat = now + heartbeat_every
                if not heartbeat():
                    cancelled = True
            if timed_out or cancelled:
                kill_group(proc.pid, kill_grace, proc)
                break
        for reader in readers:
            reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    return ProcessResult(proc.returncode, timed_out, cancelled, "\n".join(stderr_tail))


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
    """SIGKILL every process of ours whose environment holds ``name=value`` (baton tags each agent with
    ``BATON_RUN_ID``): catches an orphaned agent and anything it started, whatever their group, and
    never touches an unrelated process that reused a pid."""
    needle = f"{name}={value}".encode()
    killed = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            os.kill(int(entry.name), signal.SIGKILL)
            killed.append(int(entry.name))
        except (OSError, ValueError):
            continue
    return killed
