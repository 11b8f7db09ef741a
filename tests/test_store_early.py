"""``baton.store.early``: the calls a run makes before its agent starts, through stdlib sqlite3, leave
the tables exactly as the SQL store's own calls do, answer the same, refuse the same fenced writes,
and never import SQLAlchemy themselves."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from baton.errors import Fenced, StoreError
from baton.models import (
    Access,
    CheckpointRecord,
    Fence,
    Lease,
    Mode,
    Outcome,
    PromptKind,
    RunRecord,
    SessionRecord,
    SessionStatus,
    Snapshot,
)
from baton.store import Store, open_store
from baton.store.early import EarlyStore, open_early

CLOCKED = {"acquired_at", "expires_at"}  # the database's clock: equal within a test's duration


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, EarlyStore]]:
    """The SQL store on one database and the early store on another, both migrated and empty."""
    urls = [f"sqlite:///{tmp_path / name}" for name in ("full.db", "early.db")]
    for url in urls:
        open_store(url).close()
    full, early = open_store(urls[0]), open_early(urls[1])
    assert early is not None
    yield full, early
    full.close()
    early.close()


def dump(url: str) -> dict[str, list[dict[str, Any]]]:
    conn = sqlite3.connect(url.removeprefix("sqlite:///"))
    tables = {}
    for table, order in (
        ("sessions", "agent, repo, thread"),
        ("runs", "id"),
        ("leases", "key"),
        ("blobs", "digest"),
        ("snapshots", "agent, repo, thread"),
        ("checkpoints", "agent, repo, thread"),
    ):
        cursor = conn.execute(f"SELECT * FROM {table} ORDER BY {order}")
        names = [d[0] for d in cursor.description]
        tables[table] = [
            {k: v for k, v in zip(names, row, strict=True) if k not in CLOCKED} for row in cursor.fetchall()
        ]
    conn.close()
    return tables


def session(thread: str, **changes: Any) -> SessionRecord:
    base = SessionRecord(
        agent="claude",
        repo="github.com/acme/api",
        thread=thread,
        repo_url="https://github.com/acme/api",
        branch=f"baton/claude/{thread}",
        worktree=f"/w/{thread}",
        agent_session_id="sid-" + thread,
        status=SessionStatus.ACTIVE,
        attempts=1,
        last_outcome=Outcome.SUCCEEDED,
        created_at=100.0,
        last_used_at=200.0,
        expires_at=300.0,
        origin={"kind": "fork", "from": "x"},
        pending_sync=None,
    )
    for name, value in changes.items():
        setattr(base, name, value)
    return base


def run_record(run_id: str, thread: str, started: float, **changes: Any) -> RunRecord:
    return RunRecord(
        id=run_id,
        agent="claude",
        repo="github.com/acme/api",
        thread=thread,
        attempt=1,
        mode=Mode.RESUME,
        prompt_kind=PromptKind.DELTA,
        prompt="do the next thing",
        started_at=started,
        usage={"input_tokens": 3},
        sync={"how": "rebase", "commits": 2},
        access=Access.EDIT,
        confined=True,
        **changes,
    )


def both(pair: tuple[Store, EarlyStore], call: Callable[[Any], Any]) -> Any:
    """``call`` on both stores: the same answer, or the same exception type."""
    answers = []
    for store in pair:
        try:
            answers.append(("ok", call(store)))
        except Exception as exc:  # compared below: both must raise alike
            answers.append(("raised", type(exc)))
    assert answers[0] == answers[1], answers
    return answers[0][1]


def test_early_calls_write_what_the_sql_store_writes(pair: tuple[Store, EarlyStore]) -> None:
    def can_take_never(_lease: Lease, _now: float) -> bool:
        return False

    def can_take_always(_lease: Lease, _now: float) -> bool:
        return True

    def lease(holder: str) -> Lease:
        return Lease("k1", holder, "host", 42, 0.0, 0.0)

    # a first grant (token 1), a busy key, the same holder again (keeps its token), a takeover (2)
    assert both(pair, lambda s: s.try_lease(lease("a"), 60.0, can_take_never)) is None
    busy = both(pair, lambda s: (s.try_lease(lease("b"), 60.0, can_take_never) or lease("x")).holder)
    assert busy == "a"
    assert both(pair, lambda s: s.try_lease(lease("a"), 60.0, can_take_never)) is None
    assert both(pair, lambda s: s.try_lease(lease("b"), 60.0, can_take_always)) is None
    fence = Fence("k1", 2)
    both(pair, lambda s: s.save_session(session("t1"), fence=fence))
    both(
        pair, lambda s: s.save_session(session("t1", attempts=2, last_outcome=None, origin=None), fence=fence)
    )
    both(pair, lambda s: s.save_session(session("t2", status=SessionStatus.ARCHIVED)))
    both(pair, lambda s: s.add_run(run_record("r1", "t1", 10.0), fence=fence))
    both(pair, lambda s: s.add_run(run_record("r2", "t1", 20.0, outcome=Outcome.CRASHED, exit_code=137)))
    both(pair, lambda s: s.add_run(run_record("r3", "t2", 30.0, access=None, confined=None, sync=None)))
    # a stale token is refused and writes nothing; a newer one (a Redis grant) is recorded
    assert both(pair, lambda s: s.add_run(run_record("r4", "t1", 40.0), fence=Fence("k1", 1))) is Fenced
    assert both(pair, lambda s: s.save_session(session("t9"), fence=Fence("k1", 1))) is Fenced
    both(pair, lambda s: s.add_run(run_record("r5", "t1", 50.0), fence=Fence("k2", 7)))
    both(pair, lambda s: s.update_run("r1", fence=fence, agent_pid=4242))
    both(pair, lambda s: s.update_run("r1", outcome=Outcome.SUCCEEDED, usage={"output_tokens": 9}, sync=None))
    assert both(pair, lambda s: s.update_run("r1", fence=Fence("k1", 1), exit_code=1)) is Fenced
    assert both(pair, lambda s: s.update_run("r1", no_such_column=1)) is StoreError
    full, early = pair
    assert dump(early.url.replace("early.db", "full.db")) == dump(early.url)
    # and they read alike
    for thread in ("t1", "t2", "nope"):
        assert full.get_session("claude", "github.com/acme/api", thread) == early.get_session(
            "claude", "github.com/acme/api", thread
        )
    for query in (
        {},
        {"thread": "t1"},
        {"thread": "t1", "limit": 1},
        {"outcome": Outcome.CRASHED},
        {"offset": 1},
    ):
        assert full.list_runs(**query) == early.list_runs(**query), query


def test_early_reads_checkpoints_and_snapshots_as_the_sql_store(pair: tuple[Store, EarlyStore]) -> None:
    _full, early = pair
    key = ("claude", "github.com/acme/api", "t1")
    assert early.get_checkpoint(*key) is None and early.get_snapshot(*key) is None
    sql_of_early = early.full()  # the same database through SQLAlchemy, to write what is read back
    record = CheckpointRecord(*key, "c0ffee", "baton/claude/t1", None, "d" * 64, 3, 5.0)
    sql_of_early.save_checkpoint(record, b"abc")
    snapshot = Snapshot(*key, "sid", {"projects/x.jsonl": ["a" * 64, "b" * 64]}, 9, 6.0)
    sql_of_early.put_blob("a" * 64, b"x", 1)
    sql_of_early.put_blob("b" * 64, b"y", 1)
    sql_of_early.save_snapshot(snapshot)
    assert early.get_checkpoint(*key) == sql_of_early.get_checkpoint(*key) == record
    assert early.get_snapshot(*key) == sql_of_early.get_snapshot(*key)


def test_the_calls_after_the_agent_started_write_what_the_sql_store_writes(
    pair: tuple[Store, EarlyStore],
) -> None:
    """The lease's renewal and release, the transcript's blobs and snapshot (a replaced chunk's blob
    dropped, a shared one kept), the checkpoint (its old bundle dropped), a run's short id."""
    key = ("claude", "github.com/acme/api", "t1")
    digest = {name: name * 64 for name in "abcdef"}

    def never(_lease: Lease, _now: float) -> bool:
        return False

    def snap(
        thread_key: tuple[str, str, str], files: dict[str, Any], at: float, sid: str = "sid"
    ) -> Snapshot:
        return Snapshot(*thread_key, sid, files, 6, at)

    assert both(pair, lambda s: s.try_lease(Lease("k1", "a", "host", 1, 0.0, 0.0), 60.0, never)) is None
    assert both(pair, lambda s: s.renew_lease("k1", "a", 90.0)) is True
    assert both(pair, lambda s: s.renew_lease("k1", "b", 90.0)) is False
    for name in "abcd":
        both(pair, functools.partial(put, digest=digest[name], data=name.encode() * 3))
    both(pair, lambda s: s.put_blob(digest["a"], b"other", 5))  # the store has it: not sent again
    both(pair, lambda s: s.save_snapshot(snap(key, {"p/x.jsonl": [digest["a"], digest["b"]]}, 1.0)))
    other = ("claude", "github.com/acme/api", "t2")
    both(pair, lambda s: s.save_snapshot(snap(other, {"p/y.jsonl": digest["a"]}, 1.0, "sid2")))
    # b replaced by c: b dropped; a, shared with t2's snapshot, kept
    both(pair, lambda s: s.save_snapshot(snap(key, {"p/x.jsonl": [digest["a"], digest["c"]]}, 2.0)))
    assert both(pair, lambda s: s.get_blob(digest["b"])) is None
    assert both(pair, lambda s: s.get_blob(digest["a"])) == b"aaa"
    fence = Fence("k1", 1)
    first = CheckpointRecord(*key, "c0ffee", "baton/claude/t1", None, digest["e"], 3, 5.0)
    both(pair, lambda s: s.save_checkpoint(dataclasses.replace(first), b"eee", fence=fence))
    second = dataclasses.replace(first, commit_sha="c0ffee2", digest=digest["f"])
    both(pair, lambda s: s.save_checkpoint(dataclasses.replace(second), b"fff", fence=fence))  # e dropped
    assert both(pair, lambda s: s.get_blob(digest["e"])) is None
    stale = Fence("k1", 0)
    refused = both(pair, lambda s: s.save_checkpoint(dataclasses.replace(first), b"eee", fence=stale))
    assert refused is Fenced
    assert both(pair, lambda s: s.save_snapshot(snap(key, {}, 3.0), fence=stale)) is Fenced
    both(pair, lambda s: s.save_checkpoint(dataclasses.replace(first, digest=""), b""))  # in the remote
    for run_id, started in (("20260101-aaaa1111", 1.0), ("20260102-bbbb1111", 2.0), ("x_%1111", 3.0)):
        both(pair, functools.partial(add, run=run_record(run_id, "t1", started)))
    for fragment in ("1111", "20260101", "x_%", "_", "%", "zz"):
        both(pair, functools.partial(find, fragment=fragment))
    both(pair, lambda s: s.release_lease("k1", "b"))  # not the holder: nothing
    both(pair, lambda s: s.release_lease("k1", "a"))
    _full, early = pair
    assert dump(early.url.replace("early.db", "full.db")) == dump(early.url)
    assert early.find_run_ids("1111") == ["x_%1111", "20260102-bbbb1111", "20260101-aaaa1111"]
    assert early.find_run_ids("x_%") == ["x_%1111"] and early.find_run_ids("%") == []  # literal
    assert early._full is None  # all of it without the SQL store


def put(store: Store, digest: str, data: bytes) -> None:
    store.put_blob(digest, data, len(data))


def add(store: Store, run: RunRecord) -> None:
    store.add_run(run)


def find(store: Store, fragment: str) -> tuple[list[str], list[str]]:
    return store.find_run_ids(fragment), store.find_job_ids(fragment)


def test_other_threads_have_their_own_connection_and_other_calls_go_to_the_sql_store(
    pair: tuple[Store, EarlyStore],
) -> None:
    _full, early = pair
    early.save_session(session("t1"))
    seen: list[Any] = []

    def beat() -> None:  # as a lease's heartbeat thread
        seen.append(early.get_session("claude", "github.com/acme/api", "t1"))
        seen.append(early.renew_lease("k", "h", 30.0))

    thread = threading.Thread(target=beat)
    thread.start()
    thread.join()
    assert seen == [session("t1"), False]
    assert early._full is None
    assert early.list_sessions() == [session("t1")]  # the lite reader's own
    assert early.list_jobs() == []  # not defined here: the SQL store's
    assert early._full is not None


def test_a_runs_calls_import_no_sqlalchemy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    open_store(url).close()
    code = f"""
import sys
from baton.models import CheckpointRecord, Lease, Snapshot
from baton.store.early import open_early
s = open_early({url!r})
assert s.try_lease(Lease("k", "h", "host", 1, 0.0, 0.0), 60.0, lambda l, n: False) is None
s.get_session("a", "r", "t"); s.list_runs("a", "r", "t")
s.get_checkpoint("a", "r", "t"); s.get_snapshot("a", "r", "t")
s.renew_lease("k", "h", 60.0); s.put_blob("a" * 64, b"x", 1); s.get_blob("a" * 64)
s.save_snapshot(Snapshot("a", "r", "t", "sid", {{"f": ["a" * 64]}}, 1, 1.0))
s.save_checkpoint(CheckpointRecord("a", "r", "t", "c", "b", None, "", 0, 1.0), b"")
s.find_run_ids("x"); s.find_job_ids("x"); s.release_lease("k", "h"); s.close()
print("sqlalchemy" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_open_early_declines_stores_it_cannot_serve(tmp_path: Path) -> None:
    assert open_early("postgresql://u@h/db") is None
    assert open_early(f"sqlite:///{tmp_path / 'none.db'}") is None
    assert not (tmp_path / "none.db").exists()


def test_baton_run_without_a_store_takes_the_early_store_once_the_home_has_one(
    tmp_path: Path, src_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from baton import RunRequest, load_settings, run

    settings = load_settings(overrides={"home": str(tmp_path / "home")}, environ={})
    opened: list[str] = []
    original = EarlyStore.add_run

    def add_run(self: EarlyStore, record: RunRecord, *, fence: Fence | None = None) -> None:
        opened.append(record.id)
        original(self, record, fence=fence)

    monkeypatch.setattr(EarlyStore, "add_run", add_run)
    request = RunRequest(agent="fake", repo=str(src_repo), thread="early", prompt="go")
    first = run(request, settings=settings)  # a new home: no store yet, the SQL store makes it
    assert first.ok and opened == []
    second = run(request, settings=settings)
    assert second.ok and second.run.mode == Mode.RESUME and opened == [second.run.id]
    full = open_store(settings.resolved_store_url)
    try:
        assert [r.id for r in full.list_runs(thread="early")] == [second.run.id, first.run.id]
        session = full.get_session("fake", first.run.repo, "early")
        assert session is not None and session.attempts == 2
    finally:
        full.close()
