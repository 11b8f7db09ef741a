"""Instructions that changed under a thread, with the REAL Claude Code CLI against the mock Anthropic
API: a CLAUDE.md changed in the worktree between two turns reaches the model's request of the resumed
turn as baton's diff, in the user message of that turn, and the conversation is the same one (its
history grows); the turn after it is not told again."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.agents import get_agent
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import commit_file

pytestmark = pytest.mark.slow


@pytest.fixture
def agent(settings: Settings) -> str:
    version = get_agent("claude", settings).version()  # the CLI missing fails the test (it never skips)
    assert version, "the real claude CLI did not answer --version"
    print(f"real claude CLI: {version}")
    return "claude"


def turn(settings: Settings, repo: Path, prompt: str) -> RunResult:
    result = run(RunRequest(agent="claude", repo=str(repo), thread="rules", prompt=prompt), settings=settings)
    assert result.run.outcome == Outcome.SUCCEEDED, result.run.error
    return result


def test_a_changed_claude_md_reaches_the_model_on_a_resumed_turn(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    commit_file(src_repo, "CLAUDE.md", "Rule: answer with alpha.\n", "instructions")
    first = turn(settings, src_repo, "first turn")
    requests = model.conversation()  # type: ignore[attr-defined]
    assert "Rule: answer with alpha." in requests[-1].text()  # the CLI read it itself when it started
    omega = f"omega-{secrets.token_hex(4)}"
    (Path(first.session.worktree) / "CLAUDE.md").write_text(f"Rule: answer with {omega}.\n")

    second = turn(settings, src_repo, "second turn")
    assert second.run.mode == Mode.RESUME
    assert second.session.agent_session_id == first.session.agent_session_id
    sent = model.conversation()[-1]  # type: ignore[attr-defined]
    told = sent.latest_user_text()
    assert "Your instruction files in the working directory changed" in told, told
    assert "-Rule: answer with alpha.\n+Rule: answer with " + omega in told, told
    assert told.index(omega) < told.index("second turn")  # before the instruction
    assert model.message_counts()[-1] > model.message_counts()[0]  # type: ignore[attr-defined]
    # measured: whether the CLI itself sent the new CLAUDE.md again on resume (besides baton's diff)
    print(f"the new text appears {sent.text().count(omega)} time(s) in the resumed turn's request")

    turn(settings, src_repo, "third turn")
    third = model.conversation()[-1].latest_user_text()  # type: ignore[attr-defined]
    assert "third turn" in third and "instruction files" not in third, third
