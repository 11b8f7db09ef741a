"""A key's first turn stopped before its agent had a conversation keeps its instruction, with each
REAL agent CLI (Claude Code, Codex, Gemini; Copilot CLI and OpenCode over the Agent Client Protocol).

The first turn is stopped at once by a run limit (16 MiB of memory: OpenCode alone needs ~256 MiB to
start; Codex fits in 16 MiB and reports its thread first, so it gets 2 processes): the model never
sees it. Claude and Gemini were given a session id up front but wrote no transcript; Codex, Copilot
and OpenCode never reported one. The key's next turn is stopped the same way. The one after, with
another instruction, starts a new conversation (fresh, or recovered for a pre-assigned id with
nothing on disk) whose prompt says the last turn was interrupted and holds both stopped turns'
instructions, oldest first, each exactly once and whole, before its own; the turn after that
resumes and is not told them again.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, RunRequest, RunResult, run
from baton.models import Access, PromptKind
from baton.settings import Settings
from baton.testing import MockModel
from tests.sandbox import test_access_real

pytestmark = pytest.mark.slow
agent, model = test_access_real.agent, test_access_real.model  # the fixtures: each real CLI, its mock

# what stops each CLI before it reports a conversation (measured: see the module docstring)
STOP: dict[str, dict[str, Any]] = {"codex": {"pids": 2}}
MEMORY = {"memory": "16M"}


def turn(agent: str, settings: Settings, repo: Path, prompt: str, **how: Any) -> RunResult:
    request = RunRequest(
        agent=agent, repo=str(repo), thread="first", prompt=prompt, access=Access.FULL, retries=0, **how
    )
    return run(request, settings=settings)


def last_sent(model: MockModel) -> Any:
    return model.conversation()[-1]  # type: ignore[attr-defined]


def test_a_first_turn_stopped_before_its_conversation_is_told_to_the_next(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    # long enough that a recap's 600-character clip would cut it: it must arrive whole
    first_instruction = f"first-{secrets.token_hex(6)}: " + "add the parser, then its tests. " * 30
    stopped = turn(agent, settings, src_repo, first_instruction, **STOP.get(agent, MEMORY))
    assert stopped.run.outcome == Outcome.LIMITED, (stopped.run.outcome, stopped.run.error)
    assert stopped.run.error and "next run is told this turn was interrupted" in stopped.run.error
    assert model.conversation() == [], "stopped before the CLI reached its model"  # type: ignore[attr-defined]
    # the key's next turn stopped the same way (the limit still too low): neither instruction is lost
    again = turn(agent, settings, src_repo, "again-instruction: the docs", **STOP.get(agent, MEMORY))
    assert again.run.outcome == Outcome.LIMITED, (again.run.outcome, again.run.error)

    second = turn(agent, settings, src_repo, "second-instruction: report")
    assert second.run.outcome == Outcome.SUCCEEDED, second.run.error
    assert second.run.mode in (Mode.FRESH, Mode.RECOVER), second.run.mode
    assert second.run.prompt_kind in (PromptKind.FULL, PromptKind.RECAP)
    sent = last_sent(model).text()
    assert sent.count(first_instruction.strip()) == 1, sent[-4000:]
    assert sent.count("again-instruction: the docs") == 1, sent[-4000:]
    assert "previous turn on this thread was interrupted (stopped: " in sent and "processes" in sent
    assert "turns cut short in a row, oldest first:" in sent
    order = [sent.index(t) for t in (first_instruction.strip(), "again-instruction", "second-instruction")]
    assert order == sorted(order), order
    assert second.run.note and "this one is told its instruction" in second.run.note, second.run.note

    third = turn(agent, settings, src_repo, "third-instruction: go on")
    assert third.run.outcome == Outcome.SUCCEEDED, third.run.error
    assert third.run.mode == Mode.RESUME and third.run.prompt_kind == PromptKind.DELTA
    told = last_sent(model).latest_user_text()
    assert "third-instruction: go on" in told and "first-" not in told, told
