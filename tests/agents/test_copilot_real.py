"""GitHub Copilot CLI (the pinned ``@github/copilot``, its native binary) through the ACP adapter, for
real, against the OpenAI mock (Copilot's own model provider: ``COPILOT_PROVIDER_*``, ``COPILOT_OFFLINE``:
no GitHub login, no other network): a conversation created and loaded by id with its history; the
agent's shell tool asked for by the mock and allowed only at ``full`` (refused at ``read``); a wiped
home hydrated from the store; a model that refuses the key ends the turn ``failed``, not ``succeeded``;
a spent quota ends it ``rate_limited``. (The scenario, access, walls and compatibility suites run it
with the other agents.)"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.agents import get_agent
from baton.models import Access
from baton.settings import Settings
from baton.testing._http import Refusal
from baton.testing.mock_openai import MockOpenAI
from baton.testing.mock_openai_agents import MockCopilot

QUOTA = "You exceeded your current quota, please check your plan and billing details."

pytestmark = pytest.mark.slow


@pytest.fixture
def model(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[MockOpenAI]:
    version = get_agent("copilot", settings).version()  # missing: the test fails, never skips
    assert version, "the pinned Copilot CLI did not answer --version (make setup installs it)"
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    with MockCopilot() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        for name in ("GITHUB_TOKEN", "GH_TOKEN", "COPILOT_GITHUB_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        yield server


def go(settings: Settings, repo: Path, prompt: str, **how: object) -> RunResult:
    request = RunRequest(agent="copilot", repo=str(repo), thread="cp", prompt=prompt, **how)  # type: ignore[arg-type]
    return run(request, settings=settings)


def test_a_conversation_is_created_and_loaded_by_id(
    model: MockOpenAI, settings: Settings, src_repo: Path
) -> None:
    first = go(settings, src_repo, "outline the parser")
    assert first.ok, first.run.error
    second = go(settings, src_repo, "write it")
    assert second.ok and second.run.mode == Mode.RESUME, second.run.error
    assert second.session.agent_session_id == first.session.agent_session_id
    counts = model.history_counts()
    assert counts[-1] > counts[0], counts
    assert "outline the parser" in model.texts()[-1], "the history came along"


@pytest.mark.parametrize(("access", "ran"), [(Access.READ, False), (Access.FULL, True)])
def test_its_shell_tool_runs_only_where_the_access_level_allows(
    model: MockOpenAI, settings: Settings, src_repo: Path, access: Access, ran: bool
) -> None:
    """Refused by its own rule (``--deny-tool=shell``), told to the model, the turn goes on."""
    call = "[[tool:bash " + json.dumps({"command": "echo built > built.txt", "description": "build"}) + "]]"
    result = go(settings, src_repo, f"build it {call}", access=access)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    assert (Path(result.session.worktree) / "built.txt").exists() is ran
    said = str(model.conversation()[-1].tool_outputs())
    assert ("denied due to the following rules: `shell`" in said) is not ran, said


def test_a_wiped_home_is_hydrated_from_the_store(
    model: MockOpenAI, settings: Settings, src_repo: Path
) -> None:
    first = go(settings, src_repo, "one")
    shutil.rmtree(settings.home / "keys" / "copilot")
    after = go(settings, src_repo, "two")
    assert after.ok and after.run.mode == Mode.RESUME, after.run.error
    assert after.session.agent_session_id == first.session.agent_session_id
    assert "one" in model.texts()[-1]


def test_a_model_that_refuses_the_key_fails_the_turn(
    model: MockOpenAI, settings: Settings, src_repo: Path
) -> None:
    model.fail_status = 401
    result = go(settings, src_repo, "hello")
    assert result.run.outcome == Outcome.FAILED, result.run.result
    assert result.run.error and "Error" in result.run.error


def test_a_spent_quota_ends_the_turn_rate_limited(
    model: MockOpenAI, settings: Settings, src_repo: Path
) -> None:
    """An OpenAI-compatible provider's spent quota (HTTP 429, ``insufficient_quota``): Copilot retries
    five times (at once here: ``retry-after: 0``) and says so in its words, which baton reads as an
    exhausted quota (no reset said: its own wait), never a failure."""
    # told to retry at once, the ACP CLIs give up on their five retries as soon (~60 s by their own
    # backoff otherwise); the words baton reads are the same
    model.refusal = Refusal(
        429,
        {"error": {"message": QUOTA, "type": "insufficient_quota", "code": "insufficient_quota"}},
        {"retry-after": "0", "retry-after-ms": "0"},
    )
    result = go(settings, src_repo, "hello", timeout=240)
    assert result.run.outcome == Outcome.RATE_LIMITED, (result.run.outcome, result.run.error)
    assert result.run.limit_kind == "quota" and result.run.resets_at is not None
    assert "exceeded your current quota" in str(result.run.error)


def test_without_a_model_the_error_says_why_it_exited(
    model: MockOpenAI, settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Copilot with a provider of its own and no ``COPILOT_MODEL`` exits during ``initialize``; its reason
    is on its stderr only, and the run's error carries it (it said only "initialize: the agent exited")."""
    monkeypatch.delenv("COPILOT_MODEL")
    result = go(settings, src_repo, "hello")
    assert result.run.outcome == Outcome.FAILED
    error = result.run.error or ""
    assert error.startswith("initialize: the agent exited (exit code "), error
    assert "explicit model" in error, error
    assert model.conversation() == []  # it never reached the model
