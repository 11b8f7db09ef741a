"""Each ACP agent's usage-limit breaker is keyed by the credential that agent uses (issue 42, item 6):
OpenCode's provider key (its config's ``apiKey``, a ``{env:…}`` or ``{file:…}`` reference, the provider's
own variable, ``auth.json``), never the Claude key baton holds for Claude Code; Copilot CLI's provider key
when a provider is set, else its GitHub token. The real CLIs meeting a spent quota:
``tests/agents/test_acp_credentials_real.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from baton.agents import Agent, get_agent
from baton.runner import quota
from baton.settings import Settings

CLAUDE = {"ANTHROPIC_API_KEY": "sk-ant-claude-only"}


def opencode_with(settings: Settings, options: dict[str, object], model: str = "mock/m") -> Agent:
    agent = get_agent("opencode", settings)
    config = agent.home / "config" / "opencode" / "opencode.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    provider = {"mock": {"npm": "@ai-sdk/openai", "options": options, "models": {"m": {}}}}
    config.write_text(json.dumps({"provider": provider, "model": model}))
    return agent


def test_opencodes_breaker_is_its_providers_key_not_claudes(settings: Settings) -> None:
    agent = opencode_with(settings, {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-mock-1"})
    key, label = quota.credential(agent, CLAUDE)
    assert label.startswith("opencode mock apiKey in opencode.json #"), label
    assert "ANTHROPIC" not in label and "sk-mock" not in key + label
    claude_rotated, _ = quota.credential(agent, {"ANTHROPIC_API_KEY": "sk-ant-rotated"})
    assert claude_rotated == key, "another agent's key changed nothing of OpenCode's"
    agent = opencode_with(settings, {"baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-mock-2"})
    assert quota.credential(agent, CLAUDE)[0] != key, "its own key rotated: another breaker"
    agent = opencode_with(settings, {"baseURL": "http://127.0.0.1:8/v1", "apiKey": "sk-mock-1"})
    assert quota.credential(agent, CLAUDE)[0] != key, "the same key at another service"


def test_opencodes_references_are_read_as_it_reads_them(settings: Settings, tmp_path: Path) -> None:
    agent = opencode_with(settings, {"apiKey": "{env:MOCK_KEY}"})
    key, label = quota.credential(agent, {**CLAUDE, "MOCK_KEY": "one"})
    assert label.startswith("opencode MOCK_KEY #")
    assert quota.credential(agent, {**CLAUDE, "MOCK_KEY": "two"})[0] != key
    assert quota.credential(agent, CLAUDE)[1].startswith("opencode no credential #")

    (tmp_path / "key.txt").write_text("from-a-file\n")
    agent = opencode_with(settings, {"apiKey": f"{{file:{tmp_path / 'key.txt'}}}"})
    key, label = quota.credential(agent, CLAUDE)
    assert label.startswith(f"opencode mock key file {tmp_path / 'key.txt'} #")
    (tmp_path / "key.txt").write_text("rotated\n")
    assert quota.credential(agent, CLAUDE)[0] != key


@pytest.mark.parametrize(
    ("model", "env", "source"),
    [
        ("openai/gpt-5.5", {**CLAUDE, "OPENAI_API_KEY": "sk-openai"}, "OPENAI_API_KEY"),
        ("openai/gpt-5.5", CLAUDE, "no credential"),  # never the Claude key in its stead
        ("anthropic/claude", {**CLAUDE, "OPENAI_API_KEY": "sk-openai"}, "ANTHROPIC_API_KEY"),
    ],
)
def test_opencodes_provider_variable_is_its_models_providers(
    settings: Settings, model: str, env: dict[str, str], source: str
) -> None:
    agent = opencode_with(settings, {}, model=model)
    assert quota.credential(agent, env)[1].startswith(f"opencode {source} #")


def test_opencodes_login_file_is_its_providers_entry(settings: Settings) -> None:
    agent = opencode_with(settings, {}, model="openai/gpt-5.5")
    logins = agent.home / "data" / "opencode" / "auth.json"
    logins.parent.mkdir(parents=True)
    logins.write_text(json.dumps({"openai": {"type": "api", "key": "sk-login-1"}}))
    key, label = quota.credential(agent, CLAUDE)
    assert label.startswith("opencode openai login in auth.json #")
    logins.write_text(json.dumps({"openai": {"type": "api", "key": "sk-login-2"}}))
    assert quota.credential(agent, CLAUDE)[0] != key


def test_copilots_breaker_is_the_key_it_uses(settings: Settings) -> None:
    copilot = get_agent("copilot", settings)
    provider = {"COPILOT_PROVIDER_BASE_URL": "http://127.0.0.1:9/v1", "COPILOT_PROVIDER_API_KEY": "k1"}
    key, label = quota.credential(copilot, {**CLAUDE, **provider, "GH_TOKEN": "gh-1"})
    assert label.startswith("copilot COPILOT_PROVIDER_API_KEY #")
    assert quota.credential(copilot, {**CLAUDE, **provider, "GH_TOKEN": "gh-2"})[0] == key
    github = {**CLAUDE, "COPILOT_PROVIDER_API_KEY": "k1", "GH_TOKEN": "gh-1", "GITHUB_TOKEN": "gh-9"}
    assert quota.credential(copilot, github)[1].startswith("copilot GH_TOKEN #"), "no provider: its login"
