"""baton.runner.process: the prompt written to stdin (any size, never a deadlock with the output pumps, an
agent that stops reading), a log that cannot be written (a full disk), a callback that raises, an
agent that cannot be started, and the environment-tagged orphan sweep (psutil)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.errors import AgentError
from baton.runner.process import ProcessResult, RunLog, kill_tagged, run_process
from tests.conftest import gone, wait_for


def go(
    script: str,
    tmp_path: Path,
    stdin: bytes | None = None,
    log_path: Path | None = None,
    on_line: Callable[[str], None] | None = None,
    argv: list[str] | None = None,
) -> tuple[ProcessResult, list[str]]:
    lines: list[str] = []

    def record(line: str) -> None:
        lines.append(line)
        if on_line:
            on_line(line)

    with RunLog(log_path or tmp_path / "log.jsonl") as log:
        result = run_process(
            argv or [sys.executable, "-c", script],
            dict(os.environ),
            tmp_path,
            log,
            record,
            on_start=lambda pid: None,
            heartbeat=lambda: True,
            heartbeat_every=60,
            timeout=60,
            cancel=threading.Event(),
            kill_grace=1,
            stdin=stdin,
        )
    return result, lines


# Writes 2 MB to stdout BEFORE reading stdin: with a writer that is not its own thread, or pumps that
# start late, both pipes fill and everything waits forever.
CHATTY_READER = """
import sys, hashlib
for i in range(20000):
    print("x" * 100, flush=False)
sys.stdout.flush()
data = sys.stdin.buffer.read()
print(f"got {len(data)} {hashlib.sha256(data).hexdigest()}")
"""


def test_a_large_prompt_on_stdin_never_deadlocks(tmp_path: Path) -> None:
    import hashlib

    data = os.urandom(5 * 1024 * 1024)
    result, lines = go(CHATTY_READER, tmp_path, stdin=data)
    assert result.exit_code == 0, result.stderr
    assert lines[-1] == f"got {len(data)} {hashlib.sha256(data).hexdigest()}"
    assert len(lines) == 20001 and result.log_error is None


# What the agent finds in its stdin at its very first instruction, without waiting: Gemini gives up on a
# pipe that stays empty for 500 ms, so the prompt must be there when it starts, not fed a moment later.
AT_ONCE = """
import os, select, sys
ready = select.select([0], [], [], 0)[0]
first = os.read(0, 1 << 20) if ready else b""
rest = sys.stdin.buffer.read()
print(len(first), len(first) + len(rest))
"""


@pytest.mark.parametrize("size", [1, 200_000, 3 * 1024 * 1024])
def test_the_prompt_is_in_stdin_when_the_agent_starts(tmp_path: Path, size: int) -> None:
    """Up to 1 MiB of it before the agent runs (the pipe grown to hold it), the rest fed after."""
    result, lines = go(AT_ONCE, tmp_path, stdin=b"p" * size)
    first, whole = map(int, lines[-1].split())
    assert result.exit_code == 0 and whole == size, result.stderr
    assert first >= min(size, 65_536), lines  # readable at once: never an empty pipe at the start


def test_stdin_is_devnull_without_a_prompt(tmp_path: Path) -> None:
    result, lines = go("import sys; print(repr(sys.stdin.read()))", tmp_path)
    assert result.exit_code == 0 and lines == ["''"]


def test_an_agent_that_never_reads_its_stdin(tmp_path: Path) -> None:
    """A broken pipe is the agent's business: its exit code tells what happened, nothing is raised."""
    result, lines = go("print('bye')", tmp_path, stdin=b"p" * (4 * 1024 * 1024))
    assert result.exit_code == 0 and lines == ["bye"]


def test_a_full_disk_never_stops_the_pipes(tmp_path: Path) -> None:
    """/dev/full fails every write with ENOSPC: the agent still runs to its end, every line still
    reaches the callback, no thread prints a traceback (pytest turns one into an error), and the
    result says the log could not be written."""
    script = "import sys\nfor i in range(5000): print('line', i); print('err', i, file=sys.stderr)"
    result, lines = go(script, tmp_path, log_path=Path("/dev/full"))
    assert result.exit_code == 0
    assert len(lines) == 5000 and lines[-1] == "line 4999"
    assert result.log_error and "No space left on device" in result.log_error
    assert result.stderr.splitlines()[-1] == "err 4999"


def test_a_log_that_cannot_be_opened_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    result, lines = go("print('ran')", tmp_path, log_path=tmp_path / "file" / "log.jsonl")
    assert result.exit_code == 0 and lines == ["ran"]
    assert result.log_error and "cannot write the event log" in result.log_error


def test_a_callback_that_raises_never_stops_the_pipes(tmp_path: Path) -> None:
    def explode(line: str) -> None:
        raise RuntimeError(f"store is down ({line})")

    result, lines = go("for i in range(3000): print(i)", tmp_path, on_line=explode)
    assert result.exit_code == 0 and len(lines) == 3000
    assert result.callback_error == "RuntimeError: store is down (0)"


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["/nonexistent/agent"], "No such file or directory"),
        (["/dev/null"], "No such file or directory"),  # not a regular file
        (["NOEXEC"], "Permission denied"),  # a regular file without an execute bit
        (["/bin/echo", "x" * 200_000], "Argument list too long"),
    ],
)
def test_an_agent_that_cannot_start_is_an_agent_error(tmp_path: Path, argv: list[str], reason: str) -> None:
    if argv == ["NOEXEC"]:
        argv = [str(tmp_path / "agent.sh")]
        Path(argv[0]).write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(AgentError, match=f"cannot start {argv[0]}: {reason}"):
        go("", tmp_path, argv=argv)


def test_kill_tagged_kills_only_the_tagged_processes(tmp_path: Path) -> None:
    def sleeper(tag: str | None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **({"BATON_RUN_ID": tag} if tag else {})}
        return subprocess.Popen(["sleep", "60"], env=env)

    def execed(*procs: subprocess.Popen[bytes]) -> bool:
        return all(Path(f"/proc/{p.pid}/cmdline").read_bytes() == b"sleep\x0060\x00" for p in procs)

    mine, other_run, untagged = sleeper("run-1"), sleeper("run-2"), sleeper(None)
    try:
        # exec finished: /proc/<pid>/environ is sleep's own
        wait_for(lambda: execed(mine, other_run, untagged), 30, what="the sleepers to exec")
        assert kill_tagged("BATON_RUN_ID", "run-1") == [mine.pid]
        mine.wait(timeout=5)
        wait_for(lambda: gone(mine.pid), 5)
        assert other_run.poll() is None and untagged.poll() is None
    finally:
        for proc in (mine, other_run, untagged):
            proc.kill()
            proc.wait()


def test_a_failing_supervisor_never_leaves_the_agent_running(tmp_path: Path) -> None:
    started: list[int] = []

    def heartbeat() -> bool:
        raise RuntimeError("the store went away")

    with RunLog(tmp_path / "log.jsonl") as log, pytest.raises(RuntimeError, match="went away"):
        run_process(
            [sys.executable, "-c", "import time; time.sleep(60)"],
            dict(os.environ),
            tmp_path,
            log,
            lambda line: None,
            on_start=started.append,
            heartbeat=heartbeat,
            heartbeat_every=0.1,
            timeout=60,
            cancel=threading.Event(),
            kill_grace=1,
        )
    wait_for(lambda: gone(started[0]), timeout=10)
