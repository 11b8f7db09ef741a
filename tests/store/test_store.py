"""The SQL store's contract, on a real SQLite file and on a real PostgreSQL database (``store_url``):
migrations, sessions, runs, leases, blobs, snapshots, audit. Fences, races and the database's clock are in
``test_store_fences.py``; what only PostgreSQL has (URLs, connection errors) in ``test_store_postgres.py``."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.errors import BadInput, StoreError
from baton.models import InstructionsRecord, Outcome, SessionStatus
from baton.store import SQLStore, open_store
from baton.store.base import Lease
from baton.store.engine import migrate
from baton.store.migrations import MIGRATIONS
from tests.store_contract import REPO, count, make_lease, make_run, make_session, make_snapshot


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "baton.db"


@pytest.fixture
def store(store_url: str) -> Iterator[SQLStore]:
    """A migrated store, once on SQLite and once on PostgreSQL."""
    opened = SQLStore(store_url)
    yield opened
    opened.close()


# -- open and migrate -----------------------------------------------------------------------------


def test_open_creates_the_parent_directory_and_migrates(db_path: Path) -> None:
    assert not db_path.parent.exists()
    store = open_store(f"sqlite:///{db_path}")
    try:
        assert db_path.is_file()
        assert isinstance(store, SQLStore)
        assert store.schema_version() == MIGRATIONS[-1][0]
    finally:
        store.close()


def test_migrations_are_recorded_and_idempotent(store: SQLStore) -> None:
    assert store.schema_version() == MIGRATIONS[-1][0]
    assert store.migrate() == MIGRATIONS[-1][0]  # second run: nothing to do, no error
    with store.engine.connect() as conn:  # a third run on a connection of its own
        migrate(conn.engine)
        query = "SELECT version, description FROM schema_migrations ORDER BY version"
        rows = [tuple(row) for row in conn.execute(sa.text(query))]
    assert rows == [(version, description) for version, description, _ in MIGRATIONS]
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {"sessions", "runs", "leases", "blobs", "snapshots", "audit", "schema_migrations"} <= tables


def test_migration_versions_are_ordered_and_unique() -> None:
    versions = [version for version, _, _ in MIGRATIONS]
    assert versions == sorted(set(versions))
    assert versions[0] == 1


def test_sqlite_store_uses_wal(db_path: Path) -> None:
    SQLStore(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert mode == "wal"


@pytest.mark.parametrize("url", ["mysql://localhost/baton", "redis://localhost", "/just/a/path"])
def test_open_store_with_an_unknown_scheme_is_bad_input(url: str) -> None:
    with pytest.raises(BadInput, match="not supported"):
        open_store(url)


# -- sessions -------------------------------------------------------------------------------------


def test_session_save_get_round_trip(store: SQLStore) -> None:
    assert store.get_session("fake", "github.com/acme/api", "issue-1") is None
    session = make_session(agent_session_id="sid-1", base="main", last_outcome=Outcome.FAILED, attempts=2)
    store.save_session(session)
    assert store.get_session("fake", "github.com/acme/api", "issue-1") == session


def test_session_save_updates_in_place(store: SQLStore) -> None:
    store.save_session(make_session())
    store.save_session(make_session(status=SessionStatus.RUNNING, attempts=3, last_used_at=200.0))
    got = store.get_session("fake", "github.com/acme/api", "issue-1")
    assert got is not None
    assert got.status is SessionStatus.RUNNING
    assert got.attempts == 3
    assert got.last_outcome is None
    assert len(store.list_sessions()) == 1


def test_list_sessions_filters_and_orders_by_last_use(store: SQLStore) -> None:
    store.save_session(make_session("old", last_used_at=1.0))
    store.save_session(make_session("new", last_used_at=3.0))
    store.save_session(make_session("mid", last_used_at=2.0, agent="claude"))
    store.save_session(make_session("other", last_used_at=4.0, repo="github.com/acme/web"))
    assert [s.thread for s in store.list_sessions()] == ["other", "new", "mid", "old"]
    assert [s.thread for s in store.list_sessions(agent="fake")] == ["other", "new", "old"]
    assert [s.thread for s in store.list_sessions(repo="github.com/acme/api")] == ["new", "mid", "old"]
    assert [s.thread for s in store.list_sessions(agent="claude", repo="github.com/acme/api")] == ["mid"]


def test_delete_session_removes_only_that_key(store: SQLStore) -> None:
    store.save_session(make_session("a"))
    store.save_session(make_session("b"))
    store.delete_session("fake", "github.com/acme/api", "a")
    assert store.get_session("fake", "github.com/acme/api", "a") is None
    assert store.get_session("fake", "github.com/acme/api", "b") is not None


# -- runs -----------------------------------------------------------------------------------------


def test_run_add_get_round_trip(store: SQLStore) -> None:
    run = make_run("r-abc", usage={"input_tokens": 3}, session_id_in="sid", cli_version="2.1.327")
    store.add_run(run)
    assert store.get_run("r-abc") == run
    assert store.get_run("missing") is None


def test_a_database_error_is_a_store_error(store: SQLStore) -> None:
    store.add_run(make_run("r-1"))
    with pytest.raises(StoreError, match=r"^store error: .*(UNIQUE|unique)"):
        store.add_run(make_run("r-1"))
    assert [r.id for r in store.list_runs()] == ["r-1"]


def test_update_run_converts_enums_and_usage(store: SQLStore) -> None:
    store.add_run(make_run("r-1"))
    store.update_run(
        "r-1",
        outcome=Outcome.SUCCEEDED,
        ended_at=150.0,
        usage={"output_tokens": 9},
        cost_usd=0.25,
        result="done",
        exit_code=0,
        cli_version="0.169.0",
    )
    got = store.get_run("r-1")
    assert got is not None
    assert got.outcome is Outcome.SUCCEEDED
    assert got.usage == {"output_tokens": 9}
    assert got.cost_usd == 0.25
    assert got.duration_s == 50.0
    assert (got.result, got.exit_code, got.cli_version) == ("done", 0, "0.169.0")


def test_get_run_by_unique_prefix(store: SQLStore) -> None:
    store.add_run(make_run("abc111"))
    store.add_run(make_run("abc222"))
    store.add_run(make_run("xyz333"))
    found = store.get_run("abc1")
    assert found is not None and found.id == "abc111"
    assert store.get_run("abc") is None  # ambiguous
    assert store.get_run("x") is not None
    assert store.get_run("%") is None  # a LIKE wildcard is not a prefix of everything
    assert store.get_run("") is None


def test_short_ids_match_literally(store: SQLStore) -> None:
    """``_``, ``%`` and ``\\`` in what people type are characters, not LIKE wildcards or escapes."""
    for run_id, started in (("ab_1-x", 1.0), ("abc1-x", 2.0), ("a%b-y", 3.0), ("a\\b-z", 4.0)):
        store.add_run(make_run(run_id, started_at=started))
    assert store.find_run_ids("ab_") == ["ab_1-x"]
    assert store.find_run_ids("-x") == ["abc1-x", "ab_1-x"]  # a tail, newest first
    assert store.find_run_ids("a%") == ["a%b-y"]
    assert store.find_run_ids("a\\") == ["a\\b-z"]
    assert store.find_run_ids("%") == []
    found = store.get_run("ab_")
    assert found is not None and found.id == "ab_1-x"
    found = store.get_run("a\\")
    assert found is not None and found.id == "a\\b-z"


def test_list_runs_newest_first_with_filters_and_limit(store: SQLStore) -> None:
    store.add_run(make_run("r1", started_at=1.0))
    store.add_run(make_run("r3", started_at=3.0))
    store.add_run(make_run("r2", started_at=2.0, thread="issue-2"))
    assert [r.id for r in store.list_runs()] == ["r3", "r2", "r1"]
    assert [r.id for r in store.list_runs(thread="issue-1")] == ["r3", "r1"]
    assert [r.id for r in store.list_runs(limit=2)] == ["r3", "r2"]
    assert store.list_runs(agent="claude") == []
    assert [r.id for r in store.list_runs(agent="fake", repo="github.com/acme/api", thread="issue-2")] == [
        "r2"
    ]


def test_delete_runs_returns_what_it_deleted(store: SQLStore) -> None:
    store.add_run(make_run("r1"))
    store.add_run(make_run("r2"))
    store.add_run(make_run("r3", thread="issue-2"))
    deleted = store.delete_runs("fake", "github.com/acme/api", "issue-1")
    assert sorted(r.id for r in deleted) == ["r1", "r2"]
    assert [r.id for r in store.list_runs()] == ["r3"]


# -- leases ---------------------------------------------------------------------------------------


def never(_existing: Lease, _now: float) -> bool:
    return False


def test_try_lease_is_exclusive(store: SQLStore) -> None:
    assert store.try_lease(make_lease("a"), 60, never) is None
    blocker = store.try_lease(make_lease("b"), 60, never)
    assert blocker is not None
    assert blocker.holder == "a"
    assert store.try_lease(make_lease("b", key="other"), 60, never) is None


def test_try_lease_takes_over_only_when_can_take_agrees(store: SQLStore) -> None:
    first = make_lease("a")
    store.try_lease(first, 60, never)
    seen: list[tuple[Lease, float]] = []

    def can_take(existing: Lease, now: float) -> bool:
        seen.append((existing, now))
        return existing.holder == "a"

    assert store.try_lease(make_lease("b"), 60, can_take) is None
    ((holder_a, now),) = seen
    # the store's clock: seconds since the epoch (a minute of margin for a busy machine)
    assert holder_a.holder == "a" and abs(now - time.time()) < 60
    assert store.renew_lease("k", "a", 60) is False  # the old holder has lost it
    assert store.renew_lease("k", "b", 60) is True
    blocker = store.try_lease(make_lease("c"), 60, can_take)
    assert blocker is not None and blocker.holder == "b" and blocker.expires_at > first.expires_at


def test_each_grant_gets_a_larger_fence_even_after_a_release(store: SQLStore) -> None:
    tokens = []
    for holder in ("a", "a", "b", "c"):
        lease = make_lease(holder)
        assert store.try_lease(lease, 60, lambda _e, _n: True) is None
        tokens.append(lease.fence)
        if holder == "b":
            store.release_lease("k", "b")
    assert tokens == [1, 1, 2, 3]  # the same holder again keeps its token


def test_try_lease_by_the_same_holder_refreshes_it(store: SQLStore) -> None:
    short = make_lease("a")
    store.try_lease(short, 5, never)
    assert store.try_lease(make_lease("a"), 50, never) is None
    blocker = store.try_lease(make_lease("b"), 60, never)
    assert blocker is not None and blocker.expires_at > short.expires_at + 40


def test_release_only_by_the_holder(store: SQLStore) -> None:
    store.try_lease(make_lease("a"), 60, never)
    store.release_lease("k", "b")
    assert store.try_lease(make_lease("b"), 60, never) is not None
    store.release_lease("k", "a")
    assert store.renew_lease("k", "a", 60) is False
    assert store.try_lease(make_lease("b"), 60, never) is None


def _race(url: str, holder: str, ready: object, start: object, results: object) -> None:
    store = SQLStore(url)
    try:
        ready.put(holder)  # type: ignore[attr-defined]
        start.wait(30)  # type: ignore[attr-defined]
        blocker = store.try_lease(make_lease(holder, key="raced"), 60, never)
        results.put((holder, blocker is None))  # type: ignore[attr-defined]
    finally:
        store.close()


def test_two_processes_racing_for_one_key_exactly_one_wins(store: SQLStore) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    ready, results = ctx.Queue(), ctx.Queue()
    url = store.url
    procs = [ctx.Process(target=_race, args=(url, f"p{i}", ready, start, results)) for i in range(3)]
    for proc in procs:
        proc.start()
    for _ in procs:  # all of them opened the store and reach the barrier: they race
        ready.get(timeout=60)
    start.set()
    outcomes = dict(results.get(timeout=30) for _ in procs)
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    winners = [holder for holder, won in outcomes.items() if won]
    assert len(outcomes) == 3
    assert len(winners) == 1
    blocker = store.try_lease(make_lease("late", key="raced"), 60, never)
    assert blocker is not None and blocker.holder == winners[0]


# -- blobs and snapshots --------------------------------------------------------------------------


def test_blobs_are_stored_once_per_digest(store: SQLStore) -> None:
    assert store.get_blob("d1") is None
    store.put_blob("d1", b"first", 5)
    store.put_blob("d1", b"second", 6)  # same digest: same content by definition, kept as is
    assert store.get_blob("d1") == b"first"
    assert count(store, "blobs") == 1


def test_snapshot_round_trip(store: SQLStore) -> None:
    store.put_blob("d1", b"x", 1)
    snapshot = make_snapshot({"projects/p/sid.jsonl": "d1"})
    store.save_snapshot(snapshot)
    assert store.get_snapshot("fake", "github.com/acme/api", "issue-1") == snapshot
    assert store.get_snapshot("fake", "github.com/acme/api", "issue-2") is None


def test_save_snapshot_replaces_the_previous_and_drops_unused_blobs(store: SQLStore) -> None:
    for digest in ("d1", "d2", "d4"):
        store.put_blob(digest, digest.encode(), 2)
    store.save_snapshot(make_snapshot({"a": "d1", "b": "d2"}, thread="issue-1"))
    store.save_snapshot(make_snapshot({"c": "d4", "d": "d1"}, thread="issue-2"))
    store.save_snapshot(make_snapshot({"a": "d2"}, session_id="sid-2", thread="issue-1"))
    got = store.get_snapshot("fake", "github.com/acme/api", "issue-1")
    assert got is not None and got.files == {"a": ["d2"]} and got.agent_session_id == "sid-2"
    assert store.get_blob("d1") == b"d1"  # still used by the other key
    store.save_snapshot(make_snapshot({"c": "d4"}, thread="issue-2"))
    assert store.get_blob("d1") is None  # nothing uses it any more
    assert store.get_blob("d2") == b"d2"
    assert store.get_blob("d4") == b"d4"
    assert count(store, "blobs") == 2


def test_saving_a_snapshot_keeps_blobs_another_key_is_about_to_use(store: SQLStore) -> None:
    # runner A has put its blob but not yet saved its snapshot when runner B replaces its own
    store.put_blob("old-b", b"ob", 2)
    store.save_snapshot(make_snapshot({"x": "old-b"}, thread="issue-b"))
    store.put_blob("new-a", b"na", 2)
    store.put_blob("new-b", b"nb", 2)
    store.save_snapshot(make_snapshot({"x": "new-b"}, thread="issue-b"))
    assert store.get_blob("old-b") is None
    assert store.get_blob("new-a") == b"na"
    store.save_snapshot(make_snapshot({"x": "new-a"}, thread="issue-a"))
    assert store.get_blob("new-a") == b"na"


def test_blob_shared_by_two_snapshots_survives_deleting_one(store: SQLStore) -> None:
    store.put_blob("shared", b"s", 1)
    store.save_snapshot(make_snapshot({"a": "shared"}, thread="issue-1"))
    store.save_snapshot(make_snapshot({"a": "shared"}, thread="issue-2"))
    store.delete_snapshot("fake", "github.com/acme/api", "issue-1")
    assert store.get_snapshot("fake", "github.com/acme/api", "issue-1") is None
    assert store.get_blob("shared") == b"s"
    store.delete_snapshot("fake", "github.com/acme/api", "issue-2")
    assert store.get_blob("shared") is None


# -- audit ----------------------------------------------------------------------------------------


def test_audit_entries_newest_first(store: SQLStore) -> None:
    before = time.time()
    store.audit("reset", "fake/x/issue-1", "alice", {"scope": "all"})
    store.audit("sweep", "fake/x/issue-2", "cron", {"freed": 10})
    entries = store.list_audit()
    assert [(e["action"], e["key"], e["actor"], e["detail"]) for e in entries] == [
        ("sweep", "fake/x/issue-2", "cron", {"freed": 10}),
        ("reset", "fake/x/issue-1", "alice", {"scope": "all"}),
    ]
    assert all(e["at"] >= before for e in entries)
    assert len(store.list_audit(limit=1)) == 1


# -- instructions ---------------------------------------------------------------------------------


def test_instructions_are_one_row_per_key_replaced_and_deleted_with_the_session(store: SQLStore) -> None:
    assert store.get_instructions("fake", REPO, "issue-1") is None
    files = {"CLAUDE.md": {"kind": "text", "size": 4, "sha256": "ab", "text": "use\u00e9\n"}}
    store.save_instructions(InstructionsRecord("fake", REPO, "issue-1", "s1", 5.0, files))
    got = store.get_instructions("fake", REPO, "issue-1")
    assert got == InstructionsRecord("fake", REPO, "issue-1", "s1", 5.0, files)
    store.save_instructions(InstructionsRecord("fake", REPO, "issue-1", "s2", 6.0, {}))
    again = store.get_instructions("fake", REPO, "issue-1")
    assert again is not None and (again.session_id, again.files) == ("s2", {})
    store.save_instructions(InstructionsRecord("fake", REPO, "issue-2", "s3", 6.0, {}))
    store.save_session(make_session())
    store.delete_session("fake", REPO, "issue-1")
    assert store.get_instructions("fake", REPO, "issue-1") is None
    assert store.get_instructions("fake", REPO, "issue-2") is not None  # another key's stays


def test_a_damaged_instructions_row_is_a_missing_one(store: SQLStore) -> None:
    store.save_instructions(InstructionsRecord("fake", REPO, "issue-1", "s1", 5.0, {}))
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE instructions SET files = '[1, 2'"))
    assert store.get_instructions("fake", REPO, "issue-1") is None
