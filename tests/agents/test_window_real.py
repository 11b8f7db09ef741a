"""Conversations that outgrow their model's window, with each REAL agent CLI (Claude Code, Codex, Gemini
CLI) against its mock model server: a mock that reports large usage makes baton roll the next turn over
into a new native conversation seeded with a recap (Codex, Gemini CLI), or compact the conversation in
place first (Claude Code's ``/compact``); a mock that refuses an over-long prompt the way its
vendor's API does (HTTP 400, the vendor's JSON error) makes the run roll over and run the instruction
again, once, and end ``succeeded``. The mock's history counts prove which conversation each request
carried: a new conversation starts at the CLI's first-turn count again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import RunRequest, RunResult, run
from baton.models import Mode, Outcome
from baton.settings import Settings
from baton.testing import MockModel
from tests.conftest import FIRST

pytestmark = pytest.mark.slow

THREE = ["claude", "codex", "gemini"]


@pytest.fixture(params=THREE)
def agent(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def turn(settings: Settings, agent: str, repo: Path, prompt: str) -> RunResult:
    request = RunRequest(agent=agent, repo=str(repo), thread="issue-1", prompt=prompt, retries=0)
    return run(request, settings=settings)


@pytest.mark.parametrize("agent", ["codex", "gemini"])  # Claude Code compacts instead: the next test
def test_a_conversation_over_the_threshold_rolls_over_at_the_next_turn(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    """Codex and Gemini CLI cannot compact headlessly: a new conversation with a recap."""
    # each history item counts 1,000 tokens: every first turn holds more than half of a 2,000 window
    small = settings.with_(context_window="2000", context_threshold=0.5)
    model.item_tokens = 1000
    first = turn(small, agent, src_repo, "implement the parser")
    assert first.run.outcome == Outcome.SUCCEEDED, first.run
    context = first.run.usage["context"]
    assert context["tokens"] > 1000 and context["window"] == 2000, context
    old = first.session.agent_session_id
    model.item_tokens = None  # the new conversation is small again
    second = turn(small, agent, src_repo, "add error messages")
    assert second.run.outcome == Outcome.SUCCEEDED, second.run
    rolled = (second.run.mode, second.run.prompt_kind.value, second.run.lineage)
    assert rolled == (Mode.RECOVER, "recap", "rollover")
    assert second.session.agent_session_id not in (None, old), "a new native session"
    assert str(second.run.note).startswith(f"rolled over: the conversation held {context['tokens']} of 2000")
    assert model.history_counts() == [FIRST[agent], FIRST[agent]], "the rollover started a new conversation"
    sent = model.texts()[-1]
    assert "implement the parser" in sent and "add error messages" in sent, "seeded with a recap"
    third = turn(small, agent, src_repo, "write the docs")
    assert third.run.mode == Mode.RESUME and third.session.agent_session_id == second.session.agent_session_id
    assert model.history_counts()[-1] == FIRST[agent] + 2


def test_claude_compacts_a_conversation_over_the_threshold_in_place(
    settings: Settings, src_repo: Path, mock: MockModel
) -> None:
    """Claude Code compacts headlessly (``/compact`` on stdin of ``-p --resume``): the next turn keeps
    its conversation, whose history is the CLI's summary."""
    small = settings.with_(context_window="2000", context_threshold=0.5)
    mock.item_tokens = 1000
    first = turn(small, "claude", src_repo, "implement the parser")
    held = first.run.usage["context"]["tokens"]
    assert held == 2012, first.run.usage  # 2 messages of 1,000 tokens, and the answer's 12
    mock.item_tokens = None
    second = turn(small, "claude", src_repo, "add error messages")
    assert second.ok and second.run.mode == Mode.RESUME and second.run.lineage == "compacted"
    assert second.session.agent_session_id == first.session.agent_session_id, "the same conversation"
    assert second.run.note == (
        f"compacting first: the conversation held {held} of 2000 tokens (101% ≥ 50%); "
        "compacted it in place first (the CLI's /compact)"
    )
    counts = mock.history_counts()
    # the turn's request carried the summary, not the history (a plain resume carries 4 messages)
    assert counts[0] == 2 and counts[-1] < 4, counts
    assert len(counts) > 2, "the summary request"
    assert "add error messages" in mock.texts()[-1]
    third = turn(small, "claude", src_repo, "write the docs")
    assert third.run.mode == Mode.RESUME and third.session.agent_session_id == first.session.agent_session_id
    assert mock.history_counts()[-1] == counts[-1] + 2


def test_a_prompt_the_model_refuses_as_too_long_is_rolled_over_and_run_again_once(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    # a first turn fits the window; the resumed one (two items more) is refused as the vendor refuses it
    per = type(model).ITEM_TOKENS
    model.max_prompt_tokens = per * (FIRST[agent] + 1)
    first = turn(settings, agent, src_repo, "implement the parser")
    assert first.run.outcome == Outcome.SUCCEEDED, first.run
    old = first.session.agent_session_id
    second = turn(settings, agent, src_repo, "add error messages")
    assert second.run.outcome == Outcome.SUCCEEDED, second.attempts
    attempts = second.attempts
    assert [a.outcome for a in attempts] == [Outcome.CONTEXT_FULL, Outcome.SUCCEEDED], attempts
    assert [a.mode for a in attempts] == [Mode.RESUME, Mode.RECOVER]
    assert "longer than its context window" in str(attempts[0].error)
    assert attempts[1].lineage == "too_long" and str(attempts[1].note).startswith("rolled over")
    assert model.refused_too_long >= 1
    assert model.history_counts()[-1] == FIRST[agent], "the instruction ran again in a new conversation"
    assert "add error messages" in model.texts()[-1]
    assert second.session.agent_session_id not in (None, old)


def test_a_rollover_refused_too_ends_the_run_after_one_rollover(
    agent: str, settings: Settings, src_repo: Path, model: MockModel
) -> None:
    first = turn(settings, agent, src_repo, "implement the parser")
    assert first.run.outcome == Outcome.SUCCEEDED, first.run
    model.max_prompt_tokens = 0  # every conversation request is refused
    second = turn(settings, agent, src_repo, "add error messages")
    assert [a.outcome for a in second.attempts] == [Outcome.CONTEXT_FULL] * 2, second.attempts
    assert [a.mode for a in second.attempts] == [Mode.RESUME, Mode.RECOVER], "rolled over once, only once"
