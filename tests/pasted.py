"""Running documentation as a newcomer pastes it: shell blocks joined into one bash script with
``set -euo pipefail``, in a directory of its own, with baton and the real agent CLIs on ``PATH`` as
``. .venv/bin/activate`` puts them, and a home of its own (no login or config of the machine's); and the
``leftovers`` fixture, which stops what the blocks leave running under ``tmp_path`` (a service it started)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest


def run_pasted(script: str, tmp_path: Path, timeout: float = 600) -> tuple[int, str]:
    """Run ``script`` in ``tmp_path/work``: its exit code and what it printed (stdout and stderr)."""
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "user").mkdir()
    venv_bin = str(Path(sys.executable).parent)
    # PYTHONPATH: a worktree's checkout, where its engineer points it, is the baton the blocks run
    keep = ("PATH", "LANG", "LC_ALL", "TERM", "USER", "LOGNAME", "SHELL", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {
        "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', os.defpath)}",
        "VIRTUAL_ENV": str(Path(venv_bin).parent),
        "HOME": str(tmp_path / "user"),  # no login or config of the machine's is used
        "TMPDIR": str(tmp_path),  # so mktemp -d, the blocks' BATON_HOME, is ours to clean up
    }
    wrapped = f"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}\n"
    proc = subprocess.Popen(
        ["bash", "-c", wrapped],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out


@pytest.fixture
def leftovers(tmp_path: Path) -> Iterator[None]:
    """Whatever the blocks leave running under ``tmp_path`` (a service it started) is stopped."""
    yield
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if any(str(tmp_path) in part for part in cmdline) and proc.pid != os.getpid():
            proc.terminate()
