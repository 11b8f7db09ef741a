"""The forge's fleet duties against the fake GitHub, through baton's real clients and git: a turn's
publishing is claimed before any write to the forge, so two heals of one unpublished turn at once make
one status comment, one PR, one push; a turn that ended unpublished on another machine (a worker with
no forge tables) is published only by the duty's holder, from the checkpoint its run shared through the
store, with its work pushed; and a reconcile pass whose duty moved to another replica stops before its
first write."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.errors import Fenced
from baton.fleet.execute import AFTER_JOB
from baton.fleet.local import LocalExecutor
from baton.forge.background import adopt
from baton.forge.background.reconcile import reconcile
from baton.forge.background.schedule import heal
from baton.forge.data.tables import forge_store
from baton.forge.kinds.configured import load_forges
from baton.forge.turn.loop import ForgeLoop
from baton.forge.writes import publish
from baton.models import JobStatus
from baton.settings import Settings
from baton.store import Store, open_store
from baton.testing.fake import register_fake
from baton.testing.fake_forge import FakeForge
from tests.conftest import git, wait_for
from tests.forge_fixtures import REPO, configure, fake_fixture, forge_kind_fixture, statuses  # noqa: F401

Home = Callable[[str], ForgeLoop]


@pytest.fixture(name="home")
def home_fixture(
    settings: Settings, store_url: str, fake: FakeForge, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Home]:
    """A process's forge loop on the shared store: its own home (by name), store connection and
    executor, the forge configured; nothing published when its turns end (a worker without forge
    tables, or a publisher killed before its writes): the heal publishes them."""
    register_fake()
    monkeypatch.setenv("FAKE_AGENT_WRITE", "notes.md")
    monkeypatch.setenv("BATON_GIT_TOKEN", fake.token("baton-bot"))
    made: list[tuple[ForgeLoop, LocalExecutor, Store]] = []

    def make(name: str) -> ForgeLoop:
        own = dataclasses.replace(settings, home=settings.home.parent / name, store_url=store_url)
        configure(own, fake, "fake")
        store = open_store(store_url)
        executor = LocalExecutor(own, store)
        loop = publish.compose(own, store, load_forges(own.home), executor.submit, publishing=True)
        AFTER_JOB.pop("forge")
        executor.start()
        made.append((loop, executor, store))
        return loop

    yield make
    for loop, executor, store in made:
        executor.stop()
        loop.close()
        store.close()


def unpublished_turn(loop: ForgeLoop, fake: FakeForge) -> int:
    """An issue whose turn ran in ``loop``'s home and ended unpublished; its number."""
    number = fake.open_issue(REPO, "alice", "Write notes", "Notes, please.")
    fake.comment(REPO, number, "alice", "@baton write the notes")
    reconcile(loop)  # reads the mention, binds the issue, starts the turn
    wait_for(lambda: _done(loop.store), timeout=60, what="the turn's end")
    assert forge_store(loop.store).unpublished_turns() and statuses(fake, number) == []
    return number


def _done(store: Store) -> bool:
    jobs = store.list_jobs(limit=10)
    return bool(jobs) and all(j.status == JobStatus.DONE for j in jobs)


def pushed_notes(fake: FakeForge) -> str:
    """notes.md on the branch of baton's one PR."""
    [pr] = fake.pulls(REPO)
    assert pr.pr is not None
    return git(fake.repo(REPO).path, "show", f"{pr.pr.head_ref}:notes.md")


def test_two_heals_at_once_publish_a_turn_once(
    home: Home, fake: FakeForge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes of one machine (one home: both have the worktree) heal the same turn at the same
    moment; each publish is slowed so that they overlap: the claim lets one write, the other finds it
    taken and then published."""
    first = home("shared")
    second = dataclasses.replace(first, store=open_store(first.settings.resolved_store_url), clients={})
    number = unpublished_turn(first, fake)
    writers: list[str] = []
    real = publish.publish

    def slow(*args: Any, **kwargs: Any) -> dict[str, Any]:
        writers.append(threading.current_thread().name)
        # the other heal comes while this one writes: it finds the turn taken and ends first
        others = [t for t in threads if t is not threading.current_thread()]
        wait_for(lambda: not any(t.is_alive() for t in others), timeout=30, what="the other heal")
        return real(*args, **kwargs)

    monkeypatch.setattr(publish, "publish", slow)
    start = threading.Barrier(2)

    def heal_now(loop: ForgeLoop) -> None:
        start.wait()
        heal(loop, duty=False)

    threads = [
        threading.Thread(target=heal_now, args=(loop,), name=f"heal{n}")
        for n, loop in enumerate((first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    second.close()
    second.store.close()
    assert len(writers) == 1 and forge_store(first.store).unpublished_turns() == []
    assert len(statuses(fake, number)) == 1, statuses(fake, number)
    assert len(fake.pulls(REPO)) == 1 and "turn 1" in pushed_notes(fake)
    writes = sorted(f"{r.method} {r.path}" for r in fake.requests if r.method != "GET")
    comments = f"POST /repos/{REPO}/issues/{number}/comments"
    # one publisher's writes: the PR, the status comment and the agent's answer, once each
    assert writes == [comments, comments, f"POST /repos/{REPO}/pulls"], writes


def test_another_machines_turn_is_published_by_the_duty_holder_from_its_checkpoint(
    home: Home, fake: FakeForge
) -> None:
    worker = home("worker")  # runs the turn; its home is no replica's
    number = unpublished_turn(worker, fake)
    replica = home("replica")
    [job] = replica.store.list_jobs(limit=5)
    assert not adopt.here(replica, job) and adopt.here(worker, job) and adopt.shared(replica, job)
    heal(replica, duty=False)  # not the duty's holder: never publishes what it has no worktree of
    assert forge_store(replica.store).unpublished_turns() and statuses(fake, number) == []
    heal(replica, duty=True)
    assert forge_store(replica.store).unpublished_turns() == []
    assert len(statuses(fake, number)) == 1 and len(fake.pulls(REPO)) == 1
    assert "turn 1" in pushed_notes(fake)  # the worker's work, pushed from the replica's home
    record = replica.store.get_checkpoint(job.agent, job.repo, job.thread)
    [pr] = fake.pulls(REPO)
    assert record is not None and pr.pr is not None
    assert record.branch_sha == fake.branches(REPO)[pr.pr.head_ref]  # the pushed state, shared again
    heal(worker, duty=True)  # published: the worker's own heal does nothing more
    assert len(statuses(fake, number)) == 1 and len(fake.pulls(REPO)) == 1


def test_a_turn_whose_checkpoint_was_not_shared_is_left_to_its_machine(home: Home, fake: FakeForge) -> None:
    worker = home("worker")
    number = unpublished_turn(worker, fake)
    replica = home("replica")
    [job] = replica.store.list_jobs(limit=5)
    run = adopt.last_run(replica, job)
    assert run is not None
    replica.store.update_run(run.id, note="the worktree's checkpoint stays on this machine (too large)")
    heal(replica, duty=True)
    assert forge_store(replica.store).unpublished_turns() and statuses(fake, number) == []


def test_a_reconcile_whose_duty_moved_stops_before_its_first_write(home: Home, fake: FakeForge) -> None:
    loop = home("replica")
    number = fake.open_issue(REPO, "alice", "Write notes", "Notes, please.")
    fake.comment(REPO, number, "alice", "@baton write the notes")
    with pytest.raises(Fenced):
        reconcile(loop, still=lambda: False)
    assert forge_store(loop.store).list_bindings() == [] and loop.store.list_jobs(limit=5) == []
    report = reconcile(loop, still=lambda: True)
    assert report.outcomes["accepted"] == 1 and len(forge_store(loop.store).list_bindings()) == 1


def test_the_worktree_is_where_its_run_was(home: Home, fake: FakeForge, tmp_path: Path) -> None:
    worker = home("worker")
    unpublished_turn(worker, fake)
    [job] = worker.store.list_jobs(limit=5)
    assert adopt.here(worker, job)
    session = worker.store.get_session(job.agent, job.repo, job.thread)
    assert session is not None
    # the same home's path, its worktree gone (a machine rebuilt): not here any more
    moved = tmp_path / "gone"
    Path(session.worktree).rename(moved)
    assert not adopt.here(worker, job)
