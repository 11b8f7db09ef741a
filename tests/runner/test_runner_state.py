"""What the runner's steps hand each other: a request resolved once (frozen), an attempt told why it
starts, a fork's source looked up once however many attempts the run makes."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from baton import Mode, OnConflict, Outcome, PromptKind, RunRequest, SyncHow, open_store, run
from baton.models import RunRecord
from baton.runner.run import check_request
from baton.runner.state import Attempt, Start
from baton.settings import Settings


def request(repo: Path, thread: str = "t1", **kw: Any) -> RunRequest:
    return RunRequest(agent="fake", repo=str(repo), thread=thread, prompt="do it", **kw)


def test_check_request_decides_the_defaults_once_into_a_frozen_value(
    settings: Settings, src_repo: Path
) -> None:
    merging = dataclasses.replace(settings, sync="merge", on_conflict="agent")
    resolved = check_request(request(src_repo, context="the task", branch="refs/heads/topic"), merging)
    assert (resolved.sync, resolved.on_conflict) == (SyncHow.MERGE, OnConflict.AGENT)
    # the request carries them too: a job stores the request as it was resolved at submission
    assert (resolved.request.sync, resolved.request.on_conflict) == (SyncHow.MERGE, OnConflict.AGENT)
    assert resolved.request.branch == "topic"
    assert resolved.instruction == "the task\ndo it"  # what the CLI's limit was checked against
    assert (resolved.key.thread, resolved.agent.name) == ("t1", "fake")
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.sync = SyncHow.OFF  # type: ignore[misc]
    own = check_request(request(src_repo, sync=SyncHow.OFF, on_conflict=OnConflict.STOP), merging)
    assert (own.sync, own.on_conflict) == (SyncHow.OFF, OnConflict.STOP)  # the request's own win
    assert not settings.home.exists()  # nothing written


def _record(outcome: Outcome, prompt: str = "p") -> RunRecord:
    return RunRecord(
        id="r",
        agent="fake",
        repo="r",
        thread="t",
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt=prompt,
        started_at=0.0,
        outcome=outcome,
    )


def test_an_attempt_knows_why_it_starts() -> None:
    crashed, failed, lost = _record(Outcome.CRASHED), _record(Outcome.FAILED), _record(Outcome.SESSION_LOST)
    first = Attempt(1, Start.AFTER_INTERRUPTION, crashed)
    assert first.first and Attempt(1, Start.FIRST).first
    recovering = first.retry(lost, forced=Mode.RECOVER)  # a lost conversation: recover, no retry used
    assert (recovering.number, recovering.start, recovering.forced) == (2, Start.RETRY, Mode.RECOVER)
    assert not recovering.first and recovering.interrupted is crashed
    retried = recovering.retry(failed)  # a retryable outcome: told it was interrupted, still recovering
    assert (retried.number, retried.interrupted, retried.forced) == (3, failed, Mode.RECOVER)
    with pytest.raises(dataclasses.FrozenInstanceError):
        retried.number = 1  # type: ignore[misc]


def test_a_fork_looks_its_source_up_once_however_many_attempts(
    settings: Settings, src_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dev = run(request(src_repo, thread="dev"), settings=settings)
    store = open_store(settings.resolved_store_url)
    looked_up: list[str] = []
    get_session = store.get_session

    def counting(agent: str, repo: str, thread: str) -> Any:
        looked_up.append(thread)
        return get_session(agent, repo, thread)

    monkeypatch.setattr(store, "get_session", counting)
    monkeypatch.setenv("FAKE_AGENT_FAIL_FIRST", "1")
    try:
        fork = run(
            request(src_repo, thread="review", mode=Mode.FORK, fork_from="dev", retries=1), settings, store
        )
    finally:
        store.close()
    assert [a.outcome for a in fork.attempts] == [Outcome.FAILED, Outcome.SUCCEEDED]
    assert [a.session_id_in for a in fork.attempts] == [dev.session.agent_session_id] * 2
    assert looked_up.count("dev") == 1


def test_a_new_conversation_is_told_the_turns_cut_short_in_a_row_within_the_clis_limit() -> None:
    """Three turns cut short in a row, after one that ended: a new conversation is told the three
    instructions, oldest first, each once (the repeated one once), not the ended one's; with a CLI
    limit that holds only the newest, the older ones are named by their runs, never dropped silently."""
    from types import SimpleNamespace
    from typing import cast

    from baton.runner.decide import follow_up, told_new
    from baton.runner.state import Context

    def made(n: int, outcome: Outcome, prompt: str) -> RunRecord:
        return dataclasses.replace(_record(outcome, prompt), id=f"run{n}", started_at=float(n))

    runs = [  # newest first, as the store lists them
        made(4, Outcome.LIMITED, "C " + "c" * 150_000),
        made(3, Outcome.CRASHED, "B " + "b" * 150_000),
        made(2, Outcome.LIMITED, "B " + "b" * 150_000),
        made(1, Outcome.TIMED_OUT, "A"),
        made(0, Outcome.SUCCEEDED, "done before"),
    ]

    def context(caps: SimpleNamespace) -> Context:
        key = SimpleNamespace(agent="fake", repo=SimpleNamespace(slug="r"), thread="t")
        return cast(
            Context,
            SimpleNamespace(
                key=key,
                store=SimpleNamespace(list_runs=lambda *a, **k: runs),
                request=SimpleNamespace(prompt="now this", catch_up_from=None),
                agent=SimpleNamespace(capabilities=caps),
                resolved=SimpleNamespace(instruction="now this"),
            ),
        )

    attempt = Attempt(1, Start.AFTER_INTERRUPTION, runs[0])
    roomy = context(SimpleNamespace(max_prompt_chars=None, max_prompt_bytes=None))
    told = told_new(roomy, attempt, follow_up(roomy, attempt))
    previous = told["previous"]
    assert previous.startswith(
        "The instructions of the turns cut short in a row, oldest first:\n\n1. A\n\n2. B "
    )
    assert previous.count("b" * 150_000) == 1 and "3. C " in previous and "done before" not in previous
    assert told["cut_short"] == ("run1", "run2", "run3", "run4") and told["reason"] == "limited"

    tight = context(
        SimpleNamespace(max_prompt_chars=None, max_prompt_bytes=256_000)
    )  # Gemini's: only the newest fits
    told = told_new(tight, attempt, follow_up(tight, attempt))
    assert told["previous"].startswith("That turn's instruction was:\n\nC ")
    assert "runs run1, run2, run3, do not fit in this prompt" in told["previous"], told["previous"][-200:]
    assert told["cut_short"] == ("run4",)  # the others stay in a recap
