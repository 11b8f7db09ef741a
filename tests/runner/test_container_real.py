"""``environment = "container"`` with real podman: a repository whose devcontainer.json builds its image
from a Containerfile on the Debian base image (``localhost/baton-base:trixie``, made by
deploy/image/base.sh as the image test makes it: no registry here) runs its setup and the fake agent
inside it. The agent sees the image's own file, its writes land in the key's worktree on the host, it
cannot see the store or another key's worktree, a variable of its environment reaches it but not the
run's log, and a cancel leaves no container behind (``podman ps -a``). Then the real Claude Code CLI,
in the base image itself, against the mock model on the host's loopback: its Bash tool runs there.

Needs root and podman (``make setup`` installs podman, runc and debootstrap); fails, never skips,
without. The engine's settings are the fleet's (deploy/fleet/containers.conf: runc, the rlimits).
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.models import Access, Environment
from baton.settings import Settings, load_settings
from baton.testing import MockModel
from baton.testing.tools import tool_marker
from tests.conftest import FAST, MOCKS, make_repo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 + 120)]  # the base image's build is given 1800 s
SERVICE_FIXTURES = {"base_image": "image"}  # podman as root, like the image's own test

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/baton-base:trixie"
MARKER = "/etc/baton-image-marker"
CONTAINERFILE = f"FROM {BASE}\nRUN echo from-the-image > {MARKER}\n"
DEVCONTAINER = """{
  // the spec's own fields: a Dockerfile beside this file, its folder the context
  "build": {"dockerfile": "Containerfile", "args": {"UNUSED": "1"}},
  "containerEnv": {"FROM_IMAGE_ENV": "yes"},
  "remoteUser": "vscode",
  "postCreateCommand": "(cat /etc/baton-image-marker || echo on-the-host) > setup-saw.txt",
}
"""


@pytest.fixture(scope="module")
def base_image() -> str:
    """The Debian base image, made by deploy/image/base.sh when this machine has none yet."""
    if os.geteuid() != 0:
        pytest.fail("this test runs podman as root (and debootstrap for its base image)", pytrace=False)
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make setup` installs it as root (apt-get install podman runc)")
    if subprocess.run(["podman", "image", "exists", BASE]).returncode != 0:
        done = subprocess.run(
            [str(ROOT / "deploy/image/base.sh"), BASE], capture_output=True, text=True, timeout=1800
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return BASE


@pytest.fixture
def engine(base_image: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CONTAINERS_CONF", str(ROOT / "deploy/fleet/containers.conf"))
    return base_image


def image_repo(path: Path) -> Path:
    files = {".devcontainer/devcontainer.json": DEVCONTAINER, ".devcontainer/Containerfile": CONTAINERFILE}
    return make_repo(path, {**files, "README.md": "# in a container\n"})


# These runs ask for the open way out, as they did while a container run was refused under an allow-list;
# the allow-list inside a container has its own tests (tests/runner/test_container_egress_real.py).
OPEN = {"egress": "open"}


def go(settings: Settings, repo: Path, thread: str, **kw: object) -> RunResult:
    kw = {**OPEN, **kw}
    request = RunRequest(agent="fake", repo=str(repo), thread=thread, prompt="look around", **kw)  # type: ignore[arg-type]
    return run(request, settings=settings)


def left_containers() -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "-a", "--filter", "label=baton.run", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def test_the_agent_runs_in_the_repositorys_image_and_writes_its_worktree(
    engine: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = image_repo(tmp_path / "r")
    other = go(settings, repo, "other")  # another key, on the host
    assert other.run.outcome == Outcome.SUCCEEDED, other.run.error
    elsewhere = other.session.worktree
    look = (
        f"cat {MARKER} > saw.txt; echo $FROM_IMAGE_ENV-$SECRET_TOKEN > env.txt; "
        f"test -e {settings.db_path} && echo store > reach.txt; "
        f"ls {elsewhere} >> reach.txt 2>/dev/null; cat /proc/1/cmdline | tr '\\0' ' ' > pid1.txt; "
        f"id -u > uid.txt"
    )
    monkeypatch.setenv("FAKE_AGENT_RUN", look)
    monkeypatch.setenv("SECRET_TOKEN", "s3cret")
    settings = settings.with_(agent_env="SECRET_TOKEN")
    started = time.monotonic()
    result = go(settings, repo, "t1", environment=Environment.CONTAINER)
    took = time.monotonic() - started
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    worktree = Path(result.session.worktree)
    assert (worktree / "saw.txt").read_text() == "from-the-image\n"  # the image's own file
    assert (worktree / "setup-saw.txt").read_text() == "from-the-image\n"  # its setup ran inside too
    assert (worktree / "env.txt").read_text() == "yes-s3cret\n"
    assert not (worktree / "reach.txt").read_text().strip()  # neither the store nor the other key
    assert "podman-init" in (worktree / "pid1.txt").read_text()  # its own PID namespace, an init
    assert (worktree / "uid.txt").read_text().strip() == str(os.getuid())
    note = result.run.note or ""
    assert "environment: in the container localhost/baton-env:" in note
    assert "set aside: remoteUser" in note and "run on this host" not in note
    logged = Path(result.run.log_path).read_text()
    assert "s3cret" not in logged
    assert left_containers() == []
    again_started = time.monotonic()
    again = go(settings, repo, "t1", environment=Environment.CONTAINER)
    print(
        f"first turn (build + setup + agent) {took:.2f} s; next turn {time.monotonic() - again_started:.2f} s"
    )
    assert again.run.outcome == Outcome.SUCCEEDED and "in the container" in (again.run.note or "")
    assert "built from" not in (again.run.note or "")  # the image is kept: built once per content


def test_a_cancel_stops_the_container_and_leaves_none(
    engine: str, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = image_repo(tmp_path / "r")
    monkeypatch.setenv("FAKE_AGENT_DELAY", "60")
    cancel = threading.Event()
    request = RunRequest(
        agent="fake",
        repo=str(repo),
        thread="t1",
        prompt="wait",
        environment=Environment.CONTAINER,
        egress="open",
        cancel=cancel,
    )
    done: list[RunResult] = []
    worker = threading.Thread(target=lambda: done.append(run(request, settings=settings)))
    worker.start()
    deadline = time.monotonic() + 300
    while not any(name.startswith("baton-") for name in left_containers()) or not _agent_up(settings):
        assert time.monotonic() < deadline and worker.is_alive(), "the agent's container never started"
        time.sleep(0.2)
    started = time.monotonic()
    cancel.set()
    worker.join(timeout=120)
    assert done and done[0].run.outcome == Outcome.CANCELLED, done and done[0].run.error
    print(f"cancel to the run's end: {time.monotonic() - started:.2f} s")
    assert left_containers() == []


def _agent_up(settings: Settings) -> bool:
    """The fake agent wrote its first line (its init event) into the run's log."""
    for log in (settings.home / "logs").glob("*.jsonl"):
        if "setup" not in log.name and any(
            json.loads(line).get("type") == "system" for line in log.read_text().splitlines() if line.strip()
        ):
            return True
    return False


@pytest.fixture
def claude(home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockModel]:
    """The mock Anthropic API on the host's loopback, Claude Code's home configured for it."""
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    module, name = MOCKS["claude"]
    with getattr(importlib.import_module(module), name)() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        server.configure_home(home / "homes" / "claude")
        yield server


def test_the_real_claude_cli_runs_its_bash_tool_in_the_image(
    engine: str, home: Path, tmp_path: Path, claude: MockModel
) -> None:
    """Claude Code (its native binary, mounted read-only) in the Debian trixie image on this bookworm
    host: its turn reaches the mock model on the host's loopback, and its Bash tool runs in the image."""
    repo = make_repo(tmp_path / "r", {".devcontainer.json": f'{{"image": "{BASE}"}}', "README.md": "# r\n"})
    command = "cat /etc/debian_version > inside.txt; echo wrote"
    request = RunRequest(
        agent="claude",
        repo=str(repo),
        thread="t1",
        prompt=f"look {tool_marker('Bash', command=command)}",
        access=Access.FULL,
        environment=Environment.CONTAINER,
        egress="open",
    )
    result = run(request, settings=load_settings(overrides={"home": str(home), **FAST}, environ={}))
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    inside = (Path(result.session.worktree) / "inside.txt").read_text()
    assert inside.startswith("13") and inside != Path("/etc/debian_version").read_text()  # trixie's
    last = claude.conversation()[-1]  # type: ignore[attr-defined]
    results = [
        b for b in last.messages[-1]["content"] if isinstance(b, dict) and b.get("type") == "tool_result"
    ]
    assert "wrote" in str(results[0].get("content"))
    assert left_containers() == []
