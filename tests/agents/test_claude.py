"""The Claude Code adapter: argv per mode, event parsing, classification, home settings — and the
real CLI's "No conversation found" path (a corrupt transcript) ending in a recovered conversation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, Outcome, PromptKind, RunRequest, open_store, run
from baton.agents import Turn
from baton.agents.claude import NOT_FOUND, ClaudeAgent
from baton.errors import AgentError
from baton.settings import Settings
from baton.testing.mock_anthropic import MockAnthropic
from baton.workspace.keyspace import session_agent

INIT = {
    "type": "system",
    "subtype": "init",
    "session_id": "s-1",
    "cwd": "/w",
    "claude_code_version": "2.1.327",
}
RESULT = {
    "type": "result",
    "subtype": "success",
    "is_error": False,
    "session_id": "s-1",
    "result": "done",
    "total_cost_usd": 0.0012,
    "usage": {"input_tokens": 60, "output_tokens": 12, "service_tier": "standard"},
}


@pytest.fixture
def adapter(tmp_path: Path) -> ClaudeAgent:
    return ClaudeAgent("claude", tmp_path / "home", "/bin/claude")


def test_argv_per_mode(adapter: ClaudeAgent) -> None:
    fresh = adapter.launch(Mode.FRESH, "-rf do it", None)
    assert fresh.argv[:5] == ["/bin/claude", "-p", "--output-format", "stream-json", "--verbose"]
    assert fresh.stdin == b"-rf do it" and "-rf do it" not in fresh.argv
    assert fresh.argv[-2:] == ["--session-id", fresh.new_session_id]
    assert fresh.env == {"CLAUDE_CONFIG_DIR": str(adapter.home)}
    resume = adapter.launch(Mode.RESUME, "x", "abc")
    assert resume.argv[-2:] == ["--resume", "abc"] and resume.new_session_id is None
    fork = adapter.launch(Mode.FORK, "x", "abc")
    assert fork.argv[-5:] == ["--resume", "abc", "--fork-session", "--session-id", fork.new_session_id]
    assert adapter.launch(Mode.CONTINUE, "x", None).argv[-1] == "--continue"
    with pytest.raises(AgentError):
        adapter.launch(Mode.RESUME, "x", None)


def test_events_and_classification(adapter: ClaudeAgent) -> None:
    turn = Turn()
    for event in (INIT, {"type": "assistant", "session_id": "s-1"}, RESULT):
        adapter.read_event(json.dumps(event), turn)
    assert adapter.read_event("not json", turn) is None
    assert (turn.session_id, turn.result, turn.version, turn.cost_usd) == ("s-1", "done", "2.1.327", 0.0012)
    assert turn.usage == {"input_tokens": 60, "output_tokens": 12}
    assert adapter.classify(0, turn, "") == Outcome.SUCCEEDED
    assert adapter.classify(1, turn, "") == Outcome.FAILED
    lost = Turn()
    adapter.read_event(json.dumps({"type": "result", "is_error": True, "errors": [f"{NOT_FOUND}: x"]}), lost)
    assert adapter.classify(1, lost, "") == Outcome.SESSION_LOST
    assert adapter.classify(1, Turn(), f"{NOT_FOUND}: y") == Outcome.SESSION_LOST


def test_a_slash_prompt_is_not_a_slash_command(adapter: ClaudeAgent) -> None:
    """Measured: `/clear` on stdin clears instead of reaching the model; ` /clear` or text before it
    reaches the model."""
    assert adapter.launch(Mode.FRESH, "/clear the cache", None).stdin == b"Instruction: /clear the cache"
    assert adapter.launch(Mode.FRESH, "?why", None).stdin == b"?why"


# The not-logged-in result of Claude Code 2.1.327 (no ANTHROPIC_API_KEY, no login; network off).
NOT_LOGGED_IN = {
    "type": "result",
    "subtype": "success",
    "is_error": True,
    "result": "Not logged in \u00b7 Please run /login",
    "session_id": "s-1",
}


def test_not_logged_in_names_the_variables_to_set(adapter: ClaudeAgent) -> None:
    turn = Turn()
    adapter.read_event(json.dumps(NOT_LOGGED_IN), turn)
    assert adapter.classify(1, turn, "") == Outcome.FAILED
    assert "ANTHROPIC_API_KEY" in turn.errors[0] and "CLAUDE_CODE_OAUTH_TOKEN" in turn.errors[0]
    assert "claude setup-token" in turn.errors[0]
    assert adapter.credentials == ("ANTHROPIC_API_KEY", "CLAUDE_CODE_OAUTH_TOKEN")
    other = Turn()
    adapter.read_event(json.dumps({**NOT_LOGGED_IN, "result": "rate limited"}), other)
    assert adapter.classify(1, other, "") == Outcome.FAILED and other.errors == []


def test_home_settings_keep_user_keys(adapter: ClaudeAgent) -> None:
    adapter.home.mkdir(parents=True)
    (adapter.home / "settings.json").write_text('{"theme": "dark", "cleanupPeriodDays": 400}')
    adapter.prepare_home(30)
    assert json.loads((adapter.home / "settings.json").read_text()) == {
        "theme": "dark",
        "cleanupPeriodDays": 400,
    }
    (adapter.home / "settings.json").write_text("{broken")
    with pytest.raises(AgentError, match="not valid JSON"):
        adapter.prepare_home(30)


@pytest.mark.slow
def test_real_cli_not_found_then_recover(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    first = run(RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt="start"), settings=settings)
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("claude", first.run.repo, "t")
    store.close()
    [transcript] = session_agent(first.session, settings).transcript_files(
        str(first.session.agent_session_id)
    )
    transcript.write_bytes(b"\x00\x01\x02 not a transcript \xff")  # present, so baton resumes; Claude can't
    after = run(RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt="again"), settings=settings)
    assert [(a.mode, a.outcome) for a in after.attempts] == [
        (Mode.RESUME, Outcome.SESSION_LOST),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ]
    assert after.attempts[0].error and NOT_FOUND in after.attempts[0].error
    assert after.session.agent_session_id != first.session.agent_session_id
    assert mock.message_counts()[-1] == 2


def _line(kind: str, content: object, **extra: object) -> bytes:
    return json.dumps({"type": kind, "message": {"role": kind, "content": content, **extra}}).encode()


def test_an_instruction_without_a_model_answer_is_found(adapter: ClaudeAgent) -> None:
    asked = _line("user", "write the parser\n")
    answer = _line("assistant", [{"type": "text", "text": "done"}], model="claude-x")
    api_error = _line("assistant", [{"type": "text", "text": "API Error: 400"}], model="<synthetic>")
    tool_result = _line("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}])
    metadata = json.dumps({"type": "last-prompt", "lastPrompt": "x"}).encode()
    assert adapter.unanswered_prompt(b"\n".join([asked, api_error, metadata])) == "write the parser\n"
    assert adapter.unanswered_prompt(b"\n".join([asked, answer, metadata])) is None
    assert adapter.unanswered_prompt(b"\n".join([asked, answer, tool_result, b"{torn"])) is None
    blocks = _line("user", [{"type": "text", "text": "a "}, {"type": "text", "text": "b"}])
    assert adapter.unanswered_prompt(b"\n".join([answer, blocks])) == "a b"
    assert adapter.unanswered_prompt(b"") is None


@pytest.mark.slow
def test_real_cli_a_turn_that_failed_before_the_model_answered_is_not_repeated_silently(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    """Claude writes the instruction before it asks the model: after a turn the API refused, the
    transcript holds it unanswered and the next resume sends it again. A dispatcher resubmitting it
    must not have it delivered twice without a word: the turn says the one above went unanswered."""

    def go(prompt: str) -> Any:
        return run(
            RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt=prompt), settings=settings
        )

    assert go("start").ok
    mock.fail_status = 400
    failed = go("write the parser")
    assert failed.run.outcome == Outcome.FAILED
    mock.fail_status = None
    again = go("write the parser")
    assert again.ok and again.run.prompt_kind == PromptKind.INTERRUPTED
    assert "unanswered" in str(again.run.note) and "repeats it" in str(again.run.note)
    sent = mock.conversation()[-1].messages[-1]["content"]
    texts = [sent] if isinstance(sent, str) else [b.get("text", "") for b in sent]
    assert "it was never answered, and this instruction repeats it" in texts[-1]
    # an answered turn is followed by the bare instruction, as always
    after = go("and the tests")
    assert after.ok and after.run.prompt_kind == PromptKind.DELTA and after.run.note is None


@pytest.mark.slow
def test_real_cli_a_transcript_damaged_in_place_is_hydrated(
    settings: Settings, src_repo: Path, mock: MockAnthropic, claude_bin: str
) -> None:
    """A transcript whose middle third is overwritten in place (same length, same inode, its mtime set
    back: bit rot, a restore that keeps mtimes), which its size, mtime and inode cannot tell, is found by
    its digest and hydrated from the store's snapshot: the model gets the whole history. Resumed as it
    was, Claude skips the garbage and silently sends only the turns after it."""

    def go(prompt: str) -> Any:
        return run(
            RunRequest(agent="claude", repo=str(src_repo), thread="t", prompt=prompt), settings=settings
        )

    first, second = go("remember the word heron"), go("and the word otter")
    assert first.ok and second.ok and second.run.mode == Mode.RESUME
    [path] = session_agent(second.session, settings).transcript_files(str(second.session.agent_session_id))
    before = path.stat()
    third = before.st_size // 3
    with path.open("r+b") as fh:
        fh.seek(third)
        fh.write(b"\x00" * third)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    marks = [(st.st_size, st.st_mtime_ns, st.st_ino) for st in (before, path.stat())]
    assert marks[0] == marks[1], "size, mtime and inode as they were"
    third_turn = go("which words?")
    assert third_turn.ok and third_turn.run.mode == Mode.RESUME, third_turn.run.note
    # the whole history reached the model (resumed as it was, Claude sent 4: the damaged turns lost)
    assert mock.message_counts() == [2, 4, 6]
    assert "hydrated from the store's snapshot" in str(third_turn.run.note)
    assert "changed in place since its snapshot" in str(third_turn.run.note)
    assert "the snapshot holds the bytes the last turn left" in str(third_turn.run.note)
    assert "heron" in mock.texts()[-1] and "otter" in mock.texts()[-1]
    assert b"\x00" not in path.read_bytes()
