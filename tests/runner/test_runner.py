"""The runner's decision matrix, prompt kinds, timeouts, retries and cancellation, on the fake agent."""

from __future__ import annotations

import dataclasses
import shutil
import threading
import time
from pathlib import Path

import pytest

from baton import BadInput, Busy, Mode, Outcome, PromptKind, RunRequest, RunResult, open_store, run
from baton.keys import key_of, make_key
from baton.models import SessionStatus
from baton.runner import quarantine
from baton.settings import Settings
from baton.store.leases import LeaseHolder
from baton.testing.fake import find_transcripts
from baton.workspace.keyspace import key_home


def go(settings: Settings, repo: Path, prompt: str = "do it", thread: str = "t1", **kw: object) -> RunResult:
    return run(
        RunRequest(agent="fake", repo=str(repo), thread=thread, prompt=prompt, **kw),  # type: ignore[arg-type]
        settings=settings,
    )


def transcript(settings: Settings, session_id: str) -> list[Path]:
    return find_transcripts(settings, session_id)


def sent_prompts(settings: Settings, session_id: str) -> list[str]:
    import json

    files = transcript(settings, session_id)
    entries = [json.loads(line) for line in files[0].read_text().splitlines()] if files else []
    return [e["message"]["content"] for e in entries if e["type"] == "user"]


def test_fresh_then_resume_keeps_one_conversation(settings: Settings, src_repo: Path) -> None:
    results = [go(settings, src_repo, f"step {i}") for i in range(3)]
    assert [r.run.mode for r in results] == [Mode.FRESH, Mode.RESUME, Mode.RESUME]
    assert [r.run.prompt_kind for r in results] == [PromptKind.FULL, PromptKind.DELTA, PromptKind.DELTA]
    assert [r.run.result for r in results] == [f"fake reply: received {n} messages" for n in (2, 4, 6)]
    assert len({r.session.agent_session_id for r in results}) == 1
    prompts = sent_prompts(settings, str(results[0].session.agent_session_id))
    assert "durable thread" in prompts[0] and "step 0" in prompts[0]  # full prompt carries context
    assert prompts[1].strip() == "step 1"  # delta carries only the instruction
    assert results[2].session.attempts == 3
    context = {"tokens": 65, "window": 200_000, "model": "claude-fake"}  # what the conversation held
    assert results[2].run.usage == {"input_tokens": 60, "output_tokens": 5, "context": context}
    assert results[2].run.cost_usd == pytest.approx(0.0006)


def test_worktree_is_stable_and_on_its_branch(settings: Settings, src_repo: Path) -> None:
    a = go(settings, src_repo)
    b = go(settings, src_repo)
    expected = settings.home / "worktrees" / "fake" / a.run.repo / "t1"
    assert a.session.worktree == b.session.worktree == str(expected)
    assert (expected / "README.md").is_file()
    assert a.session.branch == "baton/fake/t1"
    head = (expected / ".git").read_text()
    assert "gitdir:" in head


def test_hydrate_from_snapshot_when_home_is_wiped(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "one")
    shutil.rmtree(key_home(settings, key_of(first.session)))
    again = go(settings, src_repo, "two")
    assert again.run.mode == Mode.RESUME
    assert again.run.result == "fake reply: received 4 messages"
    assert again.session.agent_session_id == first.session.agent_session_id


def test_recover_with_recap_when_conversation_is_gone(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "write the lexer")
    shutil.rmtree(key_home(settings, key_of(first.session)))
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("fake", first.run.repo, "t1")
    store.close()
    again = go(settings, src_repo, "write the parser")
    assert again.run.mode == Mode.RECOVER and again.run.prompt_kind == PromptKind.RECAP
    assert again.run.result == "fake reply: received 2 messages"
    prompt = sent_prompts(settings, str(again.session.agent_session_id))[0]
    assert (
        "write the lexer" in prompt
        and "fake reply: received 2 messages" in prompt
        and "write the parser" in prompt
    )


def test_a_recap_quotes_no_worktree_path_of_another_home(settings: Settings, src_repo: Path) -> None:
    """Runs made in a BATON_HOME at another path (another machine, a moved home) quote their own
    worktree path: the recovered conversation's recap names the files inside the repository."""
    first = go(settings, src_repo, "write the lexer")
    old_home = "/srv/old machine/baton"
    old_wt = f"{old_home}/worktrees/fake/{first.run.repo}/t1"
    here = first.session.worktree
    store = open_store(settings.resolved_store_url)
    store.update_run(
        first.run.id,
        log_path=f"{old_home}/logs/{first.run.id}.jsonl",
        prompt=f"write {old_wt}/src/lexer.py (in {old_wt}/)",
        result=f"wrote {old_wt}/src/lexer.py and {here}/README.md",
    )
    shutil.rmtree(key_home(settings, key_of(first.session)))
    store.delete_snapshot("fake", first.run.repo, "t1")
    store.close()
    again = go(settings, src_repo, "write the parser")
    assert again.run.mode == Mode.RECOVER
    prompt = sent_prompts(settings, str(again.session.agent_session_id))[0]
    assert (
        "asked: write src/lexer.py (in ./)" in prompt and "answer: wrote src/lexer.py and README.md" in prompt
    )
    assert (
        old_home not in prompt and prompt.count(here) == 1
    )  # this worktree: the template's "in the directory"


def test_not_found_from_agent_switches_to_recover(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "first instruction")
    # A corrupt transcript: present on disk (so baton resumes), but the agent answers "not found".
    transcript(settings, str(first.session.agent_session_id))[0].write_text("garbage, not JSON\n")
    store = open_store(settings.resolved_store_url)
    store.delete_snapshot("fake", first.run.repo, "t1")
    store.close()
    again = go(settings, src_repo, "second instruction", retries=0)
    assert [(a.mode, a.outcome) for a in again.attempts] == [
        (Mode.RESUME, Outcome.SESSION_LOST),
        (Mode.RECOVER, Outcome.SUCCEEDED),
    ]
    assert again.attempts[0].error and "No conversation found" in again.attempts[0].error
    assert again.session.agent_session_id != first.session.agent_session_id
    prompt = sent_prompts(settings, str(again.session.agent_session_id))[0]
    assert "first instruction" in prompt and "second instruction" in prompt
    assert "second instruction" not in prompt.split("Now continue")[0], "the lost attempt is not in the recap"


def test_explicit_fresh_and_resume_modes(settings: Settings, src_repo: Path) -> None:
    with pytest.raises(BadInput, match="no conversation to resume"):
        go(settings, src_repo, mode=Mode.RESUME)
    first = go(settings, src_repo)
    fresh = go(settings, src_repo, mode=Mode.FRESH)
    assert fresh.run.mode == Mode.FRESH and fresh.session.agent_session_id != first.session.agent_session_id
    resumed = go(settings, src_repo, mode=Mode.RESUME)
    assert resumed.session.agent_session_id == fresh.session.agent_session_id
    assert resumed.run.result == "fake reply: received 4 messages"


def test_fork_branches_the_conversation(settings: Settings, src_repo: Path) -> None:
    dev = go(settings, src_repo, "implement", thread="dev")
    go(settings, src_repo, "refine", thread="dev")
    review = go(settings, src_repo, "review it", thread="review", mode=Mode.FORK, fork_from="dev")
    assert review.run.mode == Mode.FORK
    assert review.session.agent_session_id != dev.session.agent_session_id
    assert review.run.result == "fake reply: received 6 messages"  # carried dev's 4 messages
    # the developer's conversation is untouched by the fork
    assert go(settings, src_repo, "more", thread="dev").run.result == "fake reply: received 6 messages"
    with pytest.raises(BadInput, match="no conversation to fork"):
        go(settings, src_repo, thread="other", mode=Mode.FORK, fork_from="nobody")


def test_continue_only_when_asked(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo)
    cont = go(settings, src_repo, mode=Mode.CONTINUE)
    assert cont.run.mode == Mode.CONTINUE
    assert cont.session.agent_session_id == first.session.agent_session_id
    assert "--continue" not in first.run.log_path


def test_timeout_kills_the_process_group(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    go(settings, src_repo)
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    started = time.monotonic()
    result = go(settings, src_repo, "slow", timeout=0.5)
    assert time.monotonic() - started < 20  # not the agent's 30 s: the timeout fired (margin: busy machine)
    assert result.run.outcome == Outcome.TIMED_OUT
    assert result.run.error and "timeout" in result.run.error
    pid = result.run.agent_pid
    store = open_store(settings.resolved_store_url)
    stored = store.get_run(result.run.id)
    store.close()
    assert stored is not None and stored.agent_pid and not Path(f"/proc/{stored.agent_pid}/cmdline").exists()
    del pid
    monkeypatch.delenv("FAKE_AGENT_DELAY")
    after = go(settings, src_repo, "next")
    assert after.run.prompt_kind == PromptKind.INTERRUPTED
    prompt = sent_prompts(settings, str(after.session.agent_session_id))[-1]
    assert "timed out" in prompt and "slow" in prompt and "next" in prompt


def test_retries_resume_the_same_conversation(
    settings: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = go(settings, src_repo)
    monkeypatch.setenv("FAKE_AGENT_FAIL_FIRST", "2")
    # failures after a while, not at once: two at once would quarantine the conversation (test_quarantine)
    monkeypatch.setattr(quarantine, "QUICK", 0.0)
    result = go(settings, src_repo, "flaky", retries=3)
    assert [a.outcome for a in result.attempts] == [Outcome.FAILED, Outcome.FAILED, Outcome.SUCCEEDED]
    assert [a.attempt for a in result.attempts] == [1, 2, 3]
    assert all(a.mode == Mode.RESUME for a in result.attempts)
    assert [a.prompt_kind for a in result.attempts] == [
        PromptKind.DELTA,
        PromptKind.INTERRUPTED,
        PromptKind.INTERRUPTED,
    ]
    assert result.session.agent_session_id == first.session.agent_session_id
    assert result.attempts[0].error == "fake failure (FAKE_AGENT_FAIL)"


def test_retries_exhausted_reports_failure(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    result = go(settings, src_repo, retries=1)
    assert [a.outcome for a in result.attempts] == [Outcome.FAILED, Outcome.FAILED]
    assert not result.ok
    assert result.session.last_outcome == Outcome.FAILED and result.session.status == SessionStatus.ACTIVE


def test_cancel_stops_the_run(settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_AGENT_DELAY", "30")
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    result = go(settings, src_repo, cancel=cancel, retries=2)
    assert [a.outcome for a in result.attempts] == [Outcome.CANCELLED]


def test_a_cancel_during_the_wait_before_a_retry_ends_the_run_at_once(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry policy's sleep (baton.retry.cancellable) wakes on the cancel: no second attempt, and
    no waiting out a 60 s backoff."""
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    cancel = threading.Event()
    started = time.monotonic()
    threading.Timer(1.5, cancel.set).start()
    result = go(dataclasses.replace(settings, retry_backoff=60.0), src_repo, cancel=cancel, retries=2)
    assert [a.outcome for a in result.attempts] == [Outcome.FAILED]
    assert time.monotonic() - started < 30


def test_crashed_run_is_marked_and_next_run_gets_interrupted_note(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo, "build it")
    store = open_store(settings.resolved_store_url)
    # imitate a runner that died mid-run: its run row still says running
    store.update_run(first.run.id, outcome=Outcome.RUNNING, ended_at=None)
    after = go(settings, src_repo, "go on")
    crashed = store.get_run(first.run.id)
    store.close()
    assert crashed is not None and crashed.outcome == Outcome.CRASHED
    assert after.run.prompt_kind == PromptKind.INTERRUPTED and after.run.mode == Mode.RESUME
    assert "crashed" in sent_prompts(settings, str(after.session.agent_session_id))[-1]


def test_busy_key(settings: Settings, src_repo: Path) -> None:
    key = make_key("fake", str(src_repo), "t1", ["fake"])
    store = open_store(settings.resolved_store_url)
    lease = LeaseHolder(store, key.id, 60)
    lease.acquire(0)
    try:
        with pytest.raises(Busy, match="busy"):
            go(settings, src_repo, wait=0)
        started = time.monotonic()
        threading.Timer(0.5, lease.release).start()
        assert go(settings, src_repo, wait=10).ok
        assert time.monotonic() - started >= 0.4  # it waited for the release (a lower bound: never flaky)
    finally:
        lease.release()
        store.close()


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"thread": "../x"}, "thread"),
        ({"thread": ""}, "thread is empty"),
        ({"thread": "a" * 200}, "limit is 128"),
        ({"thread": "-rf"}, "must not start"),
        ({"prompt": "  "}, "prompt is empty"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": float("inf")}, "at most 604800 s"),
        ({"timeout": float("nan")}, "timeout"),
        ({"retries": -1}, "retries"),
        ({"retries": 10**30}, "retries must be 0 to 100"),
        ({"wait": 1e999}, "wait must be 0 to 604800"),
        ({"branch": "bad branch"}, "branch"),
        ({"branch": "a..b"}, "branch"),
        ({"mode": Mode.FORK, "fork_from": "../x"}, "thread"),
    ],
)
def test_bad_requests_write_nothing(
    settings: Settings, src_repo: Path, kw: dict[str, object], message: str
) -> None:
    args: dict[str, object] = {"prompt": "x", "thread": "ok", **kw}
    with pytest.raises(BadInput, match=message):
        run(RunRequest(agent="fake", repo=str(src_repo), **args), settings=settings)  # type: ignore[arg-type]
    assert not settings.home.exists()


def test_unknown_agent_and_missing_repo(settings: Settings, src_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="unknown agent"):
        run(RunRequest(agent="gpt", repo=str(src_repo), thread="t", prompt="x"), settings=settings)
    with pytest.raises(BadInput, match="does not exist"):
        run(RunRequest(agent="fake", repo=str(tmp_path / "nope"), thread="t", prompt="x"), settings=settings)
    assert not settings.home.exists()


def test_bad_base_writes_no_session(settings: Settings, src_repo: Path) -> None:
    with pytest.raises(BadInput, match="base"):
        go(settings, src_repo, base="no-such-ref")
    store = open_store(settings.resolved_store_url)
    assert store.list_sessions() == [] and store.list_runs() == []
    store.close()


def test_checkpoint_rebuilds_lost_worktree(settings: Settings, src_repo: Path) -> None:
    first = go(settings, src_repo)
    worktree = Path(first.session.worktree)
    (worktree / "notes.txt").write_text("work in progress\n")
    (worktree / "README.md").write_text("changed\n")
    go(settings, src_repo)  # the run's end checkpoints the dirty state
    shutil.rmtree(worktree)
    again = go(settings, src_repo)
    assert again.session.worktree == str(worktree)
    assert (worktree / "notes.txt").read_text() == "work in progress\n"
    assert (worktree / "README.md").read_text() == "changed\n"
    assert again.run.mode == Mode.RESUME


def test_template_override(settings: Settings, src_repo: Path) -> None:
    (settings.home / "templates").mkdir(parents=True)
    (settings.home / "templates" / "full.txt").write_text("CUSTOM [$thread] $prompt")
    first = go(settings, src_repo, "hello")
    assert sent_prompts(settings, str(first.session.agent_session_id))[0].strip() == "CUSTOM [t1] hello"
