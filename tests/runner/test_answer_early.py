"""A success's answer is told as soon as its run is recorded (``RunRequest.on_ended``), while its
snapshot and checkpoint are still to come under the key's lease; ``baton run`` prints it then."""

from __future__ import annotations

from pathlib import Path

import pytest

from baton import Busy, Outcome, RunRequest, open_store, run
from baton.models import RunRecord, SessionRecord
from baton.settings import Settings


def request(repo: Path, **kw: object) -> RunRequest:
    return RunRequest(agent="fake", repo=str(repo), thread="t1", prompt="go on", **kw)  # type: ignore[arg-type]


def test_the_answer_comes_recorded_before_the_checkpoint_and_under_the_lease(
    settings: Settings, src_repo: Path
) -> None:
    first = run(request(src_repo), settings=settings)
    (Path(first.session.worktree) / "new.txt").write_text("the agent's work\n")  # a checkpoint to take
    seen: list[tuple[Outcome, str | None]] = []

    def ended(record: RunRecord, session: SessionRecord) -> None:
        store = open_store(settings.resolved_store_url)
        try:
            stored = store.get_run(record.id)
            checkpoint = store.get_checkpoint(record.agent, record.repo, record.thread)
        finally:
            store.close()
        assert stored is not None and session.worktree == first.session.worktree
        with pytest.raises(Busy):  # the lease is still this run's
            run(request(src_repo), settings=settings)
        seen.append((stored.outcome, checkpoint.commit_sha if checkpoint else None))

    second = run(request(src_repo, on_ended=ended), settings=settings)
    assert [outcome for outcome, _ in seen] == [Outcome.SUCCEEDED]  # told once, recorded
    store = open_store(settings.resolved_store_url)
    try:
        after = store.get_checkpoint(second.run.agent, second.run.repo, second.run.thread)
    finally:
        store.close()
    assert after is not None and after.commit_sha != seen[0][1]  # new.txt's checkpoint came after
    assert run(request(src_repo), settings=settings).ok  # the lease was released after it


def test_a_failure_is_not_told_early(
    settings: Settings, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failed attempt may be retried or rolled over: its result is the run's only at the end."""
    run(request(src_repo), settings=settings)
    monkeypatch.setenv("FAKE_AGENT_FAIL", "1")
    told: list[RunRecord] = []
    result = run(request(src_repo, on_ended=lambda r, _s: told.append(r)), settings=settings)
    assert result.run.outcome == Outcome.FAILED and told == []


def test_baton_run_prints_the_answer_as_before(cli: object, src_repo: Path) -> None:
    """The early answer is the same lines: the outcome, the worktree, the agent's reply, once."""
    env = {"BATON_AGENTS_EXTRA": "fake=baton.testing.fake:from_settings"}
    for _ in range(2):
        done = cli("run", "--agent", "fake", "--repo", str(src_repo), "--thread", "t1", "hi", env=env)  # type: ignore[operator]
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith("succeeded  run ") and lines[1].startswith("worktree: ")
        assert lines[2:] == [lines[2]] and lines[2].startswith("fake reply: received")
