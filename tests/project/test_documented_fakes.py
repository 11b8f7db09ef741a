"""Every mock and fake the README and docs tell a user to start (``python -m baton.testing.…``) starts
from a plain ``pip install '.[server]'``: the release's wheel with the ``server`` extra in a fresh
virtualenv, no test-only package, run from the checkout as the README's tour is. Each command is run
with its documented arguments (ports made free ones, ``$BATON_HOME`` a scratch directory) until it
prints its first line (or exits 0, as ``--help`` and ``--print-env`` do), then stopped; and every
``baton.testing`` module the docs name imports there."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.project.release import ROOT, Installed, clean_env

# installs the wheel and the server extra into a new virtualenv (pip is given 900 s: release.py)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600 + 900 + 120)]

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = re.compile(r"python -m (baton\.testing\.\w+)(.*)")
END = re.compile(r"[`&|)<>;]| #")  # where a command's arguments end in a shell line or inline code


def documented() -> list[tuple[str, tuple[str, ...]]]:
    """Each distinct ``python -m baton.testing.X ARGS`` of the docs: (module, args as written)."""
    found: dict[tuple[str, tuple[str, ...]], None] = {}
    for doc in DOCS:
        text = doc.read_text().replace("\\\n", " ")
        for module, rest in COMMAND.findall(text):
            found[module, tuple(shlex.split(END.split(rest, 1)[0]))] = None
    return list(found)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runnable(args: tuple[str, ...], home: Path) -> list[str]:
    """The documented arguments with free ports and a scratch ``$BATON_HOME``."""
    out: list[str] = []
    for arg in args:
        if out and out[-1] in ("--port", "--git-port"):
            arg = str(_free_port())
        out.append(arg.replace("$BATON_HOME", str(home)))
    return out


def _first_line(process: subprocess.Popen[str], timeout: float) -> str | None:
    """The first line it prints, or None when it printed none in ``timeout`` seconds."""
    got: list[str] = []
    assert process.stdout is not None
    stdout = process.stdout
    reader = threading.Thread(target=lambda: got.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return got[0] if got else None


@pytest.fixture(scope="module")
def server_bin(installed: Installed) -> Path:
    """The run's virtualenv: the wheel, then its server extra (shared with tests/project/test_release.py)."""
    return installed.bin


def test_the_docs_start_the_mocks_and_fakes() -> None:
    """The collection itself: the mocks, and one fake per forge the docs try (GitHub and GitLab)."""
    modules = {module for module, _ in documented()}
    wanted = {"mock_anthropic", "mock_openai", "mock_gemini", "fake_forge", "fake_gitlab"}
    assert {f"baton.testing.{m}" for m in wanted} <= modules, modules


def test_every_documented_fake_starts_from_a_plain_server_install(server_bin: Path, tmp_path: Path) -> None:
    python = str(server_bin / "python")
    env = {**clean_env(), "HOME": str(tmp_path / "user")}
    where = subprocess.run(
        [python, "-c", "import baton, jsonschema_rs"], capture_output=True, text=True, env=env, cwd=ROOT
    )
    assert where.returncode != 0 and "No module named 'jsonschema_rs'" in where.stderr, "no test extra here"
    named = sorted({m for doc in DOCS for m in re.findall(r"baton\.testing\.\w+", doc.read_text())})
    imported = subprocess.run(
        [python, "-c", f"import baton; import {', '.join(named)}; print(baton.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.startswith(str(server_bin.parent)), imported.stdout  # the wheel's baton
    failed = []
    for n, (module, args) in enumerate(documented()):
        home = tmp_path / f"home{n}"
        home.mkdir()
        argv = [python, "-m", module, *_runnable(args, home)]
        pipe, null = subprocess.PIPE, subprocess.DEVNULL
        process = subprocess.Popen(argv, stdout=pipe, stderr=pipe, stdin=null, text=True, env=env, cwd=ROOT)
        try:
            line = _first_line(process, timeout=60)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stderr is not None and process.stdout is not None
        stderr = process.stderr.read()
        process.stdout.close()
        process.stderr.close()
        exited = process.returncode
        if not line or "Traceback" in stderr or exited not in (0, -signal.SIGTERM):
            failed.append(f"{shlex.join(argv[1:])}: exit {exited}, first line {line!r}\n{stderr[-1500:]}")
    assert not failed, "\n\n".join(failed)
