"""Caps in the runner, on the fake agent: a thread at a cap parks before its agent starts (needs_input,
baton's question on the run, its instruction kept), a raise lets the parked instruction run once, and a
turn that crosses a cap ends as it ended while the next one parks."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Outcome, RunRequest, RunResult, open_store, run
from baton.agents import AGENTS
from baton.asking.pending import answering, waiting
from baton.caps.model import Measure, Scope
from baton.caps.parked import parked
from baton.caps.tables import cap_store
from baton.errors import NotWaiting
from baton.keys import make_key
from baton.runner.capped import resume_request
from baton.settings import Settings


def go(settings: Settings, repo: Path, prompt: str, **kw: object) -> RunResult:
    return run(
        RunRequest(agent="fake", repo=str(repo), thread="t1", prompt=prompt, **kw),  # type: ignore[arg-type]
        settings=settings,
    )


@pytest.fixture
def wrote(settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file the fake agent appends each turn's prompt to, in its worktree (inside its walls): what
    ran, and how often."""
    monkeypatch.setenv("FAKE_AGENT_WRITE", "turns.txt")
    slug = make_key("fake", str(src_repo), "t1", AGENTS).repo.slug
    return settings.home / "worktrees" / "fake" / slug / "t1" / "turns.txt"


def turns(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_a_thread_at_its_cap_parks_before_its_agent_starts_and_a_raise_runs_it_once(
    settings: Settings, src_repo: Path, wrote: Path
) -> None:
    first = go(settings, src_repo, "first-instruction", max_turns=1)
    assert first.run.outcome == Outcome.SUCCEEDED and len(turns(wrote)) == 1
    capped = go(settings, src_repo, "second-instruction", max_turns=1)
    assert capped.run.outcome == Outcome.NEEDS_INPUT
    assert len(turns(wrote)) == 1, "the agent of a thread at its cap never started"
    assert capped.run.agent_pid is None and capped.run.prompt == "second-instruction"
    question = capped.run.question or {}
    assert question["text"].startswith("this thread has spent 1 turn of its 1 turn cap;")
    assert "baton budget -a fake -r" in question["text"] and "--turns +1" in question["text"]
    assert question["cap"]["measure"] == "turns"
    store = open_store(settings.resolved_store_url)
    try:
        slug = capped.run.repo
        asked = waiting(store, "fake", slug, "t1")  # every surface that shows questions shows it
        assert asked is not None and asked.question.text == question["text"]
        # an answer resumes the capped instruction with the words after it (the cap then holds again)
        answer = answering(store, "fake", slug, "t1", "please go on", "alice")
        said = answer.prompt
        assert said.startswith("second-instruction\n\n") and "> please go on" in said
        assert answer.answers == capped.run.run_id
        answered = go(settings, src_repo, said, max_turns=1, answers=answer.answers)
        assert answered.run.outcome == Outcome.NEEDS_INPUT
        assert len(turns(wrote)) == 1
        cap_store(store).add_raise(Scope.THREAD, f"fake:{slug}:t1", Measure.TURNS, 1.0, "alice")
        request = resume_request(store, "fake", slug, "t1")
        assert request is not None and request.max_turns == 1  # the parked run's own cap carried
        assert request.prompt == said
        resumed = run(request, settings=settings)
        assert resumed.run.outcome == Outcome.SUCCEEDED
        with pytest.raises(NotWaiting):  # a second resume of the same parked turn (two raises at once)
            run(request, settings=settings)
        assert parked(store, "fake", slug, "t1") is None
        assert resume_request(store, "fake", slug, "t1") is None  # nothing to resume twice
    finally:
        store.close()
    ran = turns(wrote)
    assert len(ran) == 2 and "second-instruction" in ran[1], ran
    # the raise is spent: the next turn parks again
    assert go(settings, src_repo, "third", max_turns=1).run.outcome == Outcome.NEEDS_INPUT
    assert len(turns(wrote)) == 2


def test_a_turn_that_crosses_a_cap_ends_as_it_ended_and_says_the_next_parks(
    settings: Settings, src_repo: Path, wrote: Path
) -> None:
    capped = settings.with_(max_usd=0.0001)  # the fake agent reports $0.0002 for a first turn
    result = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=capped)
    assert result.run.outcome == Outcome.SUCCEEDED
    assert any("the next turn of the thread parks" in w for w in result.warnings), result.warnings
    again = run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="more"), settings=capped)
    assert again.run.outcome == Outcome.NEEDS_INPUT and len(turns(wrote)) == 1
    assert "this thread has spent $0.0002 of its $0.0001 cap" in (again.run.question or {})["text"]


def test_a_runs_own_cap_cannot_lift_the_settings(settings: Settings, src_repo: Path, wrote: Path) -> None:
    capped = settings.with_(max_turns=1)
    run(RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="go"), settings=capped)
    wider = RunRequest(agent="fake", repo=str(src_repo), thread="t1", prompt="more", max_turns=50)
    assert run(wider, settings=capped).run.outcome == Outcome.NEEDS_INPUT
    assert len(turns(wrote)) == 1
