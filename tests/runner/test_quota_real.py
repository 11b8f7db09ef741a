"""Usage limits with the real agent CLIs (:mod:`baton.runner.quota`): each CLI, driven by its mock model
refusing the way its vendor's API refuses a spent quota (Anthropic's unified rate-limit headers under a
subscription login, the ChatGPT backend's ``usage_limit_reached``, the Gemini API's daily
``RESOURCE_EXHAUSTED``), ends its turn ``rate_limited`` with the reset the vendor gave; the credential's
breaker holds every other run of it (the mock sees no request); after the reset the next turn resumes
the same conversation and the instruction reaches the model. The measured facts: docs/agent-clis.md,
"Usage limits"."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, run
from baton.agents import get_agent, limits
from baton.errors import QuotaHeld
from baton.models import SessionStatus
from baton.settings import Settings
from baton.store import Store
from baton.testing import mock_anthropic, mock_gemini, mock_openai
from baton.testing._http import Refusal
from tests.sandbox.test_access_real import model as model

pytestmark = pytest.mark.slow

RESET_IN = 6.0  # seconds from now: the mock's quota resets then
REFUSALS: dict[str, Callable[[int], Refusal]] = {
    "claude": lambda at: mock_anthropic.usage_limit(at),
    "codex": lambda at: mock_openai.usage_limit(at),
    "gemini": lambda at: mock_gemini.quota_exhausted(43),  # a day's quota, the API's usual retry hint
}


@pytest.fixture(params=sorted(REFUSALS))
def agent(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The agents whose limits say when they reset (the ACP agents relay a provider's words, with no
    reset: tests/agents/test_copilot_real.py, tests/runner/test_quota.py)."""
    name = str(request.param)
    assert get_agent(name, settings).version(), f"the real {name} CLI did not answer --version"
    return name


def ask(settings: Settings, repo: Path, agent: str, thread: str, prompt: str) -> RunResult:
    return run(RunRequest(agent=agent, repo=str(repo), thread=thread, prompt=prompt), settings=settings)


def test_a_spent_quota_waits_and_the_conversation_resumes_after_the_reset(
    agent: str,
    model: mock_anthropic.MockAnthropic,
    settings: Settings,
    store: Store,
    src_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if agent == "claude":  # the rate_limit_event is a subscription login's (an API key's 429 has none)
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "mock-oauth-token")
    first = ask(settings, src_repo, agent, "quota", "say hello")
    assert first.ok, first.run.error
    before = len(model.conversation())

    resets_at = int(time.time() + RESET_IN)
    model.refusal = REFUSALS[agent](resets_at)
    limited = ask(settings, src_repo, agent, "quota", "write the marker QUOTA-7f3a")
    assert limited.run.outcome == Outcome.RATE_LIMITED, limited.run.error
    if agent == "gemini":  # a day's quota resets at midnight Pacific time, whatever its retry delay
        resets_at = int(limits.next_midnight(time.time(), "America/Los_Angeles"))
    assert limited.run.resets_at is not None and abs(limited.run.resets_at - resets_at) <= 1.5, (
        limited.run.resets_at,
        resets_at,
    )
    assert limited.session.status == SessionStatus.WAITING
    refused = len(model.conversation()) - before
    assert refused >= 1

    with pytest.raises(QuotaHeld):  # another key of the credential: nothing starts into the wall
        ask(settings, src_repo, agent, "other", "hello")
    assert len(model.conversation()) - before == refused, "the breaker let a request through"

    model.refusal = None
    if agent == "gemini":  # (the test does not wait for midnight: the breaker is told the day is over)
        (held,) = store.list_quotas()
        store.save_quota(dataclasses.replace(held, resets_at=time.time()))
    else:
        time.sleep(max(0.0, limited.run.resets_at - time.time()) + 0.2)
    after = ask(settings, src_repo, agent, "quota", "write the marker QUOTA-7f3a")
    assert after.ok, after.run.error
    assert after.session.agent_session_id == first.session.agent_session_id
    last = model.conversation()[-1].text()
    # the next turn's prompt delivers it once; Claude Code and Codex also keep the refused instruction in
    # their history, unanswered (measured), so the model sees it there too, told why
    assert "QUOTA-7f3a" in last and "stopped by a usage limit, which has reset since" in last
    assert model.history_counts()[-1] > model.history_counts()[before - 1], "the history came along"
