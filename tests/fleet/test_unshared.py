"""A job whose runner died after recording its turn's end, before sharing the turn's state (snapshot,
checkpoint, session record): taken over in the home that ran it, the state is shared and the turn
counts once; taken over anywhere else, the turn runs again from the shared state and the dead attempt
is marked ``crashed``. Either way the store shows one success for the job, and its conversation one
answer to its prompt."""

from __future__ import annotations

from pathlib import Path

from baton.fleet import jobs, queued
from baton.keys import parse_repo
from baton.models import JobRecord, JobStatus, Outcome, RunRecord
from baton.settings import Settings
from baton.store import Store


def submit(store: Store, settings: Settings, repo: Path, prompt: str) -> JobRecord:
    return jobs.submit(
        store, settings, {"agent": "fake", "repo": str(repo), "thread": "t", "prompt": prompt}, "test"
    )


def attempts(store: Store, repo: Path) -> list[RunRecord]:
    found = store.list_runs("fake", parse_repo(str(repo)).slug, "t", limit=100)
    return sorted(found, key=lambda r: r.started_at)


def unshared_turn(store: Store, settings: Settings, repo: Path) -> tuple[JobRecord, RunRecord]:
    """A second turn run to its end, then left as a runner killed between its recorded outcome and its
    session record leaves it: the session as before the turn, the snapshot gone, the job running."""
    kicks: list[tuple[str, float]] = []
    first = submit(store, settings, repo, "one")
    assert queued.handle(first.id, settings, store, lambda j, c: kicks.append((j, c))) == queued.RAN
    before = store.get_session("fake", parse_repo(str(repo)).slug, "t")
    assert before is not None
    job = submit(store, settings, repo, "two")
    assert queued.handle(job.id, settings, store, lambda j, c: kicks.append((j, c))) == queued.RAN
    (run,) = store.run_attempts(job.id)
    assert run.outcome == Outcome.SUCCEEDED
    store.save_session(before)  # its last_used_at is the first turn's: the second never finished
    store.update_job(job.id, status=JobStatus.RUNNING.value, outcome=None, result=None, ended_at=None)
    return job, run


def test_taken_over_where_it_ran_the_state_is_shared_and_the_turn_counts_once(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    job, run = unshared_turn(store, settings, src_repo)
    assert queued.handle(job.id, settings, store, lambda j, c: None) == queued.RECORDED
    ended = store.get_job(job.id)
    assert ended is not None and (ended.status, ended.outcome) == (JobStatus.DONE, "succeeded")
    assert [r.id for r in store.run_attempts(job.id)] == [run.id], "not run again"
    session = store.get_session("fake", run.repo, "t")
    assert session is not None and session.last_used_at == run.ended_at
    assert session.agent_session_id == run.session_id_out
    assert store.get_snapshot("fake", run.repo, "t") is not None


def test_taken_over_elsewhere_the_turn_runs_again_and_the_dead_attempt_is_crashed(
    settings: Settings, store: Store, src_repo: Path
) -> None:
    job, run = unshared_turn(store, settings, src_repo)
    store.update_run(run.id, host="another-machine")  # it ran there: its transcript is there only
    assert queued.handle(job.id, settings, store, lambda j, c: None) == queued.RAN
    ended = store.get_job(job.id)
    assert ended is not None and (ended.status, ended.outcome, ended.reruns) == (
        JobStatus.DONE,
        "succeeded",
        1,
    )
    mine = store.run_attempts(job.id)
    disowned = store.get_run(run.id)
    assert disowned is not None and disowned.outcome == Outcome.CRASHED
    assert "before the turn's transcript and worktree were shared" in (disowned.error or "")
    ok = [r for r in mine if r.outcome == Outcome.SUCCEEDED]
    assert len(ok) == 1 and ok[0].id != run.id, "one success: the turn that ran again"
