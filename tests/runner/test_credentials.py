"""A run whose agent has no credentials is refused before anything is written (exit 2, baton's message
naming what to set): the agent's own ``Not logged in · Please run /login`` never reaches the user.
What counts is one source of truth (:meth:`baton.agents.base.Agent.auth`), which ``baton doctor`` uses
too: the variables the CLI documents, its login files in the operator's base home, and for Codex the
``env_key`` of the model provider its config.toml chooses."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton.agents import get_agent
from baton.errors import BadInput
from baton.fleet.jobs import submit
from baton.housekeeping.doctor import check_credentials as doctor_check
from baton.runner.request import RunRequest
from baton.runner.resolve import check_request
from baton.settings import Settings
from baton.store import Store
from tests.service_fixtures import Service, service_fixture  # noqa: F401 (the `service` fixture)

Cli = Callable[..., subprocess.CompletedProcess[str]]
# What any adapter takes as a credential (or a mock fixture set), removed from this process's
# environment, and so from the `baton` processes these tests start.
AGENT_VARS = ("ANTHROPIC_", "CLAUDE_CODE_", "CODEX_", "OPENAI_", "GEMINI_", "GOOGLE_", "MOCK_API_KEY")


@pytest.fixture(autouse=True)
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith(AGENT_VARS)]:
        monkeypatch.delenv(name)


def request(src_repo: Path, agent: str) -> RunRequest:
    return RunRequest(agent=agent, repo=str(src_repo), thread="issue-1", prompt="hello")


def codex_config(settings: Settings, text: str) -> Path:
    base = settings.home / "homes" / "codex"
    base.mkdir(parents=True, exist_ok=True)
    (base / "config.toml").write_text(text)
    return base / "config.toml"


@pytest.mark.parametrize(
    ("agent", "words"),
    [
        ("claude", "claude is not authenticated: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN for baton"),
        ("codex", "codex is not authenticated: set CODEX_API_KEY or OPENAI_API_KEY for baton"),
        ("gemini", "gemini is not authenticated: set GEMINI_API_KEY for baton"),
    ],
)
def test_a_run_without_credentials_is_refused_and_writes_nothing(
    cli: Cli, src_repo: Path, settings: Settings, agent: str, words: str
) -> None:
    """The real CLI is installed (that check comes first) but never started."""
    refused = cli("run", "-a", agent, "-r", str(src_repo), "-t", "issue-1", "hello")
    assert refused.returncode == 2, refused.stderr
    assert words in refused.stderr and "/login" not in refused.stderr + refused.stdout
    assert not (settings.home / "worktrees").exists() and not (settings.home / "keys").exists()
    assert not (settings.home / "repos").exists()
    assert json.loads(cli("sessions", "ls", "--json").stdout) == []
    assert json.loads(cli("runs", "ls", "--json").stdout) == []


def test_any_documented_credential_will_do(settings: Settings, src_repo: Path) -> None:
    with pytest.raises(BadInput, match="claude is not authenticated"):
        check_request(request(src_repo, "claude"), settings, environ={})
    for variable in ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_AUTH_TOKEN"):
        check_request(request(src_repo, "claude"), settings, environ={variable: "x"})
    check_request(request(src_repo, "gemini"), settings, environ={"GOOGLE_API_KEY": "x"})
    # a login made in the operator's base home (each key's home gets a copy of it)
    base = settings.home / "homes" / "claude"
    base.mkdir(parents=True)
    (base / ".credentials.json").write_text('{"claudeAiOauth": {}}')
    check_request(request(src_repo, "claude"), settings, environ={})
    (settings.home / "homes" / "gemini" / ".gemini").mkdir(parents=True)
    (settings.home / "homes" / "gemini" / ".gemini" / "oauth_creds.json").write_text("{}")
    check_request(request(src_repo, "gemini"), settings, environ={})
    check_request(request(src_repo, "fake"), settings, environ={})  # the fake agent needs none


def test_a_custom_codex_providers_env_key_is_its_credential(settings: Settings, src_repo: Path) -> None:
    path = codex_config(
        settings,
        'model_provider = "mock"\n[model_providers.mock]\nbase_url = "http://127.0.0.1:9/v1"\n'
        'env_key = "MOCK_API_KEY"\n',
    )
    with pytest.raises(BadInput) as refused:
        check_request(request(src_repo, "codex"), settings, environ={"OPENAI_API_KEY": "sk"})
    why = f"the env_key of model provider 'mock' in {path}"
    assert str(refused.value) == f"codex is not authenticated: set MOCK_API_KEY for baton ({why})"
    check_request(request(src_repo, "codex"), settings, environ={"MOCK_API_KEY": "k"})
    # a provider without a key (a local server) needs none; so does a built-in local one
    codex_config(settings, 'model_provider = "local"\n[model_providers.local]\nbase_url = "http://h/v1"\n')
    check_request(request(src_repo, "codex"), settings, environ={})
    codex_config(settings, 'model_provider = "ollama"\n')
    check_request(request(src_repo, "codex"), settings, environ={})
    # a key's own config.toml does not choose: the agent may rewrite it (read on the base home)
    codex_config(settings, "")
    key_home = check_request(request(src_repo, "codex"), settings, credentials=False).agent.home
    key_home.mkdir(parents=True)
    (key_home / "config.toml").write_text('model_provider = "ollama"\n')
    with pytest.raises(BadInput, match="set CODEX_API_KEY or OPENAI_API_KEY"):
        check_request(request(src_repo, "codex"), settings, environ={})


def test_doctor_reports_what_the_runner_checks(settings: Settings) -> None:
    codex_config(settings, 'model_provider = "mock"\n[model_providers.mock]\nenv_key = "MOCK_API_KEY"\n')
    codex = get_agent("codex", settings)
    assert doctor_check(codex, {"MOCK_API_KEY": "k"}).detail == "MOCK_API_KEY set"
    missing = doctor_check(codex, {"OPENAI_API_KEY": "sk"})
    assert missing.status == "warn" and "none of MOCK_API_KEY is set" in missing.detail
    assert doctor_check(get_agent("fake", settings), {}).detail == "not needed"


def test_the_service_refuses_a_run_it_would_run_here(service: Service, src_repo: Path) -> None:
    with service.client("run") as http:
        body = {"agent": "claude", "repo": str(src_repo), "thread": "issue-1", "prompt": "hello"}
        answer = http.post("/v1/runs", json=body)
        assert answer.status_code == 422, answer.text
        assert "claude is not authenticated" in answer.json()["detail"]
    assert service.store.list_jobs() == []


def test_workers_elsewhere_check_their_own_credentials(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    """With a broker the agent runs on a worker, whose environment has the credentials: the service
    (which needs none) queues the run, and a worker without them ends the job with baton's message."""
    queued = submit(
        store, settings.with_(broker_url="redis://127.0.0.1:6379/0"), request(src_repo, "claude"), "t"
    )
    assert queued.status == "queued"
    with pytest.raises(BadInput, match="claude is not authenticated"):
        submit(store, settings, request(src_repo, "claude"), "t")
