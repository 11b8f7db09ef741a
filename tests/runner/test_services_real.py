"""Real services through real podman: a repository whose ``.baton/services.toml`` declares a PostgreSQL
(``localhost/baton-postgres:dev``, built from Debian's packages by deploy/fleet/images.sh, as the fleet's
test gets it). Each key gets its own server on its own port of 127.0.0.1 (two keys: two ports, two
databases); the setup and the agent's ``psql`` reach it through ``DATABASE_URL`` from inside their
walls; the key's next turn reuses it; one stopped is started again with its data kept in the key's
space; the key's removal and the idle sweep stop it. The real Claude Code CLI's Bash tool reaches it
too, from its own network namespace (egress ``none``: a relay per service port). A Redis with
``services_network = "publish"``: its port published on the free one.

Needs root and podman (``make setup``); this machine's podman needs runc and lower rlimits, given
through ``CONTAINERS_CONF=deploy/fleet/containers.conf`` as the fleet's are.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.keys import key_of
from baton.models import Access
from baton.settings import Settings
from baton.testing import MockModel
from baton.testing.tools import tool_marker
from baton.workspace import containers
from baton.workspace.keyspace import remove_space
from tests.conftest import make_repo
from tests.sandbox.test_access_real import model, tool_results

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600 + 120)]  # the service images' build: 3600 s
ROOT = Path(__file__).resolve().parents[2]
SERVICE_FIXTURES = {"service_images": "image"}
__all__ = ["model"]  # the real CLI's mock model server (a fixture), for the agent below


@pytest.fixture
def agent() -> str:
    """The real CLI of this module's tests: Claude Code (``model`` starts its mock)."""
    return "claude"


SERVICES = """
[services.db]
image = "localhost/baton-postgres:dev"
port_env = "PGPORT"
env = { POSTGRES_PASSWORD = "pw", POSTGRES_USER = "app" }
data = "/var/lib/postgresql/data"
ready = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", "${port}"]

[services.db.export]
DATABASE_URL = "postgresql://app:pw@${host}:${port}/app"
PGPORT = "${port}"
"""
# the agent's command: one row more each turn, the count and the server's port
PSQL = (
    'psql "$DATABASE_URL" -Atq -c "create table if not exists turns (n int)" '
    '-c "insert into turns values (1)" -c "select count(*) from turns" -c "show port" > psql.out 2> psql.err'
)


@pytest.fixture(scope="module")
def service_images() -> None:
    """The fleet's service images, made as ``fleet.sh up`` makes them (deploy/fleet/images.sh)."""
    if os.geteuid() != 0:
        pytest.fail("the service images are built as root (debootstrap, podman's store)", pytrace=False)
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: `make setup` installs it as root (apt-get install podman runc)")
    done = subprocess.run(
        [str(ROOT / "deploy" / "fleet" / "images.sh")], capture_output=True, text=True, timeout=3600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture
def podman(settings: Settings, monkeypatch: pytest.MonkeyPatch, service_images: None) -> Iterator[None]:
    monkeypatch.setenv("CONTAINERS_CONF", str(ROOT / "deploy" / "fleet" / "containers.conf"))
    yield
    # whatever a failed test left running, of this test's home only: another test's (a worker beside
    # it, the docs' trial) is never touched
    for name in set(_ours()) & {s.container for s in containers.states(settings)}:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True, check=False)


def _ours() -> list[str]:
    done = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name={containers.PREFIX}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.split()


def turn(settings: Settings, repo: Path, thread: str) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread=thread, prompt="count", access=Access.FULL)
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    return result


def said(result: RunResult) -> tuple[str, str]:
    """(rows, the server's port) as the agent's psql printed them."""
    worktree = Path(result.session.worktree)
    lines = (worktree / "psql.out").read_text().split()
    assert len(lines) == 2, (lines, (worktree / "psql.err").read_text())
    return lines[0], lines[1]


def test_each_key_gets_its_own_postgres_reused_restarted_and_stopped(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, podman: None
) -> None:
    setup = 'psql "$DATABASE_URL" -Atc "select 1"\n'  # the setup reaches the key's server too
    repo = make_repo(tmp_path / "r", {".baton/services.toml": SERVICES, ".baton/setup.sh": setup})
    monkeypatch.setenv("FAKE_AGENT_RUN", PSQL)
    began = time.monotonic()
    one = turn(settings, repo, "one")
    print(f"first turn with a new PostgreSQL: {time.monotonic() - began:.1f} s; note: {one.run.note}")
    two = turn(settings, repo, "two")
    (rows1, port1), (rows2, port2) = said(one), said(two)
    assert rows1 == rows2 == "1"  # two databases: each saw only its own row
    assert port1 != port2 and f"db on 127.0.0.1:{port1} (started in" in (one.run.note or "")
    assert "environment: setup from .baton/setup.sh" in (one.run.note or "")
    again = turn(settings, repo, "one")
    assert said(again) == ("2", port1) and f"db on 127.0.0.1:{port1} (reused)" in (again.run.note or "")
    [mine] = [s for s in containers.states(settings) if s.port == int(port1)]
    subprocess.run(["podman", "rm", "-f", "-t", "0", mine.container], check=True, capture_output=True)
    restarted = turn(settings, repo, "one")  # its data was in the key's space: still there
    print(f"reused: {again.run.note}\nrestarted on its data: {restarted.run.note}")
    assert said(restarted) == ("3", port1) and "(started in" in (restarted.run.note or "")
    remove_space(settings, key_of(restarted.session))  # the key goes: its server with it
    assert mine.container not in _ours()
    stopped, errors = containers.sweep_idle(settings, time.time() + 31 * 60)  # the other one, idle
    [idle] = containers.states(settings)
    assert errors == {} and len(stopped) == 1 and idle.container not in _ours()
    assert idle.stopped and idle.port == int(port2)  # kept: the key's next turn takes its port again
    assert said(turn(settings, repo, "two")) == ("2", port2)


def test_claude_reaches_its_postgres_from_its_own_network_namespace(
    settings: Settings, tmp_path: Path, model: MockModel, podman: None
) -> None:
    repo = make_repo(tmp_path / "r", {".baton/services.toml": SERVICES})
    command = 'psql "$DATABASE_URL" -Atc "select 40 + 2"'
    request = RunRequest(
        agent="claude",
        repo=str(repo),
        thread="db",
        prompt="query it " + tool_marker("Bash", command=command),
        access=Access.FULL,
        egress="none",
    )
    result = run(request, settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert result.run.confined
    results = tool_results("claude", model)
    assert len(results) == 1 and "42" in results[0], results
    first = model.conversation()[0]  # type: ignore[attr-defined]
    assert "This thread has its own services for the tests" in str(first.messages)


REDIS_PUBLISHED = """
[services.cache]
image = "localhost/baton-redis:dev"
port = 6379
env = { REDIS_PASSWORD = "pw", LISTEN_ADDRESS = "0.0.0.0" }
export = { REDIS_URL = "redis://default:pw@${host}:${port}/0" }
"""


def test_a_published_redis_answers_the_agent_on_its_own_port(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, podman: None
) -> None:
    repo = make_repo(tmp_path / "r", {".baton/services.toml": REDIS_PUBLISHED})
    monkeypatch.setenv("FAKE_AGENT_RUN", 'redis-cli --no-auth-warning -u "$REDIS_URL" ping > ping.out 2>&1')
    result = turn(settings.with_(services_network="publish"), repo, "cache")
    print(f"published: {result.run.note}")
    assert (Path(result.session.worktree) / "ping.out").read_text() == "PONG\n"
    [state] = containers.states(settings)
    assert f"cache on 127.0.0.1:{state.port} (started in" in (result.run.note or "")
    ports = subprocess.run(["podman", "port", state.container], capture_output=True, text=True, check=True)
    assert f"127.0.0.1:{state.port}" in ports.stdout  # published, not the host's network
