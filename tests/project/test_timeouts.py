"""Every test has a time limit (pytest-timeout, pyproject's ``timeout``): a test that hangs fails with
every thread's stack in the output, and the suite goes on, rather than running until CI's limit."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 600  # pyproject.toml's: the slowest test here takes ~4 min on a loaded 2-core machine

HANGS = """
import time


def test_hangs():
    time.sleep(120)  # the hang


def test_after_it():
    pass
"""


def test_the_suite_runs_with_a_time_limit_on_every_test(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.hasplugin("timeout")
    assert float(request.config.getini("timeout")) == LIMIT
    assert request.config.getini("timeout_method") == "signal"  # the test's own `finally` still runs


@pytest.mark.timeout(60)
def test_a_test_past_its_limit_fails_with_its_stack_and_the_next_one_runs(tmp_path: Path) -> None:
    (tmp_path / "test_hang.py").write_text(HANGS)
    # the project's own configuration, its limit shortened for the test
    argv = [sys.executable, "-m", "pytest", "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path)]
    argv += ["-p", "no:cacheprovider", "-p", "no:randomly", "-o", "timeout=2", str(tmp_path / "test_hang.py")]
    began = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=50, cwd=tmp_path)
    took = time.monotonic() - began
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "Timeout" in out and "time.sleep(120)  # the hang" in out, out  # the stack, to the hanging line
    assert "1 failed, 1 passed" in out, out  # the suite went on
    assert took < 40, f"{took:.1f} s"
