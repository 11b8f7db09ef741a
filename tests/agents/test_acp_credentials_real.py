"""The real ACP CLIs meeting a spent quota (their mock answering OpenAI's ``insufficient_quota``) while
baton's environment also holds a Claude key: the breaker that trips is the agent's own credential's
(OpenCode's provider ``apiKey`` in its config, Copilot CLI's ``COPILOT_PROVIDER_API_KEY``), labelled by
it. Rotating the Claude key leaves it held (nothing reaches the model); rotating the agent's own key
lets the next run through (issue 42, item 6; the labels: tests/agents/test_acp_credentials.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.agents import get_agent
from baton.errors import QuotaHeld
from baton.settings import Settings
from baton.store import Store
from baton.testing._http import Refusal
from baton.testing.mock_openai import MockOpenAI, usage_limit
from baton.testing.mock_openai_agents import OPENCODE_CONFIG

pytestmark = pytest.mark.slow

QUOTA = "You exceeded your current quota, please check your plan and billing details."
LABEL = {
    "opencode": "opencode mock apiKey in opencode.json #",
    "copilot": "copilot COPILOT_PROVIDER_API_KEY #",
}


@pytest.fixture(params=sorted(LABEL))
def agent(request: pytest.FixtureRequest, settings: Settings) -> str:
    name = str(request.param)
    assert get_agent(name, settings).version(), f"the real {name} CLI did not answer --version"
    return name


def ask(settings: Settings, agent: str, repo: str, thread: str) -> RunResult:
    request = RunRequest(agent=agent, repo=repo, thread=thread, prompt="hello", timeout=240)
    return run(request, settings=settings)


def rotate(agent: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's own key replaced, where the operator keeps it."""
    if agent == "copilot":
        monkeypatch.setenv("COPILOT_PROVIDER_API_KEY", "mock-key-rotated")
        return
    config = settings.home / "homes" / agent / OPENCODE_CONFIG
    config.write_text(config.read_text().replace('"mock-key"', '"mock-key-rotated"'))


def test_a_spent_quota_holds_the_agents_own_credential(
    agent: str,
    model: MockOpenAI,
    settings: Settings,
    store: Store,
    src_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-for-claude-code")
    # told to retry at once, the ACP CLIs give up on their five retries as soon (~60 s by their own
    # backoff otherwise); the words baton reads are the same
    model.refusal = Refusal(
        429,
        {"error": {"message": QUOTA, "type": "insufficient_quota", "code": "insufficient_quota"}},
        {"retry-after": "0", "retry-after-ms": "0"},
    )
    limited = ask(settings, agent, str(src_repo), "first")
    assert limited.run.outcome == Outcome.RATE_LIMITED, (limited.run.outcome, limited.run.error)
    (held,) = store.list_quotas()
    print(f"{agent}: {held.label}")
    assert held.label.startswith(LABEL[agent]) and "ANTHROPIC" not in held.label, held.label

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-rotated")  # another agent's key: still held
    before = len(model.requests)
    with pytest.raises(QuotaHeld):
        ask(settings, agent, str(src_repo), "second")
    assert len(model.requests) == before, "the breaker let a request through"

    model.refusal = None
    rotate(agent, settings, monkeypatch)  # its own key: another credential, not held
    after = ask(settings, agent, str(src_repo), "second")
    assert after.ok, after.run.error
    assert len(store.list_quotas()) == 1, "the rotated key never met a limit"


def test_a_spent_plan_in_the_chatgpt_backends_shape_ends_the_turn_rate_limited(
    agent: str, model: MockOpenAI, settings: Settings, store: Store, src_repo: Path
) -> None:
    """The ChatGPT backend's refusal of a spent plan (HTTP 429 ``usage_limit_reached``, "The usage limit
    has been reached"), which the ACP CLIs relay by its words alone (Copilot after its five retries):
    a spent quota, ``rate_limited`` with baton's own wait, its credential held — never ``failed``."""
    spent = usage_limit(int(time.time()) + 3 * 3600)
    model.refusal = Refusal(429, spent.body, {**spent.headers, "retry-after": "0", "retry-after-ms": "0"})
    limited = ask(settings, agent, str(src_repo), "plan")
    assert limited.run.outcome == Outcome.RATE_LIMITED, (limited.run.outcome, limited.run.error)
    assert limited.run.resets_at is not None
    assert "usage limit has been reached" in str(limited.run.error).lower()
    (held,) = store.list_quotas()
    assert held.label.startswith(LABEL[agent]), held.label
