"""``on_limit = "fallback:<agent>"`` with the real CLIs: Claude Code meets its spent quota mid-plan, Codex
carries the plan's turns in a conversation of its own (a hand-off: a recap of Claude's, Claude's work
seeded into its worktree) and makes changes; after the reset Claude's next turn takes Codex's work
back, resumes Claude's own native session (resume by id) and its request holds the delta of what
Codex did, and says that the refused instruction was carried out by Codex: it is never asked again (a
non-idempotent instruction would run twice); both conversations stay resumable. Mocks: Anthropic
(refusing as a subscription's spent five-hour window) and OpenAI."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from baton import Mode, Outcome, RunRequest, run
from baton.models import PromptKind
from baton.plans.file import parse_plan
from baton.plans.records import PlanRecord
from baton.plans.runner import run_plan
from baton.settings import Settings
from baton.store import Store
from baton.testing import mock_anthropic
from baton.testing.mock_anthropic import MockAnthropic
from baton.testing.mock_openai import MockOpenAI
from baton.testing.tools import tool_marker

pytestmark = pytest.mark.slow

PATCH = "*** Begin Patch\n*** Add File: made.txt\n+made by codex\n*** End Patch\n"
RESET_IN = 25.0


@pytest.fixture
def models(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[tuple[MockAnthropic, MockOpenAI]]:
    (tmp_path / "user-home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "user-home"))
    with MockAnthropic() as anthropic, MockOpenAI() as openai:
        for server in (anthropic, openai):
            for key, value in server.env().items():
                monkeypatch.setenv(key, value)
        openai.configure_home(settings.home / "homes" / "codex")
        # a subscription login: its spent window comes as a rate_limit_event with its reset
        monkeypatch.delenv("ANTHROPIC_API_KEY")
        monkeypatch.setenv("CLAUDE_CODE_OAUTH_TOKEN", "mock-oauth-token")
        yield anthropic, openai


def test_codex_carries_the_plan_while_claudes_quota_is_spent_and_hands_it_back(
    models: tuple[MockAnthropic, MockOpenAI], settings: Settings, store: Store, src_repo: Path
) -> None:
    anthropic, openai = models
    task_two = "task two: add made.txt " + tool_marker("apply_patch", input=PATCH)
    plan = parse_plan(
        f"""
id: fb
agent: claude
repo: {json.dumps(str(src_repo))}
on_limit: fallback:codex
tasks:
  - id: one
    prompt: "task one: outline the parser"
  - id: two
    prompt: {json.dumps(task_two)}
  - id: three
    prompt: "task three: say what you did"
"""
    )
    resets_at = int(time.time() + RESET_IN)

    def spend_after_task_one(record: PlanRecord, _task: str | None) -> None:
        if record.tasks[0].outcome == Outcome.SUCCEEDED.value and anthropic.refusal is None:
            anthropic.refusal = mock_anthropic.usage_limit(resets_at)

    done = run_plan(plan, settings, store, on_progress=spend_after_task_one)
    assert done.ok, [(t.id, t.outcome, t.error) for t in done.record.tasks]
    claude = store.get_session("claude", done.record.repo, "plan-fb")
    codex = store.get_session("codex", done.record.repo, "plan-fb")
    assert claude is not None and codex is not None and codex.agent_session_id
    assert (Path(codex.worktree) / "made.txt").read_text() == "made by codex\n"
    assert not (Path(claude.worktree) / "made.txt").exists()
    claude_runs = store.list_runs("claude", done.record.repo, "plan-fb")
    assert [r.outcome for r in reversed(claude_runs)] == [Outcome.SUCCEEDED, Outcome.RATE_LIMITED]
    codex_runs = list(reversed(store.list_runs("codex", done.record.repo, "plan-fb")))
    assert [r.prompt_kind for r in codex_runs] == [PromptKind.HANDOFF, PromptKind.DELTA]
    assert codex_runs[1].session_id_in == codex_runs[0].session_id_out, "codex's own conversation, resumed"
    assert all(r.note and "carried for claude, whose usage quota is spent" in r.note for r in codex_runs)
    assert "outline the parser" in openai.conversation()[0].text(), "the hand-off's recap of claude's turn"

    anthropic.refusal = None
    # the reset is not waited for: the breaker is told it has passed (its record's reset moved to now, as
    # test_quota_real.py does for Gemini's midnight); waiting out a real reset, then resuming, is
    # test_quota_real.py's test_a_spent_quota_waits_and_the_conversation_resumes_after_the_reset (Claude
    # Code and Codex). RESET_IN only has to outlast the plan's turns.
    (held,) = store.list_quotas()
    assert held.agent == "claude" and held.resets_at is not None, held
    store.save_quota(dataclasses.replace(held, resets_at=time.time()))
    back = run(
        RunRequest(
            agent="claude",
            repo=str(src_repo),
            thread="plan-fb",
            prompt="task four: go on",
            on_limit="fallback:codex",
        ),
        settings=settings,
    )
    assert back.ok, back.run.error
    assert back.run.mode == Mode.RESUME and back.run.session_id_in == claude.agent_session_id
    assert back.run.note and "took codex's worktree's later work" in back.run.note, back.run.note
    assert (Path(back.session.worktree) / "made.txt").read_text() == "made by codex\n", (
        "codex's work came back"
    )
    sent = anthropic.conversation()[-1].text()
    assert "codex carried it" in sent and "A made.txt" in sent, sent[-3000:]
    assert "task three: say what you did" in sent and "mock reply" in sent, "codex's turns and answers"
    assert "outline the parser" in sent, "claude's own history came along (its native session)"
    # task two was refused to claude and carried by codex: claude is told so, never asked to do it again
    # (the turn's first request: the recap of codex's turns holds its tool marker, which the mock acts on)
    told = next(t for r in anthropic.conversation() if "task four" in (t := r.latest_user_text()))
    assert back.run.prompt_kind == PromptKind.DELTA, back.run.prompt_kind
    assert "codex carried out its instruction instead" in told and "do not do it again" in told, told
    assert "That turn's instruction was" not in told and "finish what that turn started" not in told, told
    assert back.run.note and "carried by codex (on_limit fallback): not asked again" in back.run.note

    again = run(
        RunRequest(agent="codex", repo=str(src_repo), thread="plan-fb", prompt="task five"), settings=settings
    )
    assert again.ok and again.run.mode == Mode.RESUME and again.run.session_id_in == codex.agent_session_id
