"""Conversations that outgrow their model's window, on the fake agent: a rollover at the threshold (the
next turn starts a new native conversation with a recap), a conversation the model refuses as too long
(rolled over and run again once within the run, and only once), and the lineage that says so. The fake
agent reports ``FAKE_AGENT_TOKENS`` prompt tokens per message and refuses a conversation over
``FAKE_AGENT_WINDOW`` tokens as Claude Code relays Anthropic's 400."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, RunResult, run
from baton.models import SessionStatus
from baton.sessions.lineage import lineage
from baton.settings import Settings
from baton.store import Store
from baton.testing.fake import FakeAgent, find_transcripts


def go(settings: Settings, repo: Path, prompt: str, **kw: object) -> RunResult:
    request = RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt, **kw)  # type: ignore[arg-type]
    return run(request, settings=settings)


@pytest.fixture
def small(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Each message counts 1,000 tokens, in a window of 5,000 (the fake's by name), rolled over at 80 %."""
    monkeypatch.setenv("FAKE_AGENT_TOKENS", "1000")
    return settings.with_(context_window="fake=5000")


@pytest.fixture
def rolls(small: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """As ``small``, for an agent that cannot compact a conversation (Codex, Gemini CLI): it rolls over."""
    monkeypatch.setattr(
        FakeAgent, "capabilities", dataclasses.replace(FakeAgent.capabilities, compacts=False)
    )
    return small


def test_the_turn_after_one_over_the_threshold_starts_a_new_conversation_with_a_recap(
    rolls: Settings, src_repo: Path, store: Store
) -> None:
    small = rolls
    one, two = go(small, src_repo, "write the lexer"), go(small, src_repo, "write the parser")
    assert (one.run.usage["context"]["tokens"], two.run.usage["context"]["tokens"]) == (2005, 4005)
    assert two.run.usage["context"]["window"] == 5000 and two.run.mode == Mode.RESUME  # 40 % then 80 %
    three = go(small, src_repo, "write the docs")
    assert three.ok and three.run.mode == Mode.RECOVER and three.run.prompt_kind == PromptKind.RECAP
    assert three.run.lineage == "rollover"
    assert three.run.note == "rolled over: the conversation held 4005 of 5000 tokens (80% ≥ 80%)"
    assert three.run.result == "fake reply: received 2 messages", "a new conversation"
    assert three.session.agent_session_id != two.session.agent_session_id
    four = go(small, src_repo, "write the tests")
    assert four.run.mode == Mode.RESUME and four.run.result == "fake reply: received 4 messages"
    family = lineage(store, four.session)
    first, second = family["conversations"]
    assert (first["session_id"], first["after"], first["why"]) == (one.session.agent_session_id, None, None)
    assert first["held"] == {"tokens": 4005, "window": 5000}
    assert (second["after"], second["why"], second["began"]) == (first["session_id"], "rollover", "recover")
    assert second["session_id"] == four.session.agent_session_id


def test_the_recap_of_a_rollover_carries_the_earlier_turns(rolls: Settings, src_repo: Path) -> None:
    small = rolls
    go(small, src_repo, "write the lexer")
    go(small, src_repo, "write the parser")
    three = go(small, src_repo, "write the docs")
    sid = three.session.agent_session_id
    assert sid is not None
    text = find_transcripts(small, sid)[0].read_text()
    assert "write the lexer" in text and "write the parser" in text and "write the docs" in text


def test_threshold_zero_never_rolls_over_by_size(small: Settings, src_repo: Path) -> None:
    off = small.with_(context_threshold=0.0)
    results = [go(off, src_repo, f"step {n}") for n in range(3)]
    assert [r.run.mode for r in results] == [Mode.FRESH, Mode.RESUME, Mode.RESUME]


def test_a_conversation_refused_as_too_long_is_rolled_over_and_run_again_in_the_run(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_WINDOW", "30")  # 10 tokens a message: 2 fit, 4 do not
    first = go(settings, src_repo, "write the lexer")
    second = go(settings, src_repo, "write the parser")
    assert second.ok and second.run.outcome == Outcome.SUCCEEDED
    refused, rolled = second.attempts
    assert refused.outcome == Outcome.CONTEXT_FULL and refused.mode == Mode.RESUME
    assert refused.error and "Prompt is too long" in refused.error
    assert refused.session_id_out == first.session.agent_session_id
    assert rolled.mode == Mode.RECOVER and rolled.lineage == "too_long" and rolled.attempt == 2
    assert rolled.note and rolled.note.startswith("rolled over: the model refused the conversation")
    assert rolled.result == "fake reply: received 2 messages"
    assert second.session.agent_session_id not in (None, first.session.agent_session_id)
    assert second.session.status == SessionStatus.ACTIVE and second.session.last_outcome == Outcome.SUCCEEDED


def test_a_rollover_refused_too_ends_the_run_after_one_rollover_and_is_not_retried(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go(settings, src_repo, "write the lexer")
    monkeypatch.setenv("FAKE_AGENT_WINDOW", "1")  # nothing fits, not even a new conversation
    second = go(settings, src_repo, "write the parser", retries=3)
    assert [a.outcome for a in second.attempts] == [Outcome.CONTEXT_FULL] * 2, "one rollover, only one"
    assert [a.mode for a in second.attempts] == [Mode.RESUME, Mode.RECOVER]
    assert second.run.outcome == Outcome.CONTEXT_FULL
    monkeypatch.delenv("FAKE_AGENT_WINDOW")
    third = go(settings, src_repo, "write the docs")  # the conversation it left was refused: rolled over
    assert third.ok and third.run.mode == Mode.RECOVER and third.run.lineage == "too_long"
    assert len(third.attempts) == 1


def test_sessions_show_lists_which_conversation_followed_which_and_why(
    rolls: Settings, src_repo: Path, cli_here: Callable[..., subprocess.CompletedProcess[str]]
) -> None:
    small = rolls
    results = [go(small, src_repo, f"step {n}") for n in range(3)]  # the third rolls over
    old, new = results[1].session.agent_session_id, results[2].session.agent_session_id
    done = cli_here("sessions", "show", "-a", "fake", "-r", str(src_repo), "-t", "t1", "--wide", timeout=60)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert f"conversation {old}: began fresh" in text and "held 4005 of 5000 tokens" in text
    assert f"conversation {new}: began recover" in text and f"after {old} (rollover)" in text


# -- an agent that compacts in place (Claude Code's /compact; the fake does it as Claude Code does) ----


def test_over_the_threshold_a_cli_that_can_compacts_the_conversation_in_place_first(
    small: Settings, src_repo: Path, store: Store
) -> None:
    go(small, src_repo, "write the lexer")
    two = go(small, src_repo, "write the parser")  # 4,005 of 5,000: 80 %
    three = go(small, src_repo, "write the docs")
    assert three.ok and three.run.mode == Mode.RESUME and three.run.lineage == "compacted"
    assert three.session.agent_session_id == two.session.agent_session_id, "the same conversation"
    assert three.run.note == (
        "compacting first: the conversation held 4005 of 5000 tokens (80% ≥ 80%); "
        "compacted it in place first (the CLI's /compact)"
    )
    # the summary, then this turn: 3 messages where the whole history would have been 6
    assert three.run.result == "fake reply: received 3 messages"
    assert three.run.usage["context"]["tokens"] == 3005
    assert go(small, src_repo, "write the tests").run.result == "fake reply: received 5 messages"
    [conversation] = lineage(store, three.session)["conversations"]
    assert conversation["compacted"] == 1


def test_a_conversation_still_over_the_threshold_after_a_compaction_rolls_over(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_TOKENS", "2000")  # even the summary and one turn hold 6,005 of 5,000
    small = settings.with_(context_window="fake=5000")
    go(small, src_repo, "write the lexer")
    two = go(small, src_repo, "write the parser")
    assert two.run.lineage == "compacted" and two.run.usage["context"]["tokens"] == 6005
    three = go(small, src_repo, "write the docs")
    assert three.run.mode == Mode.RECOVER and three.run.lineage == "rollover"
    assert three.run.note and three.run.note.endswith("after it was compacted")
    assert three.run.result == "fake reply: received 2 messages"


def test_a_compaction_that_fails_resumes_as_it_was_and_the_next_turn_rolls_over(
    small: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go(small, src_repo, "write the lexer")
    two = go(small, src_repo, "write the parser")
    monkeypatch.setenv("FAKE_AGENT_COMPACT_FAILS", "1")
    three = go(small, src_repo, "write the docs")
    assert three.ok and three.run.mode == Mode.RESUME and three.run.lineage == "compact_failed"
    assert three.run.note and "/compact failed (compaction failed: exhausted" in three.run.note
    assert three.run.result == "fake reply: received 6 messages", "the whole conversation, as it was"
    four = go(small, src_repo, "write the tests")
    assert four.run.mode == Mode.RECOVER and four.run.lineage == "rollover"
    assert four.session.agent_session_id != two.session.agent_session_id
