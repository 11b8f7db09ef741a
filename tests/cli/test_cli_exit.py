"""How the ``baton`` program exits (``baton.cli._leave``): what exiting must do is done — the atexit
functions, the streams flushed, the exit code — then at once, without the interpreter's teardown;
another thread still running gets the ordinary exit, which waits for it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = """
import atexit, sys, threading, time
from pathlib import Path
marker = Path(sys.argv[1])
atexit.register(lambda: marker.write_text("atexit ran"))
class Torn:  # the interpreter's teardown would delete it (the quick exit does not tear down)
    def __del__(self, path=marker.with_suffix(".teardown")):
        path.write_text("torn down")
torn = Torn()
if sys.argv[2] == "thread":  # a non-daemon thread still running when main ends, writing its own mark
    later = marker.with_suffix(".thread")
    threading.Thread(target=lambda: (time.sleep(3), later.write_text("done"))).start()
sys.stdout.write("unflushed output" * 1000)  # buffered: flushed before the process ends
sys.argv = ["baton", *sys.argv[3:]]
from baton.cli import main
main()
"""


def baton(tmp_path: Path, mode: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATON_HOME": str(tmp_path / "home")}
    argv = [sys.executable, "-c", PROGRAM, str(tmp_path / "mark"), mode, *args]
    return subprocess.run(
        argv, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


def test_the_quick_exit_runs_atexit_flushes_and_keeps_the_code(tmp_path: Path) -> None:
    done = baton(tmp_path, "plain", "--help")
    assert done.returncode == 0 and done.stdout.startswith("unflushed output") and "Usage" in done.stdout
    assert (tmp_path / "mark").read_text() == "atexit ran"
    assert not (tmp_path / "mark.teardown").exists()  # no teardown: the 50-170 ms it costs a baton run
    refused = baton(tmp_path, "plain", "runs", "show", "no-such-run")
    assert refused.returncode not in (0, None) and "no-such-run" in refused.stderr


def test_a_running_thread_is_waited_for(tmp_path: Path) -> None:
    done = baton(tmp_path, "thread", "--help")
    assert done.returncode == 0 and "Usage" in done.stdout
    assert (tmp_path / "mark.thread").read_text() == "done"  # the ordinary exit joined it
    assert (tmp_path / "mark.teardown").read_text() == "torn down"
    assert (tmp_path / "mark").read_text() == "atexit ran"


def test_the_store_is_closed_before_the_quick_exit(tmp_path: Path) -> None:
    """A command that opened the SQL store (``sessions ls`` on a new home: Typer's, which creates it)
    leaves it closed as the ordinary exit did: SQLite's WAL and shared-memory files removed."""
    done = baton(tmp_path, "plain", "sessions", "ls")
    assert done.returncode == 0, done.stderr
    home = tmp_path / "home"
    assert (home / "baton.db").exists()
    assert not (home / "baton.db-wal").exists() and not (home / "baton.db-shm").exists()
