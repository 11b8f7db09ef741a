"""A repository's ``.baton/services.toml`` through ``baton.run`` with the fake agent, where no container
starts: a host without the engine runs the turn with a note saying the services were skipped; a bad
file ends the turn ``failed`` before its agent, naming the file and the field; a dev container's
compose services are set aside under host networking, saying so. The walls let a key's
agent reach its services' ports (and, in its own network namespace, relay them). Real containers:
tests/runner/test_services_real.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Outcome
from baton.environment import servicerun
from baton.sandbox.egress import service_endpoints
from baton.sandbox.walls import tcp_ports
from baton.settings import Settings
from tests.conftest import make_repo
from tests.runner.test_setup import go

SERVICES = """
[services.db]
image = "localhost/baton-postgres:dev"
port_env = "PGPORT"
export = { DATABASE_URL = "postgresql://baton@${host}:${port}/baton" }
"""


def test_a_host_without_the_engine_runs_the_turn_saying_the_services_were_skipped(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(servicerun, "engine", lambda settings: None)  # a host with no podman, no docker
    repo = make_repo(tmp_path / "r", {".baton/services.toml": SERVICES})
    monkeypatch.setenv("FAKE_AGENT_RUN", 'echo "url=${DATABASE_URL:-none}" > seen.out')
    result = go(settings, repo)
    monkeypatch.undo()
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert "services: db skipped (no podman or docker on PATH" in (result.run.note or "")
    assert (Path(result.session.worktree) / "seen.out").read_text() == "url=none\n"
    off = go(settings.with_(services_engine="off"), repo)
    assert "services: db skipped (services_engine = off" in (off.run.note or "")


def test_a_bad_services_file_ends_the_turn_before_its_agent(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = '[services.db]\nimage = "$(touch /tmp/pwned)"\nport = 5432\n'
    repo = make_repo(tmp_path / "r", {".baton/services.toml": bad})
    monkeypatch.setenv("FAKE_AGENT_RUN", "touch agent-ran")
    result = go(settings, repo)
    assert result.run.outcome == Outcome.FAILED
    assert result.run.error is not None
    assert "environment: .baton/services.toml: services.db.image must be an image name" in result.run.error
    assert "the repository's services cannot be used" in (result.run.note or "")
    assert not (Path(result.session.worktree) / "agent-ran").exists()


def test_the_walls_and_the_egress_reach_the_services_ports_only(settings: Settings) -> None:
    env = {"PATH": "/usr/bin", "BATON_SERVICE_PORTS": "41234,41235,x,70000"}
    assert {41234, 41235} <= tcp_ports(settings, env)
    assert 41234 not in tcp_ports(settings, {"PATH": "/usr/bin"})
    assert service_endpoints(env) == [("127.0.0.1", 41234), ("127.0.0.1", 41235)]


def test_compose_services_are_set_aside_under_host_networking_saying_so(
    settings: Settings, tmp_path: Path
) -> None:
    compose = "services:\n  db:\n    image: postgres:16\n    ports: ['5432']\n"
    devcontainer = '{"dockerComposeFile": "../compose.yml", "service": "app", "postCreateCommand": "true"}'
    files = {".devcontainer/devcontainer.json": devcontainer, "compose.yml": compose}
    result = go(settings, make_repo(tmp_path / "r", files))
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    said = "services set aside: db of .devcontainer/devcontainer.json's dockerComposeFile (services_network"
    assert said in (result.run.note or "")
